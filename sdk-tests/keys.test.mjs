// The official @unkey/api SDK against a real `keyward serve`: keys.* and apis.listKeys.
//
// Every call goes through the SDK, so each response must pass the SDK's zod models; where the
// exact wire shape matters, the raw JSON is checked as well (see `recordingClient`).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";

import * as errors from "@unkey/api/models/errors";

import {
  client,
  createMigration,
  createRootKey,
  createWorkspace,
  expectHttpError,
  expectSdkError,
  freshDatabase,
  pollUntil,
  recordingClient,
  requireBinary,
  seenErrorTypes,
  sleep,
  startServer,
  whitelistApi,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;

let db; // { dir, url, cleanup }
let server; // { url, stop, output }
let workspaceId;
let root; // every permission
let readKeyOnly; // only api.*.read_key: no verify permission at all
let rec; // recordingClient with `root`
let sdk; // rec.sdk
let apiId; // the API most tests create keys in
let otherApiId; // a second API of the same workspace

let counter = 0;
const unique = (label) => `${label}_${process.pid}_${++counter}`;

const notFound = (specific) => ({
  errorClass: errors.NotFoundErrorResponse,
  status: 404,
  typeSuffix: `unkey/data/${specific}`,
  title: "Not Found",
});
const invalidInput = {
  errorClass: errors.BadRequestErrorResponse,
  status: 400,
  typeSuffix: "unkey/application/invalid_input",
  title: "Bad Request",
};

/** Creates a key in `apiId` (default: the shared API) and returns `{ keyId, key }`. */
async function createKey(fields = {}) {
  const res = await sdk.keys.createKey({ apiId, ...fields });
  assert.match(res.meta.requestId, /^req_/);
  assert.match(res.data.keyId, /^key_/);
  assert.equal(typeof res.data.key, "string");
  return res.data;
}

async function getKey(keyId) {
  const res = await sdk.keys.getKey({ keyId });
  assert.match(res.meta.requestId, /^req_/);
  return res.data;
}

async function verify(key, extra = {}, using = sdk) {
  const res = await using.keys.verifyKey({ key, ...extra });
  assert.match(res.meta.requestId, /^req_/);
  assert.equal(typeof res.data.valid, "boolean", "verify data has `valid`");
  assert.equal(typeof res.data.code, "string", "verify data has `code`");
  return res.data;
}

/** The raw `data` object of the last response to `path`, as it was on the wire. */
const wireData = (path) => rec.lastJson(path).data;

/** Collects every item of a listKeys result by following the SDK's page iterator. */
async function listAll(request) {
  const pages = [];
  for await (const page of await sdk.apis.listKeys(request)) pages.push(page.result);
  return pages;
}

before(async () => {
  requireBinary();
  db = freshDatabase();
  workspaceId = createWorkspace(db.url, "sdk-keys");
  root = createRootKey(db.url, workspaceId, { name: "sdk-keys-all" });
  readKeyOnly = createRootKey(db.url, workspaceId, {
    name: "sdk-keys-read-key-only",
    permissions: ["api.*.read_key"],
  });

  server = await startServer(db.url);
  rec = recordingClient(server.url, root.key);
  sdk = rec.sdk;
  apiId = (await sdk.apis.createApi({ name: unique("sdk-keys") })).data.apiId;
  otherApiId = (await sdk.apis.createApi({ name: unique("sdk-keys-other") })).data.apiId;
});

after(async () => {
  try {
    if (server) {
      const exit = await server.stop();
      if (exit && exit.code !== 0) {
        console.log(
          `# note: keyward serve exited with code ${exit.code}, signal ${exit.signal} after SIGTERM`,
        );
      }
    }
  } finally {
    db?.cleanup();
  }
});

// ---- keys.createKey, keys.getKey, keys.whoami ----

test("keys.createKey with every field returns a key starting with the prefix, and getKey returns every field back", { timeout: TEST_TIMEOUT }, async () => {
  const t0 = Date.now();
  const expires = t0 + 3_600_000;
  const externalId = unique("user");
  const meta = { plan: "pro", seats: 3, flags: { beta: true }, tags: ["a", "b"] };
  const { keyId, key } = await createKey({
    prefix: "sdk",
    name: "full key",
    meta,
    expires,
    externalId,
    credits: { remaining: 100, refill: { interval: "monthly", amount: 100, refillDay: 15 } },
    enabled: true,
    byteLength: 32,
  });
  const t1 = Date.now();
  assert.deepEqual(Object.keys(wireData("/v2/keys.createKey")).sort(), ["key", "keyId"]);

  assert.ok(key.startsWith("sdk_"), `key ${key} should start with sdk_`);
  const random = key.slice("sdk_".length);
  assert.match(random, BASE58, "the random part is base58");
  assert.ok(random.length >= 40, `32 random bytes are ~44 base58 characters, got ${random.length}`);

  const data = await getKey(keyId);
  assert.match(data.identity?.id ?? "", /^id_/, `identity.id; got ${JSON.stringify(data.identity)}`);
  assert.ok(
    Number.isInteger(data.createdAt) && data.createdAt >= t0 - 1_000 && data.createdAt <= t1 + 1_000,
    `createdAt ${data.createdAt} should be between ${t0} and ${t1}`,
  );
  const { meta: identityMeta, ...identityRest } = data.identity;
  assert.deepEqual(identityRest, { id: data.identity.id, externalId });
  assert.ok(identityMeta === undefined || typeof identityMeta === "object", "identity.meta is an object if present");
  assert.deepEqual(data, {
    keyId,
    start: `sdk_${random.slice(0, 4)}`,
    enabled: true,
    name: "full key",
    meta,
    createdAt: data.createdAt,
    expires,
    credits: { remaining: 100, refill: { interval: "monthly", amount: 100, refillDay: 15 } },
    identity: data.identity,
  });

  const wire = wireData("/v2/keys.getKey");
  assert.deepEqual(
    Object.keys(wire).sort(),
    ["createdAt", "credits", "enabled", "expires", "identity", "keyId", "meta", "name", "start"],
    `a fresh, never used key has no updatedAt or lastUsedAt; wire data ${JSON.stringify(wire)}`,
  );
});

test("keys.createKey with only an apiId returns a 16-byte key without prefix and getKey shows the minimal fields", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey();
  assert.match(key, BASE58, "no prefix: the key is all base58");
  assert.ok(key.length >= 20 && key.length <= 23, `16 random bytes are ~22 base58 characters, got ${key.length}`);

  const data = await getKey(keyId);
  assert.deepEqual(data, { keyId, start: key.slice(0, 4), enabled: true, createdAt: data.createdAt });
});

