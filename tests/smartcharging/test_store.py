"""ProfileSet: install/replace (K01.FR.05), clear (K10), query (K09), housekeeping, reports."""

from __future__ import annotations

from typing import Any

import pytest

from station.smartcharging import (
    ClearCriteria,
    ProfileCriteria,
    ProfileSet,
    report_batches,
)
from tests.smartcharging.builders import HOUR, T0, Purpose, at, profile

EXTERNAL = profile(-1, Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, evse=0, limit_source="EMS")
GENERATION = profile(-2, Purpose.LOCAL_GENERATION, evse=1, limit_source="EMS")
MAX = profile(1, Purpose.CHARGING_STATION_MAX_PROFILE, evse=0)
DEFAULT_ALL = profile(2, Purpose.TX_DEFAULT_PROFILE, evse=0, stack=1)
DEFAULT_1 = profile(3, Purpose.TX_DEFAULT_PROFILE, evse=1, stack=2)
TX_1 = profile(4, Purpose.TX_PROFILE, evse=1, stack=0, transaction_id="tx-1")
TX_2 = profile(5, Purpose.TX_PROFILE, evse=2, stack=0, transaction_id="tx-2")
UNBOUND_2 = profile(6, Purpose.TX_PROFILE, evse=2, stack=1)

ALL = ProfileSet([EXTERNAL, GENERATION, MAX, DEFAULT_ALL, DEFAULT_1, TX_1, TX_2, UNBOUND_2])


def ids(profiles: Any) -> list[int]:
    return [p.id for p in profiles]


def test_install_adds_and_replaces_by_id() -> None:
    empty = ProfileSet()
    one = empty.install(DEFAULT_1)
    assert (len(empty), len(one)) == (0, 1)  # the old set is unchanged
    replaced = one.install(profile(3, stack=7))
    assert len(replaced) == 1
    got = replaced.get(3)
    assert got is not None and got.stack_level == 7
    assert one.get(3) == DEFAULT_1


def test_set_basics() -> None:
    assert ids(ALL) == [-2, -1, 1, 2, 3, 4, 5, 6]  # id order
    assert 4 in ALL and 99 not in ALL
    assert ALL.get(99) is None
    assert ProfileSet([TX_1, MAX]) == ProfileSet([MAX, TX_1])
    assert hash(ProfileSet([TX_1, MAX])) == hash(ProfileSet([MAX, TX_1]))
    assert ProfileSet([MAX]) != ProfileSet([TX_1])
    assert "ProfileSet" in repr(ProfileSet([MAX]))
    assert ids(ALL.for_evse(0)) == [-1, 1, 2]


CLEAR = [
    pytest.param({"profile_id": 4}, [4], id="by-id"),
    pytest.param({"profile_id": 99}, [], id="unknown-id"),
    pytest.param({"profile_id": -1}, [], id="external-not-by-csms"),
    pytest.param({"profile_id": -1, "include_external": True}, [-1], id="external-by-its-owner"),
    pytest.param(
        {"profile_id": 4, "criteria": ClearCriteria(evse_id=2)}, [4], id="id-wins-over-criteria"
    ),
    pytest.param({}, [1, 2, 3, 4, 5, 6], id="everything-the-csms-set"),
    pytest.param({"criteria": ClearCriteria(evse_id=0)}, [1, 2], id="evse0-means-station-profiles"),
    pytest.param({"criteria": ClearCriteria(evse_id=2)}, [5, 6], id="one-evse"),
    pytest.param(
        {"criteria": ClearCriteria(purpose=Purpose.TX_DEFAULT_PROFILE)}, [2, 3], id="purpose"
    ),
    pytest.param({"criteria": ClearCriteria(stack_level=0)}, [1, 4, 5], id="stack-level"),
    pytest.param(
        {"criteria": ClearCriteria(evse_id=1, purpose=Purpose.TX_PROFILE, stack_level=0)},
        [4],
        id="all-criteria",
    ),
    pytest.param(
        {"criteria": ClearCriteria(purpose=Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS)},
        [],
        id="external-purpose-K10",
    ),
    pytest.param({"criteria": ClearCriteria(evse_id=3)}, [], id="nothing-matches"),
]


