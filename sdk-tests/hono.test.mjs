// The official @unkey/hono middleware in front of a tiny Hono app, verifying against a real
// `keyward serve`.
//
// The middleware has no base-URL option: it always builds its client for https://api.unkey.com.
// Its client calls the global `fetch` at call time, so this test (and only this test) wraps
// `globalThis.fetch` to send those requests to the local server instead. The app itself is served
// through `app.request()`, without a listening socket.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { unkey } from "@unkey/hono";
import { Hono } from "hono";

import { client, createRootKey, createWorkspace, freshDatabase, requireBinary, sleep, startServer } from "./helpers.mjs";

const UNKEY_ORIGIN = "https://api.unkey.com";

let db;
let server;
let sdk; // an @unkey/api client with every permission, to set the scene
let app;
let misconfigured; // the same app with a root key keyward does not know
let apiId;
let realFetch;
const forwarded = []; // paths of the middleware's requests sent to keyward

/**
 * Sends requests for Unkey's cloud to `base` instead; everything else goes out unchanged.
 * Returns the function that puts the real `fetch` back.
 */
function redirectUnkeyTo(base) {
  realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.origin !== UNKEY_ORIGIN) return realFetch(request);
    forwarded.push(url.pathname);
    // The same method, headers, body and signal, to another origin (the README's snippet).
    return realFetch(new Request(`${base}${url.pathname}${url.search}`, request));
  };
  return () => {
    globalThis.fetch = realFetch;
  };
}
let restoreFetch = () => {};

/** What the app answers for a key the middleware found invalid: 403 when the key is known but
 * not allowed, 401 otherwise. */
function invalidKey(c, result) {
  const { code } = result.data;
  const status = ["INSUFFICIENT_PERMISSIONS", "DISABLED", "FORBIDDEN"].includes(code) ? 403 : 401;
  return c.json({ error: code }, status);
}

function buildApp(rootKey) {
  const hono = new Hono();
  hono.use("/reports/*", unkey({ rootKey, handleInvalidKey: invalidKey }));
  hono.use("/admin/*", unkey({ rootKey, permissions: "reports.write", handleInvalidKey: invalidKey }));
  // Without `handleInvalidKey` the middleware lets every request through with the verdict in
  // the context; the handler decides.
  hono.use("/plain/*", unkey({ rootKey }));
  const ok = (c) => c.json({ ok: true, keyId: c.get("unkey").data.keyId, meta: c.get("unkey").data.meta ?? null });
  hono.get("/reports/today", ok);
  hono.post("/admin/reports", ok);
  hono.get("/plain/hello", (c) => {
    const verdict = c.get("unkey").data;
    return verdict.valid ? c.json({ ok: true }) : c.json({ error: verdict.code }, 401);
  });
  // The middleware rethrows what the SDK raised when verification itself failed (a 401 for a
  // wrong root key is not an `APIError`, so its `onError` is not called).
  hono.onError((err, c) => c.json({ error: "verification failed", cause: err.name }, 500));
  return hono;
}

async function call(target, path, { key, method = "GET" } = {}) {
  const headers = key === undefined ? {} : { Authorization: `Bearer ${key}` };
  const res = await target.request(path, { method, headers });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

before(async () => {
  requireBinary();
  db = freshDatabase();
  const workspaceId = createWorkspace(db.url, "hono");
  const admin = createRootKey(db.url, workspaceId);
  // The middleware's root key may verify keys and nothing else, as in production.
  const verifier = createRootKey(db.url, workspaceId, { permissions: ["api.*.verify_key"] });
  server = await startServer(db.url);
  sdk = client(server.url, admin.key);
  apiId = (await sdk.apis.createApi({ name: "hono" })).data.apiId;
  await sdk.permissions.createPermission({ name: "reports.write", slug: "reports.write" });
  restoreFetch = redirectUnkeyTo(server.url);
  app = buildApp(verifier.key);
  misconfigured = buildApp("unkey_notarootkeyofthisserver");
});

after(async () => {
  restoreFetch();
  await server?.stop();
  db?.cleanup();
});

test("a valid key gets 200, and the handler sees the verdict", async () => {
  const { keyId, key } = (await sdk.keys.createKey({ apiId, meta: { team: "blue" } })).data;
  const before = forwarded.length;
  const res = await call(app, "/reports/today", { key });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { ok: true, keyId, meta: { team: "blue" } });
  assert.deepEqual(forwarded.slice(before), ["/v2/keys.verifyKey"], "the middleware's verification reached keyward");
  assert.equal((await call(app, "/plain/hello", { key })).status, 200);
});

test("no key: 401 from the middleware itself, without asking keyward", async () => {
  const before = forwarded.length;
  const res = await call(app, "/reports/today");
  assert.equal(res.status, 401);
  assert.deepEqual(res.body, { error: "unauthorized" });
  assert.equal(forwarded.length, before);
});

test("an unknown key: 401", async () => {
  const res = await call(app, "/reports/today", { key: "hono_doesnotexist" });
  assert.deepEqual(res, { status: 401, body: { error: "NOT_FOUND" } });
  assert.deepEqual(await call(app, "/plain/hello", { key: "hono_doesnotexist" }), {
    status: 401,
    body: { error: "NOT_FOUND" },
  });
});

test("a disabled key: 403, and 200 again once it is enabled", async () => {
  const { keyId, key } = (await sdk.keys.createKey({ apiId, enabled: false })).data;
  assert.deepEqual(await call(app, "/reports/today", { key }), { status: 403, body: { error: "DISABLED" } });
  await sdk.keys.updateKey({ keyId, enabled: true });
  assert.equal((await call(app, "/reports/today", { key })).status, 200);
});

test("an expired key: 401", async () => {
  const expires = Date.now() + 500;
  const { key } = (await sdk.keys.createKey({ apiId, expires })).data;
  await sleep(Math.max(0, expires - Date.now()) + 50);
  assert.deepEqual(await call(app, "/reports/today", { key }), { status: 401, body: { error: "EXPIRED" } });
});

test("a key without the route's permission: 403; with it: 200", async () => {
  const { keyId, key } = (await sdk.keys.createKey({ apiId })).data;
  assert.deepEqual(await call(app, "/admin/reports", { key, method: "POST" }), {
    status: 403,
    body: { error: "INSUFFICIENT_PERMISSIONS" },
  });
  await sdk.keys.addPermissions({ keyId, permissions: ["reports.write"] });
  const res = await call(app, "/admin/reports", { key, method: "POST" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
});

test("a root key keyward does not know fails closed (500), never 200", async () => {
  const { key } = (await sdk.keys.createKey({ apiId })).data;
  const res = await call(misconfigured, "/reports/today", { key });
  assert.deepEqual(res, { status: 500, body: { error: "verification failed", cause: "UnauthorizedErrorResponse" } });
});