test("keys.createKey with daily refill and with remaining null (unlimited) are shown as such by getKey", { timeout: TEST_TIMEOUT }, async () => {
  const daily = await createKey({ credits: { remaining: 5, refill: { interval: "daily", amount: 10 } } });
  assert.deepEqual((await getKey(daily.keyId)).credits, {
    remaining: 5,
    refill: { interval: "daily", amount: 10 },
  });

  const unlimited = await createKey({ credits: { remaining: null } });
  const data = await getKey(unlimited.keyId);
  assert.equal(data.credits, undefined, `an unlimited key has no credits; got ${JSON.stringify(data.credits)}`);
});

test("keys.createKey with enabled false creates a disabled key", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({ enabled: false });
  assert.equal((await getKey(keyId)).enabled, false);
  const v = await verify(key);
  assert.equal(v.valid, false);
  assert.equal(v.code, "DISABLED");
});

test("keys.createKey for an unknown API answers 404 api_not_found", { timeout: TEST_TIMEOUT }, async () => {
  await expectSdkError(sdk.keys.createKey({ apiId: "api_doesnotexist00" }), notFound("api_not_found"));
});

test("keys.createKey with a refill but remaining null answers 400 invalid_input", { timeout: TEST_TIMEOUT }, async () => {
  // The SDK's model requires the `remaining` property (nullable), so null is what a client can send.
  const err = await expectSdkError(
    sdk.keys.createKey({ apiId, credits: { remaining: null, refill: { interval: "daily", amount: 10 } } }),
    invalidInput,
  );
  assert.match(err.data$.error.detail, /remaining/, `detail should name credits.remaining: ${err.body}`);
});

test("keys.createKey with a monthly refill without refillDay answers 400 invalid_input", { timeout: TEST_TIMEOUT }, async () => {
  const err = await expectSdkError(
    sdk.keys.createKey({ apiId, credits: { remaining: 10, refill: { interval: "monthly", amount: 10 } } }),
    invalidInput,
  );
  assert.match(err.data$.error.detail, /refillDay/, `detail should name refillDay: ${err.body}`);
});

test("keys.createKey with recoverable true answers 412 precondition_failed and creates nothing", { timeout: TEST_TIMEOUT }, async () => {
  const { data: { apiId: emptyApi } } = await sdk.apis.createApi({ name: unique("recoverable") });
  // The SDK lists no 412 for createKey, so it surfaces the response as a generic APIError.
  const { err } = await expectHttpError(sdk.keys.createKey({ apiId: emptyApi, recoverable: true }), {
    status: 412,
    typeSuffix: "unkey/application/precondition_failed",
    title: "Precondition Failed",
  });
  assert.ok(
    err instanceof errors.APIError || err instanceof errors.PreconditionFailedErrorResponse,
    `expected APIError or PreconditionFailedErrorResponse, got ${err.name}`,
  );
  const listed = await sdk.apis.listKeys({ apiId: emptyApi });
  assert.deepEqual(listed.result.data, [], "no key was created");
});

