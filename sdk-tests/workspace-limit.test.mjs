// The workspace's limit on API calls (`keyward workspace limit`) through @unkey/api: the SDK
// must parse the 429 as its TooManyRequestsErrorResponse (and not retry it).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as errors from "@unkey/api/models/errors";

import {
  cli,
  client,
  createRootKey,
  createWorkspace,
  expectSdkError,
  freshDatabase,
  requireBinary,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;

let db;
let server;
let sdk;
let workspaceId;

before(async () => {
  requireBinary();
  db = freshDatabase();
  workspaceId = createWorkspace(db.url, "limited");
  const root = createRootKey(db.url, workspaceId);
  server = await startServer(db.url);
  sdk = client(server.url, root.key);
});

after(async () => {
  await server?.stop();
  db?.cleanup();
});

test("past the workspace limit the SDK gets TooManyRequestsErrorResponse", { timeout: TEST_TIMEOUT }, async () => {
  const apiId = (await sdk.apis.createApi({ name: "limited" })).data.apiId;
  cli(db.url, "workspace", "limit", workspaceId, "--requests-per-minute", "0");
  // The server hears of the change through its change feed within a second.
  let err;
  for (let i = 0; i < 30 && !err; i++) {
    try {
      await sdk.apis.getApi({ apiId });
      await new Promise((r) => setTimeout(r, 100));
    } catch (e) {
      err = e;
    }
  }
  assert.ok(err, "the limit never applied");
  await expectSdkError(Promise.reject(err), {
    errorClass: errors.TooManyRequestsErrorResponse,
    status: 429,
    typeSuffix: "user/too_many_requests/workspace_rate_limited",
    title: "Too Many Requests",
  });
  assert.match(err.body, /exceeded its API rate limit of 0\/1m0s/);
  cli(db.url, "workspace", "limit", workspaceId, "--requests-per-minute", "none");
});
