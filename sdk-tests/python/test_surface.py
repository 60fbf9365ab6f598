"""The rest of what unkey.py can call on keyward, once each, so that every response passes the
SDK's models: permissions and roles, a key's permissions and roles, apis.*, analytics and
keys.migrateKeys."""

import base64
import hashlib
import time

from conftest import cli_json
from unkey.py import Unkey


def test_permissions_and_roles(unkey: Unkey, unique):
    read, write = unique("reports.read"), unique("reports.write")
    perm_id = unkey.permissions.create_permission(name=read, slug=read, description="read reports").data.permission_id
    got = unkey.permissions.get_permission(permission=read).data
    assert (got.id, got.slug, got.description) == (perm_id, read, "read reports")
    listed = unkey.permissions.list_permissions(search=read).result.data
    assert [p.slug for p in listed] == [read]

    role_name = unique("analyst")
    role_id = unkey.permissions.create_role(name=role_name, permissions=[read]).data.role_id
    role = unkey.permissions.get_role(role=role_name).data
    assert role.id == role_id and [p.slug for p in role.permissions or []] == [read]

    # unkey.py 3.2 names the role as `role` (id or name); keyward takes that as well as `roleId`.
    now = unkey.permissions.set_role_permissions(request={"role": role_name, "permissions": [read, write]}).data
    assert sorted(p.slug for p in now) == sorted([read, write])
    now = unkey.permissions.set_role_permissions(request={"role": role_id, "permissions": [write]}).data
    assert [p.slug for p in now] == [write]
    assert any(r.id == role_id for r in unkey.permissions.list_roles(search=role_name).result.data)

    unkey.permissions.delete_role(role=role_id)
    unkey.permissions.delete_permission(permission=perm_id)
    assert unkey.permissions.list_permissions(search=read).result.data == []


def test_a_keys_permissions_and_roles(unkey: Unkey, api_id: str, unique):
    p1, p2 = unique("files.read"), unique("files.write")
    role = unique("files_admin")
    unkey.permissions.create_role(name=role, permissions=[p2])
    key_id = unkey.keys.create_key(api_id=api_id).data.key_id

    added = unkey.keys.add_permissions(key_id=key_id, permissions=[p1]).data
    assert [p.slug for p in added] == [p1]
    assert unkey.keys.set_permissions(key_id=key_id, permissions=[p1, p2]).data
    assert [p.slug for p in unkey.keys.remove_permissions(key_id=key_id, permissions=[p2]).data] == [p1]

    assert [r.name for r in unkey.keys.add_roles(key_id=key_id, roles=[role]).data] == [role]
    assert [r.name for r in unkey.keys.set_roles(key_id=key_id, roles=[role]).data] == [role]
    got = unkey.keys.get_key(key_id=key_id).data
    assert got.roles == [role] and sorted(got.permissions or []) == sorted([p1, p2])
    assert unkey.keys.remove_roles(key_id=key_id, roles=[role]).data == []


def test_apis(unkey: Unkey, unique):
    name = unique("api")
    api_id = unkey.apis.create_api(name=name).data.api_id
    got = unkey.apis.get_api(api_id=api_id).data
    assert (got.id, got.name) == (api_id, name)
    unkey.apis.delete_api(api_id=api_id)


def test_analytics(unkey: Unkey, api_id: str):
    key = unkey.keys.create_key(api_id=api_id).data.key
    unkey.keys.verify_key(key=key)
    query = "SELECT outcome, count(*) AS total FROM key_verifications_v1 WHERE key_space_id != '' GROUP BY outcome"
    deadline = time.monotonic() + 5
    while True:
        rows = unkey.analytics.get_verifications(query=query).data
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any(r["outcome"] == "VALID" and r["total"] >= 1 for r in rows), rows


def test_migrate_keys(server, unkey: Unkey, api_id: str, unique):
    migration_id = cli_json(
        server.database_url, "migration", "create", "--workspace", server.workspace_id, "--algorithm", "sha256"
    )["migrationId"]
    plaintext = unique("legacy_key")
    digest = base64.b64encode(hashlib.sha256(plaintext.encode()).digest()).decode()
    res = unkey.keys.migrate_keys(
        migration_id=migration_id, api_id=api_id, keys=[{"hash": digest, "name": "imported"}]
    ).data
    assert [m.hash for m in res.migrated] == [digest] and res.failed == []
    data = unkey.keys.verify_key(key=plaintext).data
    assert (data.code, data.key_id, data.name) == ("VALID", res.migrated[0].key_id, "imported")
