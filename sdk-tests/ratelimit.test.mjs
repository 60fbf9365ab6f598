// The official SDKs against a real `keyward serve`: ratelimit.* through @unkey/api
// (limit, multiLimit and the override routes) and the @unkey/ratelimit client (`Ratelimit`,
// `Overrides`) pointed at the server with `baseUrl`.
//
// Every call goes through an SDK, so each response must pass the SDK's zod models; where the
// exact wire shape matters, the raw JSON is checked as well (see `recordingClient`).
//
// @unkey/ratelimit caches every denied answer until its `reset` (keyed namespace:id:limit:duration),
// so a test that expects the server to be asked again after a deny passes a fresh `cache: new Map()`.
// It also depends on its own copy of @unkey/api, so its errors are not instances of the classes
// imported here: they are checked by name and status.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as errors from "@unkey/api/models/errors";
import { Overrides, Ratelimit } from "@unkey/ratelimit";

import {
  client,
  createRootKey,
  createWorkspace,
  deleteNamespace,
  expectSdkError,
  freshDatabase,
  pollUntil,
  recordingClient,
  requireBinary,
  seenErrorTypes,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;
const MINUTE = 60_000;
// Counting tests use a long window so that a window boundary between two calls is practically impossible.
const HOUR = 3_600_000;

let db; // { dir, url, cleanup }
let server; // { url, stop, output }
let workspaceId;
let root; // every permission
let limitOnly; // only ratelimit.*.limit: may not create namespaces
let readOverrideOnly; // only ratelimit.*.read_override: may not limit
let rec; // recordingClient with `root`
let sdk; // rec.sdk

let counter = 0;
const unique = (label) => `${label}_${process.pid}_${++counter}`;

const notFound = (specific) => ({
  errorClass: errors.NotFoundErrorResponse,
  status: 404,
  typeSuffix: `unkey/data/${specific}`,
  title: "Not Found",
});
const insufficientPermissions = {
  errorClass: errors.ForbiddenErrorResponse,
  status: 403,
  typeSuffix: "unkey/authorization/insufficient_permissions",
  title: "Insufficient Permissions",
};
const namespaceGone = {
  errorClass: errors.GoneErrorResponse,
  status: 410,
  typeSuffix: "unkey/data/ratelimit_namespace_gone",
  title: "Resource Gone",
};

/** The raw `data` object of the last response to `path`, as it was on the wire. */
const wireData = (path) => rec.lastJson(path).data;

/** `ratelimit.limit`; returns `data`. */
async function limit(fields, using = sdk) {
  const res = await using.ratelimit.limit(fields);
  assert.match(res.meta.requestId, /^req_/);
  return res.data;
}

/** A namespace that exists: created by a first limit call on a throwaway identifier. */
async function newNamespace(label = "ns") {
  const namespace = unique(label);
  await limit({ namespace, identifier: "created-by-first-use", limit: 1, duration: HOUR });
  return namespace;
}

/**
 * The id of an existing namespace. No route returns it, but the 403 of a root key that may not
 * limit names the permission it lacks, `ratelimit.<namespaceId>.limit`.
 */
async function namespaceIdOf(namespace) {
  const probe = client(server.url, readOverrideOnly.key);
  const err = await expectSdkError(
    probe.ratelimit.limit({ namespace, identifier: "probe", limit: 1, duration: HOUR }),
    insufficientPermissions,
  );
  const match = /ratelimit\.(rlns_[A-Za-z0-9]+)\.limit/.exec(err.data$.error.detail);
  assert.ok(match, `the 403 detail should name ratelimit.<namespaceId>.limit: ${err.body}`);
  return match[1];
}

/** `ratelimit.setOverride`; returns the override id. */
async function setOverride(fields) {
  const res = await sdk.ratelimit.setOverride(fields);
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(Object.keys(wireData("/v2/ratelimit.setOverride")), ["overrideId"]);
  assert.match(res.data.overrideId, /^rlor_/);
  return res.data.overrideId;
}

async function getOverride(namespace, identifier) {
  const res = await sdk.ratelimit.getOverride({ namespace, identifier });
  assert.match(res.meta.requestId, /^req_/);
  return res.data;
}

/** Asserts that `reset` is a unix-ms time in the future, at most `duration` away, ending a window. */
function assertReset(reset, duration, before) {
  assert.ok(Number.isInteger(reset), `reset ${reset} is an integer`);
  assert.ok(reset > before, `reset ${reset} should be after the call started (${before})`);
  assert.ok(reset <= Date.now() + duration, `reset ${reset} should be at most ${duration} ms away`);
  assert.equal(reset % duration, 0, `reset ${reset} is the end of a fixed window of ${duration} ms`);
}

/** Awaits a rejection of the @unkey/ratelimit client (its own copy of the SDK) and checks it. */
async function expectClientError(promise, { name, status, typeSuffix }) {
  let err;
  try {
    const value = await promise;
    assert.fail(`expected ${name} (${status}), but the call succeeded: ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.equal(err?.name, name, `expected ${name}, got ${err?.name}: ${err?.message}`);
  assert.equal(err.statusCode, status, `HTTP status; body ${err.body}`);
  const body = JSON.parse(err.body);
  assert.equal(body.error.status, status);
  assert.ok(body.error.type.endsWith(`/docs/errors/${typeSuffix}`), `error.type ${body.error.type}`);
  seenErrorTypes.add(body.error.type);
  return err;
}

before(async () => {
  requireBinary();
  db = freshDatabase();
  workspaceId = createWorkspace(db.url, "sdk-ratelimit");
  root = createRootKey(db.url, workspaceId, { name: "sdk-ratelimit-all" });
  limitOnly = createRootKey(db.url, workspaceId, {
    name: "sdk-ratelimit-limit-only",
    permissions: ["ratelimit.*.limit"],
  });
  readOverrideOnly = createRootKey(db.url, workspaceId, {
    name: "sdk-ratelimit-read-override-only",
    permissions: ["ratelimit.*.read_override"],
  });

  server = await startServer(db.url);
  rec = recordingClient(server.url, root.key);
  sdk = rec.sdk;
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

// ---- ratelimit.limit ----

test("ratelimit.limit with limit 100 answers success with remaining 99 and a reset at the end of the current window", { timeout: TEST_TIMEOUT }, async () => {
  const t0 = Date.now();
  const data = await limit({ namespace: unique("ns"), identifier: "user_1", limit: 100, duration: MINUTE });
  assert.deepEqual(data, { limit: 100, remaining: 99, reset: data.reset, success: true });
  assert.deepEqual(
    wireData("/v2/ratelimit.limit"),
    { limit: 100, remaining: 99, reset: data.reset, success: true },
    "no overrideId on the wire without an override",
  );
  assertReset(data.reset, MINUTE, t0);
});

test("ratelimit.limit with cost 5 spends 5 (remaining 95), and cost 0 only peeks", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = unique("ns");
  const base = { namespace, identifier: "user_1", limit: 100, duration: HOUR };
  assert.equal((await limit({ ...base, cost: 5 })).remaining, 95);
  const peek = await limit({ ...base, cost: 0 });
  assert.equal(peek.success, true);
  assert.equal(peek.remaining, 95, "cost 0 spends nothing");
  assert.equal((await limit(base)).remaining, 94, "the default cost is 1");
  assert.equal((await limit({ ...base, cost: 94 })).remaining, 0, "the rest can be spent at once");
  const over = await limit({ ...base, cost: 1 });
  assert.deepEqual(over, { limit: 100, remaining: 0, reset: over.reset, success: false });
});

test("ratelimit.limit with limit 1 answers success false and remaining 0 to the second call (HTTP 200)", { timeout: TEST_TIMEOUT }, async () => {
  const t0 = Date.now();
  const req = { namespace: unique("ns"), identifier: "user_1", limit: 1, duration: HOUR };
  const first = await limit(req);
  assert.deepEqual(first, { limit: 1, remaining: 0, reset: first.reset, success: true });
  const second = await limit(req);
  assert.equal(rec.last("/v2/ratelimit.limit").status, 200);
  assert.deepEqual(second, { limit: 1, remaining: 0, reset: first.reset, success: false });
  assertReset(second.reset, HOUR, t0);

  // Identifiers and namespaces are separate counters.
  assert.equal((await limit({ ...req, identifier: "user_2" })).success, true);
  assert.equal((await limit({ ...req, identifier: "USER_1" })).success, true, "identifiers are case-sensitive");
  assert.equal((await limit({ ...req, namespace: unique("ns") })).success, true);
});

test("ratelimit.limit creates an unknown namespace on first use; before that the override routes answer 404", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = unique("new ns/with:any characters");
  await expectSdkError(sdk.ratelimit.listOverrides({ namespace }), notFound("ratelimit_namespace_not_found"));

  const first = await limit({ namespace, identifier: "x", limit: 2, duration: HOUR });
  assert.equal(first.success, true);
  const listed = await sdk.ratelimit.listOverrides({ namespace });
  assert.deepEqual(listed.result.data, [], "the namespace now exists, without overrides");
  assert.deepEqual(listed.result.pagination, { hasMore: false });
  assert.equal((await limit({ namespace, identifier: "x", limit: 2, duration: HOUR })).remaining, 0, "the same counter");
});

test("ratelimit.limit with a root key lacking ratelimit.*.create_namespace answers 403 for a new namespace and creates nothing", { timeout: TEST_TIMEOUT }, async () => {
  const limited = client(server.url, limitOnly.key);
  const namespace = unique("ns");
  const err = await expectSdkError(
    limited.ratelimit.limit({ namespace, identifier: "x", limit: 5, duration: HOUR }),
    insufficientPermissions,
  );
  assert.ok(
    err.data$.error.detail.includes("ratelimit.*.create_namespace"),
    `detail should name ratelimit.*.create_namespace: ${err.data$.error.detail}`,
  );
  await expectSdkError(sdk.ratelimit.listOverrides({ namespace }), notFound("ratelimit_namespace_not_found"));

  // Once the namespace exists, the same root key may limit in it.
  await limit({ namespace, identifier: "x", limit: 5, duration: HOUR });
  const ok = await limit({ namespace, identifier: "x", limit: 5, duration: HOUR }, limited);
  assert.deepEqual(ok, { limit: 5, remaining: 3, reset: ok.reset, success: true });

  // multiLimit too: one new namespace in the batch is enough for a 403.
  await expectSdkError(
    limited.ratelimit.multiLimit([
      { namespace, identifier: "x", limit: 5, duration: HOUR },
      { namespace: unique("ns"), identifier: "x", limit: 5, duration: HOUR },
    ]),
    insufficientPermissions,
  );
  assert.equal((await limit({ namespace, identifier: "x", limit: 5, duration: HOUR })).remaining, 2, "the refused batch spent nothing");
});

test("ratelimit.limit addresses a namespace by its id as well as by its name (one counter)", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const namespaceId = await namespaceIdOf(namespace);
  assert.match(namespaceId, /^rlns_/);

  const req = { identifier: "user_1", limit: 10, duration: HOUR };
  assert.equal((await limit({ ...req, namespace })).remaining, 9);
  assert.equal((await limit({ ...req, namespace: namespaceId })).remaining, 8, "by id: the same counter");
  assert.equal((await limit({ ...req, namespace })).remaining, 7);

  // The override routes take the id too.
  const overrideId = await setOverride({ namespace: namespaceId, identifier: "vip", limit: 3, duration: HOUR });
  assert.equal((await getOverride(namespace, "vip")).overrideId, overrideId);
  assert.equal((await getOverride(namespaceId, "vip")).overrideId, overrideId);
});

test("ratelimit.limit on a namespace deleted with the CLI answers 410 ratelimit_namespace_gone, by name and by id", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const namespaceId = await namespaceIdOf(namespace);
  const req = { namespace, identifier: "user_1", limit: 10, duration: HOUR };
  assert.equal((await limit(req)).success, true);

  deleteNamespace(db.url, workspaceId, namespace);
  // The server learns of the CLI's change through the change feed (within a second).
  await pollUntil(() => limit(req), (r) => r.error?.statusCode === 410, {
    withinMs: 1_500,
    intervalMs: 50,
    what: "410 after `namespace delete`",
  });
  // @unkey/api 2.5.1 models a 410 of ratelimit.limit as GoneErrorResponse.
  const err = await expectSdkError(sdk.ratelimit.limit(req), namespaceGone);
  assert.deepEqual(JSON.parse(err.body).error.errors, undefined, "a 410 has no `errors` list");
  await expectSdkError(sdk.ratelimit.limit({ ...req, namespace: namespaceId }), namespaceGone);
  await expectSdkError(
    sdk.ratelimit.multiLimit([
      { namespace: unique("ns"), identifier: "x", limit: 1, duration: HOUR },
      req,
    ]),
    namespaceGone,
  );
  // Using the name again does not bring it back.
  await expectSdkError(sdk.ratelimit.limit(req), namespaceGone);
  // The override routes treat a deleted namespace as missing.
  await expectSdkError(
    sdk.ratelimit.setOverride({ namespace, identifier: "x", limit: 1, duration: HOUR }),
    notFound("ratelimit_namespace_not_found"),
  );
  await expectSdkError(sdk.ratelimit.listOverrides({ namespace }), notFound("ratelimit_namespace_not_found"));
});

test("50 parallel ratelimit.limit calls against a limit of 20 let exactly 20 through", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const parallel = client(server.url, root.key);
  const req = { namespace, identifier: "burst", limit: 20, duration: HOUR };
  const results = await Promise.all(Array.from({ length: 50 }, () => limit(req, parallel)));
  const passed = results.filter((r) => r.success);
  const denied = results.filter((r) => !r.success);
  assert.equal(passed.length, 20, `successes: ${passed.length}`);
  assert.deepEqual(
    passed.map((r) => r.remaining).sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i),
    "each success saw a different remaining count, 19 down to 0",
  );
  assert.ok(denied.every((r) => r.remaining === 0 && r.limit === 20), "denials report remaining 0");
  assert.equal((await limit(req)).success, false, "the limit is used up");
});

// ---- overrides ----

test("ratelimit.setOverride for an exact identifier and a wildcard: limit reports the override's limit and overrideId", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const exactId = await setOverride({ namespace, identifier: "alice", limit: 5, duration: HOUR });
  const wildId = await setOverride({ namespace, identifier: "user_*", limit: 7, duration: HOUR });
  assert.notEqual(exactId, wildId);

  const t0 = Date.now();
  const alice = await limit({ namespace, identifier: "alice", limit: 100, duration: MINUTE });
  assert.deepEqual(alice, { limit: 5, remaining: 4, reset: alice.reset, success: true, overrideId: exactId });
  assert.deepEqual(wireData("/v2/ratelimit.limit"), alice);
  assertReset(alice.reset, HOUR, t0); // the override's duration replaces the request's

  const user = await limit({ namespace, identifier: "user_42", limit: 100, duration: MINUTE });
  assert.deepEqual(user, { limit: 7, remaining: 6, reset: user.reset, success: true, overrideId: wildId });

  const other = await limit({ namespace, identifier: "admin_1", limit: 100, duration: MINUTE });
  assert.deepEqual(wireData("/v2/ratelimit.limit"), { limit: 100, remaining: 99, reset: other.reset, success: true });

  // An exact override beats a matching wildcard.
  const vipId = await setOverride({ namespace, identifier: "user_vip", limit: 50, duration: HOUR });
  const vip = await limit({ namespace, identifier: "user_vip", limit: 100, duration: MINUTE });
  assert.deepEqual(vip, { limit: 50, remaining: 49, reset: vip.reset, success: true, overrideId: vipId });

  // Setting the same identifier again updates the override in place and keeps its id.
  assert.equal(await setOverride({ namespace, identifier: "alice", limit: 6, duration: HOUR }), exactId);
  assert.deepEqual(await getOverride(namespace, "alice"), { overrideId: exactId, duration: HOUR, identifier: "alice", limit: 6 });
  const again = await limit({ namespace, identifier: "alice", limit: 100, duration: MINUTE });
  assert.deepEqual(again, { limit: 6, remaining: 4, reset: again.reset, success: true, overrideId: exactId });
});

test("an override with limit 0 blocks every request of its identifier", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const overrideId = await setOverride({ namespace, identifier: "blocked", limit: 0, duration: MINUTE });
  for (let i = 0; i < 3; i++) {
    const res = await limit({ namespace, identifier: "blocked", limit: 100, duration: MINUTE });
    assert.deepEqual(res, { limit: 0, remaining: 0, reset: res.reset, success: false, overrideId }, `call ${i + 1}`);
  }
  const peek = await limit({ namespace, identifier: "blocked", limit: 100, duration: MINUTE, cost: 0 });
  assert.equal(peek.success, false, "even a cost-0 call is denied");

  const multi = await sdk.ratelimit.multiLimit([
    { namespace, identifier: "free", limit: 10, duration: HOUR },
    { namespace, identifier: "blocked", limit: 10, duration: HOUR },
  ]);
  assert.equal(multi.data.passed, false);
  assert.equal(multi.data.limits[1].passed, false);
  assert.equal(multi.data.limits[1].overrideId, overrideId);
  assert.equal((await limit({ namespace, identifier: "free", limit: 10, duration: HOUR })).remaining, 9, "the blocked batch spent nothing");
});

test("ratelimit.getOverride for a concrete identifier returns the wildcard override that applies to it", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const wildId = await setOverride({ namespace, identifier: "user_*", limit: 7, duration: HOUR });
  const exactId = await setOverride({ namespace, identifier: "bob", limit: 2, duration: MINUTE });

  const concrete = await getOverride(namespace, "user_42");
  assert.deepEqual(concrete, { overrideId: wildId, duration: HOUR, identifier: "user_*", limit: 7 });
  assert.deepEqual(wireData("/v2/ratelimit.getOverride"), concrete);
  assert.deepEqual(await getOverride(namespace, "user_*"), concrete);
  assert.deepEqual(await getOverride(namespace, "bob"), { overrideId: exactId, duration: MINUTE, identifier: "bob", limit: 2 });

  await expectSdkError(sdk.ratelimit.getOverride({ namespace, identifier: "admin_1" }), notFound("ratelimit_override_not_found"));
  await expectSdkError(sdk.ratelimit.getOverride({ namespace, identifier: "xuser_1" }), notFound("ratelimit_override_not_found"));
});

test("ratelimit.listOverrides pages through a namespace's overrides in id order", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const ids = [];
  for (const [identifier, n] of [["a", 1], ["b_*", 2], ["c", 3]]) {
    ids.push(await setOverride({ namespace, identifier, limit: n, duration: HOUR }));
  }

  const pages = [];
  for await (const page of await sdk.ratelimit.listOverrides({ namespace, limit: 2 })) pages.push(page.result);
  assert.equal(pages.length, 2, `3 overrides at 2 per page are 2 pages; got ${JSON.stringify(pages)}`);
  assert.equal(pages[0].data.length, 2);
  assert.equal(pages[0].pagination.hasMore, true);
  assert.equal(typeof pages[0].pagination.cursor, "string");
  assert.equal(pages[1].data.length, 1);
  assert.deepEqual(pages[1].pagination, { hasMore: false }, "no cursor on the last page");
  const listed = pages.flatMap((p) => p.data);
  assert.deepEqual(listed.map((o) => o.overrideId), [...ids].sort(), "every override once, in id order");
  for (const o of listed) {
    assert.deepEqual(o, await getOverride(namespace, o.identifier), `listOverrides shows ${o.identifier} as getOverride does`);
  }

  // One page holds all three by default (the SDK sends limit 10).
  const all = await sdk.ratelimit.listOverrides({ namespace });
  assert.deepEqual(all.result.data, listed);
  assert.deepEqual(all.result.pagination, { hasMore: false });
  assert.deepEqual(
    rec.lastJson("/v2/ratelimit.listOverrides"),
    { meta: rec.lastJson("/v2/ratelimit.listOverrides").meta, data: listed, pagination: { hasMore: false } },
  );
});

test("ratelimit.deleteOverride removes the override: getOverride answers 404 and limit uses the request's limit", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  await setOverride({ namespace, identifier: "carol", limit: 2, duration: HOUR });
  const wildId = await setOverride({ namespace, identifier: "team_*", limit: 2, duration: HOUR });

  const res = await sdk.ratelimit.deleteOverride({ namespace, identifier: "carol" });
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(res.data, {});
  assert.deepEqual(wireData("/v2/ratelimit.deleteOverride"), {});

  await expectSdkError(sdk.ratelimit.getOverride({ namespace, identifier: "carol" }), notFound("ratelimit_override_not_found"));
  const after = await limit({ namespace, identifier: "carol", limit: 100, duration: HOUR });
  assert.deepEqual(wireData("/v2/ratelimit.limit"), { limit: 100, remaining: 99, reset: after.reset, success: true });
  await expectSdkError(sdk.ratelimit.deleteOverride({ namespace, identifier: "carol" }), notFound("ratelimit_override_not_found"));

  // deleteOverride matches the identifier exactly: a concrete id does not delete the wildcard.
  await expectSdkError(sdk.ratelimit.deleteOverride({ namespace, identifier: "team_1" }), notFound("ratelimit_override_not_found"));
  assert.equal((await getOverride(namespace, "team_1")).overrideId, wildId);
  const listed = await sdk.ratelimit.listOverrides({ namespace });
  assert.deepEqual(listed.result.data.map((o) => o.identifier), ["team_*"], "the deleted override is not listed");
});

test("setting a deleted override again brings it back, with its id", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const first = await setOverride({ namespace, identifier: "dave", limit: 1, duration: HOUR });
  await sdk.ratelimit.deleteOverride({ namespace, identifier: "dave" });
  await expectSdkError(sdk.ratelimit.getOverride({ namespace, identifier: "dave" }), notFound("ratelimit_override_not_found"));

  const again = await setOverride({ namespace, identifier: "dave", limit: 3, duration: HOUR });
  assert.equal(again, first, "the override keeps its id");
  assert.deepEqual(await getOverride(namespace, "dave"), { overrideId: first, duration: HOUR, identifier: "dave", limit: 3 });
  const res = await limit({ namespace, identifier: "dave", limit: 100, duration: MINUTE });
  assert.deepEqual(res, { limit: 3, remaining: 2, reset: res.reset, success: true, overrideId: first });
  const listed = await sdk.ratelimit.listOverrides({ namespace });
  assert.deepEqual(listed.result.data, [{ overrideId: first, duration: HOUR, identifier: "dave", limit: 3 }]);
});

test("the override routes answer 404 ratelimit_namespace_not_found for an unknown namespace", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = unique("nowhere");
  const nsNotFound = notFound("ratelimit_namespace_not_found");
  const err = await expectSdkError(
    sdk.ratelimit.setOverride({ namespace, identifier: "x", limit: 1, duration: HOUR }),
    nsNotFound,
  );
  assert.equal(err.data$.error.detail, "This namespace does not exist.");
  await expectSdkError(sdk.ratelimit.getOverride({ namespace, identifier: "x" }), nsNotFound);
  await expectSdkError(sdk.ratelimit.deleteOverride({ namespace, identifier: "x" }), nsNotFound);
  await expectSdkError(sdk.ratelimit.listOverrides({ namespace }), nsNotFound);
  // None of them created the namespace.
  await expectSdkError(sdk.ratelimit.listOverrides({ namespace }), nsNotFound);
});

// ---- ratelimit.multiLimit ----

test("ratelimit.multiLimit where every limit passes answers passed true with one entry per item in request order", { timeout: TEST_TIMEOUT }, async () => {
  const nsA = unique("ns");
  const nsB = await newNamespace();
  const overrideId = await setOverride({ namespace: nsB, identifier: "o", limit: 4, duration: HOUR });
  const t0 = Date.now();
  const res = await sdk.ratelimit.multiLimit([
    { namespace: nsA, identifier: "x", limit: 10, duration: MINUTE },
    { namespace: nsB, identifier: "y", limit: 5, duration: HOUR, cost: 2 },
    { namespace: nsB, identifier: "o", limit: 100, duration: HOUR },
  ]);
  assert.match(res.meta.requestId, /^req_/);
  const [a, b, o] = res.data.limits;
  assert.deepEqual(res.data, {
    passed: true,
    limits: [
      { namespace: nsA, identifier: "x", limit: 10, remaining: 9, reset: a.reset, passed: true },
      { namespace: nsB, identifier: "y", limit: 5, remaining: 3, reset: b.reset, passed: true },
      { namespace: nsB, identifier: "o", limit: 4, remaining: 3, reset: o.reset, passed: true, overrideId },
    ],
  });
  assert.deepEqual(wireData("/v2/ratelimit.multiLimit"), res.data);
  assertReset(a.reset, MINUTE, t0);
  assertReset(b.reset, HOUR, t0);
  // Everything was counted, and the new namespace was created.
  assert.equal((await limit({ namespace: nsA, identifier: "x", limit: 10, duration: MINUTE })).remaining, 8);
  assert.equal((await limit({ namespace: nsB, identifier: "y", limit: 5, duration: HOUR })).remaining, 2);
});

test("ratelimit.multiLimit where one limit fails answers passed false and consumes nothing", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace();
  const pass = { namespace, identifier: "pass", limit: 10, duration: HOUR };
  const fail = { namespace, identifier: "fail", limit: 1, duration: HOUR };
  assert.equal((await limit(fail)).success, true, "uses up `fail`");

  const res = await sdk.ratelimit.multiLimit([pass, fail]);
  const [p, f] = res.data.limits;
  assert.deepEqual(res.data, {
    passed: false,
    limits: [
      // A passing item of a failed batch reports what it has left, as nothing was spent.
      { namespace, identifier: "pass", limit: 10, remaining: 10, reset: p.reset, passed: true },
      { namespace, identifier: "fail", limit: 1, remaining: 0, reset: f.reset, passed: false },
    ],
  });
  assert.equal((await limit(pass)).remaining, 9, "the passing item was not consumed by the failed batch");
  const again = await sdk.ratelimit.multiLimit([pass, fail]);
  assert.equal(again.data.passed, false);
  assert.equal(again.data.limits[0].remaining, 9);
  assert.equal((await limit(pass)).remaining, 8);
});

// ---- @unkey/ratelimit ----

test("@unkey/ratelimit's Ratelimit.limit passes with the remaining count and denies once the limit is hit", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = unique("rl-client");
  const cache = new Map();
  const rl = new Ratelimit({ rootKey: root.key, namespace, limit: 3, duration: "60s", baseUrl: server.url, cache });
  const identifier = unique("user");
  const t0 = Date.now();
  const first = await rl.limit(identifier);
  assert.deepEqual(first, { limit: 3, remaining: 2, reset: first.reset, success: true });
  assertReset(first.reset, MINUTE, t0);
  assert.equal((await rl.limit(identifier)).remaining, 1);
  assert.equal((await rl.limit(identifier)).remaining, 0);
  const denied = await rl.limit(identifier);
  assert.deepEqual(denied, { limit: 3, remaining: 0, reset: first.reset, success: false });
  assert.equal(cache.size, 1, "the client cached the denial");

  // A client with a fresh cache asks the server, which still denies.
  const fresh = new Ratelimit({ rootKey: root.key, namespace, limit: 3, duration: "60s", baseUrl: server.url, cache: new Map() });
  assert.equal((await fresh.limit(identifier)).success, false);
  // cost and a per-call limit are sent to the server.
  const other = unique("user");
  assert.equal((await fresh.limit(other, { cost: 2 })).remaining, 1);
  const bigger = await fresh.limit(other, { limit: { limit: 10, duration: "1h" } });
  assert.deepEqual(bigger, { limit: 10, remaining: 9, reset: bigger.reset, success: true }, "another duration is another counter");

  // The namespace was created on first use: the @unkey/api SDK sees it.
  const listed = await sdk.ratelimit.listOverrides({ namespace });
  assert.deepEqual(listed.result.data, []);
});

test("@unkey/ratelimit's Overrides sets, gets, lists and deletes overrides that Ratelimit.limit applies", { timeout: TEST_TIMEOUT }, async () => {
  const namespace = await newNamespace("rl-client");
  const overrides = new Overrides({ rootKey: root.key, baseUrl: server.url });
  const set = await overrides.setOverride({ namespace, identifier: "tenant_*", limit: 1, duration: MINUTE });
  assert.match(set.meta.requestId, /^req_/);
  const overrideId = set.data.overrideId;
  assert.match(overrideId, /^rlor_/);

  const got = await overrides.getOverride({ namespace, identifier: "tenant_9" });
  assert.deepEqual(got.data, { overrideId, duration: MINUTE, identifier: "tenant_*", limit: 1 });
  // The @unkey/api 2.2.0 that @unkey/ratelimit uses returns list bodies directly (no page iterator).
  const listed = await overrides.listOverrides({ namespace });
  assert.deepEqual(listed.data, [got.data]);
  assert.deepEqual(listed.pagination, { hasMore: false });

  const rl = new Ratelimit({ rootKey: root.key, namespace, limit: 100, duration: "60s", baseUrl: server.url, cache: new Map() });
  const first = await rl.limit("tenant_9");
  assert.deepEqual(first, { limit: 1, remaining: 0, reset: first.reset, success: true, overrideId });
  const second = await rl.limit("tenant_9");
  assert.deepEqual(second, { limit: 1, remaining: 0, reset: first.reset, success: false, overrideId });

  const deleted = await overrides.deleteOverride({ namespace, identifier: "tenant_*" });
  assert.deepEqual(deleted.data, {});
  await expectClientError(overrides.getOverride({ namespace, identifier: "tenant_9" }), {
    name: "NotFoundErrorResponse",
    status: 404,
    typeSuffix: "unkey/data/ratelimit_override_not_found",
  });
  const fresh = new Ratelimit({ rootKey: root.key, namespace, limit: 100, duration: "60s", baseUrl: server.url, cache: new Map() });
  const after = await fresh.limit("tenant_10");
  assert.deepEqual(after, { limit: 100, remaining: 99, reset: after.reset, success: true });
});

test("@unkey/ratelimit's Ratelimit.limit surfaces the server's errors, or onError's answer when given", { timeout: TEST_TIMEOUT }, async () => {
  // No create_namespace: a 403 the client throws.
  const namespace = unique("rl-client");
  const limited = new Ratelimit({ rootKey: limitOnly.key, namespace, limit: 5, duration: "60s", baseUrl: server.url, cache: new Map() });
  await expectClientError(limited.limit("x"), {
    name: "ForbiddenErrorResponse",
    status: 403,
    typeSuffix: "unkey/authorization/insufficient_permissions",
  });
  const seen = [];
  const tolerant = new Ratelimit({
    rootKey: limitOnly.key,
    namespace,
    limit: 5,
    duration: "60s",
    baseUrl: server.url,
    cache: new Map(),
    onError: (err, identifier) => {
      seen.push({ message: err.message, identifier });
      return { success: true, limit: 0, remaining: 0, reset: 0 };
    },
  });
  assert.deepEqual(await tolerant.limit("y"), { success: true, limit: 0, remaining: 0, reset: 0 });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].identifier, "y");

  // A deleted namespace: 410.
  const gone = await newNamespace("rl-client");
  deleteNamespace(db.url, workspaceId, gone);
  const rl = new Ratelimit({ rootKey: root.key, namespace: gone, limit: 5, duration: "60s", baseUrl: server.url, cache: new Map() });
  await pollUntil(() => rl.limit("z"), (r) => r.error?.statusCode === 410, {
    withinMs: 1_500,
    intervalMs: 50,
    what: "410 through @unkey/ratelimit after `namespace delete`",
  });
  await expectClientError(rl.limit("z"), {
    name: "GoneErrorResponse",
    status: 410,
    typeSuffix: "unkey/data/ratelimit_namespace_gone",
  });
});

// ---- Error documentation ----

test("every error type URL the ratelimit routes returned is a documentation page served by keyward", { timeout: TEST_TIMEOUT }, async () => {
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
