// The npm `twilio` SDK against a running Relais (crates/relais-server/tests/twilio.rs):
// the same steps as sdk.py, checked with the SDK's own validateRequest. Prints one JSON
// object with what it saw.
const http = require("http");
const twilio = require("twilio");

const { RELAIS_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN } = process.env;
const received = [];

const hook = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const params = Object.fromEntries(new URLSearchParams(body));
    const url = `http://127.0.0.1:${hook.address().port}${req.url}`;
    const signature = req.headers["x-twilio-signature"] || "";
    received.push({
      params,
      valid: twilio.validateRequest(TWILIO_AUTH_TOKEN, signature, url, params),
      forged_valid: twilio.validateRequest("0".repeat(32), signature, url, params),
    });
    res.writeHead(204);
    res.end();
  });
});

async function main() {
  await new Promise((resolve) => hook.listen(0, "127.0.0.1", resolve));
  const callback = `http://127.0.0.1:${hook.address().port}/status?from=node`;
  const client = twilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN);
  client.api.baseUrl = RELAIS_URL;

  const sent = await client.messages.create({
    to: "+33612345679",
    from: "+15005550006",
    body: "Bonjour de Node",
    statusCallback: callback,
  });
  const fetched = await client.messages(sent.sid).fetch();
  const listed = (await client.messages.list({ to: "+33612345679", limit: 20 })).map((m) => m.sid);
  const paged = (await client.messages.list({ pageSize: 1, limit: 3 })).map((m) => m.sid);

  const deadline = Date.now() + 30000;
  while (
    Date.now() < deadline &&
    !received.some((r) => r.params.MessageStatus === "delivered")
  ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  let error = null;
  try {
    await client.messages.create({ to: "pas un numéro", from: "+15005550006", body: "x" });
  } catch (e) {
    error = { code: e.code, status: e.status };
  }
  hook.close();
  console.log(
    JSON.stringify({
      sent: { sid: sent.sid, status: sent.status, body: sent.body, to: sent.to,
              date_created: String(sent.dateCreated), num_segments: sent.numSegments },
      fetched: { sid: fetched.sid, status: fetched.status, body: fetched.body,
                 account_sid: fetched.accountSid },
      listed,
      paged,
      callbacks: received,
      error,
    })
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
