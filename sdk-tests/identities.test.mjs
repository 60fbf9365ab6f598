// The official @unkey/api SDK against a real `keyward serve`: identities.* and the rate limits of
// keys and identities as keys.verifyKey applies them (auto-applied, requested by name, ad hoc).
//
// Every call goes through the SDK, so each response must pass the SDK's zod models; where the
// exact wire shape matters, the raw JSON is checked as well (see `recordingClient`).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as errors from "@unkey/api/models/errors";

import {
  createRootKey,
  createWorkspace,
  expectHttpError,
  expectSdkError,
  freshDatabase,
  recordingClient,
  requireBinary,
  seenErrorTypes,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;
const MINUTE = 60_000;
// Counting tests use a long window so that a window boundary between two calls is practically impossible.
const HOUR = 3_600_000;
const MIB = 1_048_576;

let db; // { dir, url, cleanup }
let server; // { url, stop, output }
let workspaceId;
let root; // every permission
let rec; // recordingClient with `root`
let sdk; // rec.sdk
let apiId; // the API every key here is created in

let counter = 0;
/** Unique in this run; valid as an external id (^[a-zA-Z0-9_.-]+$). */
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
const preconditionFailed = {
  status: 412,
  typeSuffix: "unkey/application/precondition_failed",
  title: "Precondition Failed",
};

/** The raw `data` object of the last response to `path`, as it was on the wire. */
const wireData = (path) => rec.lastJson(path).data;

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
/** An identity with its ratelimits in name order (their order is not specified). */
const norm = (identity) => ({ ...identity, ratelimits: identity.ratelimits && [...identity.ratelimits].sort(byName) });

async function createIdentity(fields = {}) {
  const externalId = fields.externalId ?? unique("ext");
  const res = await sdk.identities.createIdentity({ ...fields, externalId });
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(Object.keys(wireData("/v2/identities.createIdentity")), ["identityId"]);
  assert.match(res.data.identityId, /^id_/);
  return { id: res.data.identityId, externalId };
}

async function getIdentity(identity) {
  const res = await sdk.identities.getIdentity({ identity });
  assert.match(res.meta.requestId, /^req_/);
  return res.data;
}

async function createKey(fields = {}) {
  const res = await sdk.keys.createKey({ apiId, ...fields });
  assert.match(res.meta.requestId, /^req_/);
  assert.match(res.data.keyId, /^key_/);
  return res.data;
}

async function getKey(keyId) {
  const res = await sdk.keys.getKey({ keyId });
  assert.match(res.meta.requestId, /^req_/);
  return res.data;
}

async function verify(key, extra = {}) {
  const res = await sdk.keys.verifyKey({ key, ...extra });
  assert.match(res.meta.requestId, /^req_/);
  assert.equal(typeof res.data.valid, "boolean", "verify data has `valid`");
  assert.equal(typeof res.data.code, "string", "verify data has `code`");
  return res.data;
}

/** The codes of `n` verifications of `key`, one after the other. */
async function codes(key, n, extra = {}) {
  const out = [];
  for (let i = 0; i < n; i++) out.push((await verify(key, extra)).code);
  return out;
}

/** Asserts that `reset` is a unix-ms time in the future, at most `duration` away, ending a window. */
function assertReset(reset, duration, before) {
  assert.ok(Number.isInteger(reset), `reset ${reset} is an integer`);
  assert.ok(reset > before, `reset ${reset} should be after the call started (${before})`);
  assert.ok(reset <= Date.now() + duration, `reset ${reset} should be at most ${duration} ms away`);
  assert.equal(reset % duration, 0, `reset ${reset} is the end of a fixed window of ${duration} ms`);
}

before(async () => {
  requireBinary();
  db = freshDatabase();
  workspaceId = createWorkspace(db.url, "sdk-identities");
  root = createRootKey(db.url, workspaceId, { name: "sdk-identities-all" });

  server = await startServer(db.url);
  rec = recordingClient(server.url, root.key);
  sdk = rec.sdk;
  apiId = (await sdk.apis.createApi({ name: unique("sdk-identities") })).data.apiId;
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

// ---- identities.createIdentity / getIdentity ----

test("identities.createIdentity with meta and ratelimits returns an identityId, and getIdentity by id and by externalId returns them", { timeout: TEST_TIMEOUT }, async () => {
  const meta = { plan: "pro", seats: 3, flags: { beta: true }, tags: ["a", "b"] };
  const { id, externalId } = await createIdentity({
    meta,
    ratelimits: [
      { name: "requests", limit: 10, duration: MINUTE, autoApply: true },
      { name: "heavy", limit: 2, duration: HOUR },
    ],
  });
  assert.deepEqual(
    JSON.parse(rec.last("/v2/identities.createIdentity").requestBody).ratelimits[1],
    { name: "heavy", limit: 2, duration: HOUR, autoApply: false },
    "the SDK sends autoApply false by default",
  );

  const byId = await getIdentity(id);
  const [heavy, requests] = [...byId.ratelimits].sort(byName);
  assert.match(heavy.id, /^rl_/);
  assert.match(requests.id, /^rl_/);
  assert.notEqual(heavy.id, requests.id);
  assert.deepEqual(norm(byId), {
    id,
    externalId,
    meta,
    ratelimits: [
      { id: heavy.id, name: "heavy", limit: 2, duration: HOUR, autoApply: false },
      { id: requests.id, name: "requests", limit: 10, duration: MINUTE, autoApply: true },
    ],
  });
  assert.deepEqual(norm(wireData("/v2/identities.getIdentity")), norm(byId), "the wire has exactly these fields");

  assert.deepEqual(norm(await getIdentity(externalId)), norm(byId), "by externalId: the same identity");
});

test("identities.createIdentity with only an externalId: getIdentity shows empty meta and no ratelimits", { timeout: TEST_TIMEOUT }, async () => {
  const { id, externalId } = await createIdentity();
  const data = await getIdentity(id);
  assert.deepEqual(data, { id, externalId, meta: {}, ratelimits: [] });
  assert.deepEqual(wireData("/v2/identities.getIdentity"), { id, externalId, meta: {}, ratelimits: [] });
});

test("identities.createIdentity with a taken externalId answers 409 identity_already_exists", { timeout: TEST_TIMEOUT }, async () => {
  const { externalId } = await createIdentity();
  const err = await expectSdkError(sdk.identities.createIdentity({ externalId, meta: { again: true } }), {
    errorClass: errors.ConflictErrorResponse,
    status: 409,
    typeSuffix: "unkey/data/identity_already_exists",
    title: "Conflicting Resource",
  });
  assert.equal(err.data$.error.detail, `Identity with externalId '${externalId}' already exists in this workspace.`);
  assert.deepEqual((await getIdentity(externalId)).meta, {}, "the existing identity is unchanged");

  await expectSdkError(sdk.identities.createIdentity({ externalId: "has space" }), invalidInput);
  await expectSdkError(sdk.identities.createIdentity({ externalId: "" }), invalidInput);
});

test("identities.getIdentity for an unknown identity answers 404 identity_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const err = await expectSdkError(sdk.identities.getIdentity({ identity: "id_doesnotexist00" }), notFound("identity_not_found"));
  assert.equal(err.data$.error.detail, "This identity does not exist.");
  await expectSdkError(sdk.identities.getIdentity({ identity: unique("nobody") }), notFound("identity_not_found"));
});

test("identities.createIdentity with meta over 1 MiB answers 400 invalid_input; exactly 1 MiB is accepted", { timeout: TEST_TIMEOUT }, async () => {
  // {"blob":"xxx…"} serializes to 11 bytes plus the string.
  const exact = { blob: "x".repeat(MIB - 11) };
  assert.equal(JSON.stringify(exact).length, MIB);
  const { id } = await createIdentity({ meta: exact });
  assert.equal((await getIdentity(id)).meta.blob.length, MIB - 11);

  const over = { blob: "x".repeat(MIB - 10) };
  const externalId = unique("big");
  const err = await expectSdkError(sdk.identities.createIdentity({ externalId, meta: over }), invalidInput);
  assert.equal(err.data$.error.detail, "Metadata is too large: it must be at most 1.0 MB, but is 1.0 MB.");
  await expectSdkError(sdk.identities.getIdentity({ identity: externalId }), notFound("identity_not_found"));

  const update = await expectSdkError(sdk.identities.updateIdentity({ identity: id, meta: { blob: "y".repeat(MIB + 100_000) } }), invalidInput);
  assert.equal(update.data$.error.detail, "Metadata is too large: it must be at most 1.0 MB, but is 1.1 MB.");
  assert.equal((await getIdentity(id)).meta.blob, exact.blob, "the refused update changed nothing");
});

// ---- identities.listIdentities ----

test("identities.listIdentities pages in id order, and search matches externalId or id case-insensitively", { timeout: TEST_TIMEOUT }, async () => {
  const token = unique("Lst");
  const created = [];
  for (const suffix of ["a", "b", "c"]) {
    created.push(await createIdentity({ externalId: `${token}.${suffix}`, meta: { suffix }, ratelimits: suffix === "b" ? [{ name: "rl-b", limit: 1, duration: MINUTE }] : undefined }));
  }
  const expected = [];
  for (const { id } of created) expected.push(await getIdentity(id));
  expected.sort((a, b) => (a.id < b.id ? -1 : 1));

  const pages = [];
  for await (const page of await sdk.identities.listIdentities({ search: token, limit: 2 })) pages.push(page.result);
  assert.equal(pages.length, 2, `3 identities at 2 per page are 2 pages; got ${JSON.stringify(pages)}`);
  assert.equal(pages[0].data.length, 2);
  assert.equal(pages[0].pagination.hasMore, true);
  assert.equal(typeof pages[0].pagination.cursor, "string");
  assert.equal(pages[1].data.length, 1);
  assert.deepEqual(pages[1].pagination, { hasMore: false }, "no cursor on the last page");
  const listed = pages.flatMap((p) => p.data);
  assert.deepEqual(listed, expected, "every identity once, in id order, as getIdentity shows it");
  const wire = rec.lastJson("/v2/identities.listIdentities").data;
  assert.ok(wire.every((i) => Array.isArray(i.ratelimits)), "ratelimits are always present in a list");

  // Case-insensitive substring of the externalId.
  const upper = await sdk.identities.listIdentities({ search: token.toUpperCase() });
  assert.deepEqual(upper.result.data.map((i) => i.id), expected.map((i) => i.id));
  const one = await sdk.identities.listIdentities({ search: `${token}.b` });
  assert.deepEqual(one.result.data.map((i) => i.externalId), [`${token}.b`]);
  // Substring of the id.
  const byId = await sdk.identities.listIdentities({ search: created[2].id.slice(3) });
  assert.deepEqual(byId.result.data.map((i) => i.id), [created[2].id]);
  const none = await sdk.identities.listIdentities({ search: unique("nomatch") });
  assert.deepEqual(none.result.data, []);
  assert.deepEqual(none.result.pagination, { hasMore: false });

  // Without search the workspace's identities include these.
  const all = [];
  for await (const page of await sdk.identities.listIdentities({ limit: 100 })) all.push(...page.result.data);
  for (const { id } of created) assert.ok(all.some((i) => i.id === id), `${id} is listed`);
});

// ---- identities.updateIdentity ----

test("identities.updateIdentity replaces meta and ratelimits (a kept name keeps its id) and returns the identity", { timeout: TEST_TIMEOUT }, async () => {
  const { id, externalId } = await createIdentity({
    meta: { a: 1, b: 2 },
    ratelimits: [
      { name: "keep", limit: 5, duration: MINUTE },
      { name: "drop", limit: 1, duration: MINUTE },
    ],
  });
  const before = await getIdentity(id);
  const keepId = before.ratelimits.find((r) => r.name === "keep").id;

  const res = await sdk.identities.updateIdentity({
    identity: id,
    meta: { c: 3 },
    ratelimits: [
      { name: "keep", limit: 7, duration: HOUR, autoApply: true },
      { name: "added", limit: 2, duration: MINUTE },
    ],
  });
  assert.match(res.meta.requestId, /^req_/);
  const added = res.data.ratelimits.find((r) => r.name === "added");
  assert.match(added?.id ?? "", /^rl_/);
  assert.deepEqual(norm(res.data), {
    id,
    externalId,
    meta: { c: 3 },
    ratelimits: [
      { id: added.id, name: "added", limit: 2, duration: MINUTE, autoApply: false },
      { id: keepId, name: "keep", limit: 7, duration: HOUR, autoApply: true },
    ],
  });
  assert.deepEqual(norm(wireData("/v2/identities.updateIdentity")), norm(res.data));
  assert.deepEqual(norm(await getIdentity(id)), norm(res.data), "getIdentity shows the same");

  // Only meta: the ratelimits stay. By externalId.
  const metaOnly = await sdk.identities.updateIdentity({ identity: externalId, meta: { d: 4 } });
  assert.deepEqual(norm(metaOnly.data), { ...norm(res.data), meta: { d: 4 } });
  // Only ratelimits: meta stays. An empty list removes them all.
  const cleared = await sdk.identities.updateIdentity({ identity: id, ratelimits: [] });
  assert.deepEqual(cleared.data, { id, externalId, meta: { d: 4 }, ratelimits: [] });
  // meta {} empties the metadata.
  const emptied = await sdk.identities.updateIdentity({ identity: id, meta: {} });
  assert.deepEqual(emptied.data, { id, externalId, meta: {}, ratelimits: [] });

  await expectSdkError(sdk.identities.updateIdentity({ identity: "id_doesnotexist00", meta: {} }), notFound("identity_not_found"));
});

test("duplicate ratelimit names in one request answer 400 invalid_input and change nothing", { timeout: TEST_TIMEOUT }, async () => {
  const twice = [
    { name: "dup", limit: 1, duration: MINUTE },
    { name: "dup", limit: 2, duration: HOUR },
  ];
  const { id } = await createIdentity({ ratelimits: [{ name: "orig", limit: 3, duration: MINUTE }] });
  const before = await getIdentity(id);

  const err = await expectSdkError(sdk.identities.updateIdentity({ identity: id, meta: { x: 1 }, ratelimits: twice }), invalidInput);
  assert.equal(err.data$.error.detail, "Ratelimit with name 'dup' is already defined in the request");
  assert.deepEqual(await getIdentity(id), before, "nothing changed");

  const externalId = unique("dup");
  await expectSdkError(sdk.identities.createIdentity({ externalId, ratelimits: twice }), invalidInput);
  await expectSdkError(sdk.identities.getIdentity({ identity: externalId }), notFound("identity_not_found"));
  await expectSdkError(sdk.keys.createKey({ apiId, ratelimits: twice }), invalidInput);
});

// ---- identities.deleteIdentity ----

test("identities.deleteIdentity answers without data; then getIdentity answers 404 and the externalId is free again", { timeout: TEST_TIMEOUT }, async () => {
  const { id, externalId } = await createIdentity({ meta: { gone: "soon" }, ratelimits: [{ name: "soon-gone", limit: 1, duration: MINUTE }] });
  const res = await sdk.identities.deleteIdentity({ identity: id });
  assert.deepEqual(Object.keys(res), ["meta"], `the SDK's result has only meta: ${JSON.stringify(res)}`);
  assert.match(res.meta.requestId, /^req_/);
  const wire = rec.lastJson("/v2/identities.deleteIdentity");
  assert.deepEqual(Object.keys(wire), ["meta"], `the wire body is {meta} only: ${JSON.stringify(wire)}`);

  await expectSdkError(sdk.identities.getIdentity({ identity: id }), notFound("identity_not_found"));
  await expectSdkError(sdk.identities.getIdentity({ identity: externalId }), notFound("identity_not_found"));
  await expectSdkError(sdk.identities.updateIdentity({ identity: id, meta: {} }), notFound("identity_not_found"));

  // @unkey/api 2.5.1 models deleteIdentity's errors only as `application/problem+json` (as Unkey's
  // spec declares them) while it sends `Accept: application/json`. keyward labels the errors of
  // this route problem+json regardless of Accept, so the SDK's own call gets its typed error...
  await expectSdkError(sdk.identities.deleteIdentity({ identity: id }), notFound("identity_not_found"));
  // ...and so does a client that asks for problem+json explicitly.
  await expectSdkError(
    sdk.identities.deleteIdentity({ identity: id }, { headers: { Accept: "application/problem+json" } }),
    notFound("identity_not_found"),
  );
  const listed = await sdk.identities.listIdentities({ search: externalId });
  assert.deepEqual(listed.result.data, [], "a deleted identity is not listed");

  // By externalId, and the same externalId can be used again.
  const again = await createIdentity({ externalId });
  assert.notEqual(again.id, id);
  await sdk.identities.deleteIdentity({ identity: externalId });
  await expectSdkError(sdk.identities.getIdentity({ identity: again.id }), notFound("identity_not_found"));
});

test("a key created with an externalId keeps verifying VALID after its identity is deleted, without the identity or its limits", { timeout: TEST_TIMEOUT }, async () => {
  const { id, externalId } = await createIdentity({
    meta: { tier: "gold" },
    ratelimits: [{ name: "identity-limit", limit: 1, duration: HOUR, autoApply: true }],
  });
  const { keyId, key } = await createKey({ externalId });
  assert.equal((await getKey(keyId)).identity?.id, id, "createKey linked the existing identity");

  const first = await verify(key);
  assert.equal(first.code, "VALID");
  assert.deepEqual(
    { id: first.identity?.id, externalId: first.identity?.externalId, meta: first.identity?.meta },
    { id, externalId, meta: { tier: "gold" } },
  );
  assert.equal((await verify(key)).code, "RATE_LIMITED", "the identity's limit applies");

  await sdk.identities.deleteIdentity({ identity: externalId });
  const after = await verify(key);
  assert.equal(after.valid, true);
  assert.equal(after.code, "VALID", "the deleted identity's limit no longer applies");
  assert.equal(after.keyId, keyId);
  const wire = wireData("/v2/keys.verifyKey");
  assert.equal("identity" in wire, false, `no identity on the wire: ${JSON.stringify(wire)}`);
  assert.equal("ratelimits" in wire, false, `no ratelimits on the wire: ${JSON.stringify(wire)}`);
  assert.equal((await getKey(keyId)).identity, undefined, "getKey shows no identity");
  assert.equal((await verify(key)).code, "VALID");
});

// ---- Limits in keys.verifyKey ----

test("keys.verifyKey with an auto-applied key limit of 2 per minute answers VALID, VALID, RATE_LIMITED with the limit's state", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({ ratelimits: [{ name: "per-minute", limit: 2, duration: MINUTE, autoApply: true }] });
  const rlId = (await getKey(keyId)).ratelimits?.[0]?.id;
  assert.match(rlId ?? "", /^rl_/);

  const t0 = Date.now();
  const first = await verify(key);
  assert.equal(first.code, "VALID");
  assert.deepEqual(first.ratelimits, [
    { exceeded: false, id: rlId, name: "per-minute", limit: 2, duration: MINUTE, reset: first.ratelimits[0].reset, remaining: 1, autoApply: true },
  ]);
  assert.deepEqual(wireData("/v2/keys.verifyKey").ratelimits, first.ratelimits, "the wire has exactly these fields");
  assertReset(first.ratelimits[0].reset, MINUTE, t0);

  const second = await verify(key);
  assert.equal(second.code, "VALID");
  assert.equal(second.ratelimits[0].remaining, 0);
  assert.equal(second.ratelimits[0].exceeded, false);

  const third = await verify(key);
  assert.equal(third.valid, false);
  assert.equal(third.code, "RATE_LIMITED");
  assert.equal(third.keyId, keyId);
  assert.deepEqual(third.ratelimits, [
    { exceeded: true, id: rlId, name: "per-minute", limit: 2, duration: MINUTE, reset: first.ratelimits[0].reset, remaining: 0, autoApply: true },
  ]);
});

test("keys.verifyKey checks a limit that is not auto-applied only when it is requested by name", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({ ratelimits: [{ name: "manual", limit: 1, duration: HOUR }] });
  const rlId = (await getKey(keyId)).ratelimits[0].id;
  assert.deepEqual(await codes(key, 3), ["VALID", "VALID", "VALID"]);
  assert.equal("ratelimits" in wireData("/v2/keys.verifyKey"), false, "nothing was checked");

  const asked = await verify(key, { ratelimits: [{ name: "manual" }] });
  assert.equal(asked.code, "VALID");
  assert.deepEqual(asked.ratelimits, [
    { exceeded: false, id: rlId, name: "manual", limit: 1, duration: HOUR, reset: asked.ratelimits[0].reset, remaining: 0, autoApply: false },
  ]);
  assert.equal((await verify(key, { ratelimits: [{ name: "manual" }] })).code, "RATE_LIMITED");
  assert.equal((await verify(key)).code, "VALID", "unrequested, it is not checked");
});