test("keys.getKey for an unknown key answers 404 key_not_found", { timeout: TEST_TIMEOUT }, async () => {
  await expectSdkError(sdk.keys.getKey({ keyId: "key_doesnotexist00" }), notFound("key_not_found"));
});

test("keys.whoami with the plaintext returns the same key as getKey, and an unknown plaintext answers 404 key_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({
    prefix: "who",
    name: "whoami",
    meta: { team: "x" },
    externalId: unique("who"),
    credits: { remaining: 3 },
  });
  const res = await sdk.keys.whoami({ key });
  assert.match(res.meta.requestId, /^req_/);
  assert.equal(res.data.keyId, keyId);
  assert.deepEqual(res.data, await getKey(keyId));

  await expectSdkError(sdk.keys.whoami({ key: "who_doesnotexist1234567" }), notFound("key_not_found"));
});

test("keys.getKey shows lastUsedAt soon after a verification", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey();
  const t0 = Date.now();
  assert.equal((await verify(key)).code, "VALID");
  // Usage is recorded in batches (flushed every 500 ms), so allow a few flushes.
  const { last } = await pollUntil(
    () => getKey(keyId),
    (r) => r.value?.lastUsedAt !== undefined,
    { withinMs: 3_000, intervalMs: 100, what: "lastUsedAt on getKey after a verification" },
  );
  const { lastUsedAt } = last.value;
  assert.ok(
    Number.isInteger(lastUsedAt) && lastUsedAt >= t0 - 1_000 && lastUsedAt <= Date.now() + 1_000,
    `lastUsedAt ${lastUsedAt} should be the time of the verification (~${t0})`,
  );
});

// ---- keys.updateKey ----

test("keys.updateKey leaves absent fields alone, sets given values and clears fields sent as null", { timeout: TEST_TIMEOUT }, async () => {
  const firstExternalId = unique("upd");
  const expires = Date.now() + 3_600_000;
  const { keyId, key } = await createKey({
    name: "before",
    meta: { a: 1 },
    externalId: firstExternalId,
    expires,
    credits: { remaining: 5, refill: { interval: "daily", amount: 5 } },
  });
  const original = await getKey(keyId);

  // Nothing but the id: nothing changes except updatedAt.
  const noop = await sdk.keys.updateKey({ keyId });
  assert.match(noop.meta.requestId, /^req_/);
  assert.deepEqual(noop.data, {});
  assert.deepEqual(wireData("/v2/keys.updateKey"), {});
  const unchanged = await getKey(keyId);
  assert.ok(
    unchanged.updatedAt === undefined || (Number.isInteger(unchanged.updatedAt) && unchanged.updatedAt >= original.createdAt),
    `updatedAt ${unchanged.updatedAt}`,
  );
  const { updatedAt: _ignored, ...unchangedRest } = unchanged;
  assert.deepEqual(unchangedRest, original);

  // Values set; absent fields stay.
  await sdk.keys.updateKey({ keyId, name: "after", meta: { b: 2 } });
  const set = await getKey(keyId);
  assert.equal(set.name, "after");
  assert.deepEqual(set.meta, { b: 2 });
  assert.deepEqual(set.identity, original.identity);
  assert.deepEqual(set.credits, original.credits);
  assert.equal(set.expires, expires);
  assert.ok(Number.isInteger(set.updatedAt) && set.updatedAt >= original.createdAt, `updatedAt after an update: ${set.updatedAt}`);

  // A new externalId links another identity.
  const secondExternalId = unique("upd");
  await sdk.keys.updateKey({ keyId, externalId: secondExternalId });
  const relinked = await getKey(keyId);
  assert.equal(relinked.identity?.externalId, secondExternalId);
  assert.match(relinked.identity.id, /^id_/);
  assert.notEqual(relinked.identity.id, original.identity.id);

  // null clears.
  await sdk.keys.updateKey({ keyId, name: null, meta: null, externalId: null, expires: null, credits: null });
  const sent = JSON.parse(rec.last("/v2/keys.updateKey").requestBody);
  assert.deepEqual(sent, { keyId, name: null, meta: null, externalId: null, expires: null, credits: null }, "the SDK sends the nulls");
  const cleared = await getKey(keyId);
  assert.deepEqual(
    { ...cleared, updatedAt: undefined },
    { keyId, start: original.start, enabled: true, createdAt: original.createdAt, updatedAt: undefined },
    `name, meta, identity, expires and credits are gone; got ${JSON.stringify(cleared)}`,
  );

  const v = await verify(key);
  assert.equal(v.code, "VALID");
  assert.equal(v.credits, undefined, "credits: null made the key unlimited");
  assert.equal(v.name, undefined);
  assert.equal(v.meta, undefined);
  assert.equal(v.identity, undefined);
});

