// pusher-js 8 in Node and the `pusher` server SDK against sidepush's Pusher
// protocol, as a Laravel or Node app uses them: public, private and presence
// channels authorized by the SDK (the app's auth route), trigger and
// triggerBatch through the signed HTTP API, socket_id exclusion
// (toOthers), and one channel shared with native publishes.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET name the server (SIDEPUSH_PORT_B: bob's, another replica);
// prints {ok, ...} as its last line.
import { sleep, waitFor } from './common.mjs';
import { client, reportMain, server, subscribed } from './pusher-common.mjs';

const env = process.env;

function connected(pusher) {
  return new Promise((resolve, reject) => {
    pusher.connection.bind('connected', resolve);
    pusher.connection.bind('failed', () => reject(new Error('connection failed')));
  });
}

async function publishNative(channel, event, body) {
  const res = await fetch(`http://127.0.0.1:${env.SIDEPUSH_PUBLISH_PORT}/publish/${channel}`, {
    method: 'POST', headers: { 'Sidepush-Event': event }, body,
  });
  if (res.status !== 202) throw new Error(`native publish: ${res.status}`);
}

async function main() {
  const alice = client({ id: 'alice', name: 'Alice' });
  const bob = client({ id: 'bob', name: 'Bob' }, env.SIDEPUSH_PORT_B || env.SIDEPUSH_PORT);
  await Promise.all([connected(alice), connected(bob)]);
  const socketId = alice.connection.socket_id;
  if (!/^\d+\.\d+$/.test(socketId)) throw new Error(`socket_id ${socketId}`);

  const got = { alice: [], bob: [], members: [] };
  const [pubA, privA, presA] = await Promise.all([
    subscribed(alice, 'orders'), subscribed(alice, 'private-orders'),
    subscribed(alice, 'presence-room')]);
  // Across replicas, Alice's membership reaches Redis a round trip after her
  // subscription succeeded.
  if (env.SIDEPUSH_PORT_B) await sleep(300);
  // Alice listens before Bob comes: his join may reach her before his own
  // subscriptions succeed.
  presA.bind('pusher:member_added', (m) => got.members.push(['added', m.id, m.info]));
  presA.bind('pusher:member_removed', (m) => got.members.push(['removed', m.id]));
  const [pubB, , presB] = await Promise.all([
    subscribed(bob, 'orders'), subscribed(bob, 'private-orders'), subscribed(bob, 'presence-room')]);
  for (const [who, ch] of [['alice', pubA], ['alice', privA], ['bob', pubB]])
    ch.bind_global((event, data) => { if (!event.startsWith('pusher:')) got[who].push({ channel: ch.name, event, data }); });
  bob.channel('private-orders').bind_global((event, data) => {
    if (!event.startsWith('pusher:')) got.bob.push({ channel: 'private-orders', event, data });
  });

  // Bob came after Alice: he sees both members; she is told he came.
  const bobSees = Object.keys(presB.members.members).sort();
  await waitFor('alice to hear bob join', () => got.members.some((m) => m[0] === 'added' && m[1] === 'bob'));
  const meAlice = presA.members.me;

  await server.trigger('orders', 'order-shipped', { id: 42 });
  await server.trigger(['orders', 'private-orders'], 'two-channels', { n: 2 });
  await server.trigger('orders', 'not-for-alice', { n: 3 }, { socket_id: socketId });
  await server.triggerBatch([{ channel: 'orders', name: 'batched', data: { n: 4 } },
                             { channel: 'private-orders', name: 'batched', data: 'text' }]);
  await publishNative('orders', 'native', '{"from":"POST /publish"}');
  await waitFor('every event', () => got.bob.length >= 7 && got.alice.length >= 6);
  await sleep(200); // anything that should not come has had its chance

  const names = (list) => list.map((e) => `${e.channel}:${e.event}`).sort();
  bob.disconnect();
  await waitFor('alice to hear bob leave', () => got.members.some((m) => m[0] === 'removed'), 15000);
  alice.disconnect();
  const result = {
    socketId, bobSees, me: meAlice && meAlice.id, members: got.members,
    alice: names(got.alice), bob: names(got.bob),
    shipped: got.bob.find((e) => e.event === 'order-shipped')?.data,
    native: got.alice.find((e) => e.event === 'native')?.data,
    batchedText: got.bob.find((e) => e.event === 'batched' && e.channel === 'private-orders')?.data,
  };
  result.ok = JSON.stringify(result.bobSees) === '["alice","bob"]' && result.me === 'alice' &&
    result.shipped?.id === 42 && result.native?.from === 'POST /publish' &&
    result.batchedText === 'text' && !result.alice.includes('orders:not-for-alice') &&
    result.bob.includes('orders:not-for-alice') &&
    JSON.stringify(result.alice) === JSON.stringify(['orders:batched', 'orders:native',
      'orders:order-shipped', 'orders:two-channels', 'private-orders:batched',
      'private-orders:two-channels']) &&
    got.members[0][0] === 'added' && got.members[0][2]?.name === 'Bob';
  return result;
}

await reportMain(main);
