// The whole life of an account through openapi-fetch, typed by openapi-typescript from
// openapi.yaml (generated/codeward.d.ts), against a live server, with codes read from the SMTP
// sink's mailbox. Each step also makes a mistake a real client could make and checks the
// documented error. Type-checked with `tsc --noEmit` before it runs. Prints no secret.
import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import createClient from "openapi-fetch";

import type { components, paths } from "../generated/codeward.js";

type Problem = components["schemas"]["Problem"];
type ProblemCode = components["schemas"]["ProblemCode"];

const baseUrl = env("CODEWARD_BASE_URL");
const mailDir = env("CODEWARD_MAIL_DIR");
// An API key with the `admin` scope (`codeward api-key create --scope admin`).
const adminApiKey = env("CODEWARD_ADMIN_API_KEY");
const email = `ts-${randomUUID().slice(0, 12)}@example.com`;
// Signs up by code alone, and deletes its account at the end.
const codeEmail = `ts-code-${randomUUID().slice(0, 12)}@example.com`;
// Where email's account moves to.
const newEmail = `ts-new-${randomUUID().slice(0, 12)}@example.com`;
const firstPassword = "correct-Horse-battery-7781";
const resetPassword = "tidal-Lantern-orchard-3904";
const finalPassword = "velvet-Compass-meadow-6150";

const client = createClient<paths>({ baseUrl });
const steps: string[] = [];

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function bearer(token: string) {
  return { Authorization: `Bearer ${token}` };
}

/** The problem of an error answer, checked against the status and code the contract gives. */
function expectProblem(
  result: { error?: Problem; response: Response },
  status: number,
  code: ProblemCode,
): Problem {
  const { error, response } = result;
  check(response.status === status, `expected ${status}, got ${response.status}`);
  check(error !== undefined, "no problem body");
  check(
    (response.headers.get("content-type") ?? "").startsWith("application/problem+json"),
    "not application/problem+json",
  );
  check(error.code === code && error.status === status, `expected ${code}, got ${error.code}`);
  return error;
}

function expectStatus(response: Response, status: number): void {
  check(response.status === status, `expected ${status}, got ${response.status}`);
}

type Mail = { to: string[]; subject: string; text: string };

function mailsTo(address: string): Mail[] {
  return readdirSync(mailDir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => JSON.parse(readFileSync(join(mailDir, name), "utf8")) as Mail)
    .filter((mail) => mail.to.includes(address));
}

async function waitForCode(address: string, seen: number): Promise<string> {
  for (let i = 0; i < 400; i++) {
    for (const mail of mailsTo(address).slice(seen)) {
      const match = /\b(\d{6})\b/.exec(mail.subject) ?? /\b(\d{6})\b/.exec(mail.text);
      if (match?.[1]) return match[1];
    }
    await sleep(50);
  }
  throw new Error(`no code emailed to ${address}`);
}

function wrong(code: string): string {
  return String((Number(code) + 1) % 1_000_000).padStart(6, "0");
}

function step(name: string): void {
  steps.push(name);
  console.log(`  ok  ${name}`);
}

