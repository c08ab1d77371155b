"""Schemathesis hooks: authenticated operations get a real access token, obtained the way a
user gets one (sign up, read the code from the emailed message, verify, then sign in).

Loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks; needs CODEWARD_BASE_URL and
CODEWARD_MAIL_DIR (the SMTP sink's directory).
"""

import os
import uuid

import requests
import schemathesis

import inbox

BASE_URL = os.environ["CODEWARD_BASE_URL"].rstrip("/")
MAIL_DIR = os.environ["CODEWARD_MAIL_DIR"]
# Not the password of the spec's examples: fuzzing change_password with the example body must
# not lock this account out.
PASSWORD = "fuzzing-Quokka-harbour-5812"


class Account:
    def __init__(self) -> None:
        self.email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        response = requests.post(
            f"{BASE_URL}/v1/signup", json={"email": self.email, "password": PASSWORD}, timeout=30
        )
        response.raise_for_status()
        code = inbox.wait_for_code(MAIL_DIR, self.email, seen=0)
        response = requests.post(
            f"{BASE_URL}/v1/signup/verify",
            json={"email": self.email, "code": code, "password": PASSWORD},
            timeout=30,
        )
        response.raise_for_status()

    def sign_in(self) -> str:
        response = requests.post(
            f"{BASE_URL}/v1/login",
            json={"email": self.email, "password": PASSWORD, "device_name": "schemathesis"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]


_account: Account | None = None


# A 401 (the fuzzer called logout, or revoked this session) makes Schemathesis sign in again;
# an account the fuzzer deleted (`delete_account`) or whose address or password it changed no
# longer signs in, and a fresh one takes its place.
@schemathesis.auth(refresh_interval=120).apply_to(
    path_regex=r"^/v1/(me|me/activity|me/email|me/email/verify|logout|sessions|sessions/\{id\}"
    r"|password/change|reauth|reauth/code)$"
)
class CodewardBearer:
    def get(self, case, ctx):
        global _account
        if _account is None:
            _account = Account()
        try:
            return _account.sign_in()
        except requests.HTTPError:
            _account = Account()
            return _account.sign_in()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
