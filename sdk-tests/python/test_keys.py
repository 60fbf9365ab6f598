"""keys.* and apis.listKeys through the official Python SDK (`unkey.py`).

Every response goes through the SDK's pydantic models, so a missing or mistyped field fails here.
"""

import time

import pytest
from unkey.py import Unkey, errors


def test_create_get_update_delete(unkey: Unkey, api_id: str):
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix="py",
        name="first",
        external_id="user_py_1",
        meta={"plan": "pro", "seats": 3},
        credits={"remaining": 10},
        ratelimits=[{"name": "requests", "limit": 5, "duration": 60_000, "auto_apply": True}],
    )
    assert created.meta.request_id.startswith("req_")
    key_id, key = created.data.key_id, created.data.key
    assert key_id.startswith("key_")
    assert key.startswith("py_")

    got = unkey.keys.get_key(key_id=key_id).data
    assert got.key_id == key_id
    assert got.name == "first"
    assert got.enabled is True
    assert got.meta == {"plan": "pro", "seats": 3}
    assert got.credits is not None and got.credits.remaining == 10
    assert got.identity is not None and got.identity.external_id == "user_py_1"
    assert [(r.name, r.limit, r.duration, r.auto_apply) for r in got.ratelimits or []] == [
        ("requests", 5, 60_000, True)
    ]
    assert key.startswith(got.start)
    assert got.created_at > 0

    expires = int(time.time() * 1000) + 3_600_000
    unkey.keys.update_key(key_id=key_id, name="renamed", meta={"plan": "free"}, expires=expires)
    got = unkey.keys.get_key(key_id=key_id).data
    assert got.name == "renamed"
    assert got.meta == {"plan": "free"}
    assert got.expires == expires
    assert got.updated_at is not None

    # `None` clears a nullable field on the wire (the SDK sends `null`).
    unkey.keys.update_key(key_id=key_id, name=None, expires=None)
    got = unkey.keys.get_key(key_id=key_id).data
    assert got.name is None
    assert got.expires is None

    deleted = unkey.keys.delete_key(key_id=key_id)
    assert deleted.meta.request_id.startswith("req_")
    with pytest.raises(errors.NotFoundErrorResponse):
        unkey.keys.get_key(key_id=key_id)
    assert unkey.keys.verify_key(key=key).data.code == "NOT_FOUND"


def test_update_credits(unkey: Unkey, api_id: str):
    key_id = unkey.keys.create_key(api_id=api_id, credits={"remaining": 5}).data.key_id
    res = unkey.keys.update_credits(key_id=key_id, operation="increment", value=3)
    assert res.data.remaining == 8
    res = unkey.keys.update_credits(key_id=key_id, operation="set", value=None)
    assert res.data.remaining is None


def test_list_keys_pages(unkey: Unkey, unique):
    api = unkey.apis.create_api(name=unique("listing")).data.api_id
    made = {unkey.keys.create_key(api_id=api, name=f"k{i}").data.key_id for i in range(5)}

    page = unkey.apis.list_keys(api_id=api, limit=2)
    seen = []
    pages = 0
    while page is not None:
        pages += 1
        assert len(page.result.data) <= 2
        seen += [k.key_id for k in page.result.data]
        if not page.result.pagination.has_more:
            break
        page = page.next()
    assert pages == 3
    assert len(seen) == 5 and set(seen) == made

    # Filter by owner.
    unkey.keys.create_key(api_id=api, external_id="owner_a")
    owned = unkey.apis.list_keys(api_id=api, external_id="owner_a").result.data
    assert len(owned) == 1 and owned[0].identity.external_id == "owner_a"


def test_whoami_and_reroll(unkey: Unkey, api_id: str):
    created = unkey.keys.create_key(api_id=api_id, name="me").data
    me = unkey.keys.whoami(key=created.key).data
    assert me.key_id == created.key_id and me.name == "me"

    # `expiration: 0` ends the old key now; the new one keeps its settings.
    rerolled = unkey.keys.reroll_key(key_id=created.key_id, expiration=0).data
    assert rerolled.key_id != created.key_id
    fresh = unkey.keys.verify_key(key=rerolled.key).data
    assert (fresh.valid, fresh.name) == (True, "me")
    assert unkey.keys.verify_key(key=created.key).data.code == "EXPIRED"
