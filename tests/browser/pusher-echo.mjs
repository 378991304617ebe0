// Laravel Echo 2 and pusher-js 8 in Chromium against sidepush, as a Laravel
// page uses them: the page and its /broadcasting/auth come from a stand-in
// app (this script's HTTP server, signing with the npm `pusher` SDK's
// authorizeChannel) through sidepush's proxy, and the WebSocket goes to
// sidepush's /app/{key}. Two Echo instances in the page, one with
// broadcaster 'pusher' (Alice) and one with 'reverb' (Bob); the app
// broadcasts with the SDK as Laravel's Pusher driver does.
//
// APP_PORT (the stand-in app's), SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT,
// PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET; prints {ok, ...} last.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { report, waitFor } from './common.mjs';

const require = createRequire(import.meta.url);
const PusherServer = require('pusher');
const env = process.env;
const server = new PusherServer({
  appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: env.PUSHER_SECRET,
  host: '127.0.0.1', port: env.SIDEPUSH_PUBLISH_PORT, useTLS: false,
});
const modules = new URL('./node_modules/', import.meta.url);
const scripts = {
  '/pusher.min.js': readFileSync(new URL('pusher-js/dist/web/pusher.min.js', modules)),
  '/echo.iife.js': readFileSync(new URL('laravel-echo/dist/echo.iife.js', modules)),
};
const page = `<!doctype html><meta charset="utf-8"><title>echo</title>
<script src="/pusher.min.js"></script><script src="/echo.iife.js"></script>
<script>
  window.seen = { alice: [], bob: [], here: null, joined: [] };
  const common = { key: '${env.PUSHER_KEY}', wsHost: location.hostname, wsPort: ${env.SIDEPUSH_PORT},
                   forceTLS: false, enabledTransports: ['ws'], disableStats: true };
  function start(name, broadcaster) {
    const echo = new Echo.default({ ...common, broadcaster, cluster: 'sidecar',
                                    authEndpoint: '/broadcasting/auth?user=' + name });
    echo.channel('orders').listen('OrderShipped', (e) => seen[name].push(['OrderShipped', e]));
    echo.private('orders.1').listen('.note', (e) => seen[name].push(['note', e]));
    return echo;
  }
  window.alice = start('alice', 'pusher');
  alice.join('room').here((users) => { seen.here = users; })
    .joining((user) => seen.joined.push(user));
  window.startBob = () => {
    window.bob = start('bob', 'reverb');
    bob.join('room');
  };
</script>`;

// The stand-in Laravel app: the page, and /broadcasting/auth as Laravel's
// Broadcast::routes() answers it (form body socket_id, channel_name).
function app() {
  const users = { alice: { id: 1, name: 'Alice' }, bob: { id: 2, name: 'Bob' } };
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://app');
    if (scripts[url.pathname]) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(scripts[url.pathname]);
    } else if (url.pathname === '/broadcasting/auth' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const user = users[url.searchParams.get('user')];
        const channel = form.get('channel_name');
        const data = channel.startsWith('presence-')
          ? { user_id: user.id, user_info: { name: user.name } } : undefined;
        res.writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify(server.authorizeChannel(form.get('socket_id'), channel, data)));
      });
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    }
  });
}

report(async (browser) => {
  const stand_in = app().listen(Number(env.APP_PORT), '127.0.0.1');
  try {
    const tab = await browser.newPage();
    await tab.goto(`http://127.0.0.1:${env.SIDEPUSH_PORT}/`);
    const subscribed = (who) => tab.evaluate((w) => {
      const p = window[w] && window[w].connector.pusher;
      return !!p && ['orders', 'private-orders.1', 'presence-room']
        .every((c) => p.channel(c) && p.channel(c).subscribed);
    }, who);
    await waitFor('alice subscribed', () => subscribed('alice'));
    await tab.evaluate(() => window.startBob());
    await waitFor('bob subscribed', () => subscribed('bob'));
    await waitFor('bob seen joining', () => tab.evaluate(() => seen.joined.length > 0));
    await server.trigger('orders', 'App\\Events\\OrderShipped', { order: { id: 7 } });
    await server.trigger('private-orders.1', 'note', { text: 'for members only' });
    await waitFor('every event', () => tab.evaluate(
      () => seen.alice.length >= 2 && seen.bob.length >= 2));
    const seen = await tab.evaluate(() => window.seen);
    const ok = seen.alice.some(([n, e]) => n === 'OrderShipped' && e.order.id === 7) &&
      seen.bob.some(([n, e]) => n === 'OrderShipped' && e.order.id === 7) &&
      seen.alice.some(([n, e]) => n === 'note' && e.text === 'for members only') &&
      seen.bob.some(([n, e]) => n === 'note') &&
      JSON.stringify(seen.here) === '[{"name":"Alice"}]' && seen.joined[0].name === 'Bob';
    return { ok, seen };
  } finally {
    stand_in.close();
  }
});
