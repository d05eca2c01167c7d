"""The smart-charging service tells its rate listeners when an external actor changed the charging
rate of an EVSE with an ongoing transaction by more than LimitChangeSignificance (K12,
K13.FR.03), and only then: not for the CSMS's own profiles (errata 2025-01 [776]), not without a
transaction, not for a change the vehicle's own limit hides. Synchronous, with a settable clock
and the service's in-process ports (tests/test_tx_rate_changed_e2e.py runs it in a station)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from station.power import EvseRating, VehicleLimits
from station.smartcharging import (
    ElectricalParams,
    ExternalLimit,
    OcppVersion,
    OperationMode,
    RateUnit,
    TransactionInfo,
)
from station.smartcharging.service import (
    EvseElectrical,
    SimulatedPowerPort,
    SimulatedVehicles,
    SmartChargingService,
    StaticTransactions,
)
from tests.smartcharging.builders import T0, Purpose, limits, period, profile, schedule

VEHICLE_W = 20000.0


class Clock:
    def now(self) -> datetime:
        return T0

    def monotonic(self) -> float:
        return 0.0


class Bench:
    def __init__(self, significance_pct: float = 1.0) -> None:
        self.transactions = StaticTransactions()
        self.vehicles = SimulatedVehicles()
        self.power = SimulatedPowerPort()
        rating = EvseRating(50000.0, 8000.0, 125.0)
        self.service = SmartChargingService(
            (
                EvseElectrical(1, rating, ElectricalParams(400.0, dc=True)),
                EvseElectrical(2, rating, ElectricalParams(400.0, dc=True)),
            ),
            clock=Clock(),
            limits_for=lambda version: limits(version),
            transactions=self.transactions,
            vehicles=self.vehicles,
            power=self.power,
            limit_change_significance_pct=lambda: significance_pct,
        )
        self.changed: list[int] = []
        self.service.rate_listeners.append(self.changed.append)

    def charging(self, evse_id: int = 1) -> None:
        self.transactions.transactions[evse_id] = TransactionInfo(f"tx-{evse_id}", T0)
        self.vehicles.set(
            evse_id,
            VehicleLimits(
                connected=True,
                max_charge_power_w=VEHICLE_W,
                max_discharge_power_w=0.0,
                discharge_allowed=False,
            ),
        )
        self.service.refresh()

    def power_w(self, evse_id: int = 1) -> float:
        return self.power.last[evse_id].power_w


def test_an_external_limit_and_its_release_are_reported() -> None:
    bench = Bench()
    bench.charging()
    assert bench.power_w() == VEHICLE_W
    bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=6000.0))
    assert bench.power_w() == 6000.0
    assert bench.changed == [1]
    assert bench.service.charging_rate_w(1) == 6000.0

    bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=6000.0))  # the same limit
    bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=6050.0))  # within 1 %
    assert bench.changed == [1]

    assert bench.service.clear_external_limit(1, "EMS")
    assert bench.power_w() == VEHICLE_W
    assert bench.changed == [1, 1]
    assert not bench.service.clear_external_limit(1, "EMS")
    assert bench.changed == [1, 1]


def test_a_limit_above_what_the_vehicle_takes_changes_no_rate() -> None:
    bench = Bench()
    bench.charging()
    bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=30000.0))
    assert bench.power_w() == VEHICLE_W
    assert bench.changed == []


def test_only_evses_with_a_transaction_are_reported() -> None:
    bench = Bench()
    bench.charging(1)
    bench.service.set_external_limit(ExternalLimit(evse_id=0, power_w=5000.0))  # the whole station
    assert bench.power_w(1) == 5000.0
    assert bench.changed == [1]
    bench.service.set_external_limit(
        ExternalLimit(evse_id=2, power_w=1000.0)
    )  # EVSE 2: no transaction
    assert bench.changed == [1]


def test_profiles_of_the_csms_are_not_reported() -> None:
    bench = Bench()
    bench.charging()
    tx_default = profile(
        7,
        Purpose.TX_DEFAULT_PROFILE,
        evse=1,
        schedules=schedule(period(0, 3000.0), unit=RateUnit.W, start=T0),
    )
    assert bench.service.set_profile(tx_default, OcppVersion.V2_0_1) is None
    assert bench.power_w() == 3000.0
    assert bench.changed == []


def test_the_external_set_point_port_is_an_external_actor() -> None:
    bench = Bench()
    bench.charging()
    external_limits = profile(
        8,
        Purpose.TX_DEFAULT_PROFILE,
        evse=1,
        schedules=schedule(
            period(0, 10000.0, operation_mode=OperationMode.EXTERNAL_LIMITS),
            unit=RateUnit.W,
            start=T0,
        ),
    )
    assert bench.service.set_profile(external_limits, OcppVersion.V2_1) is None
    assert bench.changed == []
    before_w = bench.power_w()
    bench.service.set_external_inputs(1, limit_w=2000.0)
    assert bench.power_w() == 2000.0 != before_w
    assert bench.changed == [1]
    assert bench.service.clear_external_inputs(1)
    assert bench.changed == [1, 1]


@settings(max_examples=50, deadline=None)
@given(
    significance_pct=st.floats(min_value=0, max_value=100),
    limits_w=st.lists(st.floats(min_value=0, max_value=40000), min_size=1, max_size=12),
)
def test_reported_exactly_when_the_rate_moves_beyond_the_significance(
    significance_pct: float, limits_w: list[float]
) -> None:
    bench = Bench(significance_pct)
    bench.charging()
    for limit_w in limits_w:
        before_w = bench.power_w()
        reported = len(bench.changed)
        bench.service.set_external_limit(ExternalLimit(evse_id=1, power_w=limit_w))
        after_w = bench.power_w()
        assert after_w == min(limit_w, VEHICLE_W)
        if before_w == 0:
            expected = after_w != 0
        else:
            expected = abs(after_w - before_w) > abs(before_w) * significance_pct / 100
        assert len(bench.changed) == reported + (1 if expected else 0)
