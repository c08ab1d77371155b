// Swagger UI in a real browser: Debian's chromium driven by playwright-core opens /docs, finds
// every operation of openapi.yaml, uses "Try it out" on healthz and on signup, and saves a
// screenshot under target/swagger-ui/ (never committed). Needs CODEWARD_BASE_URL.
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";

import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const baseUrl = process.env.CODEWARD_BASE_URL;
if (!baseUrl) throw new Error("CODEWARD_BASE_URL is not set");
const shots = join(root, "target", "swagger-ui");
mkdirSync(shots, { recursive: true });

// Every operation id in the committed spec (the served one equals it; .ci/run checks that).
const spec = await (await fetch(`${baseUrl}/openapi.json`)).json();
const expected = Object.entries(spec.paths).flatMap(([, ops]) =>
  Object.values(ops).map((op) => ({ id: op.operationId, tag: op.tags[0] })),
);
const committed = readFileSync(join(root, "openapi.yaml"), "utf8");
for (const { id } of expected) {
  if (!committed.includes(`operationId: ${id}`)) throw new Error(`${id} is not in openapi.yaml`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  await page.goto(`${baseUrl}/docs`, { waitUntil: "load" });
  await page.locator(".opblock").first().waitFor({ timeout: 20_000 });

  // Every operation is on the page, under its tag.
  const shown = await page.locator(".opblock").evaluateAll((blocks) => blocks.map((b) => b.id));
  const missing = expected.filter(({ id, tag }) => !shown.includes(`operations-${tag}-${id}`));
  if (missing.length > 0 || shown.length !== expected.length) {
    throw new Error(`Swagger UI shows ${shown.length} operations; missing ${missing.map((m) => m.id)}`);
  }

  // Try it out: expand the operation, press Try it out (optionally edit the body), Execute, and
  // read the live response's status.
  async function tryItOut(tag, id, body) {
    const block = page.locator(`#operations-${tag}-${id}`);
    await block.locator(".opblock-summary").first().click();
    await block.locator("button.try-out__btn").click();
    if (body !== undefined) {
      await block.locator("textarea.body-param__text").fill(JSON.stringify(body, null, 2));
    }
    await block.locator("button.execute").click();
    const status = block.locator(".live-responses-table tbody tr.response .response-col_status").first();
    await status.waitFor({ timeout: 20_000 });
    return (await status.innerText()).trim();
  }

  const health = await tryItOut("Ops", "healthz");
  if (!health.startsWith("200")) throw new Error(`healthz answered ${health} in Swagger UI`);
  await page.screenshot({ path: join(shots, "healthz.png"), fullPage: false });

  // The prefilled example body is what a visitor sends first; only the address is made unique.
  const example = spec.components.schemas.SignupRequest.example;
  const signup = await tryItOut("Signup", "signup", {
    ...example,
    email: `swagger-${randomUUID().slice(0, 8)}@example.com`,
  });
  if (!signup.startsWith("202")) throw new Error(`signup answered ${signup} in Swagger UI`);
  await page.locator("#operations-Signup-signup").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shots, "signup.png"), fullPage: true });

  if (consoleErrors.length > 0) throw new Error(`page errors: ${consoleErrors.join("; ")}`);
  console.log(
    `swagger ui (chromium via playwright-core): ${shown.length} operations shown; ` +
      `Try it out healthz ${health}, signup ${signup}; screenshots in target/swagger-ui/`,
  );
} finally {
  await browser.close();
}