test("an identity limit of 3 is shared by two keys of the identity: 3 passes in total", { timeout: TEST_TIMEOUT }, async () => {
  const { id, externalId } = await createIdentity({ ratelimits: [{ name: "shared", limit: 3, duration: HOUR, autoApply: true }] });
  const rlId = (await getIdentity(id)).ratelimits[0].id;
  const a = await createKey({ externalId });
  const b = await createKey({ externalId });

  const first = await verify(a.key);
  assert.equal(first.code, "VALID");
  assert.deepEqual(first.ratelimits, [
    { exceeded: false, id: rlId, name: "shared", limit: 3, duration: HOUR, reset: first.ratelimits[0].reset, remaining: 2, autoApply: true },
  ]);
  const second = await verify(b.key);
  assert.equal(second.code, "VALID");
  assert.equal(second.ratelimits[0].remaining, 1, "key b spends from the same counter");
  assert.equal((await verify(a.key)).code, "VALID");
  assert.equal((await verify(b.key)).code, "RATE_LIMITED");
  assert.equal((await verify(a.key)).code, "RATE_LIMITED");

  // Raising the identity's limit takes effect on the next verification (same counter).
  await sdk.identities.updateIdentity({ identity: id, ratelimits: [{ name: "shared", limit: 5, duration: HOUR, autoApply: true }] });
  const raised = await verify(b.key);
  assert.equal(raised.code, "VALID");
  assert.deepEqual(
    { id: raised.ratelimits[0].id, limit: raised.ratelimits[0].limit, remaining: raised.ratelimits[0].remaining },
    { id: rlId, limit: 5, remaining: 1 },
  );
});