@pytest.mark.parametrize(("options", "cleared"), CLEAR)
def test_clear(options: dict[str, Any], cleared: list[int]) -> None:
    after, gone = ALL.clear(**options)
    assert list(gone) == cleared
    assert ids(after) == [i for i in ids(ALL) if i not in cleared]
    if not cleared:
        assert after is ALL


def test_clear_limit_source_k13() -> None:
    after, gone = ALL.clear_limit_source("EMS")
    assert gone == (-2, -1)
    assert ids(after) == [1, 2, 3, 4, 5, 6]
    assert ALL.clear_limit_source("EMS", evse_id=1)[1] == (-2,)
    assert ALL.clear_limit_source("SO")[1] == ()


QUERY = [
    pytest.param(ProfileCriteria(), [-2, -1, 1, 2, 3, 4, 5, 6], id="everything"),
    pytest.param(ProfileCriteria(evse_id=0), [-1, 1, 2], id="evse0-installed-on-the-station"),
    pytest.param(ProfileCriteria(evse_id=1), [-2, 3, 4], id="evse1"),
    pytest.param(ProfileCriteria(purpose=Purpose.TX_PROFILE), [4, 5, 6], id="purpose"),
    pytest.param(ProfileCriteria(stack_level=1), [2, 6], id="stack-level"),
    pytest.param(ProfileCriteria(profile_ids=frozenset({1, 5, 77})), [1, 5], id="ids"),
    pytest.param(ProfileCriteria(limit_sources=frozenset({"EMS"})), [-2, -1], id="limit-source"),
    pytest.param(
        ProfileCriteria(limit_sources=frozenset({"CSO"}), evse_id=2, stack_level=1),
        [6],
        id="combined",
    ),
    pytest.param(ProfileCriteria(evse_id=3), [], id="no-profiles"),
]


@pytest.mark.parametrize(("criteria", "expected"), QUERY)
def test_query_k09(criteria: ProfileCriteria, expected: list[int]) -> None:
    assert ids(ALL.query(criteria)) == expected


def test_bind_and_remove_transaction() -> None:
    bound = ALL.bind_transaction(2, "tx-9")
    got = bound.get(6)
    assert got is not None and got.transaction_id == "tx-9"
    assert bound.bind_transaction(2, "tx-10").get(6) == got  # only unbound ones are bound
    assert ALL.bind_transaction(3, "tx-9") is ALL

    after, gone = ALL.remove_transaction("tx-1")
    assert gone == (4,)
    assert ids(after) == [-2, -1, 1, 2, 3, 5, 6]
    assert ALL.remove_transaction("tx-2", evse_id=2)[1] == (5, 6)  # with the never-bound one
    assert ALL.remove_transaction("tx-unknown")[1] == ()


def test_remove_expired() -> None:
    profiles = ProfileSet(
        [profile(1, valid_to=at(HOUR)), profile(2, valid_to=at(2 * HOUR)), profile(3)]
    )
    assert profiles.remove_expired(at(HOUR))[1] == (1,)
    assert profiles.remove_expired(T0)[1] == ()


def test_remove_invalid_after_offline() -> None:
    profiles = ProfileSet(
        [
            profile(1, max_offline_duration_s=600, invalid_after_offline_duration=True),
            profile(2, max_offline_duration_s=600),
            profile(3, max_offline_duration_s=60, invalid_after_offline_duration=True),
        ]
    )
    assert profiles.remove_invalid_after_offline(T0, at(300))[1] == (3,)
    assert profiles.remove_invalid_after_offline(T0, at(601))[1] == (1, 3)


def test_report_batches_split_by_evse_source_and_size() -> None:
    batches = report_batches(ALL, max_profiles_per_message=2)
    assert [(b.evse_id, b.limit_source, ids(b.profiles), b.tbc) for b in batches] == [
        (0, "CSO", [1, 2], True),
        (0, "EMS", [-1], True),
        (1, "CSO", [3, 4], True),
        (1, "EMS", [-2], True),
        (2, "CSO", [5, 6], False),
    ]
    single = report_batches([MAX], max_profiles_per_message=10)
    assert [(ids(b.profiles), b.tbc) for b in single] == [([1], False)]
    assert report_batches([], max_profiles_per_message=1) == ()
    with pytest.raises(ValueError, match="max_profiles_per_message"):
        report_batches([MAX], max_profiles_per_message=0)
