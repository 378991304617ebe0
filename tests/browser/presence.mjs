// Presence in Chromium: a watcher page's EventSource sees alice join once
// though she has two tabs (an EventSource in one, a WebSocket in the other),
// nothing when one tab closes or her WebSocket is cut and reopened within
// the grace, and one leave when her last tab closes.
import { report, sleep, waitFor } from './common.mjs';

const port = process.env.SIDEPUSH_PORT;
const origin = `http://127.0.0.1:${port}`;
const grace = Number(process.env.LEAVE_GRACE_MS);

async function openPage(context) {
  const page = await context.newPage();
  await page.goto(`${origin}/hits`); // any page of sidepush's origin
  return page;
}

await report(async (browser) => {
  const context = await browser.newContext();
  const watcher = await openPage(context);
  await watcher.evaluate(() => {
    window.seen = { joins: [], leaves: [], members: [] };
    const es = new EventSource('/room/br?user=watcher');
    es.addEventListener('sidepush-members', (e) => window.seen.members.push(JSON.parse(e.data)));
    es.addEventListener('sidepush-join', (e) => window.seen.joins.push(JSON.parse(e.data).user_id));
    es.addEventListener('sidepush-leave', (e) => window.seen.leaves.push(JSON.parse(e.data).user_id));
  });
  const seen = () => watcher.evaluate(() => window.seen);
  await waitFor('the watcher to join', async () => (await seen()).joins.includes('watcher'));

  const tab1 = await openPage(context);
  await tab1.evaluate(() => { window.es = new EventSource('/room/br?user=alice'); });
  const tab2 = await openPage(context);
  await tab2.evaluate((port) => new Promise((resolve) => {
    window.openWs = () => new Promise((opened) => {
      window.ws = new WebSocket(`ws://127.0.0.1:${port}/room/br?user=alice`, 'sidepush-envelope');
      window.ws.onopen = () => opened();
    });
    window.openWs().then(resolve);
  }), port);
  await waitFor('alice to join', async () => (await seen()).joins.includes('alice'));
  await sleep(300);

  await tab1.close();                                 // one tab of two: she stays
  await tab2.evaluate(() => window.ws.close());       // the other is cut ...
  await sleep(grace / 4);
  await tab2.evaluate(() => window.openWs());         // ... and back within the grace
  await sleep(grace * 1.5);
  const middle = await seen();
  await tab2.close();                                 // her last tab
  await waitFor('alice to leave', async () => (await seen()).leaves.includes('alice'), grace * 4 + 5000);
  await sleep(300);
  const end = await seen();
  const ok = middle.leaves.length === 0 &&
             end.joins.filter((u) => u === 'alice').length === 1 &&
             JSON.stringify(end.leaves) === '["alice"]' &&
             end.members.length === 1 && end.members[0].channel === 'br';
  return { ok, middle, end };
});
