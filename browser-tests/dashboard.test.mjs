// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core.
// Each test signs in like a person would and checks what a person would notice.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { startKeyward } from "./server.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

let server;
let browser;

before(async () => {
  server = await startKeyward();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh browser context (its own cookies) and page, collecting script errors and CSP reports. */
async function open(options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
  return { context, page, problems };
}

async function signIn(page, key = server.rootKey) {
  await page.goto(`${server.url}/`);
  await page.waitForURL(/\/sign-in/);
  // The key field takes focus by itself: a keyboard user types and presses Enter.
  await page.locator("#root-key:focus").waitFor();
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "APIs", exact: true }).waitFor();
}

describe("dashboard in Chromium", () => {
  test("signs in with the keyboard, creates an API and a key, and shows the key once", async () => {
    const { context, page, problems } = await open();
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    await signIn(page);
    assert.equal(await page.title(), "APIs · keyward");
    await page.getByText("No APIs yet").waitFor();

    await page.getByLabel("New API").fill("Browser API");
    await page.getByRole("button", { name: "Create API" }).click();
    await page.waitForURL(/\/apis\/api_[A-Za-z0-9]+\?done=api-created/);
    await page.getByText("API created.").waitFor();
    await page.getByText("No keys yet").waitFor();

    await page.getByRole("link", { name: "Create key" }).first().click();
    await page.getByLabel("Name", { exact: true }).fill("browser customer");
    await page.getByLabel("Limit 1 name").fill("requests");
    await page.getByLabel("Limit 1 requests").fill("100");
    await page.getByLabel("Limit 1 window (ms)").fill("60000");
    await page.getByLabel("Auto-apply limit 1").check();
    await page.getByLabel("Prefix").fill("web");
    await page.getByLabel("Remaining").fill("50");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByText("Key created").first().waitFor();
    const key = (await page.locator("#new-key").textContent()).trim();
    assert.match(key, /^web_/);

    // The copy button appears with script and copies the key.
    const copy = page.getByRole("button", { name: "Copy" });
    await copy.click();
    await page.getByRole("button", { name: "Copied" }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);

    const verified = await server.api("keys.verifyKey", { key });
    assert.equal(verified.body.data.code, "VALID");
    assert.equal(verified.body.data.credits, 49);

    // The key page never shows the key again.
    await page.getByRole("link", { name: "Open the key" }).click();
    await page.getByRole("heading", { name: /browser customer/ }).waitFor();
    assert.equal(await page.getByText(key).count(), 0);
    // Going back to the answer of the form would post it again: the browser does not show the
    // key from a cache (pages are no-store). Ordinary pages go back as anywhere.
    await page.getByRole("link", { name: "Browser API" }).click();
    await page.getByRole("link", { name: "browser customer" }).click();
    await page.getByRole("heading", { name: /browser customer/ }).waitFor();
    await page.goBack();
    await page.getByRole("heading", { name: "Browser API" }).waitFor();
    await page.goForward();
    await page.getByRole("heading", { name: /browser customer/ }).waitFor();
    assert.deepEqual(problems, []);
    await context.close();
  });

  test("asks before deleting, and a dismissed question changes nothing", async () => {
    const created = await server.api("apis.createApi", { name: "Confirm API" });
    const apiId = created.body.data.apiId;
    const made = await server.api("keys.createKey", { apiId, name: "to delete" });
    const { keyId, key } = made.body.data;
    const { context, page, problems } = await open();
    await signIn(page);
    await page.goto(`${server.url}/keys/${keyId}`);

    page.once("dialog", (dialog) => dialog.dismiss());
    await page.getByRole("button", { name: "Delete key" }).click();
    await page.waitForTimeout(300);
    assert.equal((await server.api("keys.verifyKey", { key })).body.data.code, "VALID");

    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: "Delete key" }).click();
    await page.waitForURL(new RegExp(`/apis/${apiId}\\?done=key-deleted`));
    await page.getByText("Key deleted.").waitFor();
    assert.equal((await server.api("keys.verifyKey", { key })).body.data.code, "NOT_FOUND");
    assert.deepEqual(problems, []);
    await context.close();
  });

  test("hides what the root key may not do and errors show in place", async () => {
    const created = await server.api("apis.createApi", { name: "Narrow API" });
    const apiId = created.body.data.apiId;
    const narrow = JSON.parse(
      server.cli("root-key", "create", "--workspace", server.workspaceId, "--permission", `api.${apiId}.read_api`,
        "--permission", `api.${apiId}.read_key`, "--json"),
    );
    const { context, page, problems } = await open();
    await signIn(page, narrow.key);
    assert.equal(await page.getByRole("button", { name: "Create API" }).count(), 0);
    assert.equal(await page.getByRole("link", { name: "Audit log" }).count(), 0);
    await page.getByRole("link", { name: "Narrow API" }).click();
    assert.equal(await page.getByRole("link", { name: "Create key" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Delete this API" }).count(), 0);
    // Settings are read-only for this key.
    assert.equal(await page.getByRole("button", { name: "Save settings" }).count(), 0);
    assert.deepEqual(problems, []);
    await context.close();

    // A full key's invalid input is explained next to the form, and the form keeps what was typed.
    const full = await open();
    await signIn(full.page);
    await full.page.goto(`${server.url}/apis/${apiId}/keys/new`);
    await full.page.getByLabel("Name", { exact: true }).fill("kept name");
    await full.page.getByLabel("Meta (JSON object)").fill("{oops");
    await full.page.getByRole("button", { name: "Create key" }).click();
    await full.page.getByRole("alert").getByText(/meta: not valid JSON/).waitFor();
    assert.equal(await full.page.getByLabel("Name", { exact: true }).inputValue(), "kept name");
    await full.context.close();
  });

  test("a disabled root key's session ends at the next page", async () => {
    const extra = JSON.parse(server.cli("root-key", "create", "--workspace", server.workspaceId, "--json"));
    const { context, page } = await open();
    await signIn(page, extra.key);
    server.cli("root-key", "disable", extra.keyId);
    // The server polls the change feed every 250 ms: within a second the session is gone.
    await page.waitForTimeout(1000);
    await page.goto(`${server.url}/apis`);
    await page.waitForURL(/\/sign-in/);
    await context.close();
  });

  test("times follow the viewer's zone; dark theme and a phone's width hold up", async () => {
    const { context, page, problems } = await open({
      colorScheme: "dark",
      timezoneId: "Asia/Tokyo",
      viewport: { width: 375, height: 740 },
    });
    await signIn(page);
    await page.goto(`${server.url}/audit`);
    const first = page.locator("td time").first();
    await first.waitFor({ state: "attached" });
    const title = await first.getAttribute("title");
    assert.match(title, /UTC\)$/);
    assert.doesNotMatch(await first.textContent(), /UTC/);
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(background, "rgb(13, 17, 23)");
    // No sideways scrolling of the page itself (wide tables scroll inside their frame).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test("a namespace: the chart, an override set and deleted, and the test box's answer", async () => {
    for (const identifier of ["carol", "carol", "dave"]) {
      await server.api("ratelimit.limit", { namespace: "browser.checkout", identifier, limit: 1, duration: 60000 });
    }
    const { context, page, problems } = await open();
    await signIn(page);
    await page.getByRole("link", { name: "Rate limits" }).click();
    await page.getByRole("heading", { name: "Rate limits", exact: true }).waitFor();
    await page.getByRole("link", { name: "browser.checkout" }).click();
    await page.getByRole("heading", { name: "browser.checkout" }).waitFor();
    // The rollups are written in rounds a second apart, and the three decisions may fall in two
    // of them (a round starts as soon as an idle server has something to count): reload until
    // the chart counts all three.
    const counted = async () =>
      (await page.getByText("Blocked: 1").count()) && (await page.getByText("Passed: 2").count());
    for (let i = 0; i < 40 && !(await counted()); i++) {
      await page.waitForTimeout(250);
      await page.reload();
    }
    await page.getByText("Passed: 2").waitFor();
    await page.getByText("No overrides").waitFor();

    await page.locator("#override-identifier").fill("carol");
    await page.locator("#override-limit").fill("50");
    await page.locator("#override-duration").fill("60000");
    await page.getByRole("button", { name: "Save override" }).click();
    await page.getByText("Override saved.").waitFor();
    await page.getByRole("cell", { name: "carol" }).waitFor();

    // The test box answers in place: the override lets carol through again.
    await page.locator("#test-identifier").fill("carol");
    await page.getByRole("button", { name: "Test", exact: true }).click();
    const answer = page.locator("#test-answer");
    await answer.waitFor();
    assert.match(await answer.textContent(), /passed/);
    assert.match(await answer.textContent(), /rlor_/);

    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByText("Override deleted.").waitFor();
    await page.getByText("No overrides").waitFor();
    assert.deepEqual(problems, []);
    await context.close();
  });

  test("an identity is created with a shared limit, shows its keys, and is deleted after asking", async () => {
    const { context, page, problems } = await open();
    await signIn(page);
    await page.getByRole("link", { name: "Identities" }).click();
    await page.getByText("No identities yet").waitFor();
    await page.getByLabel("External id").fill("browser_customer");
    await page.getByLabel("Meta (JSON object)").fill('{"plan": "pro"}');
    await page.getByLabel("Limit 1 name").fill("requests");
    await page.getByLabel("Limit 1 requests").fill("100");
    await page.getByLabel("Limit 1 window (ms)").fill("60000");
    await page.getByRole("button", { name: "Create identity" }).click();
    await page.waitForURL(/\/identities\/id_[A-Za-z0-9]+\?done=identity-created/);
    await page.getByText("Identity created.").waitFor();
    await page.getByRole("cell", { name: "requests" }).waitFor();

    const api = await server.api("apis.createApi", { name: "Identity API" });
    const made = await server.api("keys.createKey", {
      apiId: api.body.data.apiId, externalId: "browser_customer", name: "owned key",
    });
    await page.reload();
    await page.getByRole("link", { name: "owned key" }).waitFor();

    page.once("dialog", (dialog) => dialog.dismiss());
    await page.getByRole("button", { name: "Delete identity" }).click();
    await page.waitForTimeout(300);
    assert.equal((await server.api("identities.getIdentity", { identity: "browser_customer" })).status, 200);
    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: "Delete identity" }).click();
    await page.waitForURL(/\/identities\?done=identity-deleted/);
    await page.getByText("Identity deleted.").waitFor();
    assert.equal((await server.api("identities.getIdentity", { identity: "browser_customer" })).status, 404);
    assert.equal((await server.api("keys.getKey", { keyId: made.body.data.keyId })).status, 200);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test("permissions and roles: created, a role's permissions changed with checkboxes", async () => {
    const { context, page, problems } = await open();
    await signIn(page);
    await page.getByRole("link", { name: "Authorization" }).click();
    await page.getByText("No permissions yet").waitFor();
    await page.getByLabel("Permission slug").fill("reports.read");
    await page.getByRole("button", { name: "Create permission" }).click();
    await page.getByText("Permission created.").waitFor();

    await page.getByLabel("Role name").fill("analyst");
    await page.getByLabel("Role description").fill("Reads reports");
    await page.getByLabel("Role permissions").fill("reports.read, reports.export");
    await page.getByRole("button", { name: "Create role" }).click();
    await page.getByText("Role created.").waitFor();
    await page.getByText("reports.export, reports.read").waitFor();

    await page.getByText("Change permissions").click();
    await page.getByRole("checkbox", { name: "reports.export" }).uncheck();
    await page.getByRole("button", { name: "Save permissions" }).click();
    await page.getByText("Role permissions saved.").waitFor();
    const role = await server.api("permissions.getRole", { role: "analyst" });
    assert.deepEqual(role.body.data.permissions.map((p) => p.slug), ["reports.read"]);
    assert.deepEqual(problems, []);
    await context.close();
  });
});
