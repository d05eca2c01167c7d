"""What the station does with each DER control it accepts: the pure mappings and their shells.

station.der.grid (capability set, droop, enter service, must-trip curves), the protection's
run-time settings update, the DerService check hook, DerGridView's droop, DerProtection and
the Gradients ramp (RampingPowerPort) with an injected clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.der import (
    CurvePoint,
    DerControl,
    DerControlStatus,
    DerControlType,
    DerCurve,
    DerUnit,
    EnterService,
    FixedPF,
    FreqDroop,
    Gradient,
    LimitMaxDischarge,
    ReasonCode,
    SetRequest,
    SettingKind,
)
from station.der.grid import (
    CONTROLS_WITH_INVERTER,
    CONTROLS_WITHOUT_INVERTER,
    droop_pu,
    droop_settings,
    enter_service_settings,
    gradient_ramp_s,
    protection_settings,
    supported_controls,
    trip_points,
)
from station.der.protection import DerProtection
from station.der.ramp import RampingPowerPort
from station.der.service import DerGridView, DerService
from station.inverter.droop import DroopSettings
from station.inverter.protection import (
    EnterServiceSettings,
    GridProtection,
    GridStatus,
    ProtectionSettingsError,
    TripKind,
    TripPoint,
    category_ii_settings,
)
from station.power import GridState, OperationMode, PowerCommand, Reason

T = DerControlType
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """The Clock port, in process: time moves only when the test says so."""

    wall: datetime = NOW
    mono_s: float = 100.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono_s

    def advance(self, seconds: float) -> None:
        self.mono_s += seconds
        self.wall += timedelta(seconds=seconds)


def control(control_type: DerControlType, setting: object, control_id: str = "c") -> DerControl:
    return DerControl(control_id, control_type, True, setting, NOW)  # type: ignore[arg-type]


# --- the capability set ---------------------------------------------------------------------------


def test_the_capability_set_is_exactly_what_the_station_carries_out() -> None:
    assert {
        T.LIMIT_MAX_DISCHARGE,
        T.GRADIENTS,
        T.FREQ_DROOP,
        T.ENTER_SERVICE,
        T.HV_MUST_TRIP,
        T.LV_MUST_TRIP,
        T.HF_MUST_TRIP,
        T.LF_MUST_TRIP,
    } == CONTROLS_WITH_INVERTER
    assert {T.LIMIT_MAX_DISCHARGE, T.GRADIENTS} == CONTROLS_WITHOUT_INVERTER
    assert supported_controls(True) == CONTROLS_WITH_INVERTER
    assert supported_controls(False) == CONTROLS_WITHOUT_INVERTER
    # The configured list narrows it; it cannot add what the station does not carry out.
    configured = frozenset({T.FREQ_DROOP, T.VOLT_VAR})
    assert supported_controls(True, configured) == {T.FREQ_DROOP}
    assert supported_controls(False, configured) == frozenset()


@pytest.mark.parametrize(
    "control_type",
    [T.VOLT_VAR, T.VOLT_WATT, T.WATT_VAR, T.WATT_PF, T.FIXED_PF_ABSORB, T.FREQ_WATT],
)
def test_the_service_answers_not_supported_for_the_others(control_type: DerControlType) -> None:
    service = DerService(clock=FakeClock())
    setting: object = (
        FixedPF(1, 0.95, True)
        if control_type is T.FIXED_PF_ABSORB
        else DerCurve(1, DerUnit.PCT_MAX_VAR, (CurvePoint(92, 30), CurvePoint(108, -30)))
    )
    kind = SettingKind.FIXED_PF_ABSORB if control_type is T.FIXED_PF_ABSORB else SettingKind.CURVE
    outcome = service.set_control(
        SetRequest("x", control_type, True, {kind: setting})  # type: ignore[dict-item]
    )
    assert outcome.status is DerControlStatus.NOT_SUPPORTED
    assert len(service.controls) == 0


# --- FreqDroop ------------------------------------------------------------------------------------

DROOP_50 = DroopSettings(
    nominal_frequency_hz=50.0, over_start_hz=50.2, under_start_hz=49.8, k_over=0.04, k_under=0.05
)


@pytest.mark.parametrize(
    ("frequency_hz", "expected_pu"),
    [
        (50.0, 0.0),
        (50.2, 0.0),  # the dead band's edges are inside it
        (49.8, 0.0),
        (50.4, 0.2 / (50 * 0.04)),  # 0.1 pu more charge / less discharge
        (49.3, -0.5 / (50 * 0.05)),  # 0.2 pu less charge / more discharge
        (60.0, 2.0),  # limited to a full swing
        (40.0, -2.0),
    ],
)
def test_droop_pu(frequency_hz: float, expected_pu: float) -> None:
    assert droop_pu(frequency_hz, DROOP_50) == pytest.approx(expected_pu)


@given(st.floats(40.0, 60.0), st.floats(40.0, 60.0))
def test_droop_is_monotonic_bounded_and_zero_in_the_dead_band(f1: float, f2: float) -> None:
    low, high = sorted((f1, f2))
    assert droop_pu(low, DROOP_50) <= droop_pu(high, DROOP_50)
    assert -2.0 <= droop_pu(low, DROOP_50) <= 2.0
    if 49.8 <= f1 <= 50.2:
        assert droop_pu(f1, DROOP_50) == 0.0


def test_droop_settings_from_a_control() -> None:
    setting = FreqDroop(0, over_freq_hz=50.2, under_freq_hz=49.8, over_droop=0.04,
                        under_droop=0.05, response_time_s=2.0)  # fmt: skip
    assert droop_settings(setting, 50.0) == replace(DROOP_50, response_time_s=2.0)


class NominalBase:
    def __init__(self, frequency_hz: float | None) -> None:
        self.frequency_hz = frequency_hz

    def grid_state(self) -> GridState:
        return GridState(in_window=True, frequency_hz=self.frequency_hz)


def _droop_request(
    control_id: str = "fd", over_freq_hz: float = 50.2, response_time_s: float = 0.0
) -> SetRequest:
    setting = FreqDroop(0, over_freq_hz, 49.8, 0.04, 0.05, response_time_s)
    return SetRequest(control_id, T.FREQ_DROOP, True, {SettingKind.FREQ_DROOP: setting})


def test_the_grid_view_adds_the_droop_at_the_measured_frequency() -> None:
    service = DerService(clock=FakeClock())
    base = NominalBase(50.4)
    view = DerGridView(
        service, rated_discharge_w=10_000, base=base.grid_state, nominal_frequency_hz=50.0
    )
    assert view.grid_state().frequency_droop_pu is None  # no control
    assert service.set_control(_droop_request()).status is DerControlStatus.ACCEPTED
    assert view.grid_state().frequency_droop_pu == pytest.approx(0.1)
    base.frequency_hz = 50.1
    assert view.grid_state().frequency_droop_pu == 0.0
    base.frequency_hz = None  # no measurement: no droop
    assert view.grid_state().frequency_droop_pu is None
    # Without a nominal frequency (no grid measurements) the droop cannot act.
    blind = DerGridView(service, rated_discharge_w=10_000, base=NominalBase(50.4).grid_state)
    assert blind.grid_state().frequency_droop_pu is None


def test_the_droop_response_follows_its_response_time() -> None:
    clock = FakeClock()
    service = DerService(clock=clock)
    base = NominalBase(50.4)  # target 0.1 pu
    view = DerGridView(
        service, rated_discharge_w=10_000, base=base.grid_state, nominal_frequency_hz=50.0
    )
    assert service.set_control(_droop_request(response_time_s=2.0)).status.value == "Accepted"
    assert view.grid_state().frequency_droop_pu == 0.0  # starts from no response
    clock.advance(1.0)
    assert view.grid_state().frequency_droop_pu == pytest.approx(0.1 * (1 - 10**-0.5))
    view.grid_state()  # no time passed: no change
    assert view.grid_state().frequency_droop_pu == pytest.approx(0.1 * (1 - 10**-0.5))
    clock.advance(1.0)
    assert view.grid_state().frequency_droop_pu == pytest.approx(0.09)  # 90 % after 2 s
    clock.advance(20.0)
    assert view.grid_state().frequency_droop_pu == pytest.approx(0.1)
    # Back in the dead band: the response decays with the same lag.
    base.frequency_hz = 50.0
    clock.advance(2.0)
    assert view.grid_state().frequency_droop_pu == pytest.approx(0.01)


async def test_a_moving_droop_response_calls_its_listeners() -> None:
    import asyncio

    from station.clock import SystemClock

    service = DerService(clock=SystemClock())
    view = DerGridView(
        service,
        rated_discharge_w=10_000,
        base=NominalBase(50.4).grid_state,
        nominal_frequency_hz=50.0,
        step_s=0.01,
    )
    values: list[float | None] = []
    view.listeners.append(lambda: values.append(view.grid_state().frequency_droop_pu))
    assert service.set_control(_droop_request(response_time_s=0.1)).status.value == "Accepted"
    view.grid_state()
    async with asyncio.timeout(2):
        while not values or values[-1] != pytest.approx(0.1, abs=1e-4):
            await asyncio.sleep(0.01)
    assert len(values) >= 3 and values == sorted(values)  # several steps, rising
    await asyncio.sleep(0.05)
    settled = len(values)
    await asyncio.sleep(0.05)
    assert len(values) == settled  # settled: the timer stopped
    view.cancel_timer()


# --- Gradients ------------------------------------------------------------------------------------


def test_gradient_ramp_times() -> None:
    assert gradient_ramp_s(Gradient(0, 10.0, 30.0), from_zero=False) == 10.0
    assert gradient_ramp_s(Gradient(0, 10.0, 30.0), from_zero=True) == 30.0
    assert gradient_ramp_s(Gradient(0, 10.0, 0.0), from_zero=True) == 10.0
    assert gradient_ramp_s(Gradient(0, 0.0, 0.0), from_zero=True) is None


@dataclass
class RecordingPort:
    commands: list[PowerCommand] = field(default_factory=list)

    def apply(self, command: PowerCommand) -> None:
        self.commands.append(command)


def cmd(power_w: float) -> PowerCommand:
    return PowerCommand(1, power_w, OperationMode.CENTRAL_SETPOINT, Reason.SETPOINT, 20e3, 20e3)


def _gradients(service: DerService, gradient_s: float, soft_s: float = 0.0) -> None:
    setting = Gradient(0, gradient_s, soft_s)
    outcome = service.set_control(
        SetRequest("g", T.GRADIENTS, True, {SettingKind.GRADIENT: setting})
    )
    assert outcome.status is DerControlStatus.ACCEPTED


def test_without_gradients_commands_pass_at_once() -> None:
    clock = FakeClock()
    inner = RecordingPort()
    port = RampingPowerPort(
        inner, der=DerService(clock=clock), clock=clock, ratings_w={1: 10_000.0}
    )
    port.apply(cmd(-8000.0))
    assert [c.power_w for c in inner.commands] == [-8000.0]
    assert not port.ramping()


def test_gradients_ramp_away_from_zero_but_never_towards_it() -> None:
    clock = FakeClock()
    service = DerService(clock=clock)
    _gradients(service, gradient_s=10.0)  # 10 kW rating: 1 kW/s
    inner = RecordingPort()
    port = RampingPowerPort(inner, der=service, clock=clock, ratings_w={1: 10_000.0}, step_s=0.5)
    port.apply(cmd(-4000.0))
    assert inner.commands[-1].power_w == -500.0  # one step of at most step_s
    assert port.ramping()
    for _ in range(3):
        clock.advance(0.5)
        port.apply(cmd(-4000.0))  # the energy manager repeats itself: no faster
    assert inner.commands[-1].power_w == -2000.0
    clock.advance(10.0)  # a long gap still counts as one step
    port.apply(cmd(-4000.0))
    assert inner.commands[-1].power_w == -2500.0
    # Safety beats ramps: a lower magnitude, 0 W, is passed at once.
    port.apply(cmd(-1000.0))
    assert inner.commands[-1] == cmd(-1000.0)
    port.apply(cmd(0.0))
    assert inner.commands[-1] == cmd(0.0)
    # Every ramped command stays between 0 W and the energy manager's command.
    assert all(-4000.0 <= c.power_w <= 0.0 for c in inner.commands)
    assert not port.ramping()


def test_a_soft_start_uses_the_soft_gradient_from_zero() -> None:
    clock = FakeClock()
    service = DerService(clock=clock)
    _gradients(service, gradient_s=10.0, soft_s=100.0)
    inner = RecordingPort()
    port = RampingPowerPort(inner, der=service, clock=clock, ratings_w={1: 10_000.0}, step_s=1.0)
    port.apply(cmd(5000.0))
    assert inner.commands[-1].power_w == 100.0  # 100 W/s from 0 W
    clock.advance(1.0)
    port.apply(cmd(5000.0))
    assert inner.commands[-1].power_w == 1100.0  # then 1 kW/s


def test_a_change_of_direction_goes_through_zero_at_once() -> None:
    clock = FakeClock()
    service = DerService(clock=clock)
    inner = RecordingPort()
    port = RampingPowerPort(inner, der=service, clock=clock, ratings_w={1: 10_000.0}, step_s=1.0)
    port.apply(cmd(6000.0))  # no gradient yet: at once
    _gradients(service, gradient_s=10.0)
    port.apply(cmd(-6000.0))
    assert inner.commands[-1].power_w == 0.0  # to 0 W at once
    clock.advance(1.0)
    port.apply(cmd(-6000.0))
    assert inner.commands[-1].power_w == -1000.0  # then ramps from 0 W


async def test_the_timer_finishes_a_ramp_on_its_own() -> None:
    from station.clock import SystemClock

    clock = SystemClock()
    service = DerService(clock=clock)
    _gradients(service, gradient_s=0.2)  # 10 kW in 0.2 s
    inner = RecordingPort()
    port = RampingPowerPort(inner, der=service, clock=clock, ratings_w={1: 10_000.0}, step_s=0.02)
    port.apply(cmd(-5000.0))
    import asyncio

    async with asyncio.timeout(2):
        while inner.commands[-1].power_w != -5000.0:
            await asyncio.sleep(0.01)
    assert len(inner.commands) > 3  # it took several steps
    assert not port.ramping()
    port.cancel_timer()


# --- EnterService and must-trip curves ---------------------------------------------------------

BASE = category_ii_settings(400.0, 50.0, enter_service_delay_s=300.0)


def test_enter_service_maps_percent_of_nominal_and_keeps_what_it_leaves_out() -> None:
    setting = EnterService(0, high_voltage=105.0, low_voltage=95.0, high_freq_hz=50.1,
                           low_freq_hz=49.9, delay_s=60.0, random_delay_s=30.0)  # fmt: skip
    mapped = enter_service_settings(setting, BASE.enter_service, random_fraction=0.5)
    assert mapped == EnterServiceSettings(
        low_voltage_pu=0.95,
        high_voltage_pu=1.05,
        low_frequency_hz=49.9,
        high_frequency_hz=50.1,
        delay_s=75.0,
        ramp_s=BASE.enter_service.ramp_s,
    )
    bare = EnterService(0, 105.0, 95.0, 50.1, 49.9)
    assert enter_service_settings(bare, BASE.enter_service).delay_s == 300.0


def test_must_trip_curves_become_trip_points() -> None:
    hv = DerCurve(0, DerUnit.PCT_EFFECTIVE_V, (CurvePoint(0.2, 118.0), CurvePoint(1.5, 112.0)))
    assert trip_points(T.HV_MUST_TRIP, hv) == (
        TripPoint(TripKind.OVER_VOLTAGE, 1.18, 0.2, "HVMustTrip[0]"),
        TripPoint(TripKind.OVER_VOLTAGE, 1.12, 1.5, "HVMustTrip[1]"),
    )
    lf = DerCurve(0, DerUnit.NOT_APPLICABLE, (CurvePoint(0.1, 47.5),))
    assert trip_points(T.LF_MUST_TRIP, lf) == (
        TripPoint(TripKind.UNDER_FREQUENCY, 47.5, 0.1, "LFMustTrip[0]"),
    )
    with pytest.raises(ProtectionSettingsError, match="yUnit"):
        trip_points(T.HF_MUST_TRIP, replace(lf, y_unit=DerUnit.PCT_MAX_W))
    with pytest.raises(ProtectionSettingsError, match="yUnit"):
        trip_points(T.LV_MUST_TRIP, lf)
    with pytest.raises(ProtectionSettingsError, match="clearing_time_s"):
        trip_points(T.LF_MUST_TRIP, DerCurve(0, DerUnit.NOT_APPLICABLE, (CurvePoint(-1, 47.5),)))


def test_an_active_curve_replaces_the_points_of_its_kind() -> None:
    lf = DerCurve(0, DerUnit.NOT_APPLICABLE, (CurvePoint(0.0, 47.0), CurvePoint(5.0, 48.8)))
    settings = protection_settings(BASE, {T.LF_MUST_TRIP: control(T.LF_MUST_TRIP, lf)})
    under_f = [p for p in settings.trip_points if p.kind is TripKind.UNDER_FREQUENCY]
    assert [(p.threshold, p.clearing_time_s) for p in under_f] == [(47.0, 0.0), (48.8, 5.0)]
    others = [p for p in settings.trip_points if p.kind is not TripKind.UNDER_FREQUENCY]
    assert others == [p for p in BASE.trip_points if p.kind is not TripKind.UNDER_FREQUENCY]
    assert protection_settings(BASE, {}) == BASE
    # A curve inside the enter-service window does not validate.
    bad = DerCurve(0, DerUnit.NOT_APPLICABLE, (CurvePoint(1.0, 49.95),))
    with pytest.raises(ProtectionSettingsError):
        protection_settings(BASE, {T.LF_MUST_TRIP: control(T.LF_MUST_TRIP, bad)})


def test_update_settings_keeps_the_running_timer_of_a_kept_point() -> None:
    protection = GridProtection(replace(BASE, start_in_service=True))
    assert protection.observe(400.0, 50.0, 0.0).status is GridStatus.IN_SERVICE
    # 51.5 Hz exceeds OF1 (51.2 Hz, 300 s): ride through.
    assert protection.observe(400.0, 51.5, 1.0).status is GridStatus.RIDE_THROUGH
    # A must-trip curve arrives: 51.4 Hz for 2 s. The OF1/OF2 points go, the timer of the new
    # point starts at the next observation.
    hf = DerCurve(0, DerUnit.NOT_APPLICABLE, (CurvePoint(2.0, 51.4), CurvePoint(0.1, 52.0)))
    hf = replace(hf, points=tuple(sorted(hf.points, key=lambda p: p.x)))
    protection.update_settings(
        protection_settings(BASE, {T.HF_MUST_TRIP: control(T.HF_MUST_TRIP, hf)})
    )
    assert protection.observe(400.0, 51.5, 2.0).status is GridStatus.RIDE_THROUGH
    assert protection.observe(400.0, 51.5, 3.9).status is GridStatus.RIDE_THROUGH
    verdict = protection.observe(400.0, 51.5, 4.0)
    assert verdict.status is GridStatus.OUT_OF_SERVICE
    assert verdict.trip_point is not None and verdict.trip_point.name == "HFMustTrip[1]"
    # A point kept across an update keeps its timer: UF2 (46.5 Hz, 0.16 s) from 10.0 s.
    protection = GridProtection(replace(BASE, start_in_service=True))
    protection.observe(400.0, 50.0, 0.0)
    protection.observe(400.0, 48.0, 10.0)  # UF1 (48.5 Hz, 300 s) runs from 10 s
    protection.update_settings(replace(BASE, start_in_service=True))  # the same points
    assert protection.observe(400.0, 48.0, 309.9).status is GridStatus.RIDE_THROUGH
    assert protection.observe(400.0, 48.0, 310.0).status is GridStatus.OUT_OF_SERVICE


def test_der_protection_checks_applies_and_reverts() -> None:
    clock = FakeClock()
    service = DerService(clock=clock)
    protection = GridProtection(BASE)
    link = DerProtection(service, protection, BASE, random_fraction=lambda: 0.25)
    setting = EnterService(0, 105.0, 95.0, 50.1, 49.9, delay_s=10.0, random_delay_s=4.0)
    request = SetRequest("es", T.ENTER_SERVICE, True, {SettingKind.ENTER_SERVICE: setting})
    assert service.set_control(request).status is DerControlStatus.ACCEPTED
    assert protection.settings.enter_service.delay_s == 11.0
    assert protection.settings.enter_service.low_voltage_pu == 0.95
    # A window outside the normal window: Rejected, InvalidValue, nothing changes.
    wide = replace(setting, high_voltage=125.0)
    outcome = service.set_control(
        SetRequest("es2", T.ENTER_SERVICE, True, {SettingKind.ENTER_SERVICE: wide})
    )
    assert outcome.status is DerControlStatus.REJECTED
    assert outcome.rejection is not None
    assert outcome.rejection.reason_code is ReasonCode.INVALID_VALUE
    assert "es2" not in service.controls
    # A FreqDroop that does not fit a 50 Hz grid (its over start below nominal).
    outcome = service.set_control(_droop_request("fd", over_freq_hz=49.9))
    assert outcome.status is DerControlStatus.REJECTED
    assert outcome.rejection is not None and "freqDroop" in (outcome.rejection.additional_info
                                                             or "")  # fmt: skip
    # Clearing the control restores the configured settings.
    assert service.clear(is_default=True, control_type=T.ENTER_SERVICE) == ("es",)
    assert protection.settings == BASE
    assert link.check(control(T.LIMIT_MAX_DISCHARGE, LimitMaxDischarge(0, 50.0))) is None


def test_a_scheduled_trip_curve_applies_in_its_window_only() -> None:
    clock = FakeClock()
    service = DerService(clock=clock)
    protection = GridProtection(BASE)
    DerProtection(service, protection, BASE)
    hv = DerCurve(0, DerUnit.PCT_EFFECTIVE_V, (CurvePoint(0.5, 115.0),),
                  start_time=NOW + timedelta(seconds=10), duration_s=60.0)  # fmt: skip
    request = SetRequest("hv", T.HV_MUST_TRIP, False, {SettingKind.CURVE: hv})
    assert service.set_control(request).status is DerControlStatus.ACCEPTED
    assert protection.settings == BASE
    clock.advance(10.0)
    service.refresh()
    over = [p for p in protection.settings.trip_points if p.kind is TripKind.OVER_VOLTAGE]
    assert [(p.threshold, p.clearing_time_s) for p in over] == [(1.15, 0.5)]
    clock.advance(60.0)
    service.refresh()
    assert protection.settings == BASE
    assert math.isfinite(protection.settings.nominal_voltage_v)


def test_a_power_monitoring_curve_inside_limit_max_discharge_is_refused() -> None:
    service = DerService(clock=FakeClock())
    curve = DerCurve(0, DerUnit.PCT_MAX_W, (CurvePoint(0, 100),))
    setting = LimitMaxDischarge(0, 50.0, power_monitoring_must_trip=curve)
    outcome = service.set_control(
        SetRequest("l", T.LIMIT_MAX_DISCHARGE, True, {SettingKind.LIMIT_MAX_DISCHARGE: setting})
    )
    assert outcome.status is DerControlStatus.REJECTED
    assert outcome.rejection is not None
    assert outcome.rejection.reason_code is ReasonCode.UNSUPPORTED_PARAM
    assert len(service.controls) == 0
