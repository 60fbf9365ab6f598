// The official @unkey/api SDK against a real `keyward serve`: apis.*, root-key auth and error envelopes.

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
  pollUntil,
  requireBinary,
  seenErrorTypes,
  sleep,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;

let db; // { dir, url, cleanup }
let server; // { url, stop, output }
let rootA; // every permission, workspace A
let rootB; // every permission, workspace B
let readOnly; // workspace A, only api.*.read_api
let toggled; // workspace A, disabled and re-enabled by a test
let sdk; // client with rootA
let sharedApiId; // an API of workspace A that no test deletes

let nameCounter = 0;
const uniqueName = (label) => `sdk-${label}-${process.pid}-${++nameCounter}`;

/** Collects every page of a listKeys result, whether the SDK returns an iterator or a plain body. */
async function allPages(res) {
  const pages = [];
  if (res && typeof res[Symbol.asyncIterator] === "function") {
    for await (const page of res) pages.push(page.result ?? page);
  } else {
    pages.push(res?.result ?? res);
  }
  return pages;
}

before(async () => {
  requireBinary();
  db = freshDatabase();
  // Creating a workspace first makes the database non-empty, so `serve` does not bootstrap one.
  const wsA = createWorkspace(db.url, "sdk");
  const wsB = createWorkspace(db.url, "sdk-other");
  rootA = createRootKey(db.url, wsA, { name: "sdk-all" });
  rootB = createRootKey(db.url, wsB, { name: "sdk-other-all" });
  readOnly = createRootKey(db.url, wsA, { name: "sdk-read-only", permissions: ["api.*.read_api"] });
  toggled = createRootKey(db.url, wsA, { name: "sdk-toggled" });

  server = await startServer(db.url);
  sdk = client(server.url, rootA.key);
  const created = await sdk.apis.createApi({ name: uniqueName("shared") });
  sharedApiId = created.data.apiId;
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

test("apis.createApi returns an api_ id and apis.getApi returns the same id and name", { timeout: TEST_TIMEOUT }, async () => {
  const name = uniqueName("create-get");
  const created = await sdk.apis.createApi({ name });
  assert.match(created.meta.requestId, /^req_/);
  assert.match(created.data.apiId, /^api_/);

  const got = await sdk.apis.getApi({ apiId: created.data.apiId });
  assert.match(got.meta.requestId, /^req_/);
  assert.deepEqual(got.data, { id: created.data.apiId, name });
});

test("apis.listKeys on a new API returns no keys and hasMore false", { timeout: TEST_TIMEOUT }, async () => {
  const { data: { apiId } } = await sdk.apis.createApi({ name: uniqueName("list-keys") });
  const pages = await allPages(await sdk.apis.listKeys({ apiId }));

  assert.equal(pages.length, 1, "an empty list is exactly one page");
  const [body] = pages;
  assert.match(body.meta.requestId, /^req_/);
  assert.deepEqual(body.data, []);
  assert.equal(body.pagination.hasMore, false);
  assert.equal(body.pagination.cursor, undefined, "no cursor when there is no next page");
});

test("apis.deleteApi deletes the API so that getApi and a second delete answer 404 api_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const { data: { apiId } } = await sdk.apis.createApi({ name: uniqueName("delete") });
  const deleted = await sdk.apis.deleteApi({ apiId });
  assert.match(deleted.meta.requestId, /^req_/);
  assert.deepEqual(deleted.data, {});

  const notFound = {
    errorClass: errors.NotFoundErrorResponse,
    status: 404,
    typeSuffix: "unkey/data/api_not_found",
    title: "Not Found",
  };
  await expectSdkError(sdk.apis.getApi({ apiId }), notFound);
  await expectSdkError(sdk.apis.deleteApi({ apiId }), notFound);
});

test("apis.deleteApi on a protected API answers 412 protected_resource until it is unprotected", { timeout: TEST_TIMEOUT }, async () => {
  const name = uniqueName("protected");
  const { data: { apiId } } = await sdk.apis.createApi({ name });

  cli(db.url, "api", "protect", apiId);
  // The contract: a change made by another process is honoured within 1 s.
  await sleep(1_100);

  await expectSdkError(sdk.apis.deleteApi({ apiId }), {
    errorClass: errors.PreconditionFailedErrorResponse,
    status: 412,
    typeSuffix: "unkey/application/protected_resource",
    title: "Resource is protected",
  });
  const still = await sdk.apis.getApi({ apiId });
  assert.deepEqual(still.data, { id: apiId, name }, "a refused delete leaves the API in place");

  cli(db.url, "api", "unprotect", apiId);
  const { last } = await pollUntil(
    () => sdk.apis.deleteApi({ apiId }),
    (r) => r.value !== undefined,
    { withinMs: 1_000, intervalMs: 100, what: "deleteApi succeeding after `api unprotect`" },
  );
  assert.deepEqual(last.value.data, {});

  await expectSdkError(sdk.apis.getApi({ apiId }), {
    errorClass: errors.NotFoundErrorResponse,
    status: 404,
    typeSuffix: "unkey/data/api_not_found",
    title: "Not Found",
  });
});

test("apis.createApi with a two-character name answers 400 invalid_input with field errors", { timeout: TEST_TIMEOUT }, async () => {
  const err = await expectSdkError(sdk.apis.createApi({ name: "ab" }), {
    errorClass: errors.BadRequestErrorResponse,
    status: 400,
    typeSuffix: "unkey/application/invalid_input",
    title: "Bad Request",
  });
  const fieldErrors = (err.data$?.error ?? err.error).errors;
  assert.ok(Array.isArray(fieldErrors), `errors should be an array; body ${err.body}`);
  assert.ok(fieldErrors.length > 0, `errors should be non-empty; body ${err.body}`);
  for (const fe of fieldErrors) {
    assert.equal(typeof fe.location, "string", `errors[].location; body ${err.body}`);
    assert.ok(fe.message.length > 0, `errors[].message; body ${err.body}`);
  }
});

test("an unknown root key answers 401 key_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const stranger = client(server.url, "unkey_doesnotexist123");
  await expectSdkError(stranger.apis.getApi({ apiId: sharedApiId }), {
    errorClass: errors.UnauthorizedErrorResponse,
    status: 401,
    typeSuffix: "unkey/authentication/key_not_found",
    title: "Unauthorized",
  });
});

