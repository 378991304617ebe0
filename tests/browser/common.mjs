// What the browser tests share: Debian's Chromium, and waiting for a condition.
import { chromium } from 'playwright-core';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The flags keep Chromium off the network it would otherwise call home to.
export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Runs body(browser) in a fresh Chromium, prints its outcome ({ok, ...}) as
// the last line of JSON and exits with it.
export async function report(body) {
  const browser = await launch();
  let outcome;
  try {
    outcome = await body(browser);
  } catch (e) {
    outcome = { ok: false, error: String(e) };
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(outcome));
  process.exit(outcome.ok ? 0 : 1);
}
