"""A webhook receiver for the client checks, verifying every request with the official Standard
Webhooks library (`standardwebhooks`), as an app's backend would.

    python webhook_receiver.py serve <port> <secret> <log>   # records one JSON line per request
    python webhook_receiver.py check <log> <type> [<type>...] # every request verified, each type seen

A verified request is answered 204 and logged with its id, type and user; a request that does not
verify is answered 400 and logged with the reason, which `check` then reports as a failure.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def serve(port: int, secret: str, log_path: str) -> None:
    webhook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                event = webhook.verify(body, headers)
                record = {
                    "verified": True,
                    "id": headers.get("webhook-id"),
                    "type": event["type"],
                    "user_id": event["data"]["user_id"],
                    "data_keys": sorted(event["data"]),
                }
                status = 204
            except (WebhookVerificationError, KeyError, ValueError) as error:
                record = {"verified": False, "error": repr(error)}
                status = 400
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def check(log_path: str, expected: list[str]) -> None:
    try:
        with open(log_path, encoding="utf-8") as log:
            records = [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        records = []
    failed = [r for r in records if not r["verified"]]
    assert not failed, f"webhooks that did not verify: {failed}"
    seen = {r["type"] for r in records}
    missing = sorted(set(expected) - seen)
    assert not missing, f"no {missing} among {sorted(seen)}"
    allowed = {"user_id", "email", "previous_email", "session_id", "api_key_id"}
    odd = [r for r in records if not set(r["data_keys"]) <= allowed]
    assert not odd, f"data members beyond the contract: {odd}"
    ids = [r["id"] for r in records]
    print(
        f"webhooks: {len(records)} received, every one verified by standardwebhooks "
        f"({len(set(ids))} distinct ids); types {', '.join(sorted(seen))}"
    )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
