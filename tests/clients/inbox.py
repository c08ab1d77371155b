"""Reads codes out of the emails the SMTP sink saved (see smtp_sink.py)."""

import glob
import json
import os
import re
import time

CODE = re.compile(r"\b(\d{6})\b")


def messages_to(directory: str, address: str) -> list[dict]:
    found = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if address.lower() in record["to"]:
            found.append(record)
    return found


def wait_for_code(directory: str, address: str, seen: int, timeout: float = 20.0) -> str:
    """The code in the first email to `address` after the `seen` it already had."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = messages_to(directory, address)
        for message in messages[seen:]:
            match = CODE.search(message["subject"]) or CODE.search(message["text"])
            if match:
                return match.group(1)
        time.sleep(0.05)
    raise TimeoutError(f"no code emailed to {address} within {timeout} s")
