// Browser test: Debian's Chromium, driven by playwright-core, opens the demo
// app's push-test page through sidepush. The page's own EventSource,
// WebSocket and fetch() long-poll loop subscribe to one channel; messages are
// published, every connection is cut mid-stream (a TCP relay in front of
// sidepush drops all its sockets), more messages are published, and each
// transport must end up with every message exactly once, in order. The first
// cut comes before any message at all: a transport must still resume from the
// position its stream opened with (SSE's opening id:, the envelope's
// sidepush-open), not from "now".
//
// With several replicas (sharing Redis), the relay is their load balancer: each new
// connection goes to the next replica, so a transport that reconnects lands on
// another one and must resume there; publishes go to the replicas in turn.
//
// Environment: SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, or comma-separated lists of
// replicas in SIDEPUSH_PORTS, SIDEPUSH_PUBLISH_PORTS. Prints one JSON line.
import net from 'node:net';
import { launch, sleep, waitFor } from './common.mjs';

const ports = (process.env.SIDEPUSH_PORTS || process.env.SIDEPUSH_PORT).split(',').map(Number);
const publishPorts = (process.env.SIDEPUSH_PUBLISH_PORTS || process.env.SIDEPUSH_PUBLISH_PORT)
  .split(',').map(Number);
const channel = `browser${Date.now()}`;

// ---- a relay whose connections the test can cut ----------------------------------
const sockets = new Set();
let connections = 0;
const relay = net.createServer((client) => {
  const upstream = net.connect(ports[connections++ % ports.length], '127.0.0.1');
  for (const s of [client, upstream]) {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  }
  client.pipe(upstream);
  upstream.pipe(client);
});
await new Promise((r) => relay.listen(0, '127.0.0.1', r));
const relayPort = relay.address().port;
const cutAll = () => { for (const s of sockets) s.destroy(); };

let published = 0;
async function publish(data) {
  const publishPort = publishPorts[published++ % publishPorts.length];
  const r = await fetch(`http://127.0.0.1:${publishPort}/publish/${channel}`,
                        { method: 'POST', body: data });
  if (r.status !== 202) throw new Error(`publish answered ${r.status}`);
}

async function subscribers() {  // on every replica together
  let n = 0;
  for (const publishPort of publishPorts) {
    const r = await fetch(`http://127.0.0.1:${publishPort}/channels/${channel}`);
    if (r.status === 200) n += (await r.json()).subscribers;
  }
  return n;
}

const browser = await launch();
let outcome;
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`http://127.0.0.1:${relayPort}/push-test.html?channel=${channel}`);
  const results = () => page.evaluate(() => window.results);
  const all = (n) => async () => {
    const r = await results();
    return r.sse.length >= n && r.ws.length >= n && r.lp.length >= n;
  };
  await waitFor('three subscriptions', async () => (await subscribers()) >= 3);

  cutAll();  // before any message
  await publish('m0');  // while they are down
  await waitFor('reconnections after the first cut', async () => {
    const r = await results();
    return r.opens.sse >= 2 && r.opens.ws >= 2;
  });
  for (let i = 1; i < 10; i++) await publish(`m${i}`);
  await waitFor('the first ten messages on every transport', all(10));

  cutAll();  // every TCP connection of the page, mid-stream
  for (let i = 10; i < 15; i++) await publish(`m${i}`);  // while they are down
  await waitFor('reconnections', async () => {
    const r = await results();
    return r.opens.sse >= 3 && r.opens.ws >= 3;
  });
  for (let i = 15; i < 20; i++) await publish(`m${i}`);
  await waitFor('all twenty messages on every transport', all(20));
  await sleep(300);  // a late duplicate would show up here

  const r = await results();
  const want = Array.from({ length: 20 }, (_, i) => `m${i}`);
  const check = (name) => {
    const data = r[name].map((m) => m.data);
    const ids = r[name].map((m) => m.id);
    return JSON.stringify(data) === JSON.stringify(want) && new Set(ids).size === ids.length;
  };
  outcome = {
    ok: check('sse') && check('ws') && check('lp') && r.errors.length === 0,
    sse: r.sse.map((m) => m.data), ws: r.ws.map((m) => m.data), lp: r.lp.map((m) => m.data),
    opens: r.opens, errors: r.errors,
  };
} catch (e) {
  outcome = { ok: false, error: String(e) };
} finally {
  await browser.close();
  relay.close();
  cutAll();
}
console.log(JSON.stringify(outcome));
process.exit(outcome.ok ? 0 : 1);
