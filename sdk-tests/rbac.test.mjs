// The official @unkey/api SDK against a real `keyward serve`: permissions.* (permissions and
// roles), the permission and role routes on keys (keys.{add,remove,set}{Permissions,Roles}),
// permissions and roles on createKey/updateKey/getKey, and permission queries in keys.verifyKey.
//
// Every call goes through the SDK, so each response must pass the SDK's zod models; where the
// exact wire shape matters, the raw JSON is checked as well (see `recordingClient`).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as errors from "@unkey/api/models/errors";

import {
  client,
  createRootKey,
  createWorkspace,
  expectSdkError,
  freshDatabase,
  recordingClient,
  requireBinary,
  seenErrorTypes,
  startServer,
} from "./helpers.mjs";

const TEST_TIMEOUT = 30_000;

let db; // { dir, url, cleanup }
let server; // { url, stop, output }
let workspaceId;
let root; // every permission
let readApiOnly; // only api.*.read_api: no rbac.* permission at all
let rolesNotPermissions; // rbac.*.create_role + rbac.*.add_permission_to_role, not rbac.*.create_permission
let rec; // recordingClient with `root`
let sdk; // rec.sdk
let apiId; // the API every key here is created in

let counter = 0;
/** A name that is unique in this run and valid as a permission slug and a role name. */
const unique = (label) => `${label}_${process.pid}_${++counter}`;

const notFound = (specific) => ({
  errorClass: errors.NotFoundErrorResponse,
  status: 404,
  typeSuffix: `unkey/data/${specific}`,
  title: "Not Found",
});
const conflict = (specific) => ({
  errorClass: errors.ConflictErrorResponse,
  status: 409,
  typeSuffix: `unkey/data/${specific}`,
  title: "Conflicting Resource",
});
const insufficientPermissions = {
  errorClass: errors.ForbiddenErrorResponse,
  status: 403,
  typeSuffix: "unkey/authorization/insufficient_permissions",
  title: "Insufficient Permissions",
};
const querySyntaxError = {
  errorClass: errors.BadRequestErrorResponse,
  status: 400,
  typeSuffix: "user/bad_request/permissions_query_syntax_error",
  title: "Bad Request",
};

/** The raw `data` object of the last response to `path`, as it was on the wire. */
const wireData = (path) => rec.lastJson(path).data;

const bySlug = (a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0);
const sorted = (strings) => [...strings].sort();
/** A role with its permissions in slug order, for comparisons where the order is not specified. */
const normRole = (role) => (role.permissions ? { ...role, permissions: [...role.permissions].sort(bySlug) } : role);
const normRoles = (roles) => roles.map(normRole).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

/** Asserts the detail of an SDK error returned by `expectSdkError`. */
function assertDetail(err, expected) {
  assert.equal(err.data$.error.detail, expected, `error.detail; body ${err.body}`);
}

async function createPermission(fields = {}) {
  const slug = fields.slug ?? unique("perm");
  const res = await sdk.permissions.createPermission({ name: fields.name ?? `Name of ${slug}`, slug, ...fields });
  assert.match(res.meta.requestId, /^req_/);
  assert.match(res.data.permissionId, /^perm_/);
  return { id: res.data.permissionId, slug };
}

async function getPermission(permission) {
  const res = await sdk.permissions.getPermission({ permission });
  assert.match(res.meta.requestId, /^req_/);
  return res.data;
}

async function createRole(fields = {}) {
  const name = fields.name ?? unique("role");
  const res = await sdk.permissions.createRole({ ...fields, name });
  assert.match(res.meta.requestId, /^req_/);
  assert.match(res.data.roleId, /^role_/);
  return { id: res.data.roleId, name };
}

