// Chromium's EventSource with a subscriber token that lasts 3 s
// (token-issuer.mjs's page, served through sidepush's proxy): each time the
// stream says sidepush-token-expired, the page fetches a new token from the
// app and reconnects with the last id it has. Messages published all along,
// one every 200 ms for 8 s, arrive each once and in order.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT; prints {ok, ...} as its last line.
import { report, sleep, waitFor } from './common.mjs';

const env = process.env;

report(async (browser) => {
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${env.SIDEPUSH_PORT}/page.html`);
  await waitFor('the stream', () => tab.evaluate(() => window.es && window.es.readyState === 1));
  const sent = [];
  for (let n = 1; n <= 40; n++) {
    const res = await fetch(`http://127.0.0.1:${env.SIDEPUSH_PUBLISH_PORT}/publish/ticks`,
                            { method: 'POST', body: String(n) });
    if (res.status !== 202) throw new Error(`publish ${n}: ${res.status}`);
    sent.push(String(n));
    await sleep(200);
  }
  await waitFor('every tick', async () => (await tab.evaluate(() => window.got.length)) >= 40, 15000);
  await sleep(300);
  const { got, expired } = await tab.evaluate(() => ({ got: window.got, expired: window.expired }));
  return { got, expired, ok: JSON.stringify(got) === JSON.stringify(sent) && expired >= 2 };
});
