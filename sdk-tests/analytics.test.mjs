// analytics.getVerifications through @unkey/api against a real `keyward serve`: the SDK must
// accept every answer (rows, and the typed 400/403/429 errors), and the counts must be right.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as errors from "@unkey/api/models/errors";

import {
  client,
  createRootKey,
  createWorkspace,
  expectSdkError,
  freshDatabase,
  pollUntil,
  requireBinary,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;

let db;
let server;
let quotaServer; // the same database, with a quota of 2 queries per hour
let workspaceId;
let sdk;
let apiId;

before(async () => {
  requireBinary();
  db = freshDatabase();
  workspaceId = createWorkspace(db.url, "analytics");
  const root = createRootKey(db.url, workspaceId);
  server = await startServer(db.url);
  quotaServer = await startServer(db.url, { args: ["--analytics-query-quota", "2"] });
  sdk = client(server.url, root.key);
  const api = await sdk.apis.createApi({ name: "analytics" });
  apiId = api.data.apiId;
});

after(async () => {
  await server?.stop();
  await quotaServer?.stop();
  db?.cleanup();
});

const count = async (query, using = sdk) => {
  const res = await using.analytics.getVerifications({ query });
  assert.match(res.meta.requestId, /^req_/);
  assert.ok(Array.isArray(res.data), JSON.stringify(res));
  return res.data;
};

test("verifications are counted by outcome and tag", { timeout: TEST_TIMEOUT }, async () => {
  const created = await sdk.keys.createKey({ apiId, credits: { remaining: 2 } });
  for (let i = 0; i < 3; i++) {
    await sdk.keys.verifyKey({ key: created.data.key, tags: ["plan=pro"] });
  }
  const { last } = await pollUntil(
    () => count("SELECT COUNT(*) AS count FROM key_verifications_v1"),
    (r) => r.value?.[0]?.count === 3,
    { withinMs: 5_000, what: "three verifications recorded" },
  );
  assert.deepEqual(last.value, [{ count: 3 }]);
  const byOutcome = await count(
    "SELECT outcome, count() AS n FROM key_verifications_v1 WHERE has(tags, 'plan=pro') GROUP BY outcome ORDER BY outcome",
  );
  assert.deepEqual(byOutcome, [
    { outcome: "USAGE_EXCEEDED", n: 1 },
    { outcome: "VALID", n: 2 },
  ]);
  // Rollups are written every second on the test server (--analytics-rollup-interval).
  const { last: rolled } = await pollUntil(
    () =>
      count(
        "SELECT time, SUM(count) AS n FROM key_verifications_per_day_v1 WHERE key_id = '" +
          created.data.keyId +
          "' GROUP BY time",
      ),
    (r) => r.value?.[0]?.n === 3,
    { withinMs: 5_000, intervalMs: 200, what: "the day rollup" },
  );
  const daily = rolled.value;
  assert.equal(daily.length, 1);
  assert.match(daily[0].time, /^\d{4}-\d{2}-\d{2}T00:00:00Z$/);
  assert.equal(daily[0].n, 3);
});

test("bad queries and missing permissions are typed SDK errors", { timeout: TEST_TIMEOUT }, async () => {
  await expectSdkError(sdk.analytics.getVerifications({ query: "SELECT * FROM system.tables" }), {
    errorClass: errors.BadRequestErrorResponse,
    status: 400,
    typeSuffix: "user/bad_request/invalid_analytics_table",
    title: "Bad Request",
  });
  await expectSdkError(
    sdk.analytics.getVerifications({ query: "DELETE FROM key_verifications_v1 WHERE time < now()" }),
    {
      errorClass: errors.BadRequestErrorResponse,
      status: 400,
      typeSuffix: "user/bad_request/invalid_analytics_query_type",
      title: "Bad Request",
    },
  );
  const reader = createRootKey(db.url, workspaceId, { permissions: ["api.*.read_api"] });
  const err = await expectSdkError(
    client(server.url, reader.key).analytics.getVerifications({
      query: "SELECT COUNT(*) FROM key_verifications_v1",
    }),
    {
      errorClass: errors.ForbiddenErrorResponse,
      status: 403,
      typeSuffix: "unkey/authorization/insufficient_permissions",
      title: "Insufficient Permissions",
    },
  );
  assert.match(err.data$.error.detail, /api\.\*\.read_analytics/);
});

test("the hourly query quota is a typed 429", { timeout: TEST_TIMEOUT }, async () => {
  const root = createRootKey(db.url, createWorkspace(db.url, "quota"));
  const limited = client(quotaServer.url, root.key);
  await count("SELECT count() AS n FROM key_verifications_v1", limited);
  await count("SELECT count() AS n FROM key_verifications_v1", limited);
  await expectSdkError(
    limited.analytics.getVerifications({ query: "SELECT count() AS n FROM key_verifications_v1" }),
    {
      errorClass: errors.TooManyRequestsErrorResponse,
      status: 429,
      typeSuffix: "user/too_many_requests/query_quota_exceeded",
      title: "Too Many Requests",
    },
  );
});

test("every query reads only its own workspace, and API-scoped keys only their APIs", { timeout: TEST_TIMEOUT }, async () => {
  // A workspace of its own, with two APIs.
  const ws = createWorkspace(db.url, "isolated");
  const root = createRootKey(db.url, ws);
  const mine = client(server.url, root.key);
  const first = (await mine.apis.createApi({ name: "first" })).data.apiId;
  const second = (await mine.apis.createApi({ name: "second" })).data.apiId;
  const a = await mine.keys.createKey({ apiId: first });
  const b = await mine.keys.createKey({ apiId: second });
  for (let i = 0; i < 2; i++) await mine.keys.verifyKey({ key: a.data.key });
  await mine.keys.verifyKey({ key: b.data.key });
  await pollUntil(
    () => count("SELECT COUNT(*) AS count FROM key_verifications_v1", mine),
    (r) => r.value?.[0]?.count === 3,
    { withinMs: 5_000, what: "three verifications recorded" },
  );
  for (const query of [
    `SELECT COUNT(*) AS count FROM key_verifications_v1 WHERE workspace_id = '${workspaceId}' OR 1=1`,
    "SELECT COUNT(*) AS count FROM (SELECT * FROM key_verifications_v1 UNION ALL SELECT * FROM key_verifications_v1 WHERE 1=0)",
  ]) {
    assert.deepEqual(await count(query, mine), [{ count: 3 }], query);
  }
  const scoped = client(
    server.url,
    createRootKey(db.url, ws, { permissions: [`api.${first}.read_analytics`] }).key,
  );
  const spaces = await count(
    "SELECT key_space_id, COUNT(*) AS count FROM key_verifications_v1 GROUP BY key_space_id",
    scoped,
  );
  assert.equal(spaces.length, 1);
  assert.equal(spaces[0].count, 2);
  const other = await count(
    `SELECT key_space_id FROM key_verifications_v1 WHERE key_id = '${b.data.keyId}'`,
    mine,
  );
  assert.deepEqual(
    await count(`SELECT * FROM key_verifications_v1 WHERE key_space_id = '${other[0].key_space_id}'`, scoped),
    [],
  );
  const nowhere = client(
    server.url,
    createRootKey(db.url, ws, { permissions: ["api.api_doesnotexist.read_analytics"] }).key,
  );
  const none = await count("SELECT key_id FROM key_verifications_v1", nowhere);
  assert.deepEqual(none, []);
});

test("the reference's refused queries answer their codes through the SDK", { timeout: TEST_TIMEOUT }, async () => {
  const cases = [
    ["SELECT * FROM default.key_verifications_raw_v2", "invalid_analytics_table"],
    ["WITH key_verifications_v1 AS (SELECT 1) SELECT * FROM key_verifications_v1", "invalid_analytics_table"],
    ["SELECT file('/etc/passwd') FROM key_verifications_v1", "invalid_analytics_function"],
    ["SELECT 1 FROM key_verifications_v1; SELECT 2 FROM key_verifications_v1", "invalid_analytics_query"],
    ["SELECT * FROM key_verifications_v1 SETTINGS max_execution_time = 0", "invalid_analytics_query"],
    ["", "invalid_analytics_query"],
    ["SELECT nonexistent_column FROM key_verifications_v1", "invalid_analytics_query"],
    ["SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 120 DAY", "query_range_exceeds_retention"],
  ];
  for (const [query, code] of cases) {
    await expectSdkError(sdk.analytics.getVerifications({ query }), {
      errorClass: errors.BadRequestErrorResponse,
      status: 400,
      typeSuffix: `user/bad_request/${code}`,
      title: "Bad Request",
    });
  }
  const long = `SELECT COUNT(*) FROM key_verifications_v1 WHERE key_id = '${"k".repeat(16_400)}'`;
  const err = await expectSdkError(sdk.analytics.getVerifications({ query: long }), {
    errorClass: errors.BadRequestErrorResponse,
    status: 400,
    typeSuffix: "user/bad_request/invalid_analytics_query",
    title: "Bad Request",
  });
  assert.match(err.data$.error.detail, /maximum length/);
});

test("tag functions, distinct counts and the 4 MiB answer cap", { timeout: TEST_TIMEOUT }, async () => {
  const ws = createWorkspace(db.url, "functions");
  const mine = client(server.url, createRootKey(db.url, ws).key);
  const apiId = (await mine.apis.createApi({ name: "functions" })).data.apiId;
  const keys = [];
  for (let i = 0; i < 5; i++) keys.push((await mine.keys.createKey({ apiId })).data.key);
  // 35 verifications: 7 per key, the first key's tagged.
  for (let round = 0; round < 7; round++) {
    for (const [i, key] of keys.entries()) {
      await mine.keys.verifyKey({ key, tags: i === 0 ? ["a", "path=/x"] : ["b"] });
    }
  }
  await pollUntil(
    () => count("SELECT count() AS n FROM key_verifications_v1", mine),
    (r) => r.value?.[0]?.n === 35,
    { withinMs: 5_000, what: "35 verifications recorded" },
  );
  assert.deepEqual(await count("SELECT count(DISTINCT key_id) AS keys FROM key_verifications_v1", mine), [
    { keys: 5 },
  ]);
  assert.deepEqual(await count("SELECT count() AS n FROM key_verifications_v1 WHERE has(tags, 'a')", mine), [
    { n: 7 },
  ]);
  assert.deepEqual(
    await count(
      "SELECT arrayJoin(tags) AS tag, countIf(outcome = 'VALID') AS valid FROM key_verifications_v1 GROUP BY tag ORDER BY tag",
      mine,
    ),
    [
      { tag: "a", valid: 7 },
      { tag: "b", valid: 28 },
      { tag: "path=/x", valid: 7 },
    ],
  );
  // 35 x 35 x 35 rows of three request ids and two key ids: about 6 MiB of JSON.
  await expectSdkError(
    mine.analytics.getVerifications({
      query:
        "SELECT a.request_id AS x, b.request_id AS y, c.request_id AS z, a.key_id AS k, b.key_id AS l FROM key_verifications_v1 a, key_verifications_v1 b, key_verifications_v1 c",
    }),
    {
      errorClass: errors.UnprocessableEntityErrorResponse,
      status: 422,
      typeSuffix: "user/unprocessable_entity/query_memory_limit_exceeded",
      title: "Unprocessable Entity",
    },
  );
});
