// Users with pusher-js 8 and the `pusher` server SDK: sign-in authorized by
// the SDK's authenticateUser (the app's /pusher/user-auth), sendToUser to
// every connection of the user and no other, the SDK's channel and user
// queries, then terminateUserConnections closing the user's connections
// only.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET name the server (SIDEPUSH_PORT_B: the second connection's,
// another replica); prints {ok, ...} as its last line.
import { sleep, waitFor } from './common.mjs';
import { client, reportMain, server, subscribed } from './pusher-common.mjs';

const env = process.env;

async function signedIn(pusher) {
  pusher.signin();
  await waitFor('sign-in', () => pusher.user.user_data && pusher.user.serverToUserChannel?.subscribed);
}

async function body(res) {
  if (res.status !== 200) throw new Error(`${res.url}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function main() {
  const alice = client({ id: 'alice', name: 'Alice' });
  const alice2 = client({ id: 'alice', name: 'Alice' }, env.SIDEPUSH_PORT_B || env.SIDEPUSH_PORT);
  const bob = client({ id: 'bob', name: 'Bob' });
  await Promise.all([signedIn(alice), signedIn(alice2), signedIn(bob)]);
  if (env.SIDEPUSH_PORT_B) await sleep(300); // the replicas' subscriptions reach Redis

  const got = { alice: [], alice2: [], bob: [] };
  alice.user.bind('greeting', (d) => got.alice.push(d));
  alice2.user.bind('greeting', (d) => got.alice2.push(d));
  bob.user.bind('greeting', (d) => got.bob.push(d));
  await server.sendToUser('alice', 'greeting', { to: 'alice' });
  await server.sendToUser('bob', 'greeting', { to: 'bob' });
  await waitFor('greetings', () => got.alice.length && got.alice2.length && got.bob.length);

  await Promise.all([subscribed(alice, 'presence-room'), subscribed(bob, 'presence-room'),
                     subscribed(bob, 'news')]);
  await sleep(300); // the members reach the shared loop (and Redis)
  const channels = await body(await server.get({ path: '/channels' }));
  const presence = await body(await server.get({
    path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
  const room = await body(await server.get({
    path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } }));
  const users = await body(await server.get({ path: '/channels/presence-room/users' }));
  const badCount = (await server.get({ path: '/channels/news', params: { info: 'user_count' } })
    .catch((e) => e.response || e)).status;

  const userData = alice.user.user_data; // pusher-js forgets it once disconnected
  const states = { alice: [], alice2: [], bob: [] };
  for (const [name, p] of [['alice', alice], ['alice2', alice2], ['bob', bob]])
    p.connection.bind('state_change', ({ current }) => states[name].push(current));
  const terminated = await body(await server.terminateUserConnections('alice'));
  await waitFor('alice closed', () => alice.connection.state !== 'connected' &&
    alice2.connection.state !== 'connected');
  await sleep(300);
  const bobState = bob.connection.state;
  await server.sendToUser('bob', 'greeting', { again: true });
  await waitFor('bob still hears', () => got.bob.length === 2);
  for (const p of [alice, alice2, bob]) p.disconnect();

  const result = {
    got, channels, presence, room, users, badCount, terminated, bobState, states,
    userData,
  };
  const sorted = (o) => JSON.stringify(Object.keys(o).sort());
  result.ok = got.alice.length === 1 && got.alice[0].to === 'alice' && got.alice2.length === 1 &&
    got.bob[0].to === 'bob' && got.bob[1].again === true &&
    sorted(channels.channels) === '["news","presence-room"]' &&
    presence.channels['presence-room'].user_count === 2 &&
    room.occupied === true && room.user_count === 2 && room.subscription_count >= 1 &&
    JSON.stringify(users.users.map((u) => u.id).sort()) === '["alice","bob"]' &&
    badCount === 400 && JSON.stringify(terminated) === '{}' && bobState === 'connected' &&
    result.userData?.id === 'alice';
  return result;
}

await reportMain(main);
