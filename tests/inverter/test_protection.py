"""Grid protection, frequency droop and ramps (pure cores): tables plus hypothesis properties."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.der import DerControlType, FreqDroop, GridEventFault
from station.errors import ConfigError
from station.inverter.droop import (
    DroopSettings,
    DroopValueError,
    first_order_step_w,
    freq_watt_adjustment_w,
    freq_watt_target_w,
    next_power_w,
    ramp_rate_from_gradient,
)
from station.inverter.protection import (
    ALARM_CONTROL,
    GridProtection,
    GridStatus,
    ProtectionSettings,
    ProtectionSettingsError,
    TripKind,
    TripPoint,
    category_ii_settings,
    protection_settings_from_table,
    to_grid_state,
)
from station.power import (
    EvseRating,
    ExternalInputs,
    OperationMode,
    PowerInputs,
    Reason,
    ScheduleNow,
    VehicleLimits,
    compute_command,
)

V0 = 230.0


def in_service(s: ProtectionSettings, now_s: float = 0.0) -> GridProtection:
    """A protection that has entered service at nominal by ``now_s``."""
    g = GridProtection(s)
    g.observe(V0, s.nominal_frequency_hz, now_s - s.enter_service.delay_s)
    verdict = g.observe(V0, s.nominal_frequency_hz, now_s)
    assert verdict.status is GridStatus.IN_SERVICE
    return g


FAST = category_ii_settings(V0, enter_service_delay_s=10.0, enter_service_ramp_s=10.0)


# --- defaults ------------------------------------------------------------------------------------


def test_category_ii_defaults_are_ieee_1547_2018() -> None:
    s = category_ii_settings(V0)
    table = {p.name: (p.kind, p.threshold, p.clearing_time_s) for p in s.trip_points}
    assert table == {
        "OV2": (TripKind.OVER_VOLTAGE, 1.20, 0.16),
        "OV1": (TripKind.OVER_VOLTAGE, 1.10, 2.0),
        "UV1": (TripKind.UNDER_VOLTAGE, 0.70, 10.0),
        "UV2": (TripKind.UNDER_VOLTAGE, 0.45, 0.16),
        "OF2": (TripKind.OVER_FREQUENCY, 62.0, 0.16),
        "OF1": (TripKind.OVER_FREQUENCY, 61.2, 300.0),
        "UF1": (TripKind.UNDER_FREQUENCY, 58.5, 300.0),
        "UF2": (TripKind.UNDER_FREQUENCY, 56.5, 0.16),
    }
    es = s.enter_service
    assert (es.low_voltage_pu, es.high_voltage_pu) == (0.917, 1.05)
    assert (es.low_frequency_hz, es.high_frequency_hz) == (59.5, 60.1)
    assert (es.delay_s, es.ramp_s) == (300.0, 300.0)
    assert s.normal_voltage_pu == (0.70, 1.10)
    assert s.normal_frequency_hz == (58.5, 61.2)


def test_50_hz_grid_keeps_the_offsets() -> None:
    s = category_ii_settings(V0, 50.0)
    assert s.normal_frequency_hz == pytest.approx((48.5, 51.2))
    assert (s.enter_service.low_frequency_hz, s.enter_service.high_frequency_hz) == (
        pytest.approx(49.5),
        pytest.approx(50.1),
    )
    g = in_service(s)
    assert g.observe(V0, 50.0, 1.0).discharge_allowed
    assert g.observe(V0, 51.3, 2.0).status is GridStatus.RIDE_THROUGH


# --- sequences -----------------------------------------------------------------------------------


def test_starts_out_of_service_and_enters_after_the_delay_then_ramps() -> None:
    g = GridProtection(FAST)
    first = g.observe(V0, 60.0, 100.0)
    assert first.status is GridStatus.ENTERING_SERVICE and first.tripped
    assert not first.discharge_allowed and first.power_fraction == 0.0
    assert g.observe(V0, 60.0, 109.9).status is GridStatus.ENTERING_SERVICE
    entered = g.observe(V0, 60.0, 110.0)
    assert entered.status is GridStatus.IN_SERVICE and not entered.tripped
    assert entered.discharge_allowed and entered.power_fraction == 0.0
    assert g.observe(V0, 60.0, 115.0).power_fraction == pytest.approx(0.5)
    assert g.observe(V0, 60.0, 130.0).power_fraction == 1.0


def test_enter_service_delay_restarts_when_the_window_is_left() -> None:
    g = GridProtection(FAST)
    g.observe(V0, 60.0, 0.0)
    # 60.2 Hz: inside the normal window, outside the enter-service window (59.5-60.1 Hz)
    assert g.observe(V0, 60.2, 9.0).status is GridStatus.OUT_OF_SERVICE
    assert g.observe(V0, 60.0, 10.0).status is GridStatus.ENTERING_SERVICE
    assert g.observe(V0, 60.0, 19.9).status is GridStatus.ENTERING_SERVICE
    assert g.observe(V0, 60.0, 20.0).status is GridStatus.IN_SERVICE


def test_discharge_stops_at_once_and_trip_follows_the_clearing_time() -> None:
    g = in_service(FAST, 0.0)
    v = 1.15 * V0  # beyond OV1 (1.10 pu, 2 s), inside OV2
    first = g.observe(v, 60.0, 1.0)
    assert first.status is GridStatus.RIDE_THROUGH
    assert not first.discharge_allowed and not first.tripped and not first.in_window
    assert first.trip_point is not None and first.trip_point.name == "OV1"
    assert first.alarms_started == (GridEventFault.OVER_VOLTAGE,)
    assert g.observe(v, 60.0, 2.9).status is GridStatus.RIDE_THROUGH
    tripped = g.observe(v, 60.0, 3.0)
    assert tripped.status is GridStatus.OUT_OF_SERVICE and tripped.tripped
    assert tripped.trip_point is not None and tripped.trip_point.name == "OV1"
    assert tripped.alarms_started == () and tripped.alarms_ended == ()
    back = g.observe(V0, 60.0, 4.0)
    assert back.status is GridStatus.ENTERING_SERVICE and back.tripped
    assert back.alarms_ended == (GridEventFault.OVER_VOLTAGE,)
    assert back.trip_point is not None and back.trip_point.name == "OV1"  # latched
    assert g.observe(V0, 60.0, 13.9).tripped
    assert g.observe(V0, 60.0, 14.0).status is GridStatus.IN_SERVICE


def test_ride_through_that_clears_resumes_at_once() -> None:
    g = in_service(FAST)
    assert g.observe(V0, 58.0, 1.0).status is GridStatus.RIDE_THROUGH  # UF1: 300 s
    resumed = g.observe(V0, 60.0, 200.0)
    assert resumed.status is GridStatus.IN_SERVICE and resumed.discharge_allowed
    assert resumed.alarms_ended == (GridEventFault.UNDER_FREQUENCY,)
    # the timer restarted: another 299 s below UF1 does not trip
    g.observe(V0, 58.0, 201.0)
    assert not g.observe(V0, 58.0, 499.0).tripped
    assert g.observe(V0, 58.0, 501.0).tripped


def test_each_point_keeps_its_own_timer() -> None:
    g = in_service(FAST)
    g.observe(0.6 * V0, 60.0, 1.0)  # UV1 (10 s) starts
    g.observe(0.4 * V0, 60.0, 5.0)  # UV2 (0.16 s) starts too
    v = g.observe(0.6 * V0, 60.0, 5.1)  # UV2 clears before its time
    assert v.status is GridStatus.RIDE_THROUGH
    tripped = g.observe(0.6 * V0, 60.0, 11.0)  # UV1: 10 s since t=1
    assert tripped.tripped and tripped.trip_point is not None
    assert tripped.trip_point.name == "UV1"


def test_clearing_time_zero_trips_on_the_observation() -> None:
    s = replace(FAST, trip_points=(*FAST.trip_points, TripPoint(TripKind.OVER_VOLTAGE, 1.3, 0.0)))
    g = in_service(s)
    verdict = g.observe(1.31 * V0, 60.0, 1.0)
    assert verdict.tripped and verdict.trip_point is not None
    assert verdict.trip_point.threshold == 1.3


def test_observation_period_trips_fast_points_on_the_first_observation() -> None:
    s = replace(FAST, observation_period_s=1.0)
    g = in_service(s)
    verdict = g.observe(1.25 * V0, 60.0, 1.0)  # OV2 0.16 s < the 1 s between observations
    assert verdict.tripped and verdict.trip_point is not None
    assert verdict.trip_point.name == "OV2"
    g2 = in_service(s)
    assert g2.observe(1.15 * V0, 60.0, 1.0).status is GridStatus.RIDE_THROUGH  # OV1: 2 s


def test_the_outer_47_63_hz_window_is_expressible() -> None:
    s = ProtectionSettings(
        nominal_voltage_v=V0,
        nominal_frequency_hz=50.0,
        trip_points=(
            TripPoint(TripKind.UNDER_FREQUENCY, 47.0, 0.0, "F<"),
            TripPoint(TripKind.OVER_FREQUENCY, 63.0, 0.0, "F>"),
        ),
        enter_service=replace(FAST.enter_service, low_frequency_hz=49.5, high_frequency_hz=50.1),
    )
    assert s.normal_frequency_hz == (47.0, 63.0)
    assert s.normal_voltage_pu == (0.0, math.inf)
    g = in_service(s)
    assert g.observe(V0, 47.0, 1.0).discharge_allowed  # on the bound: inside
    low = g.observe(V0, 46.99, 2.0)
    assert low.tripped and low.trip_point is not None and low.trip_point.name == "F<"
    assert in_service(s).observe(V0, 63.01, 1.0).tripped


@pytest.mark.parametrize(
    ("voltage_v", "frequency_hz", "now_s", "needle"),
    [
        (None, 60.0, 1.0, "no voltage"),
        (V0, None, 1.0, "no frequency"),
        (math.nan, 60.0, 1.0, "voltage nan"),
        (math.inf, 60.0, 1.0, "voltage inf"),
        (-1.0, 60.0, 1.0, "voltage -1.0"),
        (3 * V0, 60.0, 1.0, "physical range"),
        (V0, 0.0, 1.0, "frequency 0.0"),
        (V0, -60.0, 1.0, "frequency -60.0"),
        (V0, 100.5, 1.0, "frequency 100.5"),
        (V0, math.nan, 1.0, "frequency nan"),
        (V0, 60.0, math.nan, "time nan"),
        ("230", 60.0, 1.0, "not a number"),
    ],
)
def test_impossible_measurements_trip_at_once(
    voltage_v: object, frequency_hz: object, now_s: float, needle: str
) -> None:
    g = in_service(FAST)
    verdict = g.observe(voltage_v, frequency_hz, now_s)  # type: ignore[arg-type]
    assert verdict.tripped and verdict.status is GridStatus.OUT_OF_SERVICE
    assert needle in verdict.reason and "measurement fault" in verdict.reason
    assert verdict.alarms_started == (GridEventFault.LOCAL_EMERGENCY,)
    assert not to_grid_state(verdict).in_window
    # a good measurement ends the alarm, and service needs the full delay again
    later = g.observe(V0, 60.0, 2.0)
    assert later.alarms_ended == (GridEventFault.LOCAL_EMERGENCY,) and later.tripped


def test_time_going_backwards_never_delays_a_trip() -> None:
    g = in_service(FAST, 100.0)
    g.observe(1.15 * V0, 60.0, 101.0)
    assert g.observe(1.15 * V0, 60.0, 50.0).status is GridStatus.RIDE_THROUGH
    assert g.observe(1.15 * V0, 60.0, 103.0).tripped


def test_start_in_service_skips_only_the_first_delay() -> None:
    s = replace(FAST, start_in_service=True)
    g = GridProtection(s)
    first = g.observe(V0, 60.0, 0.0)
    assert first.status is GridStatus.IN_SERVICE and first.power_fraction == 1.0
    g.observe(1.25 * V0, 60.0, 1.0)
    assert g.observe(1.25 * V0, 60.0, 1.2).tripped
    assert g.observe(V0, 60.0, 2.0).status is GridStatus.ENTERING_SERVICE


def test_alarm_controls() -> None:
    assert ALARM_CONTROL[GridEventFault.OVER_VOLTAGE] is DerControlType.HV_MUST_TRIP
    assert ALARM_CONTROL[GridEventFault.UNDER_FREQUENCY] is DerControlType.LF_MUST_TRIP
    assert {k.fault for k in TripKind} == set(ALARM_CONTROL)


# --- the energy manager's view -------------------------------------------------------------------


def _command(grid_verdict_state: object, setpoint_w: float) -> float:
    inputs = PowerInputs(
        evse_id=1,
        schedule=ScheduleNow(None, None, setpoint_w, OperationMode.CENTRAL_SETPOINT),
        rating=EvseRating(20_000.0, 20_000.0, 50.0),
        vehicle=VehicleLimits(True, 20_000.0, 20_000.0, True),
        grid=grid_verdict_state,  # type: ignore[arg-type]
        external=ExternalInputs(),
        operative=True,
        energy_allowed=True,
        operator_limit_w=None,
    )
    return compute_command(inputs).power_w


def test_to_grid_state_drives_the_energy_manager() -> None:
    g = in_service(FAST)
    normal = g.observe(V0, 60.0, 100.0)
    state = to_grid_state(normal, rating_w=10_000.0, max_export_w=8_000.0)
    assert state.in_window and state.max_export_w == 8_000.0 and state.frequency_hz == 60.0
    assert _command(state, -9_000.0) == -8_000.0
    riding = g.observe(V0, 61.5, 101.0)
    state = to_grid_state(riding, rating_w=10_000.0)
    assert state.in_window and state.max_export_w == 0.0
    assert _command(state, -5_000.0) == 0.0  # no discharge, at once
    assert _command(state, 5_000.0) == 5_000.0  # charging rides through
    g.observe(0.3 * V0, 61.5, 102.0)  # UV2: 0.16 s
    tripped = g.observe(0.3 * V0, 61.5, 102.5)
    state = to_grid_state(tripped, rating_w=10_000.0)
    assert not state.in_window
    assert _command(state, 5_000.0) == 0.0
    entering = GridProtection(FAST)
    entering.observe(V0, 60.0, 0.0)
    entering.observe(V0, 60.0, 10.0)  # in service
    ramping = entering.observe(V0, 60.0, 12.5)  # a quarter through the 10 s ramp
    state = to_grid_state(ramping, rating_w=10_000.0)
    assert state.max_import_w == pytest.approx(2_500.0)
    assert state.max_export_w == pytest.approx(2_500.0)


def test_grid_trip_reason_reaches_the_command() -> None:
    g = GridProtection(FAST)
    inputs = PowerInputs(
        evse_id=1,
        schedule=ScheduleNow(10_000.0, None, None),
        rating=EvseRating(20_000.0, 20_000.0, 50.0),
        vehicle=VehicleLimits(True, 20_000.0, 20_000.0, True),
        grid=to_grid_state(g.observe(V0, 60.0, 0.0)),
        external=ExternalInputs(),
        operative=True,
        energy_allowed=True,
        operator_limit_w=None,
    )
    assert compute_command(inputs).reason is Reason.GRID_TRIP


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (dict(nominal_voltage_v=0.0), "must be > 0"),
        (dict(nominal_frequency_hz=math.nan), "finite"),
        (dict(observation_period_s=-1.0), ">= 0"),
        (dict(trip_points=(TripPoint(TripKind.OVER_VOLTAGE, 0.9, 1.0, "X"),)), "above nominal"),
        (dict(trip_points=(TripPoint(TripKind.UNDER_FREQUENCY, 61.0, 1.0, "X"),)), "below"),
        (
            dict(trip_points=(TripPoint(TripKind.OVER_VOLTAGE, 1.04, 1.0, "X"),)),
            "within the normal window",
        ),
    ],
)
def test_bad_settings_are_rejected(change: dict[str, object], needle: str) -> None:
    with pytest.raises(ProtectionSettingsError, match=needle):
        replace(FAST, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("OverVolts", 1.1, 1.0), "is not one of"),
        ((TripKind.OVER_VOLTAGE, -1.0, 1.0), "> 0"),
        ((TripKind.OVER_VOLTAGE, 1.1, -0.1), ">= 0"),
        ((TripKind.OVER_VOLTAGE, math.inf, 1.0), "finite"),
        ((TripKind.OVER_VOLTAGE, "1.1", 1.0), "finite"),
    ],
)
def test_bad_trip_points_are_rejected(args: tuple[object, ...], needle: str) -> None:
    with pytest.raises(ProtectionSettingsError, match=needle):
        TripPoint(*args)  # type: ignore[arg-type]


def test_grid_table_from_config() -> None:
    s = protection_settings_from_table(
        {
            "nominal_voltage_v": 400,
            "nominal_frequency_hz": 50,
            "enter_service_delay_s": 60,
            "enter_service_voltage_pu": [0.95, 1.05],
            "observation_period_s": 0.5,
            "trip": [
                {"kind": "UnderFrequency", "threshold": 47.0, "clearing_time_s": 0},
                {"kind": "OverFrequency", "threshold": 63.0, "clearing_time_s": 0, "name": "hi"},
            ],
        },
        "station.toml",
    )
    assert s.nominal_voltage_v == 400.0 and len(s.trip_points) == 10
    assert s.enter_service.delay_s == 60.0 and s.enter_service.low_voltage_pu == 0.95
    assert s.observation_period_s == 0.5
    only = protection_settings_from_table(
        {
            "defaults": "none",
            "nominal_frequency_hz": 50,
            "trip": [{"kind": "UnderFrequency", "threshold": 47.0, "clearing_time_s": 0}],
        },
        "station.toml",
    )
    assert [p.threshold for p in only.trip_points] == [47.0]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"nominal_voltage": 230}, "station.toml: grid.nominal_voltage: unknown key"),
        ({"nominal_voltage_v": "230"}, "station.toml: grid.nominal_voltage_v: must be a number"),
        ({"defaults": "vde"}, "station.toml: grid.defaults: must be one of"),
        ({"trip": {"kind": "x"}}, "station.toml: grid.trip: must be an array"),
        (
            {"trip": [{"kind": "UnderFrequency", "threshold": 47.0}]},
            "station.toml: grid.trip[0].clearing_time_s: missing",
        ),
        (
            {"trip": [{"kind": "Under", "threshold": 47.0, "clearing_time_s": 0}]},
            "station.toml: grid.trip[0]: trip kind 'Under' is not one of",
        ),
        (
            {"trip": [{"kind": "UnderFrequency", "threshold": 47, "clearing_time_s": 0, "x": 1}]},
            "station.toml: grid.trip[0].x: unknown key",
        ),
        (
            {"enter_service_voltage_pu": [1.0]},
            "station.toml: grid.enter_service_voltage_pu: must be a list",
        ),
        (
            {"enter_service_voltage_pu": [0.5, 1.05]},
            "station.toml: grid: enter_service voltage window",
        ),
    ],
)
def test_grid_table_errors_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        protection_settings_from_table(table, "station.toml")
    assert str(caught.value).startswith(message)


# --- properties ----------------------------------------------------------------------------------

# Voltages and frequencies that straddle every default threshold, plus a few impossible ones.
voltages = st.one_of(
    st.sampled_from([0.0, 0.44, 0.46, 0.69, 0.71, 0.92, 1.0, 1.04, 1.06, 1.09, 1.11, 1.19, 1.21]),
    st.floats(0.0, 1.3),
).map(lambda pu: pu * V0)
frequencies = st.one_of(
    st.sampled_from(
        [56.4, 56.6, 58.4, 58.6, 59.4, 59.6, 60.0, 60.05, 60.2, 61.1, 61.3, 61.9, 62.1]
    ),
    st.floats(55.0, 63.0),
)
steps = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0.0, 0.01, 0.16, 1.0, 5.0]), st.floats(0.0, 120.0)),
        st.one_of(voltages, st.just(math.nan)),
        frequencies,
    ),
    min_size=1,
    max_size=60,
)
setting_choices = st.sampled_from(
    [
        FAST,
        replace(FAST, observation_period_s=0.5),
        category_ii_settings(V0, enter_service_delay_s=0.0, enter_service_ramp_s=0.0),
        category_ii_settings(V0),
    ]
)


@settings(max_examples=300, deadline=None)
@given(setting_choices, steps)
def test_protection_invariants(
    s: ProtectionSettings, sequence: list[tuple[float, float, float]]
) -> None:
    """Never in service outside the window; trip by the clearing time; no early return."""
    g = GridProtection(s)
    now = 0.0
    exceeded_since: dict[int, float] = {}
    enter_since: float | None = None
    energized = False
    for dt, voltage_v, frequency_hz in sequence:
        now += dt
        verdict = g.observe(voltage_v, frequency_hz, now)
        valid = not math.isnan(voltage_v)
        # oracle: each point's excursion start and the enter-service window
        for index, point in enumerate(s.trip_points):
            if valid and point.exceeded(voltage_v / V0, frequency_hz):
                exceeded_since.setdefault(index, now)
            else:
                exceeded_since.pop(index, None)
        in_window = valid and not exceeded_since
        if in_window and s.enter_service.holds(voltage_v / V0, frequency_hz):
            enter_since = now if enter_since is None else enter_since
        else:
            enter_since = None

        assert verdict.in_window == in_window
        if verdict.discharge_allowed:
            assert in_window and verdict.status is GridStatus.IN_SERVICE
        if verdict.status is GridStatus.IN_SERVICE:
            assert in_window
        if not valid:
            assert verdict.tripped
        for index, since in exceeded_since.items():
            point = s.trip_points[index]
            if now + s.observation_period_s >= since + point.clearing_time_s:
                assert verdict.tripped, f"{point.label} past its clearing time"
        now_energized = not verdict.tripped
        if now_energized and not energized:
            assert enter_since is not None
            assert now - enter_since >= s.enter_service.delay_s
        energized = now_energized
        assert 0.0 <= verdict.power_fraction <= 1.0
        assert (verdict.power_fraction == 0.0) or energized


@settings(max_examples=200, deadline=None)
@given(st.floats(30.0, 80.0, allow_nan=False), st.floats(0.0, 100.0))
def test_outer_window_trips_on_the_observation(frequency_hz: float, dt: float) -> None:
    s = category_ii_settings(
        V0,
        50.0,
        extra_trip_points=(
            TripPoint(TripKind.UNDER_FREQUENCY, 47.0, 0.0),
            TripPoint(TripKind.OVER_FREQUENCY, 63.0, 0.0),
        ),
        enter_service_delay_s=1.0,
    )
    g = in_service(s, 10.0)
    verdict = g.observe(V0, frequency_hz, 10.0 + dt)
    if not 47.0 <= frequency_hz <= 63.0:
        assert verdict.tripped
    if not 48.5 <= frequency_hz <= 51.2:
        assert not verdict.discharge_allowed


# --- frequency droop -----------------------------------------------------------------------------

DROOP = DroopSettings.ieee_default(60.0)


def test_droop_table() -> None:
    # 60.336 Hz: 0.3 Hz past the start; 0.3 / (60 * 0.05) = 0.1 pu of 10 kW = 1 kW more charging
    assert freq_watt_adjustment_w(60.336, 0.0, 10_000.0, DROOP) == pytest.approx(1_000.0)
    assert freq_watt_adjustment_w(59.664, 0.0, 10_000.0, DROOP) == pytest.approx(-1_000.0)
    assert freq_watt_adjustment_w(60.03, -5_000.0, 10_000.0, DROOP) == 0.0  # dead band
    assert freq_watt_target_w(62.0, -5_000.0, 10_000.0, DROOP) == pytest.approx(1_546.6667)
    assert freq_watt_target_w(65.0, -5_000.0, 10_000.0, DROOP) == pytest.approx(10_000.0)
    assert freq_watt_target_w(55.0, 5_000.0, 10_000.0, DROOP) == pytest.approx(-10_000.0)
    # already beyond the rating: the droop never pushes the other way
    assert freq_watt_adjustment_w(61.0, 12_000.0, 10_000.0, DROOP) == 0.0


def test_droop_from_an_ocpp_control() -> None:
    control = FreqDroop(
        priority=0,
        over_freq_hz=50.2,
        under_freq_hz=49.8,
        over_droop=0.04,
        under_droop=0.04,
        response_time_s=2.0,
    )
    d = DroopSettings.from_der(control, 50.0)
    # 0.4 Hz past 50.2 Hz: 0.4 / (50 * 0.04) = 0.2 pu
    assert freq_watt_adjustment_w(50.6, 0.0, 10_000.0, d) == pytest.approx(2_000.0)
    with pytest.raises(DroopValueError):
        DroopSettings.from_der(replace(control, over_droop=0.0), 50.0)
    with pytest.raises(DroopValueError):
        DroopSettings.from_der(replace(control, over_freq_hz=49.0), 50.0)


powers = st.floats(-50_000.0, 50_000.0)
ratings = st.floats(0.0, 50_000.0)


@given(st.floats(45.0, 75.0), st.floats(45.0, 75.0), powers, ratings)
def test_droop_is_monotone_in_frequency(
    f1: float, f2: float, pre_w: float, rating_w: float
) -> None:
    low, high = min(f1, f2), max(f1, f2)
    assert freq_watt_adjustment_w(low, pre_w, rating_w, DROOP) <= freq_watt_adjustment_w(
        high, pre_w, rating_w, DROOP
    )


@given(st.floats(59.964, 60.036), powers, ratings)
def test_droop_is_zero_in_the_dead_band(f: float, pre_w: float, rating_w: float) -> None:
    assert freq_watt_adjustment_w(f, pre_w, rating_w, DROOP) == 0.0


@given(st.floats(40.0, 80.0), powers, ratings)
def test_droop_is_bounded_by_the_rating(f: float, pre_w: float, rating_w: float) -> None:
    adjustment_w = freq_watt_adjustment_w(f, pre_w, rating_w, DROOP)
    target_w = pre_w + adjustment_w
    assert abs(target_w) <= max(abs(pre_w), rating_w) + 1e-6
    if abs(pre_w) <= rating_w:
        assert -rating_w - 1e-6 <= target_w <= rating_w + 1e-6
    # over-frequency never lowers the power, under-frequency never raises it
    assert adjustment_w >= 0 if f > 60.0 else adjustment_w <= 0


@given(powers, powers, st.floats(0.0, 100.0), st.floats(0.0, 30.0))
def test_first_order_step_stays_between(
    prev_w: float, target_w: float, dt: float, tr: float
) -> None:
    value = first_order_step_w(prev_w, target_w, dt, tr)
    assert min(prev_w, target_w) <= value <= max(prev_w, target_w)


def test_first_order_reaches_90_percent_at_the_response_time() -> None:
    assert first_order_step_w(0.0, 1_000.0, 5.0, 5.0) == pytest.approx(900.0)
    assert first_order_step_w(0.0, 1_000.0, 1.0, 0.0) == 1_000.0


# --- ramps ---------------------------------------------------------------------------------------


def test_ramp_table() -> None:
    assert next_power_w(10_000.0, 0.0, 1.0, 1_000.0) == 1_000.0
    assert next_power_w(10_000.0, 9_500.0, 1.0, 1_000.0) == 10_000.0
    assert next_power_w(-10_000.0, -2_000.0, 2.0, 1_000.0) == -4_000.0
    assert next_power_w(2_000.0, 8_000.0, 0.0, 1_000.0) == 2_000.0  # towards 0: at once
    assert next_power_w(0.0, -8_000.0, 0.0, 1_000.0) == 0.0
    assert next_power_w(-3_000.0, 8_000.0, 1.0, 1_000.0) == -1_000.0  # reversal: from 0 W
    assert next_power_w(5_000.0, 0.0, 1.0, None) == 5_000.0
    assert ramp_rate_from_gradient(10_000.0, 20.0) == 500.0
    assert ramp_rate_from_gradient(10_000.0, 0.0) is None
    with pytest.raises(DroopValueError):
        next_power_w(1.0, 0.0, -1.0, 1.0)
    with pytest.raises(DroopValueError):
        next_power_w(1.0, 0.0, 1.0, 0.0)
    with pytest.raises(DroopValueError):
        next_power_w(math.nan, 0.0, 1.0, 1.0)


rates = st.one_of(st.none(), st.floats(1.0, 100_000.0))


@given(powers, powers, st.floats(0.0, 60.0), rates)
def test_ramp_properties(target_w: float, previous_w: float, dt: float, rate: float | None) -> None:
    value = next_power_w(target_w, previous_w, dt, rate)
    # never beyond the target, never in a direction the target does not have
    assert min(0.0, target_w) <= value <= max(0.0, target_w)
    # moves towards 0 W are never delayed (a trip or a lowered limit holds at once)
    if target_w == 0 or (previous_w * target_w > 0 and abs(target_w) <= abs(previous_w)):
        assert value == target_w
    # growth of the magnitude is bounded by the rate
    if rate is not None:
        start = previous_w if previous_w * target_w > 0 else 0.0
        assert abs(value) - abs(start) <= rate * dt + 1e-6
    else:
        assert value == target_w


@given(powers, powers, st.floats(0.1, 10.0), st.floats(100.0, 10_000.0))
def test_ramp_reaches_the_target(
    target_w: float, previous_w: float, dt: float, rate: float
) -> None:
    value = previous_w
    for _ in range(math.ceil(abs(target_w) / (rate * dt)) + 1):
        value = next_power_w(target_w, value, dt, rate)
    assert value == target_w
