"""An app's own backend verifying codeward's access tokens with PyJWT, as docs/backend.md shows:
the key comes from the server's JWK Set through PyJWKClient, and jwt.decode checks the
signature, the algorithm, `aud`, `iss` and `exp`. A fresh user signs up over plain HTTP (the code
is read from the SMTP sink's mailbox) so there is a real token to verify; then a token with a
changed payload, one checked for another audience or issuer, and one checked by a clock past
its `exp` must all be refused. Last, introspection with an API key: active with the token's
claims, exactly `{"active": false}` for the changed token and once the session is logged out
(while the token still verifies locally until its `exp`).

Needs CODEWARD_BASE_URL, CODEWARD_MAIL_DIR, CODEWARD_EXPECTED_ISSUER, CODEWARD_API_KEY (scope
`introspect`) and CODEWARD_EXPECTED_ALGORITHM (EdDSA, ES256 or RS256). Prints no secret: no password, code or token.
"""

import base64
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import jwt
from jwt import PyJWKClient

import inbox

BASE_URL = os.environ["CODEWARD_BASE_URL"]
MAIL_DIR = os.environ["CODEWARD_MAIL_DIR"]
ISSUER = os.environ["CODEWARD_EXPECTED_ISSUER"]
ALGORITHM = os.environ["CODEWARD_EXPECTED_ALGORITHM"]
AUDIENCE = "codeward"
EMAIL = f"pyjwt-{uuid.uuid4().hex[:12]}@example.com"
PASSWORD = "amber-Kettle-harbour-5832"

steps: list[str] = []


def step(name: str) -> None:
    steps.append(name)
    print(f"  ok  {name}")


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(error: type[Exception], verify) -> None:
    """`verify()` must raise `error` (a subclass of jwt.InvalidTokenError), nothing else."""
    try:
        verify()
    except error:
        return
    except jwt.InvalidTokenError as other:
        raise AssertionError(f"expected {error.__name__}, got {type(other).__name__}") from None
    raise AssertionError(f"expected {error.__name__}, the token was accepted")


