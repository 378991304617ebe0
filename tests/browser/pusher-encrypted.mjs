// Encrypted channels (private-encrypted-) with the SDKs' own encryption:
// the app's auth route (the `pusher` SDK with an encryptionMasterKeyBase64)
// gives pusher-js the channel's shared secret, the SDK's trigger encrypts,
// and sidepush relays what it cannot read. pusher-js decrypts it; the frame
// on the wire holds only a nonce and a ciphertext.
//
// SIDEPUSH_PORT, SIDEPUSH_PUBLISH_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET; prints {ok, ...} as its last line.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { waitFor } from './common.mjs';
import { PusherClient, reportMain } from './pusher-common.mjs';

const require = createRequire(import.meta.url);
const PusherServer = require('pusher');
const env = process.env;
const server = new PusherServer({
  appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: env.PUSHER_SECRET,
  host: '127.0.0.1', port: env.SIDEPUSH_PUBLISH_PORT, useTLS: false,
  encryptionMasterKeyBase64: randomBytes(32).toString('base64'),
});

async function main() {
  const pusher = new PusherClient(env.PUSHER_KEY, {
    cluster: 'sidecar', wsHost: '127.0.0.1', wsPort: Number(env.SIDEPUSH_PORT), forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: (p, cb) => cb(null, server.authorizeChannel(p.socketId, p.channelName)),
    },
  });
  const frames = [];
  pusher.connection.bind('connected', () => pusher.connection.connection.transport.bind('message', (e) => {
    const m = JSON.parse(e.data);
    if (m.event === 'secret') frames.push(m);
  }));
  const vault = pusher.subscribe('private-encrypted-vault');
  await new Promise((resolve, reject) => {
    vault.bind('pusher:subscription_succeeded', resolve);
    vault.bind('pusher:subscription_error', (e) => reject(new Error(JSON.stringify(e))));
  });
  const got = [];
  vault.bind('secret', (d) => got.push(d));
  await server.trigger('private-encrypted-vault', 'secret', { msg: 'the combination' });
  await waitFor('the secret', () => got.length === 1);
  pusher.disconnect();
  const wire = JSON.parse(frames[0].data);
  return {
    got, wire,
    ok: got[0]?.msg === 'the combination' && typeof wire.nonce === 'string' &&
      typeof wire.ciphertext === 'string' && !frames[0].data.includes('combination'),
  };
}

await reportMain(main);