test("keys.updateKey changes credits: remaining alone, a refill added, a refill removed", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId } = await createKey({ credits: { remaining: 5, refill: { interval: "daily", amount: 5 } } });

  await sdk.keys.updateKey({ keyId, credits: { remaining: 7 } });
  assert.deepEqual((await getKey(keyId)).credits, { remaining: 7, refill: { interval: "daily", amount: 5 } });

  await sdk.keys.updateKey({ keyId, credits: { refill: { interval: "monthly", amount: 9, refillDay: 3 } } });
  assert.deepEqual((await getKey(keyId)).credits, {
    remaining: 7,
    refill: { interval: "monthly", amount: 9, refillDay: 3 },
  });

  await sdk.keys.updateKey({ keyId, credits: { refill: null } });
  assert.deepEqual((await getKey(keyId)).credits, { remaining: 7 });

  await sdk.keys.updateKey({ keyId, credits: { remaining: null } });
  assert.equal((await getKey(keyId)).credits, undefined, "remaining null makes the key unlimited");

  await expectSdkError(
    sdk.keys.updateKey({ keyId, credits: { remaining: 3, refill: { interval: "daily", amount: 3, refillDay: 4 } } }),
    invalidInput,
  );
  await expectSdkError(sdk.keys.updateKey({ keyId: "key_doesnotexist00", name: "x" }), notFound("key_not_found"));
});

test("keys.updateKey with enabled false makes the very next verify answer DISABLED, and enabled true makes it VALID again", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey();
  assert.equal((await verify(key)).code, "VALID");

  await sdk.keys.updateKey({ keyId, enabled: false });
  const disabled = await verify(key);
  assert.equal(disabled.valid, false);
  assert.equal(disabled.code, "DISABLED");
  assert.equal(disabled.keyId, keyId);
  assert.equal(disabled.enabled, false);
  assert.equal((await getKey(keyId)).enabled, false);

  await sdk.keys.updateKey({ keyId, enabled: true });
  const enabled = await verify(key);
  assert.equal(enabled.valid, true);
  assert.equal(enabled.code, "VALID");
});

// ---- keys.updateCredits ----

test("keys.updateCredits sets, increments and decrements (floored at 0) and set null makes the key unlimited", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({ credits: { remaining: 10 } });

  const set = await sdk.keys.updateCredits({ keyId, operation: "set", value: 20 });
  assert.match(set.meta.requestId, /^req_/);
  assert.deepEqual(set.data, { remaining: 20 });
  assert.deepEqual(wireData("/v2/keys.updateCredits"), { remaining: 20 });

  assert.deepEqual((await sdk.keys.updateCredits({ keyId, operation: "increment", value: 5 })).data, { remaining: 25 });
  assert.deepEqual((await sdk.keys.updateCredits({ keyId, operation: "decrement", value: 3 })).data, { remaining: 22 });
  assert.equal((await getKey(keyId)).credits?.remaining, 22);
  const v = await verify(key);
  assert.equal(v.code, "VALID");
  assert.equal(v.credits, 21, "verify spends from the updated balance");

  assert.deepEqual((await sdk.keys.updateCredits({ keyId, operation: "decrement", value: 100 })).data, { remaining: 0 });
  assert.equal((await verify(key)).code, "USAGE_EXCEEDED");

  const unlimited = await sdk.keys.updateCredits({ keyId, operation: "set", value: null });
  assert.deepEqual(unlimited.data, { remaining: null });
  assert.deepEqual(wireData("/v2/keys.updateCredits"), { remaining: null }, "remaining is present and null on the wire");
  assert.equal((await getKey(keyId)).credits, undefined, "getKey shows no credits for an unlimited key");
  const free = await verify(key);
  assert.equal(free.code, "VALID");
  assert.equal(free.credits, undefined);
});

test("keys.updateCredits keeps the refill and reports it", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId } = await createKey({ credits: { remaining: 1, refill: { interval: "daily", amount: 10 } } });
  const res = await sdk.keys.updateCredits({ keyId, operation: "set", value: 3 });
  assert.deepEqual(res.data, { remaining: 3, refill: { interval: "daily", amount: 10 } });
});

test("keys.updateCredits increment on an unlimited key, and increment without a value, answer 400 invalid_input", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId } = await createKey();
  await expectSdkError(sdk.keys.updateCredits({ keyId, operation: "increment", value: 1 }), invalidInput);
  await expectSdkError(sdk.keys.updateCredits({ keyId, operation: "decrement", value: 1 }), invalidInput);

  const limited = await createKey({ credits: { remaining: 1 } });
  await expectSdkError(sdk.keys.updateCredits({ keyId: limited.keyId, operation: "increment" }), invalidInput);
  await expectSdkError(
    sdk.keys.updateCredits({ keyId: "key_doesnotexist00", operation: "set", value: 1 }),
    notFound("key_not_found"),
  );
});

// ---- keys.deleteKey ----