test("a key limit beats an identity limit of the same name; the identity's other keys keep the identity limit", { timeout: TEST_TIMEOUT }, async () => {
  const { id, externalId } = await createIdentity({ ratelimits: [{ name: "requests", limit: 1, duration: HOUR, autoApply: true }] });
  const identityRl = (await getIdentity(id)).ratelimits[0].id;
  const own = await createKey({ externalId, ratelimits: [{ name: "requests", limit: 3, duration: HOUR, autoApply: true }] });
  const ownRl = (await getKey(own.keyId)).ratelimits[0].id;
  const plain = await createKey({ externalId });

  const v = await verify(own.key);
  assert.equal(v.code, "VALID");
  assert.deepEqual(v.ratelimits, [
    { exceeded: false, id: ownRl, name: "requests", limit: 3, duration: HOUR, reset: v.ratelimits[0].reset, remaining: 2, autoApply: true },
  ]);
  assert.deepEqual(await codes(own.key, 3), ["VALID", "VALID", "RATE_LIMITED"]);

  const p = await verify(plain.key);
  assert.equal(p.code, "VALID");
  assert.deepEqual(
    { id: p.ratelimits[0].id, limit: p.ratelimits[0].limit, remaining: p.ratelimits[0].remaining },
    { id: identityRl, limit: 1, remaining: 0 },
  );
  assert.equal((await verify(plain.key)).code, "RATE_LIMITED");
});

