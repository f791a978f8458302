"""The PyPI `twilio` SDK against a running Relais (crates/relais-server/tests/twilio.rs).

Sends a message with a StatusCallback, fetches it, lists and pages through messages,
waits for the `delivered` callback and checks its X-Twilio-Signature with the SDK's own
RequestValidator, and reads the SDK's exception for a `To` that is not a number. Prints
one JSON object with what it saw.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl

from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

BASE = os.environ["RELAIS_URL"]
SID = os.environ["TWILIO_ACCOUNT_SID"]
TOKEN = os.environ["TWILIO_AUTH_TOKEN"]

received = []


class StatusCallback(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        url = "http://127.0.0.1:%d%s" % (self.server.server_port, self.path)
        signature = self.headers.get("X-Twilio-Signature", "")
        valid = RequestValidator(TOKEN).validate(url, params, signature)
        forged = RequestValidator("0" * 32).validate(url, params, signature)
        received.append({"params": params, "valid": valid, "forged_valid": forged})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = HTTPServer(("127.0.0.1", 0), StatusCallback)
threading.Thread(target=hook.serve_forever, daemon=True).start()
callback = "http://127.0.0.1:%d/status?from=python" % hook.server_port

client = Client(SID, TOKEN)
client.api.base_url = BASE

sent = client.messages.create(
    to="+33612345678", from_="+15005550006", body="Bonjour de Python", status_callback=callback
)
fetched = client.messages(sent.sid).fetch()
listed = [m.sid for m in client.messages.list(to="+33612345678", limit=20)]
paged = [m.sid for m in client.messages.stream(page_size=1, limit=3)]

deadline = time.time() + 30
while time.time() < deadline and not any(
    r["params"].get("MessageStatus") == "delivered" for r in received
):
    time.sleep(0.1)

error = None
try:
    client.messages.create(to="pas un numéro", from_="+15005550006", body="x")
except TwilioRestException as e:
    error = {"code": e.code, "status": e.status}

print(
    json.dumps(
        {
            "sent": {"sid": sent.sid, "status": sent.status, "body": sent.body, "to": sent.to,
                     "date_created": str(sent.date_created), "num_segments": sent.num_segments},
            "fetched": {"sid": fetched.sid, "status": fetched.status, "body": fetched.body,
                        "account_sid": fetched.account_sid},
            "listed": listed,
            "paged": paged,
            "callbacks": received,
            "error": error,
        }
    )
)
