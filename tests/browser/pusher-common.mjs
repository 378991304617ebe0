// What the Node Pusher tests share: the `pusher` server SDK and pusher-js
// pointed at sidepush (SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, PUSHER_APP_ID,
// PUSHER_KEY, PUSHER_SECRET), and a subscription as a promise.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const env = process.env;

export const server = new PusherServer({
  appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: env.PUSHER_SECRET,
  host: '127.0.0.1', port: env.SIDEPUSH_PUBLISH_PORT, useTLS: false,
});

// A pusher-js client authorized as user would be by the app's auth routes,
// which sign with the server SDK (authorizeChannel, authenticateUser).
export function client(user, port = env.SIDEPUSH_PORT) {
  const authorizeChannel = (params, callback) => {
    const data = params.channelName.startsWith('presence-')
      ? { user_id: user.id, user_info: { name: user.name } } : undefined;
    callback(null, server.authorizeChannel(params.socketId, params.channelName, data));
  };
  const authenticateUser = (params, callback) =>
    callback(null, server.authenticateUser(params.socketId, { id: user.id, user_info: { name: user.name } }));
  return new PusherClient(env.PUSHER_KEY, {
    cluster: 'sidecar', wsHost: '127.0.0.1', wsPort: Number(port), forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { customHandler: authorizeChannel },
    userAuthentication: { customHandler: authenticateUser },
  });
}

export function subscribed(pusher, name) {
  const channel = pusher.subscribe(name);
  return new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', () => resolve(channel));
    channel.bind('pusher:subscription_error', (e) => reject(new Error(`${name}: ${JSON.stringify(e)}`)));
  });
}

// Runs main(), prints its outcome ({ok, ...}) as the last line of JSON and
// exits with it.
export async function reportMain(main) {
  let outcome;
  try {
    outcome = await main();
  } catch (e) {
    outcome = { ok: false, error: String(e && e.stack || e) };
  }
  console.log(JSON.stringify(outcome));
  process.exit(outcome.ok ? 0 : 1);
}