test("keys.verifyKey requesting an unknown limit name answers 412 precondition_failed", { timeout: TEST_TIMEOUT }, async () => {
  // The SDK lists no 412 for verifyKey, so it surfaces the response as a generic APIError.
  const check = (err) =>
    assert.ok(
      err instanceof errors.APIError || err instanceof errors.PreconditionFailedErrorResponse,
      `expected APIError or PreconditionFailedErrorResponse, got ${err.name}`,
    );
  const lone = await createKey();
  const { err, body } = await expectHttpError(sdk.keys.verifyKey({ key: lone.key, ratelimits: [{ name: "nope" }] }), preconditionFailed);
  check(err);
  assert.equal(
    body.error.detail,
    `ratelimit 'nope' was requested but does not exist for key '${lone.keyId}' and there is no identity connected.`,
  );

  const { id, externalId } = await createIdentity({ ratelimits: [{ name: "exists", limit: 5, duration: HOUR }] });
  const member = await createKey({ externalId });
  const second = await expectHttpError(
    sdk.keys.verifyKey({ key: member.key, ratelimits: [{ name: "exists" }, { name: "nope", cost: 2 }] }),
    preconditionFailed,
  );
  check(second.err);
  assert.equal(
    second.body.error.detail,
    `ratelimit 'nope' was requested but does not exist for key '${member.keyId}' nor identity: '${id}' external ID: '${externalId}'`,
  );
  // Nothing was consumed by the refused request.
  const ok = await verify(member.key, { ratelimits: [{ name: "exists" }] });
  assert.equal(ok.code, "VALID");
  assert.equal(ok.ratelimits[0].remaining, 4);
});

