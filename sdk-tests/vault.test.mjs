// Recoverable keys through @unkey/api against a real `keyward serve` started with a master key:
// the SDK must accept `plaintext` in getKey and listKeys answers, and the 412s where it applies.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  cli,
  client,
  createRootKey,
  createWorkspace,
  expectHttpError,
  freshDatabase,
  requireBinary,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;

let db;
let server;
let sdk;
let apiId;

before(async () => {
  requireBinary();
  db = freshDatabase();
  const workspaceId = createWorkspace(db.url, "vault");
  const root = createRootKey(db.url, workspaceId);
  const masterKey = cli(db.url, "vault", "generate-master-key").trim();
  server = await startServer(db.url, { args: ["--master-key", masterKey] });
  sdk = client(server.url, root.key);
  apiId = (await sdk.apis.createApi({ name: "recoverable" })).data.apiId;
  cli(db.url, "api", "recoverable", apiId, "on");
});

after(async () => {
  await server?.stop();
  db?.cleanup();
});

test("a recoverable key comes back from getKey and listKeys with decrypt", { timeout: TEST_TIMEOUT }, async () => {
  const created = await sdk.keys.createKey({ apiId, prefix: "sk", recoverable: true });
  const plain = await sdk.keys.createKey({ apiId });

  const got = await sdk.keys.getKey({ keyId: created.data.keyId, decrypt: true });
  assert.equal(got.data.plaintext, created.data.key);
  const without = await sdk.keys.getKey({ keyId: created.data.keyId });
  assert.equal(without.data.plaintext, undefined);

  const listed = await sdk.apis.listKeys({ apiId, decrypt: true });
  const byId = Object.fromEntries(listed.result.data.map((k) => [k.keyId, k]));
  assert.equal(byId[created.data.keyId].plaintext, created.data.key);
  assert.equal(byId[plain.data.keyId].plaintext, undefined);

  const rerolled = await sdk.keys.rerollKey({ keyId: created.data.keyId, expiration: 0 });
  const again = await sdk.keys.getKey({ keyId: rerolled.data.keyId, decrypt: true });
  assert.equal(again.data.plaintext, rerolled.data.key);
});

test("an API that has not opted in answers 412", { timeout: TEST_TIMEOUT }, async () => {
  const other = (await sdk.apis.createApi({ name: "not-recoverable" })).data.apiId;
  const { err } = await expectHttpError(sdk.keys.createKey({ apiId: other, recoverable: true }), {
    status: 412,
    typeSuffix: "unkey/application/precondition_failed",
    title: "Precondition Failed",
  });
  assert.match(err.body, /This API does not support key encryption\./);
});
