// Chromium's WebSocket with a subscriber token (HS256, from the app's
// /token through sidepush's proxy, on token-issuer.mjs's page): once in the
// query string, once in a cookie the page sets (a browser's WebSocket can
// send neither an Authorization header nor any other), and a token for
// another channel, which sidepush refuses before the upgrade.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT; prints {ok, ...} as its last line.
import { report, sleep, waitFor } from './common.mjs';

const env = process.env;

report(async (browser) => {
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${env.SIDEPUSH_PORT}/page.html`);
  await tab.evaluate(async () => {
    window.frames = { query: [], cookie: [] };
    const token = async (channels) =>
      (await (await fetch(`/token?ttl=60&channels=${channels}&sub=page`)).json()).token;
    const open = (url, into) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onmessage = (e) => into.push(e.data);
      ws.onopen = () => resolve('open');
      ws.onerror = () => resolve('refused');
    });
    window.query = await open(`ws://${location.host}/events/wsq?token=${await token('wsq')}`,
                              window.frames.query);
    document.cookie = `sp_token=${await token('wsc')}; path=/`;
    window.cookie = await open(`ws://${location.host}/events/wsc`, window.frames.cookie);
    document.cookie = `sp_token=${await token('elsewhere')}; path=/`;
    window.other = await open(`ws://${location.host}/events/wsc`, []);
  });
  for (const channel of ['wsq', 'wsc']) {
    for (let n = 1; n <= 3; n++) {
      const res = await fetch(`http://127.0.0.1:${env.SIDEPUSH_PUBLISH_PORT}/publish/${channel}`,
                              { method: 'POST', body: `${channel}${n}` });
      if (res.status !== 202) throw new Error(`publish: ${res.status}`);
    }
  }
  await waitFor('the frames', async () => tab.evaluate(
    () => window.frames.query.length >= 3 && window.frames.cookie.length >= 3));
  await sleep(200);
  const seen = await tab.evaluate(() => ({ query: window.query, cookie: window.cookie,
                                           other: window.other, frames: window.frames }));
  const ok = seen.query === 'open' && seen.cookie === 'open' && seen.other === 'refused' &&
    JSON.stringify(seen.frames) === JSON.stringify({ query: ['wsq1', 'wsq2', 'wsq3'],
                                                     cookie: ['wsc1', 'wsc2', 'wsc3'] });
  return { ...seen, ok };
});
