"""A real SMTP server for the client checks: every message the codeward server delivers is saved
in a directory as `<n>.eml` plus `<n>.json` ({"to", "subject", "text"}), which the client scripts
read to find their codes, as a user reads their inbox.

Usage: python smtp_sink.py <port> <directory>
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import sys

from aiosmtpd.controller import Controller


class SaveToDirectory:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        n = next(self.counter)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        record = {
            "to": [address.lower() for address in envelope.rcpt_tos],
            "subject": str(message.get("Subject", "")),
            "text": body.get_content() if body is not None else "",
        }
        base = os.path.join(self.directory, f"{n:06d}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.content)
        # Written under a temporary name and renamed, so a reader never sees half a file.
        with open(base + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(base + ".tmp", base + ".json")
        return "250 Message accepted for delivery"


def main() -> None:
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(SaveToDirectory(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"SMTP sink on 127.0.0.1:{port}, saving into {directory}", flush=True)
    loop = asyncio.new_event_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.run_until_complete(stop)
    controller.stop()


if __name__ == "__main__":
    main()
