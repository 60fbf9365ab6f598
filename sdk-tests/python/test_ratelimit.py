"""ratelimit.* through the official Python SDK: limits, multi-limits and overrides."""

import pytest
from unkey.py import Unkey, errors


def test_limit_counts_down_then_denies(unkey: Unkey, unique):
    namespace, identifier = unique("py_ns"), "user_1"
    for remaining in (2, 1, 0):
        res = unkey.ratelimit.limit(namespace=namespace, identifier=identifier, limit=3, duration=60_000)
        assert res.meta.request_id.startswith("req_")
        data = res.data
        assert (data.success, data.limit, data.remaining) == (True, 3, remaining)
        assert data.reset > 0
        assert data.override_id is None
    denied = unkey.ratelimit.limit(namespace=namespace, identifier=identifier, limit=3, duration=60_000).data
    assert (denied.success, denied.remaining) == (False, 0)

    # Another identifier has its own window; a cost takes several at once.
    other = unkey.ratelimit.limit(namespace=namespace, identifier="user_2", limit=3, duration=60_000, cost=3).data
    assert (other.success, other.remaining) == (True, 0)


def test_multi_limit_is_all_or_nothing(unkey: Unkey, unique):
    ns = unique("py_multi")
    res = unkey.ratelimit.multi_limit(
        request=[
            {"namespace": ns, "identifier": "a", "limit": 5, "duration": 60_000},
            {"namespace": ns, "identifier": "b", "limit": 1, "duration": 60_000, "cost": 2},
        ]
    ).data
    assert res.passed is False
    assert [c.passed for c in res.limits] == [True, False]
    # Nothing was taken from "a", since the batch failed.
    again = unkey.ratelimit.limit(namespace=ns, identifier="a", limit=5, duration=60_000).data
    assert again.remaining == 4


def test_overrides(unkey: Unkey, unique):
    ns = unique("py_overrides")
    # A namespace exists once it has been used.
    unkey.ratelimit.limit(namespace=ns, identifier="warmup", limit=10, duration=60_000)

    exact = unkey.ratelimit.set_override(namespace=ns, identifier="vip", limit=100, duration=60_000).data
    assert exact.override_id
    wildcard = unkey.ratelimit.set_override(namespace=ns, identifier="team_*", limit=1, duration=60_000).data

    got = unkey.ratelimit.get_override(namespace=ns, identifier="vip").data
    assert (got.override_id, got.identifier, got.limit, got.duration) == (exact.override_id, "vip", 100, 60_000)

    # The override wins over the limit in the request, and the response names it.
    vip = unkey.ratelimit.limit(namespace=ns, identifier="vip", limit=1, duration=60_000).data
    assert (vip.success, vip.limit, vip.remaining, vip.override_id) == (True, 100, 99, exact.override_id)
    team = unkey.ratelimit.limit(namespace=ns, identifier="team_blue", limit=50, duration=60_000).data
    assert (team.limit, team.override_id) == (1, wildcard.override_id)

    page = unkey.ratelimit.list_overrides(namespace=ns, limit=1)
    seen = []
    while page is not None:
        seen += [o.identifier for o in page.result.data]
        if not page.result.pagination.has_more:
            break
        page = page.next()
    assert sorted(seen) == ["team_*", "vip"]

    unkey.ratelimit.delete_override(namespace=ns, identifier="vip")
    with pytest.raises(errors.NotFoundErrorResponse) as caught:
        unkey.ratelimit.get_override(namespace=ns, identifier="vip")
    assert caught.value.data.error.status == 404
    back = unkey.ratelimit.limit(namespace=ns, identifier="vip", limit=1, duration=60_000).data
    assert (back.limit, back.override_id) == (1, None)
