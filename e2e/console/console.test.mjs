// Browser test of the Tessera admin console.
//
// Drives Debian's Chromium (/usr/bin/chromium) with playwright-core against a running server:
// sign in, create a key, activate it through the API, see the seat, review a flag raised
// through the API, revoke the key, manage an API key, check keyboard use and phone width, and
// sign out. A screenshot of each page goes to $ARTIFACTS_DIR. Each step counts; the last line
// is "N passed, M failed" and the exit status is non-zero on any failure.
//
// Environment: BASE_URL (e.g. http://127.0.0.1:8600), ADMIN_TOKEN, ARTIFACTS_DIR (default
// artifacts/console), CHROMIUM (default /usr/bin/chromium).

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const BASE_URL = (process.env.BASE_URL || "").replace(/\/$/, "");
const ADMIN_TOKEN = process.env.ADMIN_TOKEN || "";
const ARTIFACTS = resolve(process.env.ARTIFACTS_DIR || "artifacts/console");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

if (!BASE_URL || !ADMIN_TOKEN) {
  console.error("BASE_URL and ADMIN_TOKEN must be set");
  process.exit(2);
}
mkdirSync(ARTIFACTS, { recursive: true });

let passed = 0;
let failed = 0;
const shots = [];

function assert(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function api(path, body, bearer) {
  const headers = { "content-type": "application/json" };
  if (bearer) {
    headers.authorization = `Bearer ${bearer}`;
  }
  const resp = await fetch(`${BASE_URL}${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: resp.status, json, text };
}

const userDataDir = mkdtempSync(join(tmpdir(), "tessera-e2e-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: DESKTOP,
  deviceScaleFactor: 1,
});
context.setDefaultTimeout(15_000);
const page = context.pages()[0] || (await context.newPage());

// Anything the page logs as an error (a CSP violation, a failed asset, a script error) fails
// the last step.
const pageErrors = [];
page.on("console", (msg) => {
  // The refused sign-in (401) is expected; any other error is not.
  if (msg.type() === "error" && !msg.text().includes("status of 401")) {
    pageErrors.push(msg.text());
  }
});
page.on("pageerror", (err) => pageErrors.push(String(err)));
page.on("requestfailed", (req) => pageErrors.push(`request failed: ${req.url()}`));

async function shot(name) {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function step(name, fn) {
  if (failed > 0) {
    console.log(`skip  ${name}`);
    return;
  }
  const started = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok    ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL  ${name}: ${err && err.stack ? err.stack : err}`);
    try {
      await shot(`failure-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`);
    } catch {
      // the browser may be gone
    }
  }
}

async function flashText() {
  return (await page.locator(".flash").first().innerText()).trim();
}

const state = {};

await step("sign-in page has the security headers", async () => {
  const resp = await page.goto(`${BASE_URL}/console`);
  assert(page.url().endsWith("/console/login"), `redirected to sign-in, got ${page.url()}`);
  const h = resp.headers();
  assert((h["content-security-policy"] || "").includes("default-src 'none'"), "CSP");
  assert(h["x-frame-options"] === "DENY", "X-Frame-Options");
  assert(h["referrer-policy"] === "no-referrer", "Referrer-Policy");
  assert(h["cache-control"] === "no-store", "Cache-Control");
  await page.getByLabel("Admin token").waitFor();
  await shot("01-sign-in");
});