for (const permanent of [false, true]) {
  const how = permanent ? "with permanent true" : "(soft)";
  test(`keys.deleteKey ${how} makes getKey answer 404 and verify NOT_FOUND`, { timeout: TEST_TIMEOUT }, async () => {
    const { keyId, key } = await createKey({ name: "doomed" });
    assert.equal((await verify(key)).code, "VALID", "the key works (and is cached) before the delete");

    const res = await sdk.keys.deleteKey(permanent ? { keyId, permanent: true } : { keyId });
    assert.match(res.meta.requestId, /^req_/);
    assert.deepEqual(res.data, {});

    await expectSdkError(sdk.keys.getKey({ keyId }), notFound("key_not_found"));
    await expectSdkError(sdk.keys.whoami({ key }), notFound("key_not_found"));
    const v = await verify(key);
    assert.equal(v.valid, false);
    assert.equal(v.code, "NOT_FOUND");
    assert.deepEqual(wireData("/v2/keys.verifyKey"), { valid: false, code: "NOT_FOUND" });

    await expectSdkError(sdk.keys.deleteKey({ keyId }), notFound("key_not_found"));
    const { result } = await sdk.apis.listKeys({ apiId });
    assert.ok(!result.data.some((k) => k.keyId === keyId), "a deleted key is not listed");
  });
}

// ---- keys.rerollKey ----

test("keys.rerollKey issues a new key with the same name, meta, credits and identity, and with expiration 60000 the old key still verifies", { timeout: TEST_TIMEOUT }, async () => {
  const externalId = unique("reroll");
  const old = await createKey({
    prefix: "rr",
    name: "rolled",
    meta: { v: 1 },
    externalId,
    credits: { remaining: 50, refill: { interval: "daily", amount: 50 } },
  });
  const oldData = await getKey(old.keyId);

  const startedAt = Date.now();
  const res = await sdk.keys.rerollKey({ keyId: old.keyId, expiration: 60_000 });
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(Object.keys(wireData("/v2/keys.rerollKey")).sort(), ["key", "keyId"]);
  const fresh = res.data;
  assert.match(fresh.keyId, /^key_/);
  assert.notEqual(fresh.keyId, old.keyId);
  assert.notEqual(fresh.key, old.key);
  assert.ok(fresh.key.startsWith("rr_"), `the new key ${fresh.key} keeps the prefix rr_`);

  const newData = await getKey(fresh.keyId);
  assert.equal(newData.name, "rolled");
  assert.deepEqual(newData.meta, { v: 1 });
  assert.deepEqual(newData.credits, { remaining: 50, refill: { interval: "daily", amount: 50 } });
  assert.deepEqual(newData.identity, oldData.identity, "the new key belongs to the same identity");
  assert.equal(newData.enabled, true);
  assert.equal(newData.start, fresh.key.slice(0, "rr_".length + 4));

  const v = await verify(fresh.key);
  assert.equal(v.valid, true);
  assert.equal(v.code, "VALID");
  assert.equal(v.keyId, fresh.keyId);
  assert.equal(v.name, "rolled");
  assert.deepEqual(v.meta, { v: 1 });
  assert.equal(v.credits, 49);
  assert.equal(v.identity?.externalId, externalId);

  const oldVerify = await verify(old.key);
  assert.equal(oldVerify.code, "VALID", "the old key works during the grace period");
  assert.equal(oldVerify.keyId, old.keyId);
  const oldAfter = await getKey(old.keyId);
  assert.ok(Number.isInteger(oldAfter.expires), `the old key now expires: ${JSON.stringify(oldAfter)}`);
  assert.equal(oldAfter.expires % 60_000, 0, `the old key's expiry ${oldAfter.expires} is rounded to a minute`);
  assert.ok(
    oldAfter.expires >= startedAt + 60_000 && oldAfter.expires <= Date.now() + 120_000,
    `old expires ${oldAfter.expires} should be 60-120 s after ${startedAt}`,
  );
});

test("keys.rerollKey with expiration 0 makes the old key EXPIRED at once while the new key is VALID", { timeout: TEST_TIMEOUT }, async () => {
  const old = await createKey({ prefix: "rz", name: "zero" });
  assert.equal((await verify(old.key)).code, "VALID", "the old key works (and is cached) before the reroll");

  const { data: fresh } = await sdk.keys.rerollKey({ keyId: old.keyId, expiration: 0 });
  // It expires at "now", and EXPIRED means strictly after: allow a few ms.
  const { last } = await pollUntil(
    () => verify(old.key),
    (r) => r.value?.code === "EXPIRED",
    { withinMs: 1_000, intervalMs: 20, what: "EXPIRED for the old key after reroll with expiration 0" },
  );
  assert.equal(last.value.valid, false);
  assert.equal(last.value.keyId, old.keyId);

  const v = await verify(fresh.key);
  assert.equal(v.code, "VALID");
  assert.equal(v.name, "zero");

  await expectSdkError(sdk.keys.rerollKey({ keyId: "key_doesnotexist00", expiration: 0 }), notFound("key_not_found"));
});

// ---- keys.migrateKeys ----

