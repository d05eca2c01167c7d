"""External limits (K11-K13), Dynamic profiles (K28/K29), offline validity, vehicle needs and
allowed energy transfer: the pure parts and the service, synchronously (no event loop, so no
timer; each step calls the service directly with a settable clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.power import EvseRating, VehicleLimits
from station.smartcharging import (
    ChargingLimitSource,
    ChargingNeeds,
    ChargingNeedsStatus,
    ChargingProfile,
    ChargingProfileKind,
    ClearCriteria,
    ElectricalParams,
    EnergyTransferMode,
    ExternalLimit,
    OcppVersion,
    ProfileCriteria,
    RateUnit,
    ReasonCode,
    ScheduleUpdate,
    SmartChargingValueError,
    TransactionInfo,
    apply_schedule_update,
    discharge_permitted,
    external_profile,
    external_profile_id,
    next_pull,
    pulls_due,
    significant_change,
)
from station.smartcharging.service import (
    EvseElectrical,
    MemoryProfileStore,
    ProfileStore,
    RecordingNotifier,
    SimulatedPowerPort,
    SimulatedVehicles,
    SmartChargingService,
    StaticTransactions,
)
from station.store import ProfileRepository, open_database
from tests.smartcharging.builders import T0, Purpose, at, limits, period, profile, schedule

Kind = ChargingProfileKind


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - T0).total_seconds()


class Bench:
    def __init__(self, store: ProfileStore | None = None) -> None:
        self.clock = Clock()
        self.transactions = StaticTransactions()
        self.vehicles = SimulatedVehicles()
        self.power = SimulatedPowerPort()
        self.notifier = RecordingNotifier()
        self.store: Any = store or MemoryProfileStore()  # a MemoryProfileStore unless given
        self.significance_pct = 10.0
        self.service = SmartChargingService(
            (
                EvseElectrical(
                    1, EvseRating(20000.0, 8000.0, 50.0), ElectricalParams(400.0, dc=True)
                ),
                EvseElectrical(
                    2, EvseRating(20000.0, 8000.0, 50.0), ElectricalParams(400.0, dc=True)
                ),
            ),
            clock=self.clock,
            limits_for=lambda version: limits(version),
            transactions=self.transactions,
            vehicles=self.vehicles,
            power=self.power,
            store=self.store,
            notifier=self.notifier,
            limit_change_significance_pct=lambda: self.significance_pct,
        )

    def charging(self, evse_id: int = 1, transaction_id: str = "tx-1", v2x: bool = True) -> None:
        self.transactions.transactions[evse_id] = TransactionInfo(transaction_id, T0)
        self.vehicles.set(
            evse_id,
            VehicleLimits(
                connected=True,
                max_charge_power_w=20000.0,
                max_discharge_power_w=8000.0 if v2x else 0.0,
                discharge_allowed=v2x,
            ),
        )

    def power_w(self, evse_id: int = 1) -> float:
        return self.power.last[evse_id].power_w

    def sent(self, action: str) -> list[tuple[object, ...]]:
        return [m for m in self.notifier.sent if m[0] == action]


# --- external limits: pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "new", "pct", "expected"),
    [
        (None, 5000.0, 10.0, True),  # the first limit is always notified
        (5000.0, 5400.0, 10.0, False),  # 8 % < 10 %
        (5000.0, 5600.0, 10.0, True),  # 12 % > 10 %
        (5000.0, 4400.0, 10.0, True),  # also downwards
        (5000.0, 5500.0, 10.0, False),  # exactly 10 % is not "more than"
        (0.0, 0.0, 10.0, False),
        (0.0, 1.0, 10.0, True),  # any change from 0
        (5000.0, 5001.0, 0.0, True),  # significance 0: every change
    ],
)
def test_significant_change(previous: float | None, new: float, pct: float, expected: bool) -> None:
    assert significant_change(previous, new, pct) is expected


def test_external_profile_ids_are_negative_and_unique_per_evse_and_source() -> None:
    ids = {(e, s): external_profile_id(e, s) for e in range(4) for s in ChargingLimitSource}
    assert all(i < 0 for i in ids.values())
    assert len(set(ids.values())) == len(ids)


def test_external_profile_shape() -> None:
    limit = ExternalLimit(evse_id=0, power_w=7000.0, source="SO", discharge_limit_w=-3000.0)
    built = external_profile(limit, at(60))
    assert built.purpose == Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS
    assert (built.evse_id, built.limit_source, built.id) == (0, "SO", external_profile_id(0, "SO"))
    assert built.schedule.rate_unit == RateUnit.W
    assert built.schedule.start_schedule == at(60) == built.received_at
    (only,) = built.schedule.periods
    assert (only.limit, only.discharge_limit) == (7000.0, -3000.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"evse_id": -1, "power_w": 1.0},
        {"evse_id": 1, "power_w": -1.0},
        {"evse_id": 1, "power_w": float("nan")},
        {"evse_id": 1, "power_w": 1.0, "discharge_limit_w": 5.0},
        {"evse_id": 1, "power_w": 1.0, "source": "Grid"},
    ],
)
def test_external_limit_rejects_bad_values(fields: dict[str, Any]) -> None:
    with pytest.raises(SmartChargingValueError):
        ExternalLimit(**fields)


# --- external limits: service ------------------------------------------------------------------


def test_external_limit_caps_the_command_notifies_and_clears() -> None:
    bench = Bench()
    bench.charging()
    bench.service.refresh()
    assert bench.power_w() == 20000.0

    assert bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=6000.0)) is True
    assert bench.power_w() == 6000.0
    ((_, limit, sent_schedule),) = bench.sent("NotifyChargingLimit")
    assert limit == ExternalLimit(evse_id=1, power_w=6000.0)
    assert sent_schedule.periods[0].limit == 6000.0  # type: ignore[attr-defined]
    # Persisted, and reported with its source (K09).
    pid = external_profile_id(1, "EMS")
    assert pid in bench.store.profiles
    (found,) = bench.service.query(ProfileCriteria(limit_sources=frozenset({"EMS"})))
    assert found.id == pid

    # A small change applies but is not notified; a large one is (LimitChangeSignificance).
    assert bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=6300.0)) is False
    assert bench.power_w() == 6300.0
    assert bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=8000.0)) is True
    # Grid criticality changing is notified even without a significant change.
    critical = ExternalLimit(evse_id=1, power_w=8000.0, is_grid_critical=True)
    assert bench.service.set_external_limit(critical) is True
    assert len(bench.sent("NotifyChargingLimit")) == 3

    # The CSMS can neither clear it nor replace it.
    assert bench.service.clear(profile_id=pid, criteria=None) == ()
    assert bench.service.clear(profile_id=None, criteria=ClearCriteria()) == ()
    assert bench.power_w() == 8000.0

    assert bench.service.clear_external_limit(1, "EMS") is True
    assert bench.sent("ClearedChargingLimit") == [("ClearedChargingLimit", 1, "EMS")]
    assert bench.power_w() == 20000.0
    assert pid not in bench.store.profiles
    assert bench.service.clear_external_limit(1, "EMS") is False  # nothing left: nothing sent
    assert len(bench.sent("ClearedChargingLimit")) == 1


def test_station_wide_external_limit_and_sources_stack() -> None:
    bench = Bench()
    bench.charging()
    bench.service.set_external_limit(ExternalLimit(evse_id=0, power_w=9000.0, source="SO"))
    bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=12000.0))
    assert bench.power_w() == 9000.0  # the minimum of both scopes
    bench.service.clear_external_limit(0, "SO")
    assert bench.power_w() == 12000.0
    # A limit of 0 is no power, never a discharge.
    bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=0.0))
    assert bench.power_w() == 0.0


def test_external_limit_on_an_unknown_evse_changes_nothing() -> None:
    bench = Bench()
    with pytest.raises(SmartChargingValueError, match="no EVSE 7"):
        bench.service.set_external_limit(ExternalLimit(evse_id=7, power_w=1.0))
    assert len(bench.service.profiles) == 0 and bench.notifier.sent == []


def test_the_csms_cannot_set_external_constraints() -> None:
    bench = Bench()
    external = profile(9, Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, evse=0)
    rejection = bench.service.set_profile(external, OcppVersion.V2_0_1)
    assert rejection is not None and rejection.reason_code == ReasonCode.INVALID_PROFILE


# --- dynamic profiles --------------------------------------------------------------------------


def dynamic(profile_id: int = 4, interval_s: int | None = 60, **fields: Any) -> ChargingProfile:
    return profile(
        profile_id,
        kind=Kind.DYNAMIC,
        schedules=schedule(period(0, 10000.0), unit=RateUnit.W, duration_s=300, start=None),
        dyn_update_interval_s=interval_s,
        received_at=T0,
        **fields,
    )


def test_apply_schedule_update_replaces_the_values_and_the_update_time() -> None:
    before = dynamic()
    update = ScheduleUpdate(limit=7000.0, discharge_limit=-2000.0, setpoint=-1500.0)
    after = apply_schedule_update(before, update, at(30))
    assert isinstance(after, ChargingProfile)
    assert after.dyn_update_time == at(30)
    (only,) = after.schedule.periods
    assert (only.limit, only.discharge_limit, only.setpoint) == (7000.0, -2000.0, -1500.0)
    assert only.start_period_s == 0


@pytest.mark.parametrize(
    ("installed", "update", "code"),
    [
        (None, ScheduleUpdate(limit=1.0), ReasonCode.INVALID_PROFILE),
        (profile(1), ScheduleUpdate(limit=1.0), ReasonCode.INVALID_PROFILE),
        (dynamic(), ScheduleUpdate(discharge_limit=5.0), ReasonCode.INVALID_VALUE),
    ],
)
def test_apply_schedule_update_rejections(
    installed: ChargingProfile | None, update: ScheduleUpdate, code: ReasonCode
) -> None:
    result = apply_schedule_update(installed, update, T0)
    assert getattr(result, "reason_code", None) == code


def test_pull_timing() -> None:
    p = dynamic()
    assert next_pull(p, None) == at(60)
    assert next_pull(p, at(100)) == at(160)
    assert next_pull(dynamic(interval_s=None), None) is None
    assert next_pull(profile(1, dyn_update_interval_s=60, received_at=T0), None) is None
    assert pulls_due([p], {}, at(59)) == ((), at(60))
    assert pulls_due([p], {}, at(60)) == ((4,), at(120))


@given(st.integers(1, 10_000), st.integers(0, 100_000))
def test_a_due_pull_is_never_due_again_at_once(interval_s: int, elapsed_s: int) -> None:
    p = dynamic(interval_s=interval_s)
    now = at(elapsed_s)
    due, later = pulls_due([p], {}, now)
    if due:
        assert pulls_due([p], {4: now}, now)[0] == ()
    assert later is not None and later > now


def test_service_updates_and_pulls_dynamic_profiles() -> None:
    bench = Bench()
    bench.charging()
    assert bench.service.set_profile(dynamic(), OcppVersion.V2_1) is None
    assert bench.power_w() == 10000.0
    assert bench.service.update_dynamic_schedule(4, ScheduleUpdate(limit=3000.0)) is None
    assert bench.power_w() == 3000.0
    assert bench.store.profiles[4].dyn_update_time == T0
    rejected = bench.service.update_dynamic_schedule(99, ScheduleUpdate(limit=1.0))
    assert rejected is not None and rejected.reason_code == ReasonCode.INVALID_PROFILE
    # Values SetChargingProfile would refuse are refused here too (ChargingOnly: no setpoint).
    rejected = bench.service.update_dynamic_schedule(4, ScheduleUpdate(setpoint=1.0))
    assert rejected is not None and rejected.reason_code == ReasonCode.INVALID_SCHEDULE
    assert bench.power_w() == 3000.0

    assert bench.sent("PullDynamicScheduleUpdate") == []
    bench.clock.at = at(60)
    bench.service.refresh()
    assert bench.sent("PullDynamicScheduleUpdate") == [("PullDynamicScheduleUpdate", 4)]
    bench.service.refresh()  # asked already: not again until the next interval
    assert len(bench.sent("PullDynamicScheduleUpdate")) == 1
    bench.service.dynamic_update_received(4, ScheduleUpdate(limit=4500.0))
    assert bench.power_w() == 4500.0
    # Values expire duration (300 s) after their update: no profile limits any more.
    bench.clock.at = at(60 + 300)
    bench.service.refresh()
    assert bench.power_w() == 20000.0


# --- offline validity ------------------------------------------------------------------------


def test_max_offline_duration() -> None:
    bench = Bench()
    bench.charging()
    sc = bench.service
    sc.set_profile(
        profile(
            1,
            schedules=schedule((0, 5000.0), unit=RateUnit.W, start=T0),
            max_offline_duration_s=120,
        ),
        OcppVersion.V2_1,
    )
    sc.set_profile(
        profile(
            2,
            stack=1,
            schedules=schedule((0, 4000.0), unit=RateUnit.W, start=T0),
            max_offline_duration_s=60,
            invalid_after_offline_duration=True,
        ),
        OcppVersion.V2_1,
    )
    assert bench.power_w() == 4000.0
    sc.set_online(False)
    bench.clock.at = at(59)
    sc.refresh()
    assert bench.power_w() == 4000.0 and 2 in sc.profiles
    bench.clock.at = at(60)
    sc.refresh()
    # Profile 2 is gone for good; profile 1 still counts.
    assert 2 not in sc.profiles and 2 not in bench.store.profiles
    assert bench.power_w() == 5000.0
    bench.clock.at = at(120)
    sc.refresh()
    assert bench.power_w() == 20000.0 and 1 in sc.profiles  # not counted, but kept
    sc.set_online(True)
    assert bench.power_w() == 5000.0  # back online: it counts again


# --- vehicle needs and allowed energy transfer -----------------------------------------------


def test_charging_needs_values() -> None:
    needs = ChargingNeeds(
        requested_energy_transfer=EnergyTransferMode.DC_BPT,
        max_discharge_power_w=8000.0,
        ev_min_v2x_energy_request_wh=-500.0,  # signed by definition
        soc_pct=40,
    )
    assert needs.bidirectional
    assert not ChargingNeeds(requested_energy_transfer=EnergyTransferMode.DC).bidirectional
    for bad in ({"soc_pct": 101}, {"max_charge_power_w": -1.0}, {"max_voltage_v": float("inf")}):
        with pytest.raises(SmartChargingValueError):
            ChargingNeeds(requested_energy_transfer=EnergyTransferMode.DC, **bad)
    with pytest.raises(SmartChargingValueError):
        ChargingNeeds(
            requested_energy_transfer=EnergyTransferMode.DC, departure_time=datetime(2025, 1, 1)
        )


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ({EnergyTransferMode.DC}, False),
        ({EnergyTransferMode.DC, EnergyTransferMode.DC_BPT}, True),
        ({EnergyTransferMode.AC_BPT_DER}, True),
        ({EnergyTransferMode.AC_DER, EnergyTransferMode.WPT}, False),
        (set(), False),
    ],
)
def test_discharge_permitted(modes: set[EnergyTransferMode], expected: bool) -> None:
    assert discharge_permitted(modes) is expected


def test_needs_go_to_the_csms_and_the_answer_is_kept() -> None:
    bench = Bench()
    needs = ChargingNeeds(requested_energy_transfer=EnergyTransferMode.DC_BPT)
    bench.service.ev_charging_needs(2, needs)
    assert bench.sent("NotifyEVChargingNeeds") == [("NotifyEVChargingNeeds", 2, needs, T0)]
    bench.service.charging_needs_answered(2, ChargingNeedsStatus.PROCESSING)
    assert bench.service.needs_status == {2: ChargingNeedsStatus.PROCESSING}
    bench.service.transaction_ended(2, "tx-9")
    assert bench.service.needs == {} and bench.service.needs_status == {}


def test_allowed_energy_transfer_gates_discharge_until_the_transaction_ends() -> None:
    bench = Bench()
    bench.charging()
    sc = bench.service
    discharge = schedule(
        period(0, 0.0, discharge_limit=-6000.0, setpoint=-4000.0, operation_mode="CentralSetpoint"),
        unit=RateUnit.W,
        start=T0,
    )
    assert sc.set_profile(profile(3, schedules=discharge), OcppVersion.V2_1) is None
    assert bench.power_w() == -4000.0

    assert sc.allowed_energy_transfer("no-such-tx", {EnergyTransferMode.DC}) is False
    assert sc.allowed_energy_transfer("tx-1", {EnergyTransferMode.DC}) is True
    assert bench.power_w() == 0.0  # DC only: the vehicle must not discharge
    assert not sc.discharge_allowed_by_csms(1)
    assert sc.allowed_energy_transfer("tx-1", {EnergyTransferMode.DC_BPT}) is True
    assert bench.power_w() == -4000.0

    sc.allowed_energy_transfer("tx-1", {EnergyTransferMode.DC})
    assert bench.power_w() == 0.0
    sc.transaction_ended(1, "tx-1")
    bench.transactions.transactions[1] = TransactionInfo("tx-2", T0 + timedelta(seconds=5))
    sc.refresh()
    assert bench.power_w() == -4000.0  # a new transaction starts without the restriction


def test_allowed_energy_transfer_ignores_a_vehicle_that_cannot_discharge_anyway() -> None:
    bench = Bench()
    bench.charging(v2x=False)
    before = replace(bench.vehicles.vehicle_limits(1))
    bench.service.allowed_energy_transfer("tx-1", {EnergyTransferMode.DC})
    assert bench.vehicles.vehicle_limits(1) == before
    assert bench.power_w() == 20000.0


def test_external_limits_survive_a_restart_in_sqlite(tmp_path: Path) -> None:
    """The limit holds until the external system releases it, also across a restart."""
    database = open_database(tmp_path / "station.db")
    try:
        first = Bench(ProfileRepository(database))
        first.service.set_external_limit(ExternalLimit(evse_id=0, power_w=7000.0, source="SO"))
        again = Bench(ProfileRepository(database))
        (loaded,) = again.service.profiles
        assert loaded == first.service.profiles.get(external_profile_id(0, "SO"))
        again.charging()
        again.service.refresh()
        assert again.power_w() == 7000.0
        assert again.service.clear_external_limit(0, "SO") is True
        assert list(ProfileRepository(database).load_all()) == []
    finally:
        database.close()
