// Webhooks as a Pusher app takes them: the app (a Node HTTP server on
// APP_PORT, sidepush's backend) checks each POST with the `pusher` SDK's
// webhook().isValid() (X-Pusher-Key, X-Pusher-Signature) and reads its
// events; pusher-js clients make them: occupancy, members, and a client
// event (Echo's whisper) with its sender's socket_id and user_id.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, APP_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET; prints {ok, ...} as its last line.
import http from 'node:http';
import { sleep, waitFor } from './common.mjs';
import { client, reportMain, server, subscribed } from './pusher-common.mjs';

const env = process.env;

function receiver(hooks) {
  const app = http.createServer((req, res) => {
    let rawBody = '';
    req.on('data', (c) => { rawBody += c; });
    req.on('end', () => {
      const hook = server.webhook({ headers: req.headers, rawBody });
      const forged = server.webhook({ headers: req.headers, rawBody: rawBody.replace('"name"', '"nAme"') });
      hooks.push({ path: req.url, valid: hook.isValid(), forgedValid: forged.isValid(),
                   events: hook.isValid() ? hook.getEvents() : [] });
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => app.listen(Number(env.APP_PORT), '127.0.0.1', () => resolve(app)));
}

async function main() {
  const hooks = [];
  const app = await receiver(hooks);
  const events = () => hooks.flatMap((h) => h.events);
  const alice = client({ id: 'alice', name: 'Alice' });
  const bob = client({ id: 'bob', name: 'Bob' });
  const [roomA, roomB] = await Promise.all([subscribed(alice, 'presence-room'),
                                            subscribed(bob, 'presence-room')]);
  const whispers = [];
  roomB.bind('client-typing', (data) => whispers.push(data));
  roomA.trigger('client-typing', { typing: true });
  await waitFor('the whisper', () => whispers.length === 1);
  await waitFor('the webhooks', () => events().some((e) => e.name === 'client_event') &&
    events().filter((e) => e.name === 'member_added').length === 2);
  bob.disconnect();
  await waitFor('bob removed', () => events().some((e) => e.name === 'member_removed'), 15000);
  alice.disconnect();
  await waitFor('vacated', () => events().some((e) => e.name === 'channel_vacated'), 15000);
  await sleep(100);
  app.close();

  const client_event = events().find((e) => e.name === 'client_event');
  const result = { hooks, whispers, client_event, names: events().map((e) => e.name) };
  result.ok = hooks.length > 0 && hooks.every((h) => h.valid && !h.forgedValid && h.path === '/hooks') &&
    whispers[0]?.typing === true && client_event?.channel === 'presence-room' &&
    client_event.event === 'client-typing' && JSON.parse(client_event.data).typing === true &&
    client_event.user_id === 'alice' && /^\d+\.\d+$/.test(client_event.socket_id) &&
    ['channel_occupied', 'member_added', 'member_removed', 'channel_vacated']
      .every((n) => result.names.includes(n));
  return result;
}

await reportMain(main);
