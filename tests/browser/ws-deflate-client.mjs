// The `ws` npm client with permessage-deflate options sidepush must honour:
// one that carries its window over (clientNoContextTakeover: false, so an
// answer with client_no_context_takeover would be refused) and asks for
// small windows both ways, and one with ws's defaults. Each receives large
// and small messages and sends messages that refer back into earlier ones;
// sidepush forwards them to the backend, which the test checks.
//
// Environment: SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT. Prints one JSON line.
import WebSocket from 'ws';

const port = Number(process.env.SIDEPUSH_PORT);
const publishPort = Number(process.env.SIDEPUSH_PUBLISH_PORT);
const channel = `wsnpm${Date.now()}`;
const options = {
  small: { clientNoContextTakeover: false, serverMaxWindowBits: 10, clientMaxWindowBits: 9,
           threshold: 0 },
  defaults: true,
};

function json(size, seed) {
  const rows = [];
  while (JSON.stringify(rows).length < size)
    rows.push({ order_id: seed * 1000 + rows.length, status: 'shipped', total_cents: rows.length });
  return JSON.stringify({ event: 'orders.updated', seed, rows });
}
const messages = [json(5000, 1), 'small', json(200, 2), json(30000, 3)];

function open(name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/${channel}?client=${name}`,
                             { perMessageDeflate: options[name] });
    ws.got = [];
    ws.on('upgrade', (res) => { ws.answer = res.headers['sec-websocket-extensions']; });
    ws.on('message', (data) => ws.got.push(data.toString()));
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

const wait = async (what, check) => {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
};

let outcome;
try {
  const clients = { small: await open('small'), defaults: await open('defaults') };
  const extensions = Object.fromEntries(Object.entries(clients).map(([k, ws]) => [k, ws.answer]));
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`http://127.0.0.1:${publishPort}/channels/${channel}`);
    if (r.status === 200 && (await r.json()).subscribers === 2) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const m of messages) {
    const r = await fetch(`http://127.0.0.1:${publishPort}/publish/${channel}`,
                          { method: 'POST', body: m });
    if (r.status !== 202) throw new Error(`publish answered ${r.status}`);
  }
  for (const ws of Object.values(clients))
    await wait('every message', () => ws.got.length >= messages.length);
  const same = Object.values(clients).every(
    (ws) => ws.got.length === messages.length && ws.got.every((m, i) => m === messages[i]));
  // The backend answers "echo" with "echoed" after the messages before it
  // (one connection's messages are forwarded in order), so the answer means
  // every message before it reached the backend.
  for (const [name, ws] of Object.entries(clients)) {
    for (let i = 0; i < 3; i++) ws.send(`${name} says ${json(800, i)}`);
    ws.send('ping');
    ws.send('echo');
  }
  for (const ws of Object.values(clients))
    await wait('pong and the backend\'s echo', () => ws.got.includes('pong') &&
                                                    ws.got.includes('echoed'));
  // ws.extensions names what ws itself took from the answer.
  const deflating = Object.values(clients).every((ws) => ws.extensions === 'permessage-deflate');
  outcome = { ok: same && deflating, extensions };
  for (const ws of Object.values(clients)) ws.close();
} catch (e) {
  outcome = { ok: false, error: String(e) };
}
console.log(JSON.stringify(outcome));
process.exit(outcome.ok ? 0 : 1);
