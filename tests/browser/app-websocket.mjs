// Browser test: Chromium's WebSocket to the app's OWN WebSocket endpoint
// (/app-ws on the stand-in backend, not a sidepush route), through sidepush,
// which forwards the Upgrade and tunnels the connection after the app's 101.
// The page is served by the backend through sidepush too. Environment:
// SIDEPUSH_PORT. Prints JSON.
import { report } from './common.mjs';

const port = Number(process.env.SIDEPUSH_PORT);

await report(async (browser) => {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/echo/page`);
  const result = await page.evaluate((p) => new Promise((resolve) => {
    const got = [];
    const ws = new WebSocket(`ws://127.0.0.1:${p}/app-ws`, ['chat']);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => {
      got.push(typeof e.data === 'string' ? e.data : Array.from(new Uint8Array(e.data)));
      if (got.length === 1) ws.send('from chromium');
      if (got.length === 2) ws.send(new Uint8Array([1, 2, 3]));
      if (got.length === 3) ws.send('bye');
    };
    ws.onclose = (e) => resolve({ got, code: e.code, protocol: ws.protocol });
    ws.onerror = () => got.push('error');
  }), port);
  const hello = JSON.parse(result.got[0]);
  return {
    ok: hello.hello === true && result.got[1] === 'echo:from chromium' &&
        JSON.stringify(result.got[2]) === '[3,2,1]' && result.code === 4000 &&
        result.protocol === 'chat',
    result,
  };
});