await step("wrong token is refused", async () => {
  await page.getByLabel("Admin token").fill("not-the-admin-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "not right" }).waitFor();
  assert(page.url().endsWith("/console/login"), "still on sign-in");
});

await step("sign in with the admin token", async () => {
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
  const cookies = await context.cookies(`${BASE_URL}/console`);
  const session = cookies.find((c) => c.name === "tessera_console");
  assert(session, "session cookie set");
  assert(session.httpOnly, "cookie is HttpOnly");
  assert(session.sameSite === "Strict", `cookie is SameSite=Strict, got ${session.sameSite}`);
  assert(!session.value.includes(ADMIN_TOKEN), "cookie does not hold the token");
  assert(
    (await page.evaluate(() => document.cookie)).indexOf("tessera_console=") < 0,
    "cookie invisible to scripts",
  );
});

await step("create a license key; it is shown once with a copy button", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "License keys" }).click();
  await page.getByRole("heading", { level: 1, name: "License keys" }).waitFor();
  await page.getByRole("link", { name: "Create a key" }).click();
  await page.getByLabel("Product").fill("peregrine");
  await page.getByLabel("Tier").fill("paid");
  await page.getByLabel("Seats").fill("2");
  await page.getByLabel("Customer email (optional)").fill("ops@example.com");
  await page.getByLabel("Notes (optional)").fill("created by the browser test");
  await shot("02-key-new");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = page.getByLabel("New license key");
  await secret.waitFor();
  state.key = await secret.inputValue();
  assert(/^CFG-PRNG-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(state.key), `key shape: ${state.key}`);
  state.keyUrl = page.url();
  const copy = page.getByRole("button", { name: "Copy" });
  await copy.click();
  await page.locator(".copy-status").filter({ hasText: /Copied|copy it/ }).waitFor();
  await shot("03-key-created");
  await page.reload();
  assert((await page.getByLabel("New license key").count()) === 0, "shown only once");
});

await step("activate the key through the API", async () => {
  const r = await api("/v1/activate", {
    key: state.key,
    machine_id: "e2e-machine-1",
    product: "peregrine",
    app_version: "1.2.3",
    platform: "linux-x86_64",
  });
  assert(r.status === 200, `activate: ${r.status} ${r.text}`);
  state.jwt = r.json.jwt;
  assert(state.jwt, "a token");
});

await step("the seat appears on the key page", async () => {
  await page.goto(state.keyUrl);
  const row = page
    .getByRole("region", { name: "Seats", exact: true })
    .getByRole("row")
    .filter({ hasText: "e2e-machine-1" });
  await row.waitFor();
  assert((await row.innerText()).includes("1.2.3"), "app version shown");
  await page.getByText("1 of 2 in use").waitFor();
  await page.getByRole("button", { name: "Release the seat of machine e2e-machine-1" }).waitFor();
  await shot("04-key-with-seat");
});

await step("search finds the key", async () => {
  await page.goto(`${BASE_URL}/console/keys`);
  await page.getByLabel("Search by key, customer email or product").fill("ops@example");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: state.key }).waitFor();
  await shot("05-keys-search");
});

await step("a flag raised through the API is reviewed in the console", async () => {
  const r = await api(
    "/v1/flag",
    { flag_type: "clock_tamper", product: "peregrine", details: { skew_secs: 86400 } },
    state.jwt,
  );
  assert(r.status === 200, `flag: ${r.status} ${r.text}`);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Flags" }).click();
  const flag = page.locator(".flag").filter({ hasText: "clock_tamper" });
  await flag.waitFor();
  await shot("06-flags-open");
  await flag.getByLabel("Outcome").selectOption("actioned");
  await flag.getByLabel("Action taken").selectOption("warned");
  await flag.getByRole("button", { name: "Save review" }).click();
  const text = await flashText();
  assert(text.includes("Flag marked actioned (action taken: warned)"), text);
  await page.getByRole("link", { name: "actioned" }).click();
  await page.locator(".flag").filter({ hasText: "clock_tamper" }).waitFor();
  await shot("07-flags-actioned");
});

await step("revoke the key, after a confirmation step", async () => {
  await page.goto(state.keyUrl);
  await page.getByRole("link", { name: "Revoke this key…" }).click();
  await page.getByRole("heading", { name: "This cannot be undone" }).waitFor();
  await shot("08-key-revoke-confirm");
  await page.getByRole("button", { name: "Revoke the key" }).click();
  const text = await flashText();
  assert(text.includes("Key revoked"), text);
  await page.locator(".page-head .badge").filter({ hasText: "Revoked" }).waitFor();
  await shot("09-key-revoked");
  const r = await api("/v1/activate", {
    key: state.key,
    machine_id: "e2e-machine-2",
    product: "peregrine",
  });
  assert(r.status === 403, `activation after revoke: ${r.status}`);
});

