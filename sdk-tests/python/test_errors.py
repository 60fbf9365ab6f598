"""The error contract through the official Python SDK: each status becomes the SDK's typed error
class, with the envelope's fields (status, type URL, title, detail, request id) filled in."""

import time
from dataclasses import dataclass

import pytest
from conftest import cli_json
from unkey.py import Unkey, errors


@dataclass
class Expected:
    cls: type
    status: int
    type_suffix: str
    title: str


def expect(call, want: Expected):
    """Runs `call()`, which must raise `want.cls`, and checks the parsed envelope."""
    with pytest.raises(errors.UnkeyError) as caught:
        call()
    err = caught.value
    assert isinstance(err, want.cls), f"expected {want.cls.__name__}, got {type(err).__name__}: {err}"
    assert err.status_code == want.status
    body = err.data.error
    assert body.status == want.status
    assert body.type.endswith(f"/docs/errors/{want.type_suffix}"), body.type
    assert body.title == want.title
    assert body.detail.strip()
    assert err.data.meta.request_id.startswith("req_")
    assert err.headers.get("x-request-id") == err.data.meta.request_id
    return err


def test_400_invalid_input_names_the_field(unkey: Unkey):
    err = expect(
        lambda: unkey.apis.create_api(name=""),
        Expected(errors.BadRequestErrorResponse, 400, "unkey/application/invalid_input", "Bad Request"),
    )
    assert err.data.error.errors, "a 400 lists what was wrong"
    assert any("name" in e.location for e in err.data.error.errors), err.data.error.errors
    assert all(e.message for e in err.data.error.errors)


def test_400_missing_and_malformed_authorization(server):
    # The SDK sends no Authorization header without a root key.
    with Unkey(server_url=server.url, retry_config=None) as anonymous:
        expect(
            lambda: anonymous.apis.get_api(api_id="api_whatever"),
            Expected(errors.BadRequestErrorResponse, 400, "unkey/authentication/missing", "Bad Request"),
        )
    with server.client() as sdk:
        expect(
            lambda: sdk.apis.get_api(api_id="api_whatever", http_headers={"Authorization": "Basic abc"}),
            Expected(errors.BadRequestErrorResponse, 400, "unkey/authentication/malformed", "Bad Request"),
        )


def test_401_unknown_root_key(server):
    with server.client(root_key="unkey_notarealrootkey") as sdk:
        expect(
            lambda: sdk.apis.create_api(name="nope"),
            Expected(errors.UnauthorizedErrorResponse, 401, "unkey/authentication/key_not_found", "Unauthorized"),
        )


def test_403_missing_permission_and_disabled_root_key(server, api_id: str):
    with server.client(root_key=server.create_root_key("api.*.read_key")["key"]) as sdk:
        err = expect(
            lambda: sdk.apis.create_api(name="not allowed"),
            Expected(
                errors.ForbiddenErrorResponse,
                403,
                "unkey/authorization/insufficient_permissions",
                "Insufficient Permissions",
            ),
        )
        assert "api.*.create_api" in err.data.error.detail
        # As Unkey does, keys.createKey hides a failed permission check behind the API's 404.
        expect(
            lambda: sdk.keys.create_key(api_id=api_id),
            Expected(errors.NotFoundErrorResponse, 404, "unkey/data/api_not_found", "Not Found"),
        )

    root = server.create_root_key()
    server.cli("root-key", "disable", root["keyId"])
    # Never used before it was disabled, so the server has not cached it: no wait for its feed.
    with server.client(root_key=root["key"]) as sdk:
        expect(
            lambda: sdk.apis.create_api(name="disabled"),
            Expected(errors.ForbiddenErrorResponse, 403, "unkey/authorization/key_disabled", "Forbidden"),
        )


def test_404_each_resource(unkey: Unkey, unique):
    def not_found(specific):
        return Expected(errors.NotFoundErrorResponse, 404, f"unkey/data/{specific}", "Not Found")

    expect(lambda: unkey.apis.get_api(api_id="api_missing"), not_found("api_not_found"))
    expect(lambda: unkey.keys.get_key(key_id="key_missing"), not_found("key_not_found"))
    expect(lambda: unkey.keys.create_key(api_id="api_missing"), not_found("api_not_found"))
    expect(lambda: unkey.identities.get_identity(identity="id_missing"), not_found("identity_not_found"))
    expect(lambda: unkey.permissions.get_permission(permission="perm_missing"), not_found("permission_not_found"))
    expect(
        lambda: unkey.ratelimit.get_override(namespace=unique("never_used"), identifier="x"),
        not_found("ratelimit_namespace_not_found"),
    )


def test_409_conflicts(unkey: Unkey, unique):
    conflict = lambda specific: Expected(  # noqa: E731
        errors.ConflictErrorResponse, 409, f"unkey/data/{specific}", "Conflicting Resource"
    )
    external_id = unique("conflict")
    unkey.identities.create_identity(external_id=external_id)
    expect(lambda: unkey.identities.create_identity(external_id=external_id), conflict("identity_already_exists"))

    slug = unique("conflict.perm")
    unkey.permissions.create_permission(name=slug, slug=slug)
    expect(lambda: unkey.permissions.create_permission(name=slug, slug=slug), conflict("permission_already_exists"))


def test_404_from_a_route_whose_errors_are_problem_json(unkey: Unkey):
    # Unkey's spec declares identities.deleteIdentity's errors as application/problem+json, and
    # unkey.py parses them into its typed classes only under that content type.
    expect(
        lambda: unkey.identities.delete_identity(identity="id_missing"),
        Expected(errors.NotFoundErrorResponse, 404, "unkey/data/identity_not_found", "Not Found"),
    )


def test_429_past_the_workspace_limit(server):
    # A workspace of its own, so the other tests keep calling freely.
    workspace_id = cli_json(server.database_url, "workspace", "create", "--name", "limited")["workspaceId"]
    root = cli_json(server.database_url, "root-key", "create", "--workspace", workspace_id)["key"]
    server.cli("workspace", "limit", workspace_id, "--requests-per-minute", "0")
    with server.client(root_key=root) as sdk:
        # The server hears of the limit through its change feed within a second.
        deadline = time.monotonic() + 3
        while True:
            try:
                sdk.apis.create_api(name="limited")
            except errors.TooManyRequestsErrorResponse:
                break
            assert time.monotonic() < deadline, "the workspace limit never applied"
            time.sleep(0.1)
        err = expect(
            lambda: sdk.apis.create_api(name="limited"),
            Expected(
                errors.TooManyRequestsErrorResponse,
                429,
                "user/too_many_requests/workspace_rate_limited",
                "Too Many Requests",
            ),
        )
