"""The whole life of an account through the Python client generated from openapi.yaml by
openapi-python-client, against a live server, with codes read from the SMTP sink's mailbox.
Each step also makes the mistake a real client could make and checks the documented error.

Needs CODEWARD_BASE_URL, CODEWARD_MAIL_DIR and the generated package `codeward_client` on
PYTHONPATH (see README.md). Prints no secret: no password, code or token.
"""

import os
import sys
import uuid
from http import HTTPStatus

from codeward_client import AuthenticatedClient, Client
from codeward_client.api.account import (
    delete_account,
    get_me,
    request_email_change,
    verify_email_change,
)
from codeward_client.api.admin import (
    disable_user,
    enable_user,
    get_user,
    list_user_activity,
    list_user_sessions,
    list_users,
    revoke_user_sessions,
)
from codeward_client.api.password import (
    change_password,
    check_reset_code,
    forgot_password,
    reset_password,
)
from codeward_client.api.session import (
    list_sessions,
    login,
    logout,
    reauthenticate,
    refresh_token,
    request_login_code,
    request_reauth_code,
    revoke_session,
    verify_login_code,
)
from codeward_client.api.signup import signup, verify_signup
from codeward_client.models import (
    AdminUser,
    AdminUserPage,
    ActivityPage,
    ChangePasswordRequest,
    CheckResetCodeRequest,
    CodePurpose,
    CodeSent,
    EmailChangeRequest,
    ForgotPasswordRequest,
    LoginCodeRequest,
    LoginRequest,
    Problem,
    ProblemCode,
    ReauthenticateRequest,
    RefreshRequest,
    ResetPasswordRequest,
    Session,
    SignupRequest,
    User,
    VerifyEmailChangeRequest,
    VerifyLoginCodeRequest,
    VerifySignupRequest,
)

import inbox

BASE_URL = os.environ["CODEWARD_BASE_URL"]
MAIL_DIR = os.environ["CODEWARD_MAIL_DIR"]
# An API key with the `admin` scope (`codeward api-key create --scope admin`).
ADMIN_API_KEY = os.environ["CODEWARD_ADMIN_API_KEY"]
EMAIL = f"py-{uuid.uuid4().hex[:12]}@example.com"
# Signs up by code alone, and deletes its account at the end.
CODE_EMAIL = f"py-code-{uuid.uuid4().hex[:12]}@example.com"
# Where EMAIL's account moves to.
NEW_EMAIL = f"py-new-{uuid.uuid4().hex[:12]}@example.com"
FIRST_PASSWORD = "correct-Horse-battery-7781"
RESET_PASSWORD = "tidal-Lantern-orchard-3904"
FINAL_PASSWORD = "velvet-Compass-meadow-6150"

steps: list[str] = []