test("an ad-hoc limit {name, limit: 2, duration: 60000} is enforced without being stored; limit 0 blocks", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey();
  const adHoc = { ratelimits: [{ name: "adhoc", limit: 2, duration: MINUTE }] };
  const t0 = Date.now();
  const first = await verify(key, adHoc);
  assert.equal(first.code, "VALID");
  assert.deepEqual(first.ratelimits, [
    { exceeded: false, id: "", name: "adhoc", limit: 2, duration: MINUTE, reset: first.ratelimits[0].reset, remaining: 1, autoApply: false },
  ]);
  assertReset(first.ratelimits[0].reset, MINUTE, t0);
  assert.deepEqual(await codes(key, 2, adHoc), ["VALID", "RATE_LIMITED"]);
  assert.equal((await verify(key)).code, "VALID", "without the ad-hoc limit nothing is checked");
  assert.equal((await getKey(keyId)).ratelimits, undefined, "nothing was stored");

  // Cost is honoured.
  const costly = await verify(key, { ratelimits: [{ name: "costly", limit: 10, duration: HOUR, cost: 4 }] });
  assert.equal(costly.ratelimits[0].remaining, 6);

  // A limit of 0 denies every request.
  const zero = await verify(key, { ratelimits: [{ name: "zero", limit: 0, duration: MINUTE }] });
  assert.equal(zero.code, "RATE_LIMITED");
  assert.deepEqual(zero.ratelimits, [
    { exceeded: true, id: "", name: "zero", limit: 0, duration: MINUTE, reset: zero.ratelimits[0].reset, remaining: 0, autoApply: false },
  ]);
});

