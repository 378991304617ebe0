// Browser test: Chromium's EventSource on a GRIP stream. The page and the
// stream both come from the stand-in backend through sidepush; the backend
// answers the stream with Grip-Hold, and events are published in Pushpin's
// item format. Environment: SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT. Prints JSON.
import { report, waitFor } from './common.mjs';

const port = Number(process.env.SIDEPUSH_PORT);
const publishPort = Number(process.env.SIDEPUSH_PUBLISH_PORT);
const channel = `grip${Date.now()}`;

await report(async (browser) => {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/grip-page.html?channel=${channel}`);
  await waitFor('the GRIP subscription', async () => {
    const r = await fetch(`http://127.0.0.1:${publishPort}/channels/${channel}`);
    return r.status === 200 && (await r.json()).subscribers >= 1;
  });
  const items = Array.from({ length: 5 }, (_, i) => ({
    channel, id: String(i + 1), 'prev-id': String(i),
    formats: { 'http-stream': { content: `event: update\ndata: grip ${i}\n\n` } },
  }));
  const r = await fetch(`http://127.0.0.1:${publishPort}/publish/`,
                        { method: 'POST', body: JSON.stringify({ items }) });
  if (r.status !== 202) throw new Error(`publish answered ${r.status}`);
  await waitFor('five events', async () => (await page.evaluate(() => window.events.length)) >= 5);
  const events = await page.evaluate(() => window.events);
  const want = items.map((_, i) => `grip ${i}`);
  return { ok: JSON.stringify(events) === JSON.stringify(want), events };
});