await step("create an API key; its secret is shown once", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
  await page.getByRole("link", { name: "Create an API key" }).click();
  await page.getByLabel("Name").fill("Acme production");
  await page.getByLabel("Organisation (optional)").fill("Acme Corp");
  await page.getByLabel("Product").fill("falcon");
  await page.getByLabel("Tier").fill("pro");
  await page.getByRole("button", { name: "Create API key" }).click();
  const secret = page.getByLabel("New API key secret");
  await secret.waitFor();
  state.apiKey = await secret.inputValue();
  assert(/^sk-[0-9a-f]{64}$/.test(state.apiKey), "secret shape");
  await shot("10-api-key-created");
  await page.reload();
  assert(!(await page.content()).includes(state.apiKey), "secret shown only once");
});

await step("change the API key's tier", async () => {
  await page.getByRole("textbox", { name: "Tier of Acme production" }).fill("enterprise");
  await page.getByRole("button", { name: "Change the tier of Acme production" }).click();
  const text = await flashText();
  assert(text.includes("is now enterprise"), text);
  await shot("11-api-keys");
});

await step("an instance that fetched a token is listed", async () => {
  const r = await api("/api/v1/licenses/token", { instance_id: "e2e-node-1", version: "4.5.6" }, state.apiKey);
  assert(r.status === 200, `token: ${r.status} ${r.text}`);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Instances" }).click();
  const row = page
    .getByRole("region", { name: "Instances", exact: true })
    .getByRole("row")
    .filter({ hasText: "e2e-node-1" });
  await row.waitFor();
  assert((await row.innerText()).includes("Acme production"), "API key named");
  await shot("12-instances");
});

await step("the audit log shows what happened", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).click();
  for (const action of ["revoked", "activated", "flag_actioned", "created"]) {
    await page.getByRole("cell", { name: action, exact: true }).first().waitFor();
  }
  await shot("13-audit");
});

await step("the overview counts and charts the activity", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview" }).click();
  const chart = page.getByRole("img", { name: "Activations and token fetches per day" });
  await chart.waitFor();
  const bars = await page.locator("svg.chart rect").count();
  assert(bars === 28, `two bars a day for 14 days, got ${bars}`);
  await page.locator("p.hint").filter({ hasText: "1 activation and 0 token fetches in the last 14 days." }).waitFor();
  await shot("14-overview");
});

await step("keyboard: skip link, then focus in main", async () => {
  await page.goto(`${BASE_URL}/console/keys`);
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement.textContent.trim());
  assert(first === "Skip to main content", `first Tab stop: ${first}`);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === "main");
  // Next Tab stops are inside main, not the navigation.
  await page.keyboard.press("Tab");
  const inMain = await page.evaluate(() => !!document.activeElement.closest("main"));
  assert(inMain, "focus moved into main");
  // Every form control has a label.
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
      .map((el) => el.outerHTML),
  );
  assert(unlabelled.length === 0, `unlabelled controls: ${unlabelled.join(", ")}`);
});

await step("readable at phone width", async () => {
  await page.setViewportSize(PHONE);
  const pages = [
    ["15-phone-overview", `${BASE_URL}/console`],
    ["16-phone-keys", `${BASE_URL}/console/keys`],
    ["17-phone-key", state.keyUrl],
    ["18-phone-flags", `${BASE_URL}/console/flags?status=actioned`],
  ];
  for (const [name, url] of pages) {
    await page.goto(url);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert(overflow <= 0, `${name}: page scrolls sideways by ${overflow}px`);
    await shot(name);
  }
  await page.setViewportSize(DESKTOP);
});

await step("sign out", async () => {
  await page.goto(`${BASE_URL}/console`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByText("You are signed out.").waitFor();
  await page.goto(`${BASE_URL}/console/keys`);
  assert(page.url().includes("/console/login"), `signed out, got ${page.url()}`);
  await shot("19-signed-out");
});

await step("no script errors, CSP violations or failed requests", async () => {
  assert(pageErrors.length === 0, pageErrors.join("\n"));
});

await context.close();
rmSync(userDataDir, { recursive: true, force: true });
console.log(`screenshots: ${shots.length} in ${ARTIFACTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