test("two limits in one verification are all-or-nothing: the passing one is not consumed when the other fails", { timeout: TEST_TIMEOUT }, async () => {
  const { key } = await createKey();
  const big = { name: "big", limit: 5, duration: HOUR };
  const small = { name: "small", limit: 1, duration: HOUR };

  const first = await verify(key, { ratelimits: [big, small] });
  assert.equal(first.code, "VALID");
  assert.deepEqual(
    first.ratelimits.map((r) => [r.name, r.exceeded, r.remaining]),
    [["big", false, 4], ["small", false, 0]],
    "in request order",
  );

  const second = await verify(key, { ratelimits: [big, small] });
  assert.equal(second.code, "RATE_LIMITED");
  assert.deepEqual(
    second.ratelimits.map((r) => [r.name, r.exceeded, r.remaining]),
    [["big", false, 4], ["small", true, 0]],
    "the passing limit reports what it has left, as nothing was spent",
  );

  const third = await verify(key, { ratelimits: [big] });
  assert.equal(third.code, "VALID");
  assert.equal(third.ratelimits[0].remaining, 3, "big was consumed by the first verification only");
});

test("keys.verifyKey lists auto-applied limits first in name order, then the requested ones in request order", { timeout: TEST_TIMEOUT }, async () => {
  const { externalId } = await createIdentity({ ratelimits: [{ name: "mmm-identity", limit: 10, duration: HOUR, autoApply: true }] });
  const { key } = await createKey({
    externalId,
    ratelimits: [
      { name: "zzz-auto", limit: 10, duration: HOUR, autoApply: true },
      { name: "aaa-auto", limit: 10, duration: HOUR, autoApply: true },
      { name: "kkk-manual", limit: 10, duration: HOUR },
    ],
  });
  const v = await verify(key, { ratelimits: [{ name: "yyy-adhoc", limit: 3, duration: HOUR }, { name: "kkk-manual" }] });
  assert.equal(v.code, "VALID");
  assert.deepEqual(
    v.ratelimits.map((r) => [r.name, r.autoApply]),
    [["aaa-auto", true], ["mmm-identity", true], ["zzz-auto", true], ["yyy-adhoc", false], ["kkk-manual", false]],
  );
});

