// Resuming from history with stock pusher-js 8, as lib/push/pusher.md shows
// it: the page remembers each channel's last message id (every event's
// frame carries "id") and adds it as "since" to the pusher:subscribe that
// pusher-js sends again after a reconnect. What was published while the
// client was away arrives once, in order, before what comes after.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET; prints {ok, ...} as its last line.
import { waitFor } from './common.mjs';
import { client, reportMain, server, subscribed } from './pusher-common.mjs';

// The snippet of lib/push/pusher.md. pusher-js hands its events on without
// the fields it does not know, so the ids are read from its transport.
function resumable(pusher) {
  const lastIds = {};
  pusher.connection.bind('connected', () => pusher.connection.connection.transport.bind('message', (e) => {
    const m = JSON.parse(e.data);
    if (m.channel && m.id) lastIds[m.channel] = m.id;
  }));
  const send = pusher.send_event.bind(pusher);
  pusher.send_event = (name, data, channel) => send(name,
    name === 'pusher:subscribe' && lastIds[data.channel] ? { ...data, since: lastIds[data.channel] } : data,
    channel);
  return pusher;
}

async function main() {
  const pusher = resumable(client({ id: 'reader', name: 'Reader' }));
  const feed = await subscribed(pusher, 'feed');
  const got = [];
  feed.bind('item', (d) => got.push(d.n));
  await server.trigger('feed', 'item', { n: 1 });
  await waitFor('the first item', () => got.length === 1);

  pusher.disconnect();
  await waitFor('disconnected', () => pusher.connection.state === 'disconnected');
  for (const n of [2, 3, 4]) await server.trigger('feed', 'item', { n });
  pusher.connect();
  await waitFor('the items missed', () => got.length === 4);
  await server.trigger('feed', 'item', { n: 5 });
  await waitFor('the next one', () => got.length === 5);
  pusher.disconnect();
  return { got, ok: JSON.stringify(got) === '[1,2,3,4,5]' };
}

await reportMain(main);