test("keys.migrateKeys imports a sha256 hash that then verifies, and reports a repeated hash as failed", { timeout: TEST_TIMEOUT }, async () => {
  const migrationId = createMigration(db.url, workspaceId, "sha256");
  const plaintext = "legacy_key_abc123";
  const hash = createHash("sha256").update(plaintext).digest("base64");
  const externalId = unique("legacy");

  const res = await sdk.keys.migrateKeys({
    migrationId,
    apiId,
    keys: [{ hash, name: "legacy", externalId, meta: { source: "import" }, credits: { remaining: 3 } }],
  });
  assert.match(res.meta.requestId, /^req_/);
  assert.equal(res.data.migrated.length, 1, `migrated: ${JSON.stringify(res.data)}`);
  const [{ keyId }] = res.data.migrated;
  assert.match(keyId, /^key_/);
  assert.deepEqual(res.data, { migrated: [{ hash, keyId }], failed: [] });

  const v = await verify(plaintext);
  assert.equal(v.valid, true, `verify ${plaintext}: ${JSON.stringify(v)}`);
  assert.equal(v.code, "VALID");
  assert.equal(v.keyId, keyId);
  assert.equal(v.name, "legacy");
  assert.deepEqual(v.meta, { source: "import" });
  assert.equal(v.credits, 2);
  assert.equal(v.identity?.externalId, externalId);

  const data = await getKey(keyId);
  assert.equal(data.name, "legacy");
  assert.equal(typeof data.start, "string");
  assert.deepEqual(data.credits, { remaining: 2 });

  const again = await sdk.keys.migrateKeys({ migrationId, apiId, keys: [{ hash }] });
  assert.deepEqual(again.data, { migrated: [], failed: [hash] });
});

test("keys.migrateKeys with an unknown migrationId answers 404 migration_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const hash = createHash("sha256").update(unique("never")).digest("base64");
  await expectSdkError(
    sdk.keys.migrateKeys({ migrationId: "mig_doesnotexist00", apiId, keys: [{ hash }] }),
    notFound("migration_not_found"),
  );
});

test("a prefixed-api-key migration verifies only with its migrationId at first, and then without it", { timeout: TEST_TIMEOUT }, async () => {
  const migrationId = createMigration(db.url, workspaceId, "github.com/seamapi/prefixed-api-key");
  const plaintext = "seam_shortTok1_longTokenSecret123";
  const hash = createHash("sha256").update("longTokenSecret123").digest("hex");

  const res = await sdk.keys.migrateKeys({ migrationId, apiId, keys: [{ hash, name: "seam" }] });
  assert.equal(res.data.migrated.length, 1, `migrated: ${JSON.stringify(res.data)}`);
  const [{ keyId }] = res.data.migrated;

  assert.equal((await verify(plaintext)).code, "NOT_FOUND", "without migrationId the key is not found yet");
  const first = await verify(plaintext, { migrationId });
  assert.equal(first.code, "VALID", `with migrationId: ${JSON.stringify(first)}`);
  assert.equal(first.keyId, keyId);
  const second = await verify(plaintext);
  assert.equal(second.code, "VALID", "after the first use the key verifies without migrationId");
  assert.equal(second.keyId, keyId);
  assert.equal((await getKey(keyId)).start, "seam_shor");

  await expectSdkError(sdk.keys.verifyKey({ key: "two_parts", migrationId }), {
    errorClass: errors.BadRequestErrorResponse,
    status: 400,
    typeSuffix: "unkey/authentication/malformed",
    title: "Bad Request",
  });
});

// ---- keys.verifyKey ----

test("keys.verifyKey of a valid key returns VALID with keyId, name, meta, expires, credits, enabled and identity", { timeout: TEST_TIMEOUT }, async () => {
  const externalId = unique("verify");
  const expires = Date.now() + 3_600_000;
  const { keyId, key } = await createKey({
    prefix: "vk",
    name: "verified",
    meta: { role: "admin", n: 1 },
    externalId,
    expires,
    credits: { remaining: 10 },
  });
  const { identity } = await getKey(keyId);

  const v = await verify(key);
  assert.deepEqual(v, {
    valid: true,
    code: "VALID",
    keyId,
    name: "verified",
    meta: { role: "admin", n: 1 },
    expires,
    credits: 9,
    enabled: true,
    identity,
  });
  assert.equal(identity.externalId, externalId);
});

test("keys.verifyKey of an unknown key returns exactly valid false and NOT_FOUND", { timeout: TEST_TIMEOUT }, async () => {
  const v = await verify("vk_doesnotexist1234567890");
  assert.deepEqual(v, { valid: false, code: "NOT_FOUND" });
  assert.deepEqual(wireData("/v2/keys.verifyKey"), { valid: false, code: "NOT_FOUND" });
});

