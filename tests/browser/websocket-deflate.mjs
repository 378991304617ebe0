// Browser test: Chromium's own WebSocket negotiates permessage-deflate with
// sidepush (Chromium offers it on every socket, with context takeover for
// what it sends). The page gets large and small messages, compressed and
// not, and must see each exactly as published; it also sends heartbeats,
// which sidepush answers (inflating them when Chromium compresses them).
//
// Environment: SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT. Prints one JSON line.
import { report, waitFor } from './common.mjs';

const port = Number(process.env.SIDEPUSH_PORT);
const publishPort = Number(process.env.SIDEPUSH_PUBLISH_PORT);
const channel = `deflate${Date.now()}`;

function json(size, seed) {
  const rows = [];
  while (JSON.stringify(rows).length < size)
    rows.push({ order_id: seed * 1000 + rows.length, status: 'shipped', carrier: 'DHL',
                total_cents: rows.length * 137 });
  return JSON.stringify({ event: 'orders.updated', seed, rows });
}
const messages = [json(2048, 1), 'tiny', json(300, 2), json(60000, 3), 'ünïcødé '.repeat(40)];

async function deflated() {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = text.match(/^sidepush_websocket_deflated_messages_total (\S+)$/m);
  return m ? Number(m[1]) : 0;
}

await report(async (browser) => {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);  // the page's origin is sidepush's
  await page.evaluate((url) => {
    window.got = [];
    window.pongs = 0;
    window.ws = new WebSocket(url);
    window.ws.onmessage = (e) => {
      if (e.data === 'pong') window.pongs++;
      else window.got.push(e.data);
    };
  }, `ws://127.0.0.1:${port}/ws/${channel}`);
  await waitFor('the socket open', () => page.evaluate(() => window.ws.readyState === 1));
  const extensions = await page.evaluate(() => window.ws.extensions);
  const before = await deflated();
  for (const m of messages) {
    const r = await fetch(`http://127.0.0.1:${publishPort}/publish/${channel}`,
                          { method: 'POST', body: m });
    if (r.status !== 202) throw new Error(`publish answered ${r.status}`);
  }
  await waitFor('every message', async () =>
    (await page.evaluate(() => window.got.length)) >= messages.length);
  await page.evaluate(() => { for (let i = 0; i < 3; i++) window.ws.send('ping'); });
  await waitFor('three pongs', async () => (await page.evaluate(() => window.pongs)) >= 3);
  const got = await page.evaluate(() => window.got);
  const compressed = (await deflated()) - before;
  const same = got.length === messages.length && got.every((m, i) => m === messages[i]);
  return { ok: same && extensions.startsWith('permessage-deflate') && compressed === 4,
           extensions, compressed, received: got.length };
});
