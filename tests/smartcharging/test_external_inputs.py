"""The external set-point / limits port (ExternalSetpoint, ExternalLimits) and AFRRSignal
(CentralFrequency) of the smart-charging service: synchronously, with a settable clock (no event
loop, so no timer: each step calls the service), and once with the real timer for a signal that
waits for its timestamp."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.clock import SystemClock
from station.power import EvseRating, ExternalInputs, Reason, VehicleLimits
from station.smartcharging import (
    ElectricalParams,
    OcppVersion,
    OperationMode,
    RateUnit,
    SignalWattPoint,
    SmartChargingValueError,
    TransactionInfo,
)
from station.smartcharging.service import (
    AFRR_PENDING_MAX,
    NO_SIGNAL_WATT_CURVE,
    AfrrRejection,
    EvseElectrical,
    SimulatedPowerPort,
    SimulatedVehicles,
    SmartChargingService,
    StaticTransactions,
)
from tests.smartcharging.builders import T0, Purpose, limits, period, profile, schedule

Mode = OperationMode

CURVE = (
    SignalWattPoint(signal=-100, power_w=-5000.0),
    SignalWattPoint(signal=0, power_w=0.0),
    SignalWattPoint(signal=100, power_w=5000.0),
)
BASELINE_W = 1000.0


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - T0).total_seconds()


class Bench:
    def __init__(self, clock: Any = None) -> None:
        self.clock = clock or Clock()
        self.transactions = StaticTransactions()
        self.vehicles = SimulatedVehicles()
        self.power = SimulatedPowerPort()
        rating = EvseRating(20000.0, 8000.0, 50.0)
        self.service = SmartChargingService(
            (
                EvseElectrical(1, rating, ElectricalParams(400.0, dc=True)),
                EvseElectrical(2, rating, ElectricalParams(400.0, dc=True)),
            ),
            clock=self.clock,
            limits_for=lambda version: limits(version),
            transactions=self.transactions,
            vehicles=self.vehicles,
            power=self.power,
        )

    def charging(self, evse_id: int = 1) -> None:
        self.transactions.transactions[evse_id] = TransactionInfo(f"tx-{evse_id}", T0)
        self.vehicles.set(
            evse_id,
            VehicleLimits(
                connected=True,
                max_charge_power_w=20000.0,
                max_discharge_power_w=8000.0,
                discharge_allowed=True,
            ),
        )

    def command(self, evse_id: int = 1) -> tuple[float, Reason]:
        last = self.power.last[evse_id]
        return last.power_w, last.reason

    def install(
        self, mode: OperationMode, evse_id: int = 1, profile_id: int = 1, **fields: Any
    ) -> None:
        """A TxDefaultProfile in W from T0: limit 10 kW, dischargeLimit -6 kW, in ``mode``."""
        limit = fields.pop("limit", 10000.0)
        values: dict[str, Any] = {"discharge_limit": -6000.0, "operation_mode": mode, **fields}
        built = profile(
            profile_id,
            Purpose.TX_DEFAULT_PROFILE,
            evse=evse_id,
            schedules=schedule(period(0, limit, **values), unit=RateUnit.W, start=T0),
        )
        assert self.service.set_profile(built, OcppVersion.V2_1) is None

    def central_frequency(self, evse_id: int = 1, profile_id: int = 1) -> None:
        self.install(
            Mode.CENTRAL_FREQUENCY,
            evse_id,
            profile_id,
            setpoint=0.0,  # K01: CentralFrequency needs a setpoint; the curve decides the power
            v2x_baseline=BASELINE_W,
            v2x_signal_watt_curve=CURVE,
        )


# --- ExternalSetpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setpoint_w", "expected"),
    [
        (5000.0, (5000.0, Reason.SETPOINT)),
        (-3000.0, (-3000.0, Reason.SETPOINT)),
        (0.0, (0.0, Reason.SETPOINT)),
        (15000.0, (10000.0, Reason.LIMITED_BY_SCHEDULE)),  # the schedule's limit
        (-7000.0, (-6000.0, Reason.LIMITED_BY_SCHEDULE)),  # the schedule's dischargeLimit
        (-1e9, (-6000.0, Reason.LIMITED_BY_SCHEDULE)),
    ],
)
def test_external_setpoint_is_followed_within_the_limits(
    setpoint_w: float, expected: tuple[float, Reason]
) -> None:
    bench = Bench()
    bench.charging()
    bench.install(Mode.EXTERNAL_SETPOINT)
    assert bench.command() == (0.0, Reason.AWAITING_INPUT)  # nothing supplied yet
    bench.service.set_external_inputs(1, setpoint_w=setpoint_w)
    assert bench.command() == expected


def test_external_setpoint_of_a_vehicle_without_v2x_never_discharges() -> None:
    bench = Bench()
    bench.charging()
    bench.vehicles.set(
        1,
        VehicleLimits(
            connected=True,
            max_charge_power_w=20000.0,
            max_discharge_power_w=0.0,
            discharge_allowed=False,
        ),
    )
    bench.install(Mode.EXTERNAL_SETPOINT)
    bench.service.set_external_inputs(1, setpoint_w=-3000.0)
    assert bench.command() == (0.0, Reason.LIMITED_BY_VEHICLE)


def test_external_inputs_apply_only_in_their_own_mode() -> None:
    bench = Bench()
    bench.charging()
    bench.install(Mode.CHARGING_ONLY, discharge_limit=None)
    bench.service.set_external_inputs(1, setpoint_w=-3000.0, limit_w=2000.0)
    assert bench.command() == (10000.0, Reason.LIMITED_BY_SCHEDULE)
    assert bench.service.external_inputs(1) == ExternalInputs(setpoint_w=-3000.0, limit_w=2000.0)


# --- ExternalLimits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, (10000.0, Reason.LIMITED_BY_SCHEDULE)),  # no external limit: the schedule's
        ({"limit_w": 7000.0}, (7000.0, Reason.LIMITED_BY_EXTERNAL)),
        ({"limit_w": 12000.0}, (10000.0, Reason.LIMITED_BY_SCHEDULE)),  # the tighter one wins
        ({"limit_w": 0.0}, (0.0, Reason.LIMITED_BY_EXTERNAL)),  # 0: no power, not a discharge
        ({"limit_w": 0.0, "discharge_limit_w": -2000.0}, (0.0, Reason.LIMITED_BY_EXTERNAL)),
        ({"setpoint_w": -5000.0}, (10000.0, Reason.LIMITED_BY_SCHEDULE)),  # not its mode
    ],
)
def test_external_limits_cap_the_command(
    values: dict[str, float], expected: tuple[float, Reason]
) -> None:
    bench = Bench()
    bench.charging()
    bench.install(Mode.EXTERNAL_LIMITS)
    bench.service.set_external_inputs(1, **values)
    assert bench.command() == expected


def test_external_discharge_limit_tightens_the_reported_discharge_ceiling() -> None:
    bench = Bench()
    bench.charging()
    bench.install(Mode.EXTERNAL_LIMITS)
    assert bench.power.last[1].discharge_ceiling_w == 6000.0
    bench.service.set_external_inputs(1, limit_w=3000.0, discharge_limit_w=-2500.0)
    assert bench.power.last[1].discharge_ceiling_w == 2500.0
    assert bench.power.last[1].charge_ceiling_w == 3000.0


# --- the port: EVSE 0, replace, clear, bad values ----------------------------------------------


def test_evse_0_sets_and_clears_every_evse() -> None:
    bench = Bench()
    bench.charging(1)
    bench.charging(2)
    bench.install(Mode.EXTERNAL_SETPOINT, evse_id=0)
    bench.service.set_external_inputs(0, setpoint_w=-2000.0)
    assert bench.command(1) == bench.command(2) == (-2000.0, Reason.SETPOINT)
    bench.service.set_external_inputs(2, setpoint_w=4000.0)
    assert (bench.command(1), bench.command(2)) == (
        (-2000.0, Reason.SETPOINT),
        (4000.0, Reason.SETPOINT),
    )
    assert bench.service.clear_external_inputs(1) is True
    assert bench.command(1) == (0.0, Reason.AWAITING_INPUT)
    assert bench.command(2) == (4000.0, Reason.SETPOINT)
    assert bench.service.clear_external_inputs(0) is True
    assert bench.command(2) == (0.0, Reason.AWAITING_INPUT)
    assert bench.service.clear_external_inputs(0) is False  # nothing left
    assert bench.service.external_inputs(2) == ExternalInputs()


def test_a_call_replaces_what_was_set_before() -> None:
    bench = Bench()
    bench.service.set_external_inputs(1, setpoint_w=-2000.0, discharge_limit_w=-3000.0)
    bench.service.set_external_inputs(1, limit_w=5000.0)
    assert bench.service.external_inputs(1) == ExternalInputs(limit_w=5000.0)


@pytest.mark.parametrize(
    ("evse_id", "values"),
    [
        (1, {"setpoint_w": math.nan}),
        (1, {"setpoint_w": math.inf}),
        (1, {"limit_w": -1.0}),
        (1, {"limit_w": -math.inf}),
        (1, {"discharge_limit_w": 1.0}),
        (0, {"discharge_limit_w": math.nan}),
        (1, {"limit_w": "5000"}),
        (3, {"setpoint_w": 1000.0}),  # no such EVSE
        (-1, {"setpoint_w": 1000.0}),
    ],
)
def test_a_bad_value_raises_and_changes_nothing(evse_id: int, values: dict[str, Any]) -> None:
    bench = Bench()
    bench.charging()
    bench.install(Mode.EXTERNAL_SETPOINT)
    bench.service.set_external_inputs(0, setpoint_w=2500.0)
    history = list(bench.power.history)
    with pytest.raises(SmartChargingValueError):
        bench.service.set_external_inputs(evse_id, **values)
    assert bench.service.external_inputs(1) == bench.service.external_inputs(2)
    assert bench.service.external_inputs(1) == ExternalInputs(setpoint_w=2500.0)
    assert bench.power.history == history
    assert bench.command() == (2500.0, Reason.SETPOINT)


def test_clearing_an_unknown_evse_raises() -> None:
    with pytest.raises(SmartChargingValueError):
        Bench().service.clear_external_inputs(7)


# --- AFRRSignal (CentralFrequency) ---------------------------------------------------------------


def test_afrr_signal_without_a_signal_watt_curve_is_rejected() -> None:
    bench = Bench()
    bench.charging()
    rejection = bench.service.afrr_signal(T0, 50)
    assert isinstance(rejection, AfrrRejection)
    assert rejection.reason_code == NO_SIGNAL_WATT_CURVE == "NoSignalWattCurve"
    # A curve in another mode's period is none either: only CentralFrequency periods have one.
    bench.install(Mode.CENTRAL_SETPOINT, setpoint=2000.0)
    assert bench.service.afrr_signal(T0, 50) == rejection
    assert bench.command() == (2000.0, Reason.SETPOINT)
    assert bench.service.external_inputs(1).afrr_signal is None


@pytest.mark.parametrize(
    ("signal", "expected_w"),
    [
        (0, BASELINE_W),
        (50, BASELINE_W + 2500.0),
        (100, BASELINE_W + 5000.0),
        (250, BASELINE_W + 5000.0),  # flat beyond the last point
        (-20, BASELINE_W - 1000.0),
        (-100, BASELINE_W - 5000.0),
        (-1000, BASELINE_W - 5000.0),
    ],
)
def test_afrr_signal_is_mapped_through_the_curve_around_the_baseline(
    signal: int, expected_w: float
) -> None:
    bench = Bench()
    bench.charging()
    bench.central_frequency()
    assert bench.command() == (BASELINE_W, Reason.AFRR_SIGNAL)  # no signal yet: the baseline
    assert bench.service.afrr_signal(T0, signal) is None
    power_w, reason = bench.command()
    assert (power_w, reason) == (pytest.approx(expected_w, abs=1e-9), Reason.AFRR_SIGNAL)


def test_afrr_activation_stays_within_the_limits() -> None:
    bench = Bench()
    bench.charging()
    bench.install(
        Mode.CENTRAL_FREQUENCY,
        limit=4000.0,
        discharge_limit=-2000.0,
        setpoint=0.0,
        v2x_baseline=BASELINE_W,
        v2x_signal_watt_curve=CURVE,
    )
    assert bench.service.afrr_signal(T0, 100) is None
    assert bench.command() == (4000.0, Reason.LIMITED_BY_SCHEDULE)
    assert bench.service.afrr_signal(T0, -100) is None  # the same time: the later one counts
    assert bench.command() == (-2000.0, Reason.LIMITED_BY_SCHEDULE)


def test_a_future_signal_waits_for_its_timestamp_and_a_stale_one_is_ignored() -> None:
    bench = Bench()
    bench.charging()
    bench.central_frequency()
    assert bench.service.afrr_signal(T0, 20) is None
    assert bench.command() == (2000.0, Reason.AFRR_SIGNAL)
    assert bench.service.afrr_signal(T0 + timedelta(seconds=4), 60) is None
    assert bench.service.afrr_signal(T0 + timedelta(seconds=8), -60) is None
    assert bench.command() == (2000.0, Reason.AFRR_SIGNAL)  # not yet
    bench.clock.at = T0 + timedelta(seconds=5)
    bench.service.refresh()  # what the timer does
    assert bench.command() == (4000.0, Reason.AFRR_SIGNAL)
    # Older than the one in force: acknowledged, but it does not move the command back.
    assert bench.service.afrr_signal(T0 + timedelta(seconds=1), -100) is None
    assert bench.command() == (4000.0, Reason.AFRR_SIGNAL)
    bench.clock.at = T0 + timedelta(seconds=9)
    bench.service.refresh()
    assert bench.command() == (-2000.0, Reason.AFRR_SIGNAL)


def test_the_signal_lapses_with_the_curve() -> None:
    bench = Bench()
    bench.charging()
    bench.central_frequency()
    assert bench.service.afrr_signal(T0, 100) is None
    assert bench.command() == (6000.0, Reason.AFRR_SIGNAL)
    assert bench.service.clear(profile_id=1, criteria=None) == (1,)
    assert bench.service.external_inputs(1).afrr_signal is None
    # A new CentralFrequency period starts from its baseline, not from the old activation.
    bench.central_frequency(profile_id=2)
    assert bench.command() == (BASELINE_W, Reason.AFRR_SIGNAL)


def test_the_signal_applies_to_every_evse_with_a_curve() -> None:
    bench = Bench()
    bench.charging(1)
    bench.charging(2)
    bench.central_frequency(evse_id=1)
    bench.install(Mode.EXTERNAL_SETPOINT, evse_id=2, profile_id=2)
    assert bench.service.afrr_signal(T0, -40) is None
    assert bench.command(1) == (BASELINE_W - 2000.0, Reason.AFRR_SIGNAL)
    assert bench.command(2) == (0.0, Reason.AWAITING_INPUT)  # not its mode


def test_too_many_waiting_signals_are_rejected() -> None:
    bench = Bench()
    bench.charging()
    bench.central_frequency()
    for n in range(AFRR_PENDING_MAX):
        assert bench.service.afrr_signal(T0 + timedelta(seconds=n + 1), n) is None
    # The same timestamp again replaces its signal; a new one is one too many.
    assert bench.service.afrr_signal(T0 + timedelta(seconds=1), 7) is None
    rejection = bench.service.afrr_signal(T0 + timedelta(hours=1), 1)
    assert rejection is not None and rejection.reason_code == "TooManyElements"
    bench.clock.at = T0 + timedelta(seconds=1)
    bench.service.refresh()
    assert bench.command() == (BASELINE_W + 350.0, Reason.AFRR_SIGNAL)  # signal 7


@pytest.mark.parametrize(
    ("timestamp", "signal"),
    [(datetime(2025, 1, 6), 5), (T0, True), (T0, 1.5), (T0, "5")],
)
def test_a_bad_afrr_signal_raises_and_changes_nothing(timestamp: datetime, signal: Any) -> None:
    bench = Bench()
    bench.charging()
    bench.central_frequency()
    with pytest.raises(SmartChargingValueError):
        bench.service.afrr_signal(timestamp, signal)
    assert bench.service.external_inputs(1).afrr_signal is None
    assert bench.command() == (BASELINE_W, Reason.AFRR_SIGNAL)


@given(st.integers(-10_000, 10_000), st.integers(-10_000, 10_000))
def test_the_command_is_monotone_in_the_signal(a: int, b: int) -> None:
    """An increasing curve: a larger signal never gives less power; always within limits."""
    bench = Bench()
    bench.charging()
    bench.central_frequency()
    low, high = sorted((a, b))
    assert bench.service.afrr_signal(T0, low) is None
    low_w = bench.command()[0]
    assert bench.service.afrr_signal(T0, high) is None
    high_w = bench.command()[0]
    assert -6000.0 <= low_w <= high_w <= 10000.0


async def test_a_future_signal_takes_effect_on_the_timer() -> None:
    """No one calls refresh: the service's own timer wakes at the signal's timestamp."""
    clock = SystemClock()
    bench = Bench(clock)
    bench.transactions.transactions[1] = TransactionInfo("tx-1", clock.now())
    bench.charging()
    built = profile(
        1,
        Purpose.TX_DEFAULT_PROFILE,
        schedules=schedule(
            period(
                0,
                10000.0,
                discharge_limit=-6000.0,
                setpoint=0.0,
                operation_mode=Mode.CENTRAL_FREQUENCY,
                v2x_baseline=BASELINE_W,
                v2x_signal_watt_curve=CURVE,
            ),
            unit=RateUnit.W,
            start=datetime.now(UTC) - timedelta(minutes=1),
        ),
    )
    assert bench.service.set_profile(built, OcppVersion.V2_1) is None
    try:
        at = clock.now() + timedelta(seconds=0.3)
        assert bench.service.afrr_signal(at, 100) is None
        assert bench.command() == (BASELINE_W, Reason.AFRR_SIGNAL)
        async with asyncio.timeout(3):
            while bench.command()[0] == BASELINE_W:
                await asyncio.sleep(0.02)
        assert clock.now() >= at
        assert bench.command() == (BASELINE_W + 5000.0, Reason.AFRR_SIGNAL)
    finally:
        bench.service.cancel_timer()
