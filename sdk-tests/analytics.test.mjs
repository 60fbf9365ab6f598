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
  // Rollups are written every 10 seconds.
  const { last: rolled } = await pollUntil(
    () =>
      count(
        "SELECT time, SUM(count) AS n FROM key_verifications_per_day_v1 WHERE key_id = '" +
          created.data.keyId +
          "' GROUP BY time",
      ),
    (r) => r.value?.[0]?.n === 3,
    { withinMs: 15_000, intervalMs: 500, what: "the day rollup" },
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