async function getRole(role) {
  const res = await sdk.permissions.getRole({ role });
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

async function verify(key, extra = {}, using = sdk) {
  const res = await using.keys.verifyKey({ key, ...extra });
  assert.match(res.meta.requestId, /^req_/);
  assert.equal(typeof res.data.valid, "boolean", "verify data has `valid`");
  assert.equal(typeof res.data.code, "string", "verify data has `code`");
  return res.data;
}

/** `verify` with a permission query, returning only the code. */
async function verifyCode(key, permissions) {
  return (await verify(key, { permissions })).code;
}

/** Every page of a list call, following the SDK's page iterator. */
async function allPages(iteratorPromise) {
  const pages = [];
  for await (const page of await iteratorPromise) pages.push(page.result);
  return pages;
}

before(async () => {
  requireBinary();
  db = freshDatabase();
  workspaceId = createWorkspace(db.url, "sdk-rbac");
  root = createRootKey(db.url, workspaceId, { name: "sdk-rbac-all" });
  readApiOnly = createRootKey(db.url, workspaceId, {
    name: "sdk-rbac-read-api-only",
    permissions: ["api.*.read_api"],
  });
  rolesNotPermissions = createRootKey(db.url, workspaceId, {
    name: "sdk-rbac-roles-not-permissions",
    permissions: ["rbac.*.create_role", "rbac.*.add_permission_to_role"],
  });

  server = await startServer(db.url);
  rec = recordingClient(server.url, root.key);
  sdk = rec.sdk;
  apiId = (await sdk.apis.createApi({ name: unique("sdk-rbac") })).data.apiId;
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

// ---- permissions: create, get, list, delete ----

test("permissions.createPermission returns a perm_ id, and getPermission finds it by id and by slug with every field", { timeout: TEST_TIMEOUT }, async () => {
  const slug = unique("documents.read");
  const res = await sdk.permissions.createPermission({ name: "Read documents", slug, description: "May read documents" });
  assert.match(res.meta.requestId, /^req_/);
  assert.match(res.data.permissionId, /^perm_[a-zA-Z0-9]+$/);
  assert.deepEqual(wireData("/v2/permissions.createPermission"), { permissionId: res.data.permissionId });
  const id = res.data.permissionId;

  const expected = { id, name: "Read documents", slug, description: "May read documents" };
  assert.deepEqual(await getPermission(id), expected);
  assert.deepEqual(wireData("/v2/permissions.getPermission"), expected);
  assert.deepEqual(await getPermission(slug), expected);
  assert.deepEqual(wireData("/v2/permissions.getPermission"), expected);

  // Without a description there is no description field at all (the SDK would reject null).
  const bare = await createPermission({ name: "bare", slug: unique("bare") });
  assert.deepEqual(await getPermission(bare.id), { id: bare.id, name: "bare", slug: bare.slug });
  assert.deepEqual(wireData("/v2/permissions.getPermission"), { id: bare.id, name: "bare", slug: bare.slug });
});

test("permissions.createPermission with an existing slug, also one differing only in case, answers 409 permission_already_exists", { timeout: TEST_TIMEOUT }, async () => {
  const slug = unique("Billing.Admin");
  const { id } = await createPermission({ slug, name: "first" });

  const same = await expectSdkError(
    sdk.permissions.createPermission({ name: "again", slug }),
    conflict("permission_already_exists"),
  );
  assertDetail(same, `A permission with slug '${slug}' already exists in this workspace`);

  const lower = slug.toLowerCase();
  const cased = await expectSdkError(
    sdk.permissions.createPermission({ name: "lower case", slug: lower }),
    conflict("permission_already_exists"),
  );
  assertDetail(cased, `A permission with slug '${lower}' already exists in this workspace`);

  assert.deepEqual(await getPermission(id), { id, name: "first", slug }, "the original is unchanged");
});

test("permissions.getPermission of an unknown id or slug answers 404 permission_not_found", { timeout: TEST_TIMEOUT }, async () => {
  for (const permission of ["perm_doesnotexist00", unique("no.such.slug")]) {
    const err = await expectSdkError(sdk.permissions.getPermission({ permission }), notFound("permission_not_found"));
    assertDetail(err, "The requested permission does not exist.");
  }
});

test("permissions.listPermissions with limit 2 pages through 3 matches with the SDK iterator, and search matches slug, name and description", { timeout: TEST_TIMEOUT }, async () => {
  const token = `srch${process.pid}x${++counter}`;
  const inSlug = await createPermission({ slug: `list.${token}.a`, name: "first" });
  const inName = await createPermission({ slug: unique("list.byname"), name: `named ${token}` });
  const inDescription = await createPermission({ slug: unique("list.bydesc"), name: "third", description: `about ${token}` });
  await createPermission({ slug: unique("list.other"), name: "not matching" });
  const expected = new Map([
    [inSlug.id, { id: inSlug.id, name: "first", slug: inSlug.slug }],
    [inName.id, { id: inName.id, name: `named ${token}`, slug: inName.slug }],
    [inDescription.id, { id: inDescription.id, name: "third", slug: inDescription.slug, description: `about ${token}` }],
  ]);

  const pages = await allPages(sdk.permissions.listPermissions({ limit: 2, search: token }));
  assert.equal(pages.length, 2, `3 matches at 2 per page are 2 pages; got ${JSON.stringify(pages)}`);
  for (const p of pages) assert.match(p.meta.requestId, /^req_/);
  assert.equal(pages[0].data.length, 2);
  assert.equal(pages[0].pagination.hasMore, true);
  assert.equal(typeof pages[0].pagination.cursor, "string");
  assert.equal(pages[1].data.length, 1);
  assert.equal(pages[1].pagination.hasMore, false);
  assert.equal(pages[1].pagination.cursor, undefined, "no cursor on the last page");
  const lastWire = rec.lastJson("/v2/permissions.listPermissions");
  assert.deepEqual(lastWire.pagination, { hasMore: false }, "the last page's pagination on the wire");

  const listed = pages.flatMap((p) => p.data);
  assert.deepEqual(sorted(listed.map((p) => p.id)), sorted(expected.keys()), "every match exactly once");
  for (const item of listed) assert.deepEqual(item, expected.get(item.id), `listed ${item.id} as created`);

  // A manual cursor gives the same sequence.
  const first = await sdk.permissions.listPermissions({ limit: 2, search: token });
  const second = await sdk.permissions.listPermissions({ limit: 2, search: token, cursor: first.result.pagination.cursor });
  assert.deepEqual(
    [...first.result.data, ...second.result.data].map((p) => p.id),
    listed.map((p) => p.id),
  );

  // Search by the id itself, and a search that matches nothing.
  const byId = await sdk.permissions.listPermissions({ search: inName.id });
  assert.deepEqual(byId.result.data, [expected.get(inName.id)]);
  const none = await sdk.permissions.listPermissions({ search: `${token}nothing` });
  assert.deepEqual(none.result.data, []);
  assert.equal(none.result.pagination.hasMore, false);

  // Without a search every permission of the workspace is listed (here: more than the matches).
  const everything = (await allPages(sdk.permissions.listPermissions({ limit: 100 }))).flatMap((p) => p.data);
  for (const id of expected.keys()) assert.ok(everything.some((p) => p.id === id), `${id} in the unfiltered list`);
  assert.ok(everything.length >= 4);
});

test("permissions.deletePermission removes it: getPermission answers 404 permission_not_found, and keys and roles lose it", { timeout: TEST_TIMEOUT }, async () => {
  const doomed = await createPermission({ slug: unique("doomed") });
  const kept = await createPermission({ slug: unique("kept") });
  const role = await createRole({ permissions: [doomed.slug, kept.slug] });
  const { keyId, key } = await createKey({ permissions: [doomed.slug], roles: [role.name] });
  assert.equal(await verifyCode(key, doomed.slug), "VALID", "VALID (and cached) before the delete");

  const res = await sdk.permissions.deletePermission({ permission: doomed.id });
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(res.data, {});
  assert.deepEqual(wireData("/v2/permissions.deletePermission"), {});

  const err = await expectSdkError(sdk.permissions.getPermission({ permission: doomed.id }), notFound("permission_not_found"));
  assertDetail(err, "The requested permission does not exist.");
  await expectSdkError(sdk.permissions.getPermission({ permission: doomed.slug }), notFound("permission_not_found"));
  await expectSdkError(sdk.permissions.deletePermission({ permission: doomed.id }), notFound("permission_not_found"));

  assert.deepEqual((await getRole(role.id)).permissions?.map((p) => p.slug), [kept.slug], "the role lost it");
  const data = await getKey(keyId);
  assert.deepEqual(data.permissions, [kept.slug], "the key lost it, directly and through the role");
  assert.equal(await verifyCode(key, doomed.slug), "INSUFFICIENT_PERMISSIONS");
  assert.equal(await verifyCode(key, kept.slug), "VALID");

  // By slug works too.
  await sdk.permissions.deletePermission({ permission: kept.slug });
  await expectSdkError(sdk.permissions.getPermission({ permission: kept.id }), notFound("permission_not_found"));
});

// ---- roles: create, get, list, setRolePermissions, delete ----

test("permissions.createRole with permissions creates the missing ones, and getRole by id and by name shows them", { timeout: TEST_TIMEOUT }, async () => {
  const existing = await createPermission({ slug: unique("role.existing"), name: "existing", description: "already there" });
  const missing = unique("role.missing");
  const name = unique("Editor Role");
  const res = await sdk.permissions.createRole({
    name,
    description: "Edits things",
    // The second spelling of `missing` differs only in case: one permission.
    permissions: [existing.slug, missing, missing.toUpperCase()],
  });
  assert.match(res.meta.requestId, /^req_/);
  assert.match(res.data.roleId, /^role_[a-zA-Z0-9]+$/);
  assert.deepEqual(wireData("/v2/permissions.createRole"), { roleId: res.data.roleId });

  const created = await getPermission(missing);
  assert.match(created.id, /^perm_/);
  assert.equal(created.slug, missing);
  assert.equal(typeof created.name, "string");

  const byId = await getRole(res.data.roleId);
  const wire = wireData("/v2/permissions.getRole");
  assert.deepEqual(Object.keys(wire).sort(), ["description", "id", "name", "permissions"], `wire data ${JSON.stringify(wire)}`);
  assert.deepEqual(normRole(byId), normRole({
    id: res.data.roleId,
    name,
    description: "Edits things",
    permissions: [
      { id: existing.id, name: "existing", slug: existing.slug, description: "already there" },
      created,
    ],
  }));
  assert.deepEqual(normRole(await getRole(name)), normRole(byId), "getRole by name shows the same role");
});

test("permissions.createRole without permissions or description shows an empty role", { timeout: TEST_TIMEOUT }, async () => {
  const { id, name } = await createRole();
  const role = await getRole(id);
  assert.equal(role.description, undefined);
  assert.deepEqual(role.permissions ?? [], []);
  assert.deepEqual({ ...role, permissions: undefined }, { id, name, permissions: undefined });
});

test("permissions.createRole with a name that already exists answers 409 role_already_exists", { timeout: TEST_TIMEOUT }, async () => {
  const { id, name } = await createRole({ description: "original" });
  const err = await expectSdkError(
    sdk.permissions.createRole({ name, description: "copy" }),
    conflict("role_already_exists"),
  );
  assertDetail(err, `A role with name '${name}' already exists in this workspace`);
  assert.equal((await getRole(id)).description, "original", "the original is unchanged");
});

test("permissions.getRole of an unknown id or name answers 404 role_not_found", { timeout: TEST_TIMEOUT }, async () => {
  for (const role of ["role_doesnotexist00", unique("no such role")]) {
    const err = await expectSdkError(sdk.permissions.getRole({ role }), notFound("role_not_found"));
    assertDetail(err, "The requested role does not exist.");
  }
});

test("permissions.listRoles with limit 2 pages through 3 matches with the SDK iterator, with their permissions, and search filters", { timeout: TEST_TIMEOUT }, async () => {
  const token = `rsrch${process.pid}x${++counter}`;
  const perm = await createPermission({ slug: unique("listroles.perm") });
  const roles = [
    await createRole({ name: `${token} one`, permissions: [perm.slug] }),
    await createRole({ name: `${token} two` }),
    await createRole({ name: unique("described"), description: `has ${token}` }),
  ];
  await createRole({ name: unique("unrelated") });

  const pages = await allPages(sdk.permissions.listRoles({ limit: 2, search: token }));
  assert.equal(pages.length, 2, `3 matches at 2 per page are 2 pages; got ${JSON.stringify(pages)}`);
  assert.equal(pages[0].data.length, 2);
  assert.equal(pages[0].pagination.hasMore, true);
  assert.equal(typeof pages[0].pagination.cursor, "string");
  assert.equal(pages[1].data.length, 1);
  assert.equal(pages[1].pagination.hasMore, false);
  assert.equal(pages[1].pagination.cursor, undefined, "no cursor on the last page");

  const listed = pages.flatMap((p) => p.data);
  assert.deepEqual(sorted(listed.map((r) => r.id)), sorted(roles.map((r) => r.id)), "every match exactly once");
  for (const item of listed) {
    assert.deepEqual(normRole(item), normRole(await getRole(item.id)), `listRoles shows ${item.name} as getRole does`);
  }
  const one = listed.find((r) => r.id === roles[0].id);
  assert.deepEqual(one.permissions?.map((p) => p.slug), [perm.slug], "roles are listed with their permissions");

  const first = await sdk.permissions.listRoles({ limit: 2, search: token });
  const second = await sdk.permissions.listRoles({ limit: 2, search: token, cursor: first.result.pagination.cursor });
  assert.deepEqual([...first.result.data, ...second.result.data].map((r) => r.id), listed.map((r) => r.id));

  const none = await sdk.permissions.listRoles({ search: `${token}nothing` });
  assert.deepEqual(none.result.data, []);
  assert.equal(none.result.pagination.hasMore, false);
});

test("permissions.setRolePermissions replaces the set, answers it sorted by slug, creates missing slugs, and accepts an empty list", { timeout: TEST_TIMEOUT }, async () => {
  const base = unique("srp");
  const a = await createPermission({ slug: `${base}.c`, name: "c", description: "third" });
  const b = await createPermission({ slug: `${base}.a`, name: "a" });
  const role = await createRole({ permissions: [a.slug] });

  const missing = `${base}.b`;
  const res = await sdk.permissions.setRolePermissions({ roleId: role.id, permissions: [a.slug, b.slug, missing] });
  assert.match(res.meta.requestId, /^req_/);
  const created = await getPermission(missing);
  assert.match(created.id, /^perm_/);
  const expected = [
    { id: b.id, name: "a", slug: b.slug },
    created,
    { id: a.id, name: "c", slug: a.slug, description: "third" },
  ];
  assert.deepEqual(res.data, expected, "the resulting permissions, sorted by slug");
  assert.deepEqual(wireData("/v2/permissions.setRolePermissions"), expected);
  assert.deepEqual((await getRole(role.id)).permissions?.slice().sort(bySlug), expected);

  const replaced = await sdk.permissions.setRolePermissions({ roleId: role.id, permissions: [b.slug] });
  assert.deepEqual(replaced.data, [{ id: b.id, name: "a", slug: b.slug }]);
  assert.deepEqual((await getRole(role.id)).permissions, [{ id: b.id, name: "a", slug: b.slug }]);
  await getPermission(a.id); // removed from the role, not deleted

  const emptied = await sdk.permissions.setRolePermissions({ roleId: role.id, permissions: [] });
  assert.deepEqual(emptied.data, []);
  assert.deepEqual(wireData("/v2/permissions.setRolePermissions"), []);
  assert.deepEqual((await getRole(role.id)).permissions ?? [], []);

  const err = await expectSdkError(
    sdk.permissions.setRolePermissions({ roleId: "role_doesnotexist00", permissions: [] }),
    notFound("role_not_found"),
  );
  assertDetail(err, "The requested role does not exist.");
});

test("permissions.deleteRole by id or name removes the role: getRole answers 404 and keys lose it at once", { timeout: TEST_TIMEOUT }, async () => {
  const perm = await createPermission({ slug: unique("deleterole.perm") });
  const byId = await createRole({ permissions: [perm.slug] });
  const byName = await createRole();
  const { keyId, key } = await createKey({ roles: [byId.name, byName.name] });
  assert.equal(await verifyCode(key, perm.slug), "VALID", "VALID (and cached) before the delete");

  const res = await sdk.permissions.deleteRole({ role: byId.id });
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(res.data, {});
  assert.deepEqual(wireData("/v2/permissions.deleteRole"), {});
  const err = await expectSdkError(sdk.permissions.getRole({ role: byId.id }), notFound("role_not_found"));
  assertDetail(err, "The requested role does not exist.");
  await getPermission(perm.id); // the role's permissions stay

  const v = await verify(key, { permissions: perm.slug });
  assert.equal(v.code, "INSUFFICIENT_PERMISSIONS");
  assert.deepEqual(v.roles, [byName.name]);

  await sdk.permissions.deleteRole({ role: byName.name });
  await expectSdkError(sdk.permissions.getRole({ role: byName.name }), notFound("role_not_found"));
  const data = await getKey(keyId);
  assert.equal(data.roles, undefined, `no roles left; got ${JSON.stringify(data.roles)}`);
  assert.equal(data.permissions, undefined);
});

// ---- authorization of permissions.* ----

test("a root key with only api.*.read_api gets 403 insufficient_permissions from every permissions.* route", { timeout: TEST_TIMEOUT }, async () => {
  const limited = client(server.url, readApiOnly.key);
  const perm = await createPermission();
  const role = await createRole();
  const calls = [
    ["createPermission", "rbac.*.create_permission", () => limited.permissions.createPermission({ name: "x", slug: unique("denied") })],
    ["getPermission", "rbac.*.read_permission", () => limited.permissions.getPermission({ permission: perm.id })],
    ["getPermission (unknown)", "rbac.*.read_permission", () => limited.permissions.getPermission({ permission: "perm_doesnotexist00" })],
    ["listPermissions", "rbac.*.read_permission", () => limited.permissions.listPermissions({})],
    ["deletePermission", "rbac.*.delete_permission", () => limited.permissions.deletePermission({ permission: perm.id })],
    ["createRole", "rbac.*.create_role", () => limited.permissions.createRole({ name: unique("denied") })],
    ["getRole", "rbac.*.read_role", () => limited.permissions.getRole({ role: role.id })],
    ["getRole (unknown)", "rbac.*.read_role", () => limited.permissions.getRole({ role: "role_doesnotexist00" })],
    ["listRoles", "rbac.*.read_role", () => limited.permissions.listRoles({})],
    ["deleteRole", "rbac.*.delete_role", () => limited.permissions.deleteRole({ role: role.id })],
    ["setRolePermissions", "rbac.*.add_permission_to_role", () => limited.permissions.setRolePermissions({ roleId: role.id, permissions: [] })],
  ];
  for (const [what, needed, call] of calls) {
    const err = await expectSdkError(call(), insufficientPermissions).catch((e) => {
      e.message = `${what}: ${e.message}`;
      throw e;
    });
    assert.equal(err.data$.error.detail, `Missing permission: '${needed}'`, `${what}: error.detail; body ${err.body}`);
  }
  // Nothing was deleted.
  await getPermission(perm.id);
  await getRole(role.id);
});

test("a root key with rbac.*.create_role and rbac.*.add_permission_to_role but not rbac.*.create_permission gets 403 when createRole names a missing permission", { timeout: TEST_TIMEOUT }, async () => {
  const limited = client(server.url, rolesNotPermissions.key);
  const existing = await createPermission({ slug: unique("limited.existing") });
  const missing = unique("limited.missing");
  const name = unique("limited role");

  const err = await expectSdkError(
    limited.permissions.createRole({ name, permissions: [existing.slug, missing] }),
    insufficientPermissions,
  );
  assertDetail(err, "Missing permission: 'rbac.*.create_permission'");
  await expectSdkError(sdk.permissions.getRole({ role: name }), notFound("role_not_found"));
  await expectSdkError(sdk.permissions.getPermission({ permission: missing }), notFound("permission_not_found"));

  // With only existing permissions the same key may create the role.
  const res = await limited.permissions.createRole({ name, permissions: [existing.slug] });
  assert.match(res.data.roleId, /^role_/);
  assert.deepEqual((await getRole(res.data.roleId)).permissions?.map((p) => p.slug), [existing.slug]);
});

// ---- keys.{add,remove,set}Permissions ----

test("keys.addPermissions attaches existing and new slugs and answers the key's direct permissions; adding again changes nothing", { timeout: TEST_TIMEOUT }, async () => {
  const existing = await createPermission({ slug: unique("kp.existing"), name: "existing", description: "desc" });
  const rolePerm = await createPermission({ slug: unique("kp.viarole") });
  const role = await createRole({ permissions: [rolePerm.slug] });
  const { keyId, key } = await createKey({ roles: [role.name] });
  const fresh = unique("kp.fresh");

  const res = await sdk.keys.addPermissions({ keyId, permissions: [existing.slug, fresh] });
  assert.match(res.meta.requestId, /^req_/);
  const created = await getPermission(fresh);
  assert.match(created.id, /^perm_/);
  const expected = [{ id: existing.id, name: "existing", slug: existing.slug, description: "desc" }, created].sort(bySlug);
  assert.deepEqual([...res.data].sort(bySlug), expected, "only the direct permissions, not the role's");
  assert.deepEqual([...wireData("/v2/keys.addPermissions")].sort(bySlug), expected);

  const again = await sdk.keys.addPermissions({ keyId, permissions: [existing.slug] });
  assert.deepEqual([...again.data].sort(bySlug), expected);

  const data = await getKey(keyId);
  assert.deepEqual(sorted(data.permissions ?? []), sorted([existing.slug, fresh, rolePerm.slug]));
  assert.equal(await verifyCode(key, `${existing.slug} AND ${fresh} AND ${rolePerm.slug}`), "VALID");

  await expectSdkError(sdk.keys.addPermissions({ keyId: "key_doesnotexist00", permissions: [existing.slug] }), notFound("key_not_found"));
});

test("keys.removePermissions detaches and answers the remaining direct permissions; an unknown slug answers 404 permission_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const one = await createPermission({ slug: unique("kr.one"), name: "one" });
  const two = await createPermission({ slug: unique("kr.two"), name: "two" });
  const { keyId, key } = await createKey({ permissions: [one.slug, two.slug] });
  assert.equal(await verifyCode(key, one.slug), "VALID", "VALID (and cached) before the removal");

  const res = await sdk.keys.removePermissions({ keyId, permissions: [one.slug] });
  assert.match(res.meta.requestId, /^req_/);
  assert.deepEqual(res.data, [{ id: two.id, name: "two", slug: two.slug }]);
  assert.deepEqual(wireData("/v2/keys.removePermissions"), [{ id: two.id, name: "two", slug: two.slug }]);
  assert.equal(await verifyCode(key, one.slug), "INSUFFICIENT_PERMISSIONS", "the very next verify sees the removal");
  await getPermission(one.id); // detached, not deleted

  const unknown = unique("kr.unknown");
  const err = await expectSdkError(
    sdk.keys.removePermissions({ keyId, permissions: [two.slug, unknown] }),
    notFound("permission_not_found"),
  );
  assertDetail(err, `Permission '${unknown}' was not found.`);
  assert.deepEqual((await getKey(keyId)).permissions, [two.slug], "a failed removal removes nothing");

  const last = await sdk.keys.removePermissions({ keyId, permissions: [two.slug] });
  assert.deepEqual(last.data, []);
  assert.deepEqual(wireData("/v2/keys.removePermissions"), []);
  assert.equal((await getKey(keyId)).permissions, undefined);
});

test("keys.setPermissions replaces the direct permissions, leaves role permissions alone, and an empty list clears them", { timeout: TEST_TIMEOUT }, async () => {
  const old = await createPermission({ slug: unique("ks.old") });
  const keep = await createPermission({ slug: unique("ks.keep"), name: "keep" });
  const rolePerm = await createPermission({ slug: unique("ks.viarole") });
  const role = await createRole({ permissions: [rolePerm.slug] });
  const { keyId, key } = await createKey({ permissions: [old.slug, keep.slug], roles: [role.name] });
  const fresh = unique("ks.fresh");

  const res = await sdk.keys.setPermissions({ keyId, permissions: [keep.slug, fresh] });
  assert.match(res.meta.requestId, /^req_/);
  const created = await getPermission(fresh);
  const expected = [{ id: keep.id, name: "keep", slug: keep.slug }, created].sort(bySlug);
  assert.deepEqual([...res.data].sort(bySlug), expected, "the key's direct permissions after the call");
  assert.deepEqual([...wireData("/v2/keys.setPermissions")].sort(bySlug), expected);
  assert.deepEqual(sorted((await getKey(keyId)).permissions ?? []), sorted([keep.slug, fresh, rolePerm.slug]));
  assert.equal(await verifyCode(key, old.slug), "INSUFFICIENT_PERMISSIONS");

  const cleared = await sdk.keys.setPermissions({ keyId, permissions: [] });
  assert.deepEqual(cleared.data, []);
  assert.deepEqual(wireData("/v2/keys.setPermissions"), []);
  assert.deepEqual((await getKey(keyId)).permissions, [rolePerm.slug], "role permissions stay");
  assert.equal(await verifyCode(key, rolePerm.slug), "VALID");
  assert.equal(await verifyCode(key, keep.slug), "INSUFFICIENT_PERMISSIONS");
});

// ---- keys.{add,remove,set}Roles ----

test("keys.addRoles attaches roles and answers every role of the key with its permissions; an unknown role answers 404 role_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const p1 = await createPermission({ slug: unique("kar.p1") });
  const p2 = await createPermission({ slug: unique("kar.p2") });
  const reader = await createRole({ name: unique("reader"), description: "reads", permissions: [p1.slug] });
  const writer = await createRole({ name: unique("writer"), permissions: [p1.slug, p2.slug] });
  const { keyId, key } = await createKey({ roles: [reader.name] });
  assert.equal(await verifyCode(key, p2.slug), "INSUFFICIENT_PERMISSIONS", "(and cached) before addRoles");

  const res = await sdk.keys.addRoles({ keyId, roles: [writer.name] });
  assert.match(res.meta.requestId, /^req_/);
  const expected = normRoles([await getRole(reader.id), await getRole(writer.id)]);
  assert.deepEqual(normRoles(res.data), expected);
  assert.deepEqual(normRoles(wireData("/v2/keys.addRoles")), expected);
  assert.equal(expected[0].permissions.length + expected[1].permissions.length, 3, "each role with its permissions");

  const again = await sdk.keys.addRoles({ keyId, roles: [writer.name] });
  assert.deepEqual(normRoles(again.data), expected, "adding a held role changes nothing");

  const data = await getKey(keyId);
  assert.deepEqual(sorted(data.roles ?? []), sorted([reader.name, writer.name]));
  assert.deepEqual(sorted(data.permissions ?? []), sorted([p1.slug, p2.slug]), "permissions through roles, deduplicated");
  assert.equal(await verifyCode(key, p2.slug), "VALID", "the very next verify sees the new role");

  const unknown = unique("no such role");
  const err = await expectSdkError(sdk.keys.addRoles({ keyId, roles: [unknown] }), notFound("role_not_found"));
  assertDetail(err, `Role '${unknown}' was not found.`);
  assert.deepEqual(sorted((await getKey(keyId)).roles ?? []), sorted([reader.name, writer.name]));
});

test("keys.removeRoles detaches roles and answers the remaining ones; an unknown role answers 404 role_not_found", { timeout: TEST_TIMEOUT }, async () => {
  const p1 = await createPermission({ slug: unique("krr.p1") });
  const stays = await createRole({ name: unique("stays") });
  const goes = await createRole({ name: unique("goes"), permissions: [p1.slug] });
  const { keyId, key } = await createKey({ roles: [stays.name, goes.name] });
  assert.equal(await verifyCode(key, p1.slug), "VALID", "VALID (and cached) before removeRoles");

  const res = await sdk.keys.removeRoles({ keyId, roles: [goes.name] });
  assert.match(res.meta.requestId, /^req_/);
  const expected = [normRole(await getRole(stays.id))];
  assert.deepEqual(res.data.map(normRole), expected);
  assert.deepEqual(wireData("/v2/keys.removeRoles").map(normRole), expected);
  assert.equal(await verifyCode(key, p1.slug), "INSUFFICIENT_PERMISSIONS", "the very next verify sees the removal");
  await getRole(goes.id); // detached, not deleted

  const unknown = unique("no such role");
  const err = await expectSdkError(sdk.keys.removeRoles({ keyId, roles: [unknown] }), notFound("role_not_found"));
  assertDetail(err, `Role '${unknown}' was not found.`);

  const none = await sdk.keys.removeRoles({ keyId, roles: [stays.name] });
  assert.deepEqual(none.data, []);
  assert.equal((await getKey(keyId)).roles, undefined);
});

test("keys.setRoles replaces the roles and answers them with their permissions; an empty list clears them", { timeout: TEST_TIMEOUT }, async () => {
  const p1 = await createPermission({ slug: unique("ksr.p1") });
  const p2 = await createPermission({ slug: unique("ksr.p2") });
  const first = await createRole({ name: unique("first"), permissions: [p1.slug] });
  const second = await createRole({ name: unique("second"), description: "two", permissions: [p2.slug] });
  const { keyId, key } = await createKey({ roles: [first.name] });

  const res = await sdk.keys.setRoles({ keyId, roles: [second.name] });
  assert.match(res.meta.requestId, /^req_/);
  const expected = [normRole(await getRole(second.id))];
  assert.deepEqual(res.data.map(normRole), expected);
  assert.deepEqual(wireData("/v2/keys.setRoles").map(normRole), expected);
  assert.deepEqual(expected[0].permissions?.map((p) => p.slug), [p2.slug]);
  const data = await getKey(keyId);
  assert.deepEqual(data.roles, [second.name]);
  assert.deepEqual(data.permissions, [p2.slug]);
  assert.equal(await verifyCode(key, p1.slug), "INSUFFICIENT_PERMISSIONS");
  assert.equal(await verifyCode(key, p2.slug), "VALID");

  const unknown = unique("no such role");
  const err = await expectSdkError(sdk.keys.setRoles({ keyId, roles: [first.name, unknown] }), notFound("role_not_found"));
  assertDetail(err, `Role '${unknown}' was not found.`);
  assert.deepEqual((await getKey(keyId)).roles, [second.name], "a failed setRoles changes nothing");

  const cleared = await sdk.keys.setRoles({ keyId, roles: [] });
  assert.deepEqual(cleared.data, []);
  assert.deepEqual(wireData("/v2/keys.setRoles"), []);
  const after = await getKey(keyId);
  assert.equal(after.roles, undefined);
  assert.equal(after.permissions, undefined);
});

// ---- createKey / updateKey / getKey with permissions and roles ----

test("keys.createKey with permissions and roles: getKey shows the union of direct and role permissions and the role names", { timeout: TEST_TIMEOUT }, async () => {
  const shared = await createPermission({ slug: unique("ck.shared") });
  const onlyRole = await createPermission({ slug: unique("ck.onlyrole") });
  const role = await createRole({ permissions: [shared.slug, onlyRole.slug] });
  const direct = unique("ck.direct"); // does not exist yet: createKey creates it

  const { keyId } = await createKey({ permissions: [direct, shared.slug], roles: [role.name] });
  assert.match((await getPermission(direct)).id, /^perm_/, "createKey created the missing permission");

  const data = await getKey(keyId);
  assert.deepEqual(sorted(data.permissions ?? []), sorted([direct, shared.slug, onlyRole.slug]), "deduplicated union");
  assert.deepEqual(data.roles, [role.name]);
  const wire = wireData("/v2/keys.getKey");
  assert.deepEqual(
    Object.keys(wire).sort(),
    ["createdAt", "enabled", "keyId", "permissions", "roles", "start"],
    `wire data ${JSON.stringify(wire)}`,
  );

  const unknown = unique("no such role");
  const err = await expectSdkError(sdk.keys.createKey({ apiId, roles: [unknown] }), notFound("role_not_found"));
  assertDetail(err, `Role '${unknown}' was not found.`);
});

test("keys.updateKey with permissions and roles replaces them, and without them leaves them alone", { timeout: TEST_TIMEOUT }, async () => {
  const p1 = await createPermission({ slug: unique("uk.p1") });
  const p2 = await createPermission({ slug: unique("uk.p2") });
  const r1 = await createRole({ permissions: [p1.slug] });
  const r2 = await createRole({ permissions: [p2.slug] });
  const { keyId, key } = await createKey({ permissions: [p1.slug], roles: [r1.name] });
  assert.equal(await verifyCode(key, p1.slug), "VALID", "VALID (and cached) before the update");

  await sdk.keys.updateKey({ keyId, name: "renamed" });
  let data = await getKey(keyId);
  assert.deepEqual(data.permissions, [p1.slug]);
  assert.deepEqual(data.roles, [r1.name]);

  const fresh = unique("uk.fresh");
  const res = await sdk.keys.updateKey({ keyId, permissions: [fresh], roles: [r2.name] });
  assert.deepEqual(res.data, {});
  const created = await getPermission(fresh);
  assert.match(created.id, /^perm_/, "updateKey created the missing permission");
  data = await getKey(keyId);
  assert.deepEqual(sorted(data.permissions ?? []), sorted([fresh, p2.slug]));
  assert.deepEqual(data.roles, [r2.name]);
  assert.equal(await verifyCode(key, p1.slug), "INSUFFICIENT_PERMISSIONS", "the very next verify sees the update");
  assert.equal(await verifyCode(key, `${fresh} AND ${p2.slug}`), "VALID");

  await sdk.keys.updateKey({ keyId, permissions: [], roles: [] });
  data = await getKey(keyId);
  assert.equal(data.permissions, undefined);
  assert.equal(data.roles, undefined);

  const unknown = unique("no such role");
  const err = await expectSdkError(sdk.keys.updateKey({ keyId, roles: [unknown] }), notFound("role_not_found"));
  assertDetail(err, `Role '${unknown}' was not found.`);
});

// ---- keys.verifyKey with permission queries ----

test("keys.verifyKey with a permission query answers VALID or INSUFFICIENT_PERMISSIONS, and lists the key's permissions and roles", { timeout: TEST_TIMEOUT }, async () => {
  const base = unique("vq");
  const [a, b, c] = [`${base}.a`, `${base}.b`, `${base}.c`];
  const role = await createRole({ name: unique("verifier"), permissions: [c] });
  const { keyId, key } = await createKey({ name: "rbac", permissions: [a], roles: [role.name] });

  const v = await verify(key, { permissions: a });
  assert.equal(v.valid, true);
  assert.equal(v.code, "VALID");
  assert.equal(v.keyId, keyId);
  assert.deepEqual(sorted(v.permissions ?? []), sorted([a, c]), "direct and role permissions");
  assert.deepEqual(v.roles, [role.name]);
  const wire = wireData("/v2/keys.verifyKey");
  assert.deepEqual(
    Object.keys(wire).sort(),
    ["code", "enabled", "keyId", "name", "permissions", "roles", "valid"],
    `wire data ${JSON.stringify(wire)}`,
  );

  const denied = await verify(key, { permissions: b });
  assert.equal(denied.valid, false);
  assert.equal(denied.code, "INSUFFICIENT_PERMISSIONS");
  assert.equal(denied.keyId, keyId);
  assert.deepEqual(sorted(denied.permissions ?? []), sorted([a, c]));
  assert.deepEqual(denied.roles, [role.name]);

  const cases = [
    [`${a} AND ${c}`, "VALID"],
    [`${a} AND ${b}`, "INSUFFICIENT_PERMISSIONS"],
    [`${a} OR ${b}`, "VALID"],
    [`${b} OR ${base}.d`, "INSUFFICIENT_PERMISSIONS"],
    [`${a} AND (${b} OR ${c})`, "VALID"],
    [`${c} AND (${a} OR ${b})`, "VALID"],
    [`${b} AND (${a} OR ${c})`, "INSUFFICIENT_PERMISSIONS"],
    [`${a} AND (${b} OR ${base}.d)`, "INSUFFICIENT_PERMISSIONS"],
    [`(${b} AND ${c}) OR ${a}`, "VALID"],
    [`${b} AND ${c} OR ${a}`, "VALID"], // AND binds tighter than OR
    [`${a} and (${b} or ${c})`, "VALID"], // lowercase operators
    [`${b} and (${a} or ${c})`, "INSUFFICIENT_PERMISSIONS"],
    [`${a} And ${c}`, "VALID"],
    [`  ${a}\tAND\n${c}  `, "VALID"],
    [`${base}.*`, "INSUFFICIENT_PERMISSIONS"], // `*` is literal
    [`ANDROID.x OR ${a}`, "VALID"], // AND/OR are operators only as whole words
    [`ANDROID.x`, "INSUFFICIENT_PERMISSIONS"],
  ];
  for (const [query, code] of cases) {
    assert.equal(await verifyCode(key, query), code, `query ${JSON.stringify(query)}`);
  }

  // A key without any permission or role: no permissions/roles fields.
  const plain = await createKey();
  const none = await verify(plain.key, { permissions: a });
  assert.equal(none.code, "INSUFFICIENT_PERMISSIONS");
  assert.equal(none.permissions, undefined);
  assert.equal(none.roles, undefined);
});

test("keys.verifyKey matches slugs with `*`, `:`, `-` and `_` literally", { timeout: TEST_TIMEOUT }, async () => {
  const base = unique("lit");
  const star = `${base}.*`;
  const colon = `system:${base}:read`;
  const dashed = `api_v2-${base}:read`;
  const { key } = await createKey({ permissions: [star, colon, dashed] });
  assert.equal(await verifyCode(key, `${star} AND ${colon} AND ${dashed}`), "VALID");
  assert.equal(await verifyCode(key, `${star} OR ${base}.edit`), "VALID");
  assert.equal(await verifyCode(key, `${base}.edit`), "INSUFFICIENT_PERMISSIONS", "`*` in a held slug is no wildcard");
  assert.equal(await verifyCode(key, `system:${base}:*`), "INSUFFICIENT_PERMISSIONS", "`*` in a query is no wildcard");
});

test("keys.verifyKey evaluates a 25-term query", { timeout: TEST_TIMEOUT }, async () => {
  const base = unique("q25");
  const slugs = Array.from({ length: 25 }, (_, i) => `${base}.p${i}`);
  const all = await createKey({ permissions: slugs });
  const allButLast = await createKey({ permissions: slugs.slice(0, 24) });
  const onlyLast = await createKey({ permissions: [slugs[24]] });

  const and25 = slugs.join(" AND ");
  const or25 = slugs.join(" OR ");
  assert.ok(and25.length <= 1000, `the query fits the 1000-character limit (${and25.length})`);
  assert.equal(await verifyCode(all.key, and25), "VALID");
  assert.equal(await verifyCode(allButLast.key, and25), "INSUFFICIENT_PERMISSIONS");
  assert.equal(await verifyCode(onlyLast.key, or25), "VALID");
  assert.equal(await verifyCode(onlyLast.key, and25), "INSUFFICIENT_PERMISSIONS");

  const nested = `${slugs[0]} AND (${slugs.slice(1, 12).join(" OR ")}) AND (${slugs.slice(12).join(" and ")})`;
  assert.equal(await verifyCode(all.key, nested), "VALID");
  assert.equal(await verifyCode(allButLast.key, nested), "INSUFFICIENT_PERMISSIONS");
});

const syntaxErrors = [
  ["permission_1 AND", "Unexpected end of query. Expected a permission identifier or opening parenthesis."],
  [
    "(permission_1 AND permission_2",
    "Missing closing parenthesis ')' at position 30. Every opening parenthesis must have a matching closing parenthesis.",
  ],
  [
    "permission_1 AND ()",
    "Empty parentheses found at position 18. Parentheses must contain at least one permission or expression.",
  ],
  ["AND permission_1", "Unexpected token 'AND' at position 0. Expected a permission identifier or opening parenthesis."],
  ["   ", "Unexpected end of input. Please provide a valid permission query."],
  [
    "permission_1 permission_2",
    "Unexpected token 'permission_2' at position 13. The query appears to have extra content after a valid expression.",
  ],
];

for (const [query, detail] of syntaxErrors) {
  test(`keys.verifyKey with the query ${JSON.stringify(query)} answers 400 permissions_query_syntax_error with the exact detail`, { timeout: TEST_TIMEOUT }, async () => {
    const { key } = await createKey({ permissions: ["permission_1", "permission_2"] });
    const err = await expectSdkError(sdk.keys.verifyKey({ key, permissions: query }), querySyntaxError);
    assertDetail(err, detail);
    assert.deepEqual(err.data$.error.errors, [], "a handler's 400 carries an empty errors list");
  });
}

test("keys.verifyKey with an invalid character in the query answers 400 permissions_query_syntax_error", { timeout: TEST_TIMEOUT }, async () => {
  const { key } = await createKey({ permissions: ["permission_1"] });
  await expectSdkError(sdk.keys.verifyKey({ key, permissions: "permission_1 $ permission_2" }), querySyntaxError);
});

test("keys.verifyKey of an unknown key with a malformed query answers 200 NOT_FOUND, as the query is parsed after the lookup", { timeout: TEST_TIMEOUT }, async () => {
  const v = await verify("rbac_doesnotexist1234567890", { permissions: "permission_1 AND" });
  assert.deepEqual(v, { valid: false, code: "NOT_FOUND" });
  assert.deepEqual(wireData("/v2/keys.verifyKey"), { valid: false, code: "NOT_FOUND" });
});

// ---- immediate effect ----

test("after setRolePermissions removes a permission, the key's very next verify answers INSUFFICIENT_PERMISSIONS", { timeout: TEST_TIMEOUT }, async () => {
  const base = unique("imm");
  const role = await createRole({ permissions: [`${base}.read`, `${base}.write`] });
  const { key } = await createKey({ roles: [role.name] });
  const before = await verify(key, { permissions: `${base}.write` });
  assert.equal(before.code, "VALID", "VALID (and cached) before the change");
  assert.deepEqual(sorted(before.permissions ?? []), [`${base}.read`, `${base}.write`]);

  await sdk.permissions.setRolePermissions({ roleId: role.id, permissions: [`${base}.read`] });
  const after = await verify(key, { permissions: `${base}.write` });
  assert.equal(after.valid, false);
  assert.equal(after.code, "INSUFFICIENT_PERMISSIONS");
  assert.deepEqual(after.permissions, [`${base}.read`]);
  assert.equal(await verifyCode(key, `${base}.read`), "VALID");

  // And adding it back works just as fast.
  await sdk.permissions.setRolePermissions({ roleId: role.id, permissions: [`${base}.read`, `${base}.write`] });
  assert.equal(await verifyCode(key, `${base}.write`), "VALID");
});

// ---- Error documentation ----

test("every error type URL the RBAC routes returned is a documentation page served by keyward", { timeout: TEST_TIMEOUT }, async () => {
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
