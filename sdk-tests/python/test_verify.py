"""keys.verifyKey through the official Python SDK: every outcome it can name."""

import time

import pytest
from unkey.py import Unkey, errors


def verify(unkey: Unkey, key: str, **extra):
    res = unkey.keys.verify_key(key=key, **extra)
    assert res.meta.request_id.startswith("req_")
    return res.data


def test_valid_key_carries_its_data(unkey: Unkey, api_id: str):
    created = unkey.keys.create_key(
        api_id=api_id, name="verified", meta={"tier": "gold"}, external_id="verify_owner"
    ).data
    data = verify(unkey, created.key)
    assert data.valid is True
    assert data.code == "VALID"
    assert data.key_id == created.key_id
    assert data.name == "verified"
    assert data.meta == {"tier": "gold"}
    assert data.enabled is True
    assert data.identity is not None and data.identity.external_id == "verify_owner"


def test_unknown_key_is_not_found(unkey: Unkey):
    data = verify(unkey, "py_thiskeydoesnotexist")
    assert data.valid is False
    assert data.code == "NOT_FOUND"
    assert data.key_id is None


def test_disabled_key(unkey: Unkey, api_id: str):
    created = unkey.keys.create_key(api_id=api_id, enabled=False).data
    data = verify(unkey, created.key)
    assert (data.valid, data.code, data.enabled) == (False, "DISABLED", False)

    unkey.keys.update_key(key_id=created.key_id, enabled=True)
    assert verify(unkey, created.key).code == "VALID"


def test_expired_key(unkey: Unkey, api_id: str):
    expires = int(time.time() * 1000) + 1_000
    created = unkey.keys.create_key(api_id=api_id, expires=expires).data
    assert verify(unkey, created.key).code == "VALID"
    time.sleep(max(0.0, expires / 1000 - time.time()) + 0.05)
    data = verify(unkey, created.key)
    assert (data.valid, data.code) == (False, "EXPIRED")
    assert data.expires == expires


def test_credits_are_spent_then_exhausted(unkey: Unkey, api_id: str):
    created = unkey.keys.create_key(api_id=api_id, credits={"remaining": 3}).data
    first = verify(unkey, created.key)
    assert (first.code, first.credits) == ("VALID", 2)
    second = verify(unkey, created.key, credits={"cost": 2})
    assert (second.code, second.credits) == ("VALID", 0)
    spent = verify(unkey, created.key)
    assert (spent.valid, spent.code, spent.credits) == (False, "USAGE_EXCEEDED", 0)
    # A zero cost always passes.
    assert verify(unkey, created.key, credits={"cost": 0}).code == "VALID"


def test_permission_queries(unkey: Unkey, api_id: str, unique):
    read, write = unique("documents.read"), unique("documents.write")
    for slug in (read, write):
        unkey.permissions.create_permission(name=slug, slug=slug)
    created = unkey.keys.create_key(api_id=api_id, permissions=[read]).data

    ok = verify(unkey, created.key, permissions=read)
    assert (ok.valid, ok.code) == (True, "VALID")
    assert read in (ok.permissions or [])

    denied = verify(unkey, created.key, permissions=f"{read} AND {write}")
    assert (denied.valid, denied.code) == (False, "INSUFFICIENT_PERMISSIONS")
    assert verify(unkey, created.key, permissions=f"{read} OR {write}").code == "VALID"

    # A query that does not parse is the caller's mistake: 400 with the field named.
    with pytest.raises(errors.BadRequestErrorResponse) as caught:
        verify(unkey, created.key, permissions=f"{read} AND (")
    assert caught.value.data.error.status == 400


def test_ratelimits_in_verify(unkey: Unkey, api_id: str):
    created = unkey.keys.create_key(
        api_id=api_id,
        ratelimits=[{"name": "burst", "limit": 2, "duration": 60_000, "auto_apply": True}],
    ).data
    for remaining in (1, 0):
        data = verify(unkey, created.key)
        assert data.code == "VALID"
        (limit,) = data.ratelimits
        assert (limit.name, limit.limit, limit.remaining, limit.exceeded) == ("burst", 2, remaining, False)
    data = verify(unkey, created.key)
    assert (data.valid, data.code) == (False, "RATE_LIMITED")
    assert data.ratelimits[0].exceeded is True

    # An ad hoc limit named in the request.
    other = unkey.keys.create_key(api_id=api_id).data
    limited = [{"name": "adhoc", "limit": 1, "duration": 60_000}]
    assert verify(unkey, other.key, ratelimits=limited).code == "VALID"
    assert verify(unkey, other.key, ratelimits=limited).code == "RATE_LIMITED"