test("a root key with only api.*.read_api can read but gets 403 insufficient_permissions naming api.*.create_api on createApi", { timeout: TEST_TIMEOUT }, async () => {
  const limited = client(server.url, readOnly.key);
  const got = await limited.apis.getApi({ apiId: sharedApiId });
  assert.equal(got.data.id, sharedApiId, "the read-only key is valid and may read");

  const err = await expectSdkError(limited.apis.createApi({ name: uniqueName("forbidden") }), {
    errorClass: errors.ForbiddenErrorResponse,
    status: 403,
    typeSuffix: "unkey/authorization/insufficient_permissions",
    title: "Insufficient Permissions",
  });
  assert.ok(
    err.data$.error.detail.includes("api.*.create_api"),
    `detail should name api.*.create_api: ${JSON.stringify(err.data$.error.detail)}`,
  );
});

test("a root key disabled through the CLI is refused with 403 key_disabled within 1 s and works again within 1 s of enabling", { timeout: TEST_TIMEOUT }, async () => {
  const c = client(server.url, toggled.key);
  const working = await c.apis.getApi({ apiId: sharedApiId });
  assert.equal(working.data.id, sharedApiId, "the key works before it is disabled");

  cli(db.url, "root-key", "disable", toggled.keyId);
  const disabled = await pollUntil(
    () => c.apis.getApi({ apiId: sharedApiId }),
    (r) => r.error instanceof errors.ForbiddenErrorResponse,
    { withinMs: 1_000, intervalMs: 100, what: "403 after `root-key disable`" },
  );
  await expectSdkError(Promise.reject(disabled.last.error), {
    errorClass: errors.ForbiddenErrorResponse,
    status: 403,
    typeSuffix: "unkey/authorization/key_disabled",
    title: "Forbidden",
  });

  cli(db.url, "root-key", "enable", toggled.keyId);
  const enabled = await pollUntil(
    () => c.apis.getApi({ apiId: sharedApiId }),
    (r) => r.value !== undefined,
    { withinMs: 1_000, intervalMs: 100, what: "success after `root-key enable`" },
  );
  assert.equal(enabled.last.value.data.id, sharedApiId);
});

test("a root key of another workspace gets 404 api_not_found for this workspace's API", { timeout: TEST_TIMEOUT }, async () => {
  const other = client(server.url, rootB.key);
  const notFound = {
    errorClass: errors.NotFoundErrorResponse,
    status: 404,
    typeSuffix: "unkey/data/api_not_found",
    title: "Not Found",
  };
  await expectSdkError(other.apis.getApi({ apiId: sharedApiId }), notFound);
  await expectSdkError(other.apis.listKeys({ apiId: sharedApiId }), notFound);
  await expectSdkError(other.apis.deleteApi({ apiId: sharedApiId }), notFound);

  const still = await sdk.apis.getApi({ apiId: sharedApiId });
  assert.equal(still.data.id, sharedApiId, "the other workspace's delete attempt changed nothing");
});

test("the type URL of an error is a documentation page served by keyward", { timeout: TEST_TIMEOUT }, async () => {
  const err = await expectSdkError(sdk.apis.getApi({ apiId: "api_doesnotexist00" }), {
    errorClass: errors.NotFoundErrorResponse,
    status: 404,
    typeSuffix: "unkey/data/api_not_found",
    title: "Not Found",
  });
  const typeUrl = err.data$.error.type;
  assert.equal(new URL(typeUrl).origin, new URL(server.url).origin, `type URL ${typeUrl} should point at this server`);

  // This error's page, plus the page of every other error type the earlier tests saw.
  const urls = [typeUrl, ...[...seenErrorTypes].filter((u) => u !== typeUrl)];
  for (const url of urls) {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    const html = await res.text();
    assert.equal(res.status, 200, `GET ${url} answered ${res.status}: ${html.slice(0, 200)}`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/, `GET ${url} content-type`);
    assert.match(html, /<html|<!doctype html/i, `GET ${url} should be an HTML document`);
    const specific = new URL(url).pathname.split("/").pop();
    assert.ok(html.includes(specific), `GET ${url} should name the error code ${specific}`);
  }
});
