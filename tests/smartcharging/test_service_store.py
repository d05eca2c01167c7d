"""The smart-charging shell and its profile store: load at start, write-through, TxProfiles that
follow their transaction (K01, K05). Synchronous: no event loop, so no boundary timer."""

from __future__ import annotations

from datetime import datetime

from station.power import EvseRating
from station.smartcharging import ElectricalParams, OcppVersion, ReasonCode
from station.smartcharging.service import (
    EvseElectrical,
    MemoryProfileStore,
    SmartChargingService,
    StaticTransactions,
)
from tests.smartcharging.builders import T0, Purpose, limits, profile


class FixedClock:
    def now(self) -> datetime:
        return T0

    def monotonic(self) -> float:
        return 0.0


def service(store: MemoryProfileStore, counts: list[int] | None = None) -> SmartChargingService:
    return SmartChargingService(
        (EvseElectrical(1, EvseRating(20000.0, 8000.0, 50.0), ElectricalParams(400.0, dc=True)),),
        clock=FixedClock(),
        limits_for=lambda version: limits(version),
        transactions=StaticTransactions(),
        store=store,
        on_count=(counts if counts is not None else []).append,
    )


def test_stored_profiles_load_at_start_but_tx_profiles_do_not() -> None:
    store = MemoryProfileStore(
        [profile(1), profile(2, Purpose.TX_PROFILE, transaction_id="tx-old"), profile(3, evse=0)]
    )
    counts: list[int] = []
    sc = service(store, counts)
    assert [p.id for p in sc.profiles] == [1, 3]
    assert sorted(store.profiles) == [1, 3]  # the stale TxProfile is deleted too
    assert counts == [2]  # SmartChargingCtrlr.Entries is right from the start


def test_set_and_clear_write_through() -> None:
    store = MemoryProfileStore()
    sc = service(store)
    assert sc.set_profile(profile(5, received_at=T0), OcppVersion.V2_1) is None
    assert store.profiles[5] == sc.profiles.get(5)
    rejected = sc.set_profile(profile(6, stack=99), OcppVersion.V2_1)
    assert rejected is not None and 6 not in store.profiles
    assert sc.clear(profile_id=5, criteria=None) == (5,)
    assert store.profiles == {}


def test_remote_start_profile_is_bound_then_removed_with_its_transaction() -> None:
    store = MemoryProfileStore([profile(1)])
    sc = service(store)
    start = profile(7, Purpose.TX_PROFILE)
    assert sc.set_start_profile(start, OcppVersion.V2_1) is None
    assert store.profiles[7].transaction_id is None

    sc.transaction_started(1, "tx-1")
    assert sc.profiles.get(7) == store.profiles[7]
    assert store.profiles[7].transaction_id == "tx-1"

    sc.transaction_ended(1, "tx-1")
    assert [p.id for p in sc.profiles] == [1]
    assert sorted(store.profiles) == [1]


def test_remote_start_profile_must_be_a_tx_profile_without_transaction_id() -> None:
    sc = service(MemoryProfileStore())
    not_tx = sc.set_start_profile(profile(8), OcppVersion.V2_1)
    assert not_tx is not None and not_tx.reason_code == ReasonCode.INVALID_PROFILE
    named = sc.set_start_profile(
        profile(8, Purpose.TX_PROFILE, transaction_id="tx-9"), OcppVersion.V2_1
    )
    assert named is not None and named.reason_code == ReasonCode.INVALID_PROFILE
    assert len(sc.profiles) == 0
