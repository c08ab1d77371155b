// An app's own backend verifying codeward's access tokens with jose, as docs/backend.md shows:
// createRemoteJWKSet fetches (and caches) the server's JWK Set, jwtVerify checks the signature,
// the algorithm, `typ`, `iss`, `aud` and `exp`. A fresh user signs up over plain HTTP (the code
// is read from the SMTP sink's mailbox) so there is a real token; then a changed payload, another
// audience and a clock past `exp` must be refused; last, introspection with an API key answers
// active, then exactly {active: false} once the session is logged out (jwtVerify still passes).
// Needs CODEWARD_BASE_URL, CODEWARD_MAIL_DIR, CODEWARD_EXPECTED_ISSUER, CODEWARD_API_KEY and
// CODEWARD_EXPECTED_ALGORITHM. Prints no secret: no password, code or token.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from "jose";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
const baseUrl = env("CODEWARD_BASE_URL");
const mailDir = env("CODEWARD_MAIL_DIR");
const issuer = env("CODEWARD_EXPECTED_ISSUER");
const algorithm = env("CODEWARD_EXPECTED_ALGORITHM");
const apiKey = env("CODEWARD_API_KEY");
const audience = "codeward";
const email = `jose-${randomUUID().slice(0, 12)}@example.com`;
const password = "silver-Orchard-lantern-4718";

const steps = [];
function step(name) {
  steps.push(name);
  console.log(`  ok  ${name}`);
}
function check(condition, message) {
  if (!condition) throw new Error(message);
}

// The first code emailed to `address` (the SMTP sink saves each message as JSON; see inbox.py).
async function waitForCode(address) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    for (const file of readdirSync(mailDir).filter((f) => f.endsWith(".json")).sort()) {
      const message = JSON.parse(readFileSync(join(mailDir, file), "utf8"));
      if (!message.to.includes(address)) continue;
      const match = /\b(\d{6})\b/.exec(message.subject) ?? /\b(\d{6})\b/.exec(message.text);
      if (match) return match[1];
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no code emailed to ${address} within 20 s`);
}

async function post(path, body) {
  return fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

// `verify()` must reject with `errorClass`, nothing else.
async function refused(errorClass, verify) {
  try {
    await verify();
  } catch (error) {
    check(error instanceof errorClass, `expected ${errorClass.name}, got ${error?.constructor?.name}: ${error?.code}`);
    return error;
  }
  throw new Error(`expected ${errorClass.name}, the token was accepted`);
}

try {
  let response = await post("/v1/signup", { email, password });
  check(response.status === 202, `signup: ${response.status}`);
  const code = await waitForCode(email);
  response = await post("/v1/signup/verify", { email, code, password, device_name: "jose backend check" });
  check(response.status === 200, `verify_signup: ${response.status}`);
  const session = await response.json();
  const token = session.access_token;
  step("signed up and verified a fresh user over HTTP");

  // What a backend sets up once: the remote key set (jose caches it and refetches on an unknown
  // kid), and the checks every token must pass.
  const jwks = createRemoteJWKSet(new URL(`${baseUrl}/.well-known/jwks.json`));
  const options = { issuer, audience, typ: "at+jwt", algorithms: [algorithm] };

  const { payload, protectedHeader } = await jwtVerify(token, jwks, options);
  check(protectedHeader.alg === algorithm, `alg ${protectedHeader.alg}`);
  check(payload.sub === session.user.id, "sub is not the user id");
  check(payload.sid === session.session_id, "sid is not the session id");
  check(JSON.stringify(payload.amr) === '["otp"]', `amr ${JSON.stringify(payload.amr)} after a code`);
  check(payload.email === email && payload.email_verified === true, "email claims");
  check(payload.exp - payload.iat === session.expires_in, "exp - iat is not expires_in");
  step(`createRemoteJWKSet + jwtVerify(${algorithm}, typ at+jwt, iss, aud): sub, sid, amr, email as expected`);

  // A changed payload under the original signature: sub now names someone else.
  const [head, body, signature] = token.split(".");
  const forged = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  forged.sub = randomUUID();
  const tampered = [head, Buffer.from(JSON.stringify(forged)).toString("base64url"), signature].join(".");
  check(decodeProtectedHeader(tampered).kid === protectedHeader.kid, "the tampered token keeps its kid");
  await refused(errors.JWSSignatureVerificationFailed, () => jwtVerify(tampered, jwks, options));
  step("a changed payload with the original signature is refused (JWSSignatureVerificationFailed)");

  const wrongAudience = await refused(errors.JWTClaimValidationFailed, () =>
    jwtVerify(token, jwks, { ...options, audience: "another-app" }),
  );
  check(wrongAudience.claim === "aud", `refused for ${wrongAudience.claim}, not aud`);
  const wrongIssuer = await refused(errors.JWTClaimValidationFailed, () =>
    jwtVerify(token, jwks, { ...options, issuer: "https://someone-else.example" }),
  );
  check(wrongIssuer.claim === "iss", `refused for ${wrongIssuer.claim}, not iss`);
  step("another audience and another issuer are refused (JWTClaimValidationFailed)");

  // jose's own clock option: a verifier one second past `exp`.
  await refused(errors.JWTExpired, () =>
    jwtVerify(token, jwks, { ...options, currentDate: new Date((payload.exp + 1) * 1000) }),
  );
  step("a clock past exp is refused (JWTExpired)");

  // Introspection (RFC 7662): a form body, the backend's API key as the bearer.
  const introspect = async (candidate) => {
    const answer = await fetch(`${baseUrl}/v1/token/introspect`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}` },
      body: new URLSearchParams({ token: candidate }),
    });
    check(answer.status === 200, `introspect: ${answer.status}`);
    return answer.json();
  };
  const active = await introspect(token);
  check(active.active === true && active.sub === payload.sub && active.sid === payload.sid, "not active");
  check(active.exp === payload.exp && active.iss === payload.iss, "introspection's claims differ");
  response = await fetch(`${baseUrl}/v1/logout`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  check(response.status === 204, `logout: ${response.status}`);
  check(JSON.stringify(await introspect(token)) === '{"active":false}', "active after logout");
  await jwtVerify(token, jwks, options); // still valid locally until exp: docs/backend.md
  step("introspection: active with the token's claims, then exactly {active: false} after logout");
  console.log(`jose (${algorithm}): ${steps.length} steps passed`);
} catch (error) {
  console.error(`jose backend check FAILED after ${steps.length} steps: ${error.message}`);
  process.exit(1);
}