test("a RATE_LIMITED verification spends no credits", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({
    credits: { remaining: 5 },
    ratelimits: [{ name: "once", limit: 1, duration: HOUR, autoApply: true }],
  });
  const first = await verify(key);
  assert.equal(first.code, "VALID");
  assert.equal(first.credits, 4);
  const limited = await verify(key, { credits: { cost: 2 } });
  assert.equal(limited.code, "RATE_LIMITED");
  assert.equal(limited.credits, 4, "the balance is shown unchanged");
  assert.equal((await verify(key)).code, "RATE_LIMITED");
  assert.deepEqual((await getKey(keyId)).credits, { remaining: 4 });
});

test("keys.createKey and keys.updateKey with ratelimits show up in getKey, and updates apply to the next verification", { timeout: TEST_TIMEOUT }, async () => {
  const { keyId, key } = await createKey({
    ratelimits: [
      { name: "beta", limit: 5, duration: 1000 },
      { name: "alpha", limit: 10, duration: MINUTE, autoApply: true },
    ],
  });
  const created = await getKey(keyId);
  const [alpha, beta] = [...created.ratelimits].sort(byName);
  assert.match(alpha.id, /^rl_/);
  assert.match(beta.id, /^rl_/);
  assert.deepEqual([...created.ratelimits].sort(byName), [
    { id: alpha.id, name: "alpha", limit: 10, duration: MINUTE, autoApply: true },
    { id: beta.id, name: "beta", limit: 5, duration: 1000, autoApply: false },
  ]);
  assert.deepEqual([...wireData("/v2/keys.getKey").ratelimits].sort(byName), [alpha, beta]);

  // Replace by name: beta keeps its id, alpha goes, gamma is new.
  const updated = await sdk.keys.updateKey({
    keyId,
    ratelimits: [
      { name: "beta", limit: 1, duration: HOUR, autoApply: true },
      { name: "gamma", limit: 2, duration: MINUTE },
    ],
  });
  assert.deepEqual(updated.data, {});
  const after = [...(await getKey(keyId)).ratelimits].sort(byName);
  assert.match(after[1]?.id ?? "", /^rl_/);
  assert.deepEqual(after, [
    { id: beta.id, name: "beta", limit: 1, duration: HOUR, autoApply: true },
    { id: after[1].id, name: "gamma", limit: 2, duration: MINUTE, autoApply: false },
  ]);
  assert.notEqual(after[1].id, alpha.id);
  assert.deepEqual(await codes(key, 2), ["VALID", "RATE_LIMITED"], "the new auto-applied beta (1 per hour) applies at once");

  // Other fields leave the limits alone; an empty list removes them.
  await sdk.keys.updateKey({ keyId, name: "renamed" });
  assert.equal((await getKey(keyId)).ratelimits.length, 2);
  await sdk.keys.updateKey({ keyId, ratelimits: [] });
  const cleared = await getKey(keyId);
  assert.equal(cleared.ratelimits, undefined, `no ratelimits left: ${JSON.stringify(cleared)}`);
  assert.equal((await verify(key)).code, "VALID");
});

// ---- Error documentation ----

test("every error type URL the identity and limit routes returned is a documentation page served by keyward", { timeout: TEST_TIMEOUT }, async () => {
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