test("keys.verifyKey of a key created with expires 1.5 s ahead is VALID, then EXPIRED after it passes", { timeout: TEST_TIMEOUT }, async () => {
  const expires = Date.now() + 1_500;
  const { keyId, key } = await createKey({ expires });
  const valid = await verify(key);
  assert.equal(valid.code, "VALID");
  assert.equal(valid.expires, expires);

  await sleep(Math.max(0, expires - Date.now()) + 500);
  const expired = await verify(key);
  assert.equal(expired.valid, false);
  assert.equal(expired.code, "EXPIRED");
  assert.equal(expired.keyId, keyId);
  assert.equal(expired.expires, expires);
});

test("keys.verifyKey spends one credit per call and answers USAGE_EXCEEDED when none are left", { timeout: TEST_TIMEOUT }, async () => {
  const { key } = await createKey({ credits: { remaining: 2 } });
  const one = await verify(key);
  assert.deepEqual([one.valid, one.code, one.credits], [true, "VALID", 1]);
  const zero = await verify(key);
  assert.deepEqual([zero.valid, zero.code, zero.credits], [true, "VALID", 0]);
  const exceeded = await verify(key);
  assert.deepEqual([exceeded.valid, exceeded.code, exceeded.credits], [false, "USAGE_EXCEEDED", 0]);
});

test("keys.verifyKey with credits cost 0 passes at remaining 0, and a cost above the balance spends nothing", { timeout: TEST_TIMEOUT }, async () => {
  const empty = await createKey({ credits: { remaining: 0 } });
  const free = await verify(empty.key, { credits: { cost: 0 } });
  assert.deepEqual([free.valid, free.code, free.credits], [true, "VALID", 0]);
  assert.equal((await verify(empty.key)).code, "USAGE_EXCEEDED", "the default cost is 1");

  const five = await createKey({ credits: { remaining: 5 } });
  const tooMuch = await verify(five.key, { credits: { cost: 15 } });
  assert.deepEqual([tooMuch.valid, tooMuch.code, tooMuch.credits], [false, "USAGE_EXCEEDED", 5]);
  const all = await verify(five.key, { credits: { cost: 5 } });
  assert.deepEqual([all.valid, all.code, all.credits], [true, "VALID", 0]);
});

test("keys.verifyKey answers FORBIDDEN within 1 s of `api whitelist` excluding the caller, and VALID once 127.0.0.1 is listed", { timeout: TEST_TIMEOUT }, async () => {
  const { data: { apiId: walledApi } } = await sdk.apis.createApi({ name: unique("whitelist") });
  const { key, keyId } = await sdk.keys.createKey({ apiId: walledApi }).then((r) => r.data);
  assert.equal((await verify(key)).code, "VALID", "VALID (and cached) before the whitelist");

  whitelistApi(db.url, walledApi, "10.1.2.3");
  const forbidden = await pollUntil(
    () => verify(key),
    (r) => r.value?.code === "FORBIDDEN",
    { withinMs: 1_000, intervalMs: 50, what: "FORBIDDEN after `api whitelist API 10.1.2.3`" },
  );
  assert.equal(forbidden.last.value.valid, false);
  assert.equal(forbidden.last.value.keyId, keyId);

  whitelistApi(db.url, walledApi, "127.0.0.1");
  await pollUntil(
    () => verify(key),
    (r) => r.value?.code === "VALID",
    { withinMs: 1_000, intervalMs: 50, what: "VALID after `api whitelist API 127.0.0.1`" },
  );

  whitelistApi(db.url, walledApi, "10.1.2.3");
  await pollUntil(() => verify(key), (r) => r.value?.code === "FORBIDDEN", {
    withinMs: 1_000,
    intervalMs: 50,
    what: "FORBIDDEN again",
  });
  whitelistApi(db.url, walledApi);
  await pollUntil(() => verify(key), (r) => r.value?.code === "VALID", {
    withinMs: 1_000,
    intervalMs: 50,
    what: "VALID after clearing the whitelist",
  });
});

test("keys.verifyKey accepts 20 tags, including unicode and URL-like ones, and answers 400 for 21", { timeout: TEST_TIMEOUT }, async () => {
  const { key } = await createKey();
  const some = await verify(key, { tags: ["path=/v1/users?id=1&x=2", "region=eu-west", "ünïcødé ✓ spaced"] });
  assert.equal(some.code, "VALID");
  const twenty = Array.from({ length: 20 }, (_, i) => `tag-${i}`);
  assert.equal((await verify(key, { tags: twenty })).code, "VALID");

  await expectSdkError(sdk.keys.verifyKey({ key, tags: [...twenty, "tag-20"] }), invalidInput);
  await expectSdkError(sdk.keys.verifyKey({ key, tags: [""] }), invalidInput);
});

