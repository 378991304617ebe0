// A token issuer for the subscriber-token tests, on npm `jose`: it makes an
// HS256 secret, an RSA and a P-256 key pair, serves its JWK Set, and mints
// tokens on request, including the bad ones (alg none, an HS256 token
// "signed" with the RSA public key's PEM). It is also the stand-in app of
// the browser test: a page, and /token for the page to renew its token.
//
// ISSUER_PORT names its port. It prints {secret, rsaPem, ecPem} as its
// first line, then serves:
//   GET  /jwks                 the JWK Set (r1: RSA, e1: P-256; e2 once rotated)
//   POST /mint {key, claims, kid?}   -> {token}; key: hs, rsa, ec, ec2, none, confused
//   POST /rotate               e2 joins the JWK Set
//   GET  /token?ttl=S&channels=a,b&sub=U  -> {token} (HS256), for the page
//   GET  /page.html            the EventSource page of tests/browser/token-expiry.mjs
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import * as jose from 'jose';

const env = process.env;
const secret = randomBytes(32).toString('hex');
const rsa = await jose.generateKeyPair('RS256', { extractable: true });
const ec = await jose.generateKeyPair('ES256', { extractable: true });
const ec2 = await jose.generateKeyPair('ES256', { extractable: true });
let rotated = false;

const jwk = async (pair, kid, alg) => ({ ...(await jose.exportJWK(pair.publicKey)), kid, alg, use: 'sig' });
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function mint({ key, claims, kid }) {
  const now = Math.floor(Date.now() / 1000);
  const body = { iat: now, exp: now + 60, ...claims };
  const sign = (alg, k, header = {}) =>
    new jose.SignJWT(body).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(k);
  switch (key) {
    case 'hs': return sign('HS256', new TextEncoder().encode(secret));
    case 'rsa': return sign('RS256', rsa.privateKey, kid ? { kid } : {});
    case 'ec': return sign('ES256', ec.privateKey, { kid: kid || 'e1' });
    case 'ec2': return sign('ES256', ec2.privateKey, { kid: 'e2' });
    case 'none': return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(body)}.`;
    case 'confused': { // HS256 keyed with the RSA public key's PEM text
      const pem = await jose.exportSPKI(rsa.publicKey);
      return sign('HS256', new TextEncoder().encode(pem));
    }
    default: throw new Error(`no key ${key}`);
  }
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>token expiry</title>
<script>
window.got = []; window.expired = 0; window.errors = 0;
let last = '';
async function open() {
  const { token } = await (await fetch('/token?ttl=3&channels=ticks&sub=page')).json();
  const es = new EventSource('/events/ticks?token=' + token + (last ? '&last_event_id=' + last : ''));
  es.onmessage = (e) => { window.got.push(e.data); last = e.lastEventId; };
  es.addEventListener('sidepush-token-expired', () => { window.expired++; es.close(); open(); });
  es.onerror = () => { window.errors++; };
  window.es = es;
}
open();
</script>`;

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (c) => { raw += c; });
  req.on('end', async () => {
    const url = new URL(req.url, 'http://x');
    try {
      if (url.pathname === '/jwks') {
        const keys = [await jwk(rsa, 'r1', 'RS256'), await jwk(ec, 'e1', 'ES256')];
        if (rotated) keys.push(await jwk(ec2, 'e2', 'ES256'));
        json(res, 200, { keys });
      } else if (url.pathname === '/mint') {
        json(res, 200, { token: await mint(JSON.parse(raw)) });
      } else if (url.pathname === '/rotate') {
        rotated = true;
        json(res, 200, {});
      } else if (url.pathname === '/token') {
        const ttl = Number(url.searchParams.get('ttl') || 60);
        const token = await mint({ key: 'hs', claims: {
          sub: url.searchParams.get('sub'), channels: url.searchParams.get('channels').split(','),
          exp: Math.floor(Date.now() / 1000) + ttl } });
        json(res, 200, { token });
      } else if (url.pathname === '/page.html') {
        res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
      } else {
        json(res, 404, { error: 'no such path' });
      }
    } catch (e) {
      json(res, 500, { error: String(e) });
    }
  });
});

server.listen(Number(env.ISSUER_PORT), '127.0.0.1', async () => {
  console.log(JSON.stringify({ secret, rsaPem: await jose.exportSPKI(rsa.publicKey),
                               ecPem: await jose.exportSPKI(ec.publicKey) }));
});