def sign_up(http: httpx.Client) -> dict:
    response = http.post("/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 202, f"signup: {response.status_code}"
    code = inbox.wait_for_code(MAIL_DIR, EMAIL, seen=0)
    response = http.post(
        "/v1/signup/verify",
        json={"email": EMAIL, "code": code, "password": PASSWORD, "device_name": "pyjwt backend check"},
    )
    assert response.status_code == 200, f"verify_signup: {response.status_code}"
    return response.json()


def main() -> None:
    with httpx.Client(base_url=BASE_URL, timeout=10) as http:
        session = sign_up(http)
        keys = http.get("/.well-known/jwks.json")
    token = session["access_token"]
    assert token.count(".") == 2, "the access token is not a JWS compact serialization"
    assert keys.status_code == 200 and keys.headers["cache-control"] == "public, max-age=300"
    step("signed up and verified a fresh user over HTTP; the key set is public for 5 minutes")

    # What a backend does on each request: the key named by `kid`, from the (cached) key set.
    jwks = PyJWKClient(f"{BASE_URL}/.well-known/jwks.json")
    signing_key = jwks.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == ALGORITHM and header["typ"] == "at+jwt", f"header {header}"
    assert signing_key.key_id == header["kid"] and signing_key.algorithm_name == ALGORITHM

    def verify(
        token: str = token, audience: str = AUDIENCE, issuer: str = ISSUER, leeway: float = 0, **options
    ) -> dict:
        return jwt.decode(
            token,
            signing_key.key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"], **options},
        )

    claims = verify()
    user = session["user"]
    assert claims["sub"] == user["id"], "sub is not the user id"
    assert claims["sid"] == session["session_id"], "sid is not the session id"
    assert claims["amr"] == ["otp"], f"amr {claims['amr']} after a sign-up verified by code"
    assert claims["email"] == EMAIL and claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == session["expires_in"]
    assert claims["iat"] <= claims["auth_time"] + 1 and abs(claims["iat"] - time.time()) < 60
    uuid.UUID(claims["jti"])
    step(f"PyJWKClient + jwt.decode({ALGORITHM}, aud, iss): sub, sid, amr, email as expected")

    # A changed payload under the original signature: sub now names someone else.
    head, payload, signature = token.split(".")
    forged = json.loads(b64url_decode(payload))
    forged["sub"] = str(uuid.uuid4())
    tampered = ".".join([head, b64url_encode(json.dumps(forged).encode()), signature])
    refused(jwt.InvalidSignatureError, lambda: verify(tampered))
    step("a changed payload with the original signature is refused (InvalidSignatureError)")

    refused(jwt.InvalidAudienceError, lambda: verify(audience="another-app"))
    refused(jwt.InvalidIssuerError, lambda: verify(issuer="https://someone-else.example"))
    step("another audience and another issuer are refused")

    # A verifier whose clock is past `exp`: PyJWT has no clock to set, so a negative leeway
    # moves the `exp` check that far into the future (the `iat` check, which would otherwise
    # call the token not yet valid, is turned off for this one check).
    to_exp = claims["exp"] - time.time()
    refused(jwt.ExpiredSignatureError, lambda: verify(leeway=-(to_exp + 1), verify_iat=False))
    # ...and a leeway just short of `exp` still accepts it, so the check above is about `exp`.
    verify(leeway=-(to_exp - 5), verify_iat=False)
    step("a clock past exp is refused (ExpiredSignatureError)")

    # The Rust example of docs/backend.md (examples/backend_verify.rs), when CI built it: the
    # token goes in on stdin, the claims it found come out.
    rust = os.environ.get("CODEWARD_RUST_VERIFIER")
    if rust:
        run = subprocess.run([rust], input=token, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"the Rust example refused the token: {run.stderr.strip()}"
        assert f"sub {user['id']} sid {session['session_id']} amr [\"otp\"]" in run.stdout, run.stdout
        run = subprocess.run([rust], input=tampered, capture_output=True, text=True, timeout=60)
        assert run.returncode != 0 and "InvalidSignature" in run.stderr, f"tampered: {run.stderr.strip()}"
        step("the Rust example (jsonwebtoken + reqwest) verifies it and refuses the changed payload")

    # Introspection (RFC 7662): a form body, the backend's API key as the bearer.
    api_key = os.environ["CODEWARD_API_KEY"]
    with httpx.Client(base_url=BASE_URL, timeout=10) as http:

        def introspect(candidate: str, bearer: str = api_key) -> httpx.Response:
            return http.post(
                "/v1/token/introspect",
                data={"token": candidate, "token_type_hint": "access_token"},
                headers={"Authorization": f"Bearer {bearer}"},
            )

        answer = introspect(token)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        active = answer.json()
        assert active["active"] is True and active["token_type"] == "Bearer", "not active"
        for claim in ("sub", "sid", "iss", "aud", "exp", "iat", "auth_time", "amr", "email", "email_verified"):
            assert active[claim] == claims[claim], f"introspection's {claim} differs from the token's"
        assert introspect(tampered).json() == {"active": False}
        assert introspect(token, bearer=token).status_code == 401, "an access token taken as an API key"
        logout = http.post("/v1/logout", headers={"Authorization": f"Bearer {token}"})
        assert logout.status_code == 204, f"logout: {logout.status_code}"
        assert introspect(token).json() == {"active": False}, "a logged-out session's token is active"
    verify()  # ...while it still verifies locally: the trade-off docs/backend.md explains.
    step("introspection: active with the token's claims; {active: false} for a changed token and after logout")

    print(f"pyjwt {jwt.__version__} ({ALGORITHM}): {len(steps)} steps passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"pyjwt backend check FAILED after {len(steps)} steps: {error}", file=sys.stderr)
        sys.exit(1)