test("keys.verifyKey with a root key holding no verify permission at all answers 403 insufficient_permissions", { timeout: TEST_TIMEOUT }, async () => {
  const { key, keyId } = await createKey();
  const limited = client(server.url, readKeyOnly.key);
  const read = await limited.keys.getKey({ keyId });
  assert.equal(read.data.keyId, keyId, "the root key is valid and may read keys");

  const err = await expectSdkError(limited.keys.verifyKey({ key }), {
    errorClass: errors.ForbiddenErrorResponse,
    status: 403,
    typeSuffix: "unkey/authorization/insufficient_permissions",
    title: "Insufficient Permissions",
  });
  assert.ok(
    err.data$.error.detail.includes("api.*.verify_key"),
    `detail should name api.*.verify_key: ${JSON.stringify(err.data$.error.detail)}`,
  );
});

test("keys.verifyKey with a root key that may verify only another API's keys answers 200 NOT_FOUND", { timeout: TEST_TIMEOUT }, async () => {
  const onlyOther = createRootKey(db.url, workspaceId, {
    name: "sdk-keys-verify-other",
    permissions: [`api.${otherApiId}.verify_key`],
  });
  const limited = recordingClient(server.url, onlyOther.key);

  const { key } = await createKey({ name: "not yours" });
  const v = await verify(key, {}, limited.sdk);
  assert.deepEqual(v, { valid: false, code: "NOT_FOUND" });
  assert.deepEqual(limited.lastJson("/v2/keys.verifyKey").data, { valid: false, code: "NOT_FOUND" }, "nothing about the key leaks");

  const { data: mine } = await sdk.keys.createKey({ apiId: otherApiId, name: "yours" });
  const ok = await verify(mine.key, {}, limited.sdk);
  assert.equal(ok.code, "VALID", "the same root key verifies keys of the API it may verify");
  assert.equal(ok.keyId, mine.keyId);
});

// ---- apis.listKeys ----

test("apis.listKeys with limit 2 pages through 3 keys in id order, and externalId filters", { timeout: TEST_TIMEOUT }, async () => {
  const { data: { apiId: listApi } } = await sdk.apis.createApi({ name: unique("list") });
  const externalId = unique("lister");
  const ids = [];
  for (const fields of [{ name: "k1" }, { name: "k2", externalId }, { name: "k3", meta: { n: 3 } }]) {
    const { data } = await sdk.keys.createKey({ apiId: listApi, ...fields });
    ids.push(data.keyId);
  }

  // The SDK's page iterator.
  const pages = await listAll({ apiId: listApi, limit: 2 });
  assert.equal(pages.length, 2, `3 keys at 2 per page are 2 pages; got ${JSON.stringify(pages)}`);
  assert.equal(pages[0].data.length, 2);
  assert.equal(pages[0].pagination.hasMore, true);
  assert.equal(typeof pages[0].pagination.cursor, "string");
  assert.equal(pages[1].data.length, 1);
  assert.equal(pages[1].pagination.hasMore, false);
  assert.equal(pages[1].pagination.cursor, undefined, "no cursor on the last page");
  const listed = pages.flatMap((p) => p.data);
  const listedIds = listed.map((k) => k.keyId);
  assert.deepEqual([...listedIds].sort(), [...ids].sort(), "every key exactly once");
  assert.deepEqual(listedIds, [...listedIds].sort(), "ordered by key id");
  for (const item of listed) {
    assert.deepEqual(item, await getKey(item.keyId), `listKeys shows ${item.keyId} as getKey does`);
  }

  // A manual cursor.
  const first = await sdk.apis.listKeys({ apiId: listApi, limit: 2 });
  const cursor = first.result.pagination.cursor;
  const second = await sdk.apis.listKeys({ apiId: listApi, limit: 2, cursor });
  assert.deepEqual(
    [...first.result.data, ...second.result.data].map((k) => k.keyId),
    listedIds,
  );

  const filtered = await sdk.apis.listKeys({ apiId: listApi, externalId });
  assert.deepEqual(filtered.result.data.map((k) => k.keyId), [ids[1]]);
  assert.equal(filtered.result.data[0].identity?.externalId, externalId);
  assert.equal(filtered.result.pagination.hasMore, false);

  const nobody = await sdk.apis.listKeys({ apiId: listApi, externalId: unique("nobody") });
  assert.deepEqual(nobody.result.data, []);
  assert.equal(nobody.result.pagination.hasMore, false);
});

// ---- Error documentation ----

test("every error type URL the keys routes returned is a documentation page served by keyward", { timeout: TEST_TIMEOUT }, async () => {
  assert.ok(seenErrorTypes.size > 0, "earlier tests saw errors");
  for (const url of seenErrorTypes) {
    assert.equal(new URL(url).origin, new URL(server.url).origin, `type URL ${url} should point at this server`);
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    const html = await res.text();
    assert.equal(res.status, 200, `GET ${url} answered ${res.status}: ${html.slice(0, 200)}`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/, `GET ${url} content-type`);
    const specific = new URL(url).pathname.split("/").pop();
    assert.ok(html.includes(specific), `GET ${url} should name the error code ${specific}`);
  }
});
