// One event through the `pusher` server SDK (a signed POST /apps/{id}/events),
// as an app's backend sends it: node pusher-trigger.mjs CHANNEL EVENT DATA_JSON.
// SIDEPUSH_PUBLISH_PORT, PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET name the
// server; prints {ok, status} as its last line.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const PusherServer = require('pusher');
const env = process.env;
const [channel, event, data] = process.argv.slice(2);
const server = new PusherServer({
  appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: env.PUSHER_SECRET,
  host: '127.0.0.1', port: env.SIDEPUSH_PUBLISH_PORT, useTLS: false,
});

let outcome;
try {
  const res = await server.trigger(channel, event, JSON.parse(data));
  outcome = { ok: res.status === 200, status: res.status };
} catch (e) {
  outcome = { ok: false, status: e.status, error: String(e.body || e) };
}
console.log(JSON.stringify(outcome));
process.exit(outcome.ok ? 0 : 1);
