// Verifies webhooks sidepush sent with an independent Standard Webhooks
// implementation (npm standardwebhooks): stdin is a JSON array of
// {"body": "...", "headers": {...}} as the stand-in backend received them,
// argv[2] the secret. Prints one line per webhook; exits 1 if any fails.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const wh = new Webhook(process.argv[2]);
const received = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const { body, headers } of received) {
  try {
    const payload = wh.verify(body, headers);
    console.log(`ok ${headers["webhook-id"]} ${payload.events.length} events`);
  } catch (e) {
    console.log(`FAILED ${headers["webhook-id"]}: ${e.message}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