def expect(response, status: HTTPStatus, model=None):
    """The parsed body, after checking the status and the generated model it was parsed into."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.content!r}"
    if model is not None:
        assert isinstance(response.parsed, model), f"expected {model.__name__}, got {type(response.parsed)}"
    return response.parsed


def expect_problem(response, status: HTTPStatus, code: ProblemCode) -> Problem:
    problem = expect(response, status, Problem)
    assert problem.code == code, f"expected {code}, got {problem.code}"
    assert problem.status == status.value
    return problem


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def authed_as(token: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=BASE_URL, token=token, raise_on_unexpected_status=True)


def step(name: str) -> None:
    steps.append(name)
    print(f"  ok  {name}")


def main() -> None:
    public = Client(base_url=BASE_URL, raise_on_unexpected_status=True)

    # signup: a guessable password is refused with reasons; a good one sends a code.
    problem = expect_problem(
        signup.sync_detailed(client=public, body=SignupRequest(email=EMAIL, password="password123")),
        HTTPStatus.UNPROCESSABLE_ENTITY,
        ProblemCode.VALIDATION_FAILED,
    )
    assert problem.errors and problem.errors[0].field == "password"
    sent = expect(
        signup.sync_detailed(client=public, body=SignupRequest(email=EMAIL.upper(), password=FIRST_PASSWORD)),
        HTTPStatus.ACCEPTED,
        CodeSent,
    )
    assert sent.email == EMAIL and sent.purpose == CodePurpose.VERIFY_EMAIL
    step("signup (422 for a guessable password)")

    # verify: a wrong code is refused; the emailed one signs the user in.
    code = inbox.wait_for_code(MAIL_DIR, EMAIL, seen=0)
    expect_problem(
        verify_signup.sync_detailed(
            client=public, body=VerifySignupRequest(email=EMAIL, code=wrong(code), password=FIRST_PASSWORD)
        ),
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_CODE,
    )
    session = expect(
        verify_signup.sync_detailed(
            client=public,
            body=VerifySignupRequest(email=EMAIL, code=code, password=FIRST_PASSWORD, device_name="python client"),
        ),
        HTTPStatus.OK,
        Session,
    )
    step("verify_signup (400 invalid_code for a wrong code)")

    # me: without a token 401; with it, the user.
    expect_problem(get_me.sync_detailed(client=public), HTTPStatus.UNAUTHORIZED, ProblemCode.UNAUTHORIZED)
    authed = AuthenticatedClient(base_url=BASE_URL, token=session.access_token, raise_on_unexpected_status=True)
    user = expect(get_me.sync_detailed(client=authed), HTTPStatus.OK, User)
    assert user.email == EMAIL and user.email_verified
    step("get_me (401 without a token)")

    # refresh: a made-up refresh token is refused; the real one rotates the pair.
    expect_problem(
        refresh_token.sync_detailed(client=public, body=RefreshRequest(refresh_token="cwr_not-a-real-token")),
        HTTPStatus.UNAUTHORIZED,
        ProblemCode.INVALID_TOKEN,
    )
    rotated = expect(
        refresh_token.sync_detailed(client=public, body=RefreshRequest(refresh_token=session.refresh_token)),
        HTTPStatus.OK,
        Session,
    )
    assert rotated.session_id == session.session_id and rotated.refresh_token != session.refresh_token
    authed = AuthenticatedClient(base_url=BASE_URL, token=rotated.access_token, raise_on_unexpected_status=True)
    step("refresh_token (401 invalid_token for an unknown token)")

    # sessions: the current one is listed; revoking one the user does not have is a 404.
    listed = expect(list_sessions.sync_detailed(client=authed), HTTPStatus.OK, list)
    assert [s.id for s in listed if s.current] == [session.session_id]
    expect_problem(
        revoke_session.sync_detailed(id=uuid.uuid4(), client=authed), HTTPStatus.NOT_FOUND, ProblemCode.NOT_FOUND
    )
    step("list_sessions, revoke_session (404 for a session that is not the user's)")

    # forgot: a malformed address is refused; the real one gets a reset code.
    seen = len(inbox.messages_to(MAIL_DIR, EMAIL))
    expect_problem(
        forgot_password.sync_detailed(client=public, body=ForgotPasswordRequest(email="not an address")),
        HTTPStatus.UNPROCESSABLE_ENTITY,
        ProblemCode.VALIDATION_FAILED,
    )
    sent = expect(
        forgot_password.sync_detailed(client=public, body=ForgotPasswordRequest(email=EMAIL)),
        HTTPStatus.ACCEPTED,
        CodeSent,
    )
    assert sent.purpose == CodePurpose.RESET_PASSWORD
    step("forgot_password (422 for a malformed address)")

    # check: a wrong code is refused; the emailed one is usable and stays usable.
    code = inbox.wait_for_code(MAIL_DIR, EMAIL, seen=seen)
    expect_problem(
        check_reset_code.sync_detailed(client=public, body=CheckResetCodeRequest(email=EMAIL, code=wrong(code))),
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_CODE,
    )
    expect(
        check_reset_code.sync_detailed(client=public, body=CheckResetCodeRequest(email=EMAIL, code=code)),
        HTTPStatus.NO_CONTENT,
    )
    step("check_reset_code (400 invalid_code for a wrong code)")

    # reset: a weak new password is refused without using up the code; then the reset works
    # and ends every session.
    expect_problem(
        reset_password.sync_detailed(
            client=public, body=ResetPasswordRequest(email=EMAIL, code=code, new_password="12345678")
        ),
        HTTPStatus.UNPROCESSABLE_ENTITY,
        ProblemCode.VALIDATION_FAILED,
    )
    expect(
        reset_password.sync_detailed(
            client=public, body=ResetPasswordRequest(email=EMAIL, code=code, new_password=RESET_PASSWORD)
        ),
        HTTPStatus.NO_CONTENT,
    )
    expect_problem(get_me.sync_detailed(client=authed), HTTPStatus.UNAUTHORIZED, ProblemCode.UNAUTHORIZED)
    step("reset_password (422 for a weak password; the code survives it)")

    # login: the old password no longer works; the new one does.
    expect_problem(
        login.sync_detailed(client=public, body=LoginRequest(email=EMAIL, password=FIRST_PASSWORD)),
        HTTPStatus.UNAUTHORIZED,
        ProblemCode.INVALID_CREDENTIALS,
    )
    session = expect(
        login.sync_detailed(
            client=public, body=LoginRequest(email=EMAIL, password=RESET_PASSWORD, device_name="python client")
        ),
        HTTPStatus.OK,
        Session,
    )
    authed = AuthenticatedClient(base_url=BASE_URL, token=session.access_token, raise_on_unexpected_status=True)
    step("login (401 invalid_credentials for the old password)")

    # change password: a wrong current password is refused; the right one changes it.
    expect_problem(
        change_password.sync_detailed(
            client=authed,
            body=ChangePasswordRequest(current_password=FIRST_PASSWORD, new_password=FINAL_PASSWORD),
        ),
        HTTPStatus.FORBIDDEN,
        ProblemCode.WRONG_PASSWORD,
    )
    expect(
        change_password.sync_detailed(
            client=authed,
            body=ChangePasswordRequest(current_password=RESET_PASSWORD, new_password=FINAL_PASSWORD),
        ),
        HTTPStatus.NO_CONTENT,
    )
    step("change_password (403 wrong_password for a wrong current password)")

    # reauthenticate by password: a wrong one is refused; the right one rotates the pair of the
    # same session.
    expect_problem(
        reauthenticate.sync_detailed(client=authed, body=ReauthenticateRequest(password=RESET_PASSWORD)),
        HTTPStatus.FORBIDDEN,
        ProblemCode.WRONG_PASSWORD,
    )
    reauthed = expect(
        reauthenticate.sync_detailed(client=authed, body=ReauthenticateRequest(password=FINAL_PASSWORD)),
        HTTPStatus.OK,
        Session,
    )
    assert reauthed.session_id == session.session_id and reauthed.access_token != session.access_token
    authed = AuthenticatedClient(base_url=BASE_URL, token=reauthed.access_token, raise_on_unexpected_status=True)
    step("reauthenticate by password (403 wrong_password for a wrong one)")

    # reauthenticate by code: the code goes to the account's own address.
    seen = len(inbox.messages_to(MAIL_DIR, EMAIL))
    sent = expect(request_reauth_code.sync_detailed(client=authed), HTTPStatus.ACCEPTED, CodeSent)
    assert sent.purpose == CodePurpose.REAUTHENTICATE and sent.email == EMAIL
    code = inbox.wait_for_code(MAIL_DIR, EMAIL, seen=seen)
    expect_problem(
        reauthenticate.sync_detailed(client=authed, body=ReauthenticateRequest(code=wrong(code))),
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_CODE,
    )
    reauthed = expect(
        reauthenticate.sync_detailed(client=authed, body=ReauthenticateRequest(code=code)),
        HTTPStatus.OK,
        Session,
    )
    assert reauthed.session_id == session.session_id
    authed = AuthenticatedClient(base_url=BASE_URL, token=reauthed.access_token, raise_on_unexpected_status=True)
    step("request_reauth_code, reauthenticate by code (400 invalid_code for a wrong code)")

    # sign-in by code: an unknown address with create_account gets an account without a password.
    sent = expect(
        request_login_code.sync_detailed(
            client=public, body=LoginCodeRequest(email=CODE_EMAIL, create_account=True)
        ),
        HTTPStatus.ACCEPTED,
        CodeSent,
    )
    assert sent.purpose == CodePurpose.LOGIN and sent.email == CODE_EMAIL
    code = inbox.wait_for_code(MAIL_DIR, CODE_EMAIL, seen=0)
    expect_problem(
        verify_login_code.sync_detailed(client=public, body=VerifyLoginCodeRequest(email=CODE_EMAIL, code=wrong(code))),
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_CODE,
    )
    code_session = expect(
        verify_login_code.sync_detailed(
            client=public,
            body=VerifyLoginCodeRequest(email=CODE_EMAIL, code=code, device_name="python client"),
        ),
        HTTPStatus.OK,
        Session,
    )
    code_authed = AuthenticatedClient(
        base_url=BASE_URL, token=code_session.access_token, raise_on_unexpected_status=True
    )
    code_user = expect(get_me.sync_detailed(client=code_authed), HTTPStatus.OK, User)
    assert code_user.email == CODE_EMAIL and code_user.email_verified and not code_user.has_password
    step("request_login_code, verify_login_code (400 invalid_code; the new account has no password)")

    # email change: a taken address gets the same 202 (and no code); a free one moves the account.
    taken = expect(
        request_email_change.sync_detailed(client=authed, body=EmailChangeRequest(new_email=CODE_EMAIL)),
        HTTPStatus.ACCEPTED,
        CodeSent,
    )
    assert taken.purpose == CodePurpose.CHANGE_EMAIL and taken.email == CODE_EMAIL
    sent = expect(
        request_email_change.sync_detailed(client=authed, body=EmailChangeRequest(new_email=NEW_EMAIL.upper())),
        HTTPStatus.ACCEPTED,
        CodeSent,
    )
    assert sent.purpose == CodePurpose.CHANGE_EMAIL and sent.email == NEW_EMAIL
    code = inbox.wait_for_code(MAIL_DIR, NEW_EMAIL, seen=0)
    expect_problem(
        verify_email_change.sync_detailed(client=authed, body=VerifyEmailChangeRequest(code=wrong(code))),
        HTTPStatus.BAD_REQUEST,
        ProblemCode.INVALID_CODE,
    )
    moved = expect(
        verify_email_change.sync_detailed(client=authed, body=VerifyEmailChangeRequest(code=code)),
        HTTPStatus.OK,
        User,
    )
    assert moved.email == NEW_EMAIL and moved.email_verified
    assert expect(get_me.sync_detailed(client=authed), HTTPStatus.OK, User).email == NEW_EMAIL
    step("request_email_change, verify_email_change (same 202 for a taken address, 400 invalid_code)")

    # delete: the account goes, its token dies at once, and the address can sign up again.
    expect(delete_account.sync_detailed(client=code_authed), HTTPStatus.NO_CONTENT)
    expect_problem(get_me.sync_detailed(client=code_authed), HTTPStatus.UNAUTHORIZED, ProblemCode.UNAUTHORIZED)
    expect_problem(
        delete_account.sync_detailed(client=code_authed), HTTPStatus.UNAUTHORIZED, ProblemCode.UNAUTHORIZED
    )
    seen = len(inbox.messages_to(MAIL_DIR, CODE_EMAIL))
    expect(
        request_login_code.sync_detailed(
            client=public, body=LoginCodeRequest(email=CODE_EMAIL, create_account=True)
        ),
        HTTPStatus.ACCEPTED,
        CodeSent,
    )
    code = inbox.wait_for_code(MAIL_DIR, CODE_EMAIL, seen=seen)
    again = expect(
        verify_login_code.sync_detailed(client=public, body=VerifyLoginCodeRequest(email=CODE_EMAIL, code=code)),
        HTTPStatus.OK,
        Session,
    )
    assert again.user.id != code_user.id
    step("delete_account (401 for its token afterwards; the address signs up again)")

    # logout: the session ends, and its token is refused from then on.
    expect(logout.sync_detailed(client=authed), HTTPStatus.NO_CONTENT)
    expect_problem(logout.sync_detailed(client=authed), HTTPStatus.UNAUTHORIZED, ProblemCode.UNAUTHORIZED)
    step("logout (401 for the ended session's token)")

    # admin API, with an API key: find the account, disable it (sign-in then fails exactly as
    # for an unknown address), enable it again; a user's access token is no API key.
    admin = AuthenticatedClient(base_url=BASE_URL, token=ADMIN_API_KEY, raise_on_unexpected_status=True)
    page = expect(list_users.sync_detailed(client=admin, email=f"  {NEW_EMAIL.upper()} "), HTTPStatus.OK, AdminUserPage)
    assert [u.email for u in page.items] == [NEW_EMAIL]
    user_id = page.items[0].id
    expect_problem(get_user.sync_detailed(id=uuid.uuid4(), client=admin), HTTPStatus.NOT_FOUND, ProblemCode.NOT_FOUND)
    found = expect(get_user.sync_detailed(id=user_id, client=admin), HTTPStatus.OK, AdminUser)
    assert not found.disabled and found.email == NEW_EMAIL
    disabled = expect(disable_user.sync_detailed(id=user_id, client=admin), HTTPStatus.OK, AdminUser)
    assert disabled.disabled and disabled.active_sessions == 0
    expect_problem(
        login.sync_detailed(client=public, body=LoginRequest(email=NEW_EMAIL, password=FINAL_PASSWORD)),
        HTTPStatus.UNAUTHORIZED,
        ProblemCode.INVALID_CREDENTIALS,
    )
    enabled = expect(enable_user.sync_detailed(id=user_id, client=admin), HTTPStatus.OK, AdminUser)
    assert not enabled.disabled
    session = expect(
        login.sync_detailed(client=public, body=LoginRequest(email=NEW_EMAIL, password=FINAL_PASSWORD)),
        HTTPStatus.OK,
        Session,
    )
    expect_problem(
        list_users.sync_detailed(client=authed_as(session.access_token)),
        HTTPStatus.UNAUTHORIZED,
        ProblemCode.UNAUTHORIZED,
    )
    listed = expect(list_user_sessions.sync_detailed(id=user_id, client=admin), HTTPStatus.OK, list)
    assert [s.id for s in listed] == [session.session_id] and not listed[0].current
    expect(revoke_user_sessions.sync_detailed(id=user_id, client=admin), HTTPStatus.NO_CONTENT)
    expect_problem(
        get_me.sync_detailed(client=authed_as(session.access_token)), HTTPStatus.UNAUTHORIZED, ProblemCode.UNAUTHORIZED
    )
    activity = expect(list_user_activity.sync_detailed(id=user_id, client=admin, limit=50), HTTPStatus.OK, ActivityPage)
    assert {"admin_disable", "admin_enable"} <= {e.event for e in activity.items}
    step("admin API with an API key: list_users, get_user (404), disable_user, enable_user, sessions, activity")

    print(f"python client (openapi-python-client): {len(steps)} steps passed, each with its expected error")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"python client flow FAILED after {len(steps)} steps: {error}", file=sys.stderr)
        sys.exit(1)
