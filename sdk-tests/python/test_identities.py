"""identities.* through the official Python SDK, and identities seen through their keys."""

import pytest
from unkey.py import Unkey, errors


def test_identity_lifecycle(unkey: Unkey, api_id: str, unique):
    external_id = unique("org")
    created = unkey.identities.create_identity(
        external_id=external_id,
        meta={"plan": "team"},
        ratelimits=[{"name": "shared", "limit": 2, "duration": 60_000, "auto_apply": True}],
    )
    assert created.meta.request_id.startswith("req_")
    identity_id = created.data.identity_id

    # By id or by external id.
    for ref in (identity_id, external_id):
        got = unkey.identities.get_identity(identity=ref).data
        assert (got.id, got.external_id, got.meta) == (identity_id, external_id, {"plan": "team"})
        assert [(r.name, r.limit, r.auto_apply) for r in got.ratelimits or []] == [("shared", 2, True)]

    updated = unkey.identities.update_identity(
        identity=external_id,
        meta={"plan": "enterprise"},
        ratelimits=[{"name": "shared", "limit": 3, "duration": 60_000, "auto_apply": True}],
    ).data
    assert updated.meta == {"plan": "enterprise"}
    assert [r.limit for r in updated.ratelimits or []] == [3]

    # Two keys of the identity share its limit.
    keys = [unkey.keys.create_key(api_id=api_id, external_id=external_id).data.key for _ in range(2)]
    codes = [unkey.keys.verify_key(key=keys[i % 2]).data.code for i in range(4)]
    assert codes == ["VALID", "VALID", "VALID", "RATE_LIMITED"]
    data = unkey.keys.verify_key(key=keys[0]).data
    assert data.identity.external_id == external_id and data.identity.meta == {"plan": "enterprise"}

    unkey.identities.delete_identity(identity=identity_id)
    with pytest.raises(errors.NotFoundErrorResponse):
        unkey.identities.get_identity(identity=identity_id)


def test_list_identities_pages_and_search(unkey: Unkey, unique):
    prefix = unique("listed")
    made = {unkey.identities.create_identity(external_id=f"{prefix}_{i}").data.identity_id for i in range(3)}

    page = unkey.identities.list_identities(limit=2)
    seen = set()
    while page is not None:
        assert len(page.result.data) <= 2
        seen |= {i.id for i in page.result.data}
        if not page.result.pagination.has_more:
            break
        page = page.next()
    assert made <= seen

    found = unkey.identities.list_identities(search=prefix).result.data
    assert {i.id for i in found} == made


def test_duplicate_external_id_is_a_conflict(unkey: Unkey, unique):
    external_id = unique("dup")
    unkey.identities.create_identity(external_id=external_id)
    with pytest.raises(errors.ConflictErrorResponse) as caught:
        unkey.identities.create_identity(external_id=external_id)
    err = caught.value
    assert err.status_code == 409
    assert err.data.error.status == 409
    assert err.data.error.type.endswith("/docs/errors/unkey/data/identity_already_exists")
    assert err.data.error.title == "Conflicting Resource"
    assert err.data.meta.request_id.startswith("req_")