async function main(): Promise<void> {
  // signup: a guessable password is refused with reasons; a good one sends a code.
  const weak = expectProblem(
    await client.POST("/v1/signup", { body: { email, password: "password123" } }),
    422,
    "validation_failed",
  );
  check(weak.errors?.[0]?.field === "password", "the 422 names the password");
  const signedUp = await client.POST("/v1/signup", {
    body: { email: email.toUpperCase(), password: firstPassword, locale: "en" },
  });
  expectStatus(signedUp.response, 202);
  check(signedUp.data?.email === email, "the address comes back normalized");
  check(signedUp.data?.purpose === "verify_email", "a verify_email code");
  step("signup (422 for a guessable password)");

  // verify: a wrong code is refused; the emailed one signs the user in.
  let code = await waitForCode(email, 0);
  expectProblem(
    await client.POST("/v1/signup/verify", {
      body: { email, code: wrong(code), password: firstPassword },
    }),
    400,
    "invalid_code",
  );
  const verified = await client.POST("/v1/signup/verify", {
    body: { email, code, password: firstPassword, device_name: "typescript client" },
  });
  expectStatus(verified.response, 200);
  check(verified.data !== undefined, "a session");
  let session = verified.data;
  step("verify_signup (400 invalid_code for a wrong code)");

  // me: without a token 401; with it, the user.
  expectProblem(await client.GET("/v1/me"), 401, "unauthorized");
  const me = await client.GET("/v1/me", { headers: bearer(session.access_token) });
  expectStatus(me.response, 200);
  check(me.data?.email === email && me.data.email_verified, "the verified user");
  step("get_me (401 without a token)");

  // refresh: a made-up refresh token is refused; the real one rotates the pair.
  expectProblem(
    await client.POST("/v1/token/refresh", { body: { refresh_token: "cwr_not-a-real-token" } }),
    401,
    "invalid_token",
  );
  const rotated = await client.POST("/v1/token/refresh", {
    body: { refresh_token: session.refresh_token },
  });
  expectStatus(rotated.response, 200);
  check(rotated.data?.session_id === session.session_id, "the same session, rotated");
  session = rotated.data;
  step("refresh_token (401 invalid_token for an unknown token)");

  // sessions: the current one is listed; revoking one the user does not have is a 404.
  const listed = await client.GET("/v1/sessions", { headers: bearer(session.access_token) });
  expectStatus(listed.response, 200);
  check(
    listed.data?.filter((s) => s.current).map((s) => s.id).join() === session.session_id,
    "the current session is listed",
  );
  expectProblem(
    await client.DELETE("/v1/sessions/{id}", {
      params: { path: { id: randomUUID() } },
      headers: bearer(session.access_token),
    }),
    404,
    "not_found",
  );
  step("list_sessions, revoke_session (404 for a session that is not the user's)");

  // forgot: a malformed address is refused; the real one gets a reset code.
  let seen = mailsTo(email).length;
  expectProblem(
    await client.POST("/v1/password/forgot", { body: { email: "not an address" } }),
    422,
    "validation_failed",
  );
  const forgot = await client.POST("/v1/password/forgot", { body: { email } });
  expectStatus(forgot.response, 202);
  check(forgot.data?.purpose === "reset_password", "a reset_password code");
  step("forgot_password (422 for a malformed address)");

  // check: a wrong code is refused; the emailed one is usable and stays usable.
  code = await waitForCode(email, seen);
  expectProblem(
    await client.POST("/v1/password/reset/check", { body: { email, code: wrong(code) } }),
    400,
    "invalid_code",
  );
  const checked = await client.POST("/v1/password/reset/check", { body: { email, code } });
  expectStatus(checked.response, 204);
  step("check_reset_code (400 invalid_code for a wrong code)");

  // reset: a weak new password is refused without using up the code; then it works and ends
  // every session.
  expectProblem(
    await client.POST("/v1/password/reset", {
      body: { email, code, new_password: "12345678" },
    }),
    422,
    "validation_failed",
  );
  const reset = await client.POST("/v1/password/reset", {
    body: { email, code, new_password: resetPassword },
  });
  expectStatus(reset.response, 204);
  expectProblem(
    await client.GET("/v1/me", { headers: bearer(session.access_token) }),
    401,
    "unauthorized",
  );
  step("reset_password (422 for a weak password; the code survives it)");

  // login: the old password no longer works; the new one does.
  expectProblem(
    await client.POST("/v1/login", { body: { email, password: firstPassword } }),
    401,
    "invalid_credentials",
  );
  const loggedIn = await client.POST("/v1/login", {
    body: { email, password: resetPassword, device_name: "typescript client" },
  });
  expectStatus(loggedIn.response, 200);
  check(loggedIn.data !== undefined, "a session");
  session = loggedIn.data;
  step("login (401 invalid_credentials for the old password)");

  // change password: a wrong current password is refused; the right one changes it.
  expectProblem(
    await client.POST("/v1/password/change", {
      body: { current_password: firstPassword, new_password: finalPassword },
      headers: bearer(session.access_token),
    }),
    403,
    "wrong_password",
  );
  const changed = await client.POST("/v1/password/change", {
    body: { current_password: resetPassword, new_password: finalPassword },
    headers: bearer(session.access_token),
  });
  expectStatus(changed.response, 204);
  step("change_password (403 wrong_password for a wrong current password)");

  // reauthenticate by password: a wrong one is refused; the right one rotates the pair of the
  // same session.
  expectProblem(
    await client.POST("/v1/reauth", {
      body: { password: resetPassword },
      headers: bearer(session.access_token),
    }),
    403,
    "wrong_password",
  );
  let reauthed = await client.POST("/v1/reauth", {
    body: { password: finalPassword },
    headers: bearer(session.access_token),
  });
  expectStatus(reauthed.response, 200);
  check(reauthed.data?.session_id === session.session_id, "the same session");
  check(reauthed.data.access_token !== session.access_token, "a new access token");
  session = reauthed.data;
  step("reauthenticate by password (403 wrong_password for a wrong one)");

  // reauthenticate by code: the code goes to the account's own address.
  seen = mailsTo(email).length;
  const reauthCode = await client.POST("/v1/reauth/code", { headers: bearer(session.access_token) });
  expectStatus(reauthCode.response, 202);
  check(reauthCode.data?.purpose === "reauthenticate", "a reauthenticate code");
  check(reauthCode.data.email === email, "to the account's address");
  code = await waitForCode(email, seen);
  expectProblem(
    await client.POST("/v1/reauth", {
      body: { code: wrong(code) },
      headers: bearer(session.access_token),
    }),
    400,
    "invalid_code",
  );
  reauthed = await client.POST("/v1/reauth", {
    body: { code },
    headers: bearer(session.access_token),
  });
  expectStatus(reauthed.response, 200);
  check(reauthed.data?.session_id === session.session_id, "the same session");
  session = reauthed.data;
  step("request_reauth_code, reauthenticate by code (400 invalid_code for a wrong code)");

  // sign-in by code: an unknown address with create_account gets an account without a password.
  const loginCode = await client.POST("/v1/login/code", {
    body: { email: codeEmail, create_account: true },
  });
  expectStatus(loginCode.response, 202);
  check(loginCode.data?.purpose === "login" && loginCode.data.email === codeEmail, "a login code");
  code = await waitForCode(codeEmail, 0);
  expectProblem(
    await client.POST("/v1/login/code/verify", { body: { email: codeEmail, code: wrong(code) } }),
    400,
    "invalid_code",
  );
  const byCode = await client.POST("/v1/login/code/verify", {
    body: { email: codeEmail, code, device_name: "typescript client" },
  });
  expectStatus(byCode.response, 200);
  check(byCode.data !== undefined, "a session");
  const codeSession = byCode.data;
  const codeUser = await client.GET("/v1/me", { headers: bearer(codeSession.access_token) });
  expectStatus(codeUser.response, 200);
  check(
    codeUser.data?.email === codeEmail && codeUser.data.email_verified && !codeUser.data.has_password,
    "a verified account without a password",
  );
  step("request_login_code, verify_login_code (400 invalid_code; the new account has no password)");

  // email change: a taken address gets the same 202 (and no code); a free one moves the account.
  const taken = await client.POST("/v1/me/email", {
    body: { new_email: codeEmail },
    headers: bearer(session.access_token),
  });
  expectStatus(taken.response, 202);
  check(taken.data?.purpose === "change_email" && taken.data.email === codeEmail, "the same answer");
  const change = await client.POST("/v1/me/email", {
    body: { new_email: newEmail.toUpperCase() },
    headers: bearer(session.access_token),
  });
  expectStatus(change.response, 202);
  check(change.data?.purpose === "change_email" && change.data.email === newEmail, "a change_email code");
  code = await waitForCode(newEmail, 0);
  expectProblem(
    await client.POST("/v1/me/email/verify", {
      body: { code: wrong(code) },
      headers: bearer(session.access_token),
    }),
    400,
    "invalid_code",
  );
  const moved = await client.POST("/v1/me/email/verify", {
    body: { code },
    headers: bearer(session.access_token),
  });
  expectStatus(moved.response, 200);
  check(moved.data?.email === newEmail && moved.data.email_verified, "the account moved");
  step("request_email_change, verify_email_change (same 202 for a taken address, 400 invalid_code)");

  // delete: the account goes, its token dies at once, and the address can sign up again.
  const deleted = await client.DELETE("/v1/me", { headers: bearer(codeSession.access_token) });
  expectStatus(deleted.response, 204);
  expectProblem(
    await client.GET("/v1/me", { headers: bearer(codeSession.access_token) }),
    401,
    "unauthorized",
  );
  seen = mailsTo(codeEmail).length;
  const again = await client.POST("/v1/login/code", {
    body: { email: codeEmail, create_account: true },
  });
  expectStatus(again.response, 202);
  code = await waitForCode(codeEmail, seen);
  const signedUpAgain = await client.POST("/v1/login/code/verify", { body: { email: codeEmail, code } });
  expectStatus(signedUpAgain.response, 200);
  check(signedUpAgain.data?.user.id !== codeUser.data.id, "a new account");
  step("delete_account (401 for its token afterwards; the address signs up again)");

  // logout: the session ends, and its token is refused from then on.
  const out = await client.POST("/v1/logout", { headers: bearer(session.access_token) });
  expectStatus(out.response, 204);
  expectProblem(
    await client.POST("/v1/logout", { headers: bearer(session.access_token) }),
    401,
    "unauthorized",
  );
  step("logout (401 for the ended session's token)");

  // admin API, with an API key: find the account, disable it (sign-in then fails exactly as
  // for an unknown address), enable it again; a user's access token is no API key.
  const admin = bearer(adminApiKey);
  const page = await client.GET("/v1/admin/users", {
    params: { query: { email: newEmail } },
    headers: admin,
  });
  expectStatus(page.response, 200);
  check(page.data?.items.length === 1 && page.data.items[0]?.email === newEmail, "the account is listed");
  const userId = page.data.items[0].id;
  const id = { path: { id: userId } };
  expectProblem(
    await client.GET("/v1/admin/users/{id}", { params: { path: { id: randomUUID() } }, headers: admin }),
    404,
    "not_found",
  );
  const disabled = await client.POST("/v1/admin/users/{id}/disable", { params: id, headers: admin });
  expectStatus(disabled.response, 200);
  check(disabled.data?.disabled === true && disabled.data.active_sessions === 0, "disabled, signed out");
  expectProblem(
    await client.POST("/v1/login", { body: { email: newEmail, password: finalPassword } }),
    401,
    "invalid_credentials",
  );
  const enabled = await client.POST("/v1/admin/users/{id}/enable", { params: id, headers: admin });
  expectStatus(enabled.response, 200);
  check(enabled.data?.disabled === false, "enabled");
  const relogged = await client.POST("/v1/login", { body: { email: newEmail, password: finalPassword } });
  expectStatus(relogged.response, 200);
  check(relogged.data !== undefined, "a session");
  expectProblem(
    await client.GET("/v1/admin/users", { headers: bearer(relogged.data.access_token) }),
    401,
    "unauthorized",
  );
  const sessions = await client.GET("/v1/admin/users/{id}/sessions", { params: id, headers: admin });
  expectStatus(sessions.response, 200);
  check(sessions.data?.length === 1 && sessions.data[0]?.current === false, "one session, not current");
  const revoked = await client.DELETE("/v1/admin/users/{id}/sessions", { params: id, headers: admin });
  expectStatus(revoked.response, 204);
  expectProblem(
    await client.GET("/v1/me", { headers: bearer(relogged.data.access_token) }),
    401,
    "unauthorized",
  );
  const activity = await client.GET("/v1/admin/users/{id}/activity", {
    params: { path: { id: userId }, query: { limit: 50 } },
    headers: admin,
  });
  expectStatus(activity.response, 200);
  const events = new Set(activity.data?.items.map((event) => event.event));
  check(events.has("admin_disable") && events.has("admin_enable"), "the admin actions are listed");
  step("admin API with an API key: list_users, get_user (404), disable_user, enable_user, sessions, activity");

  console.log(
    `typescript client (openapi-typescript + openapi-fetch): ${steps.length} steps passed, each with its expected error`,
  );
}

main().catch((error: unknown) => {
  console.error(`typescript client flow FAILED after ${steps.length} steps: ${String(error)}`);
  process.exit(1);
});
