"""Table tests: exact commands for every gate and operation mode of station.power.core.

The base case: a 50 kW / 50 kW / 125 A bidirectional EVSE, a vehicle at 400 V and 50 % SoC
(bounds 20-90 %) that accepts 60 kW and gives 40 kW and allows discharge, the grid in window.
At 400 V the EVSE's 125 A is also 50 kW.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from station.power import (
    EvseRating,
    ExternalInputs,
    GridState,
    OperationMode,
    PowerCommand,
    PowerInputs,
    Reason,
    ScheduleNow,
    VehicleLimits,
    compute_command,
)

M = OperationMode
R = Reason

SIGNAL_CURVE = ((-100.0, -10_000.0), (0.0, 0.0), (100.0, 10_000.0))
# Under-frequency: the grid lacks generation, so discharge; over-frequency: absorb by charging.
FREQ_CURVE = ((49.5, -10_000.0), (49.75, 0.0), (50.25, 0.0), (50.5, 10_000.0))


def make(
    mode: OperationMode = M.CHARGING_ONLY,
    *,
    schedule: dict[str, Any] | None = None,
    rating: dict[str, Any] | None = None,
    vehicle: dict[str, Any] | None = None,
    grid: dict[str, Any] | None = None,
    external: dict[str, Any] | None = None,
    **top: Any,
) -> PowerInputs:
    base = PowerInputs(
        evse_id=1,
        schedule=ScheduleNow(limit_w=None, discharge_limit_w=None, setpoint_w=None, mode=mode),
        rating=EvseRating(
            max_charge_power_w=50_000, max_discharge_power_w=50_000, max_current_a=125
        ),
        vehicle=VehicleLimits(
            connected=True,
            max_charge_power_w=60_000,
            max_discharge_power_w=40_000,
            discharge_allowed=True,
            soc_pct=50,
            min_soc_pct=20,
            max_soc_pct=90,
            voltage_v=400,
        ),
        grid=GridState(in_window=True, frequency_hz=50.0),
        external=ExternalInputs(),
        operative=True,
        energy_allowed=True,
        operator_limit_w=None,
    )
    return replace(
        base,
        schedule=replace(base.schedule, **(schedule or {})),
        rating=replace(base.rating, **(rating or {})),
        vehicle=replace(base.vehicle, **(vehicle or {})),
        grid=replace(base.grid, **(grid or {})),
        external=replace(base.external, **(external or {})),
        **top,
    )


def check(
    inputs: PowerInputs, power_w: float, reason: Reason, ceilings: tuple[float, float]
) -> None:
    command = compute_command(inputs)
    assert command == PowerCommand(
        evse_id=inputs.evse_id,
        power_w=power_w,
        mode=inputs.schedule.mode,
        reason=reason,
        charge_ceiling_w=ceilings[0],
        discharge_ceiling_w=ceilings[1],
    )


GATES = [
    pytest.param(make(grid={"in_window": False}), R.GRID_TRIP, id="grid-out-of-window"),
    pytest.param(
        make(M.CENTRAL_SETPOINT, schedule={"setpoint_w": -7_000.0}, grid={"in_window": False}),
        R.GRID_TRIP,
        id="grid-trip-stops-a-discharge-setpoint",
    ),
    pytest.param(make(operative=False), R.INOPERATIVE, id="inoperative"),
    pytest.param(make(vehicle={"connected": False}), R.NO_VEHICLE, id="no-vehicle"),
    pytest.param(make(energy_allowed=False), R.NOT_ALLOWED, id="no-transaction-may-draw"),
    pytest.param(make(M.IDLE, schedule={"setpoint_w": 5_000.0}), R.IDLE_MODE, id="idle"),
    pytest.param(
        make(grid={"in_window": False}, vehicle={"connected": False}, operative=False),
        R.GRID_TRIP,
        id="grid-trip-named-first",
    ),
]


@pytest.mark.parametrize(("inputs", "reason"), GATES)
def test_gates_carry_no_power(inputs: PowerInputs, reason: Reason) -> None:
    check(inputs, 0.0, reason, (0.0, 0.0))


CHARGING_ONLY = [
    pytest.param({}, 50_000.0, R.LIMITED_BY_RATING, id="rating"),
    pytest.param({"schedule": {"limit_w": 11_000.0}}, 11_000.0, R.LIMITED_BY_SCHEDULE, id="limit"),
    pytest.param({"schedule": {"limit_w": 0.0}}, 0.0, R.LIMITED_BY_SCHEDULE, id="limit-0-no-power"),
    pytest.param(
        {"schedule": {"limit_w": 0.0, "discharge_limit_w": -5_000.0}},
        0.0,
        R.LIMITED_BY_SCHEDULE,
        id="limit-0-with-discharge-limit-still-no-discharge",
    ),
    pytest.param(
        {"schedule": {"setpoint_w": -5_000.0}}, 50_000.0, R.LIMITED_BY_RATING, id="setpoint-ignored"
    ),
    pytest.param({"vehicle": {"soc_pct": 90.0}}, 0.0, R.SOC_BOUND, id="soc-at-max"),
    pytest.param(
        {"vehicle": {"max_charge_power_w": 30_000.0}}, 30_000.0, R.LIMITED_BY_VEHICLE, id="vehicle"
    ),
    pytest.param(
        {"vehicle": {"max_charge_current_a": 50.0}},
        20_000.0,
        R.LIMITED_BY_VEHICLE,
        id="vehicle-current-times-voltage",
    ),
    pytest.param(
        {"rating": {"max_current_a": 100.0}}, 40_000.0, R.LIMITED_BY_RATING, id="evse-current"
    ),
    pytest.param({"grid": {"max_import_w": 7_000.0}}, 7_000.0, R.LIMITED_BY_GRID, id="grid-import"),
    pytest.param({"operator_limit_w": 3_000.0}, 3_000.0, R.LIMITED_BY_OPERATOR, id="operator"),
    pytest.param(
        {"external": {"limit_w": 1_000.0}}, 50_000.0, R.LIMITED_BY_RATING, id="external-not-applied"
    ),
    pytest.param(
        {"schedule": {"limit_w": 50_000.0}},
        50_000.0,
        R.LIMITED_BY_SCHEDULE,
        id="tie-names-the-schedule",
    ),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason"), CHARGING_ONLY)
def test_charging_only_charges_at_the_ceiling_and_never_discharges(
    overrides: dict[str, Any], power_w: float, reason: Reason
) -> None:
    check(make(M.CHARGING_ONLY, **overrides), power_w, reason, (power_w, 0.0))


def sp(setpoint_w: float | None, **schedule: Any) -> dict[str, Any]:
    return {"schedule": {"setpoint_w": setpoint_w, **schedule}}


CENTRAL_SETPOINT = [
    pytest.param(sp(7_000.0), 7_000.0, R.SETPOINT, (50_000.0, 40_000.0), id="charge"),
    pytest.param(sp(-7_000.0), -7_000.0, R.SETPOINT, (50_000.0, 40_000.0), id="discharge"),
    pytest.param(sp(0.0), 0.0, R.SETPOINT, (50_000.0, 40_000.0), id="zero"),
    pytest.param(sp(None), 0.0, R.AWAITING_INPUT, (50_000.0, 40_000.0), id="no-setpoint-holds-0"),
    pytest.param(
        sp(-7_000.0, discharge_limit_w=-5_000.0),
        -5_000.0,
        R.LIMITED_BY_SCHEDULE,
        (50_000.0, 5_000.0),
        id="discharge-limit",
    ),
    pytest.param(
        sp(20_000.0, limit_w=11_000.0),
        11_000.0,
        R.LIMITED_BY_SCHEDULE,
        (11_000.0, 40_000.0),
        id="limit",
    ),
    pytest.param(
        sp(7_000.0, limit_w=0.0),
        0.0,
        R.LIMITED_BY_SCHEDULE,
        (0.0, 40_000.0),
        id="limit-0-stops-charging-never-discharges",
    ),
    pytest.param(
        sp(-7_000.0, limit_w=0.0),
        -7_000.0,
        R.SETPOINT,
        (0.0, 40_000.0),
        id="limit-0-does-not-block-a-discharge-setpoint",
    ),
    pytest.param(
        sp(-7_000.0, discharge_limit_w=0.0),
        0.0,
        R.LIMITED_BY_SCHEDULE,
        (50_000.0, 0.0),
        id="discharge-limit-0-no-discharge",
    ),
    pytest.param(
        {**sp(-7_000.0), "vehicle": {"discharge_allowed": False}},
        0.0,
        R.LIMITED_BY_VEHICLE,
        (50_000.0, 0.0),
        id="vehicle-refuses-discharge",
    ),
    pytest.param(
        {**sp(-7_000.0), "vehicle": {"soc_pct": 20.0}},
        0.0,
        R.SOC_BOUND,
        (50_000.0, 0.0),
        id="soc-at-min",
    ),
    pytest.param(
        {**sp(7_000.0), "vehicle": {"soc_pct": 20.0}},
        7_000.0,
        R.SETPOINT,
        (50_000.0, 0.0),
        id="soc-at-min-still-charges",
    ),
    pytest.param(
        sp(-70_000.0), -40_000.0, R.LIMITED_BY_VEHICLE, (50_000.0, 40_000.0), id="vehicle-max"
    ),
    pytest.param(
        {**sp(-30_000.0), "vehicle": {"max_discharge_current_a": 25.0}},
        -10_000.0,
        R.LIMITED_BY_VEHICLE,
        (50_000.0, 10_000.0),
        id="vehicle-discharge-current",
    ),
    pytest.param(
        {**sp(-30_000.0), "grid": {"max_export_w": 10_000.0}},
        -10_000.0,
        R.LIMITED_BY_GRID,
        (50_000.0, 10_000.0),
        id="grid-export",
    ),
    pytest.param(
        {**sp(-30_000.0), "grid": {"der_limit_max_discharge_w": 8_000.0}},
        -8_000.0,
        R.LIMITED_BY_GRID,
        (50_000.0, 8_000.0),
        id="der-limit-max-discharge",
    ),
    pytest.param(
        {**sp(-30_000.0), "rating": {"max_discharge_power_w": 0.0}},
        0.0,
        R.LIMITED_BY_RATING,
        (50_000.0, 0.0),
        id="evse-not-bidirectional",
    ),
    pytest.param(
        {**sp(-30_000.0), "operator_limit_w": 6_000.0},
        -6_000.0,
        R.LIMITED_BY_OPERATOR,
        (6_000.0, 6_000.0),
        id="operator-both-directions",
    ),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason", "ceilings"), CENTRAL_SETPOINT)
def test_central_setpoint(
    overrides: dict[str, Any], power_w: float, reason: Reason, ceilings: tuple[float, float]
) -> None:
    check(make(M.CENTRAL_SETPOINT, **overrides), power_w, reason, ceilings)


EXTERNAL_SETPOINT = [
    pytest.param({"external": {"setpoint_w": -6_000.0}}, -6_000.0, R.SETPOINT, id="discharge"),
    pytest.param({"external": {"setpoint_w": 9_000.0}}, 9_000.0, R.SETPOINT, id="charge"),
    pytest.param({}, 0.0, R.AWAITING_INPUT, id="none-yet-holds-0"),
    pytest.param(sp(5_000.0), 0.0, R.AWAITING_INPUT, id="schedule-setpoint-not-used"),
    pytest.param(
        {"external": {"setpoint_w": 90_000.0}}, 50_000.0, R.LIMITED_BY_RATING, id="clamped"
    ),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason"), EXTERNAL_SETPOINT)
def test_external_setpoint(overrides: dict[str, Any], power_w: float, reason: Reason) -> None:
    check(make(M.EXTERNAL_SETPOINT, **overrides), power_w, reason, (50_000.0, 40_000.0))


EXTERNAL_LIMITS = [
    pytest.param({}, 50_000.0, R.LIMITED_BY_RATING, (50_000.0, 40_000.0), id="no-external-limits"),
    pytest.param(
        {"external": {"limit_w": 9_000.0, "discharge_limit_w": -4_000.0}},
        9_000.0,
        R.LIMITED_BY_EXTERNAL,
        (9_000.0, 4_000.0),
        id="external-limits",
    ),
    pytest.param(
        {"external": {"limit_w": 0.0}},
        0.0,
        R.LIMITED_BY_EXTERNAL,
        (0.0, 40_000.0),
        id="external-limit-0-no-power-not-discharge",
    ),
    pytest.param(
        {"external": {"limit_w": 20_000.0}, "schedule": {"limit_w": 11_000.0}},
        11_000.0,
        R.LIMITED_BY_SCHEDULE,
        (11_000.0, 40_000.0),
        id="schedule-still-applies",
    ),
    pytest.param(
        {"external": {"setpoint_w": -3_000.0}},
        50_000.0,
        R.LIMITED_BY_RATING,
        (50_000.0, 40_000.0),
        id="external-setpoint-not-used",
    ),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason", "ceilings"), EXTERNAL_LIMITS)
def test_external_limits(
    overrides: dict[str, Any], power_w: float, reason: Reason, ceilings: tuple[float, float]
) -> None:
    check(make(M.EXTERNAL_LIMITS, **overrides), power_w, reason, ceilings)


def afrr(
    signal: float | None, baseline_w: float | None = 2_000.0, curve: Any = SIGNAL_CURVE
) -> Any:
    return {
        "schedule": {"signal_watt_curve": curve, "baseline_w": baseline_w},
        "external": {"afrr_signal": signal},
    }


CENTRAL_FREQUENCY = [
    pytest.param(afrr(50), 7_000.0, R.AFRR_SIGNAL, id="baseline-plus-half-activation"),
    pytest.param(afrr(-100), -8_000.0, R.AFRR_SIGNAL, id="down-activation-discharges"),
    pytest.param(afrr(500), 12_000.0, R.AFRR_SIGNAL, id="flat-beyond-the-last-point"),
    pytest.param(afrr(-500), -8_000.0, R.AFRR_SIGNAL, id="flat-before-the-first-point"),
    pytest.param(afrr(None), 2_000.0, R.AFRR_SIGNAL, id="no-signal-yet-baseline"),
    pytest.param(afrr(50, curve=()), 2_000.0, R.AFRR_SIGNAL, id="no-curve-baseline"),
    pytest.param(afrr(-200, baseline_w=None), -10_000.0, R.AFRR_SIGNAL, id="no-baseline-is-0"),
    pytest.param(afrr(None, baseline_w=None), 0.0, R.AFRR_SIGNAL, id="nothing-0"),
    pytest.param(afrr(-100, baseline_w=-45_000.0), -40_000.0, R.LIMITED_BY_VEHICLE, id="clamped"),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason"), CENTRAL_FREQUENCY)
def test_central_frequency(overrides: dict[str, Any], power_w: float, reason: Reason) -> None:
    check(make(M.CENTRAL_FREQUENCY, **overrides), power_w, reason, (50_000.0, 40_000.0))


def hz(frequency_hz: float | None, baseline_w: float | None = None, curve: Any = FREQ_CURVE) -> Any:
    return {
        "schedule": {"freq_watt_curve": curve, "baseline_w": baseline_w},
        "grid": {"frequency_hz": frequency_hz},
    }


LOCAL_FREQUENCY = [
    pytest.param(hz(50.0), 0.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="deadband"),
    pytest.param(hz(49.625), -5_000.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="under"),
    pytest.param(hz(50.375), 5_000.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="over"),
    pytest.param(hz(49.5), -10_000.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="at-point"),
    pytest.param(hz(48.0), -10_000.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="flat-low"),
    pytest.param(hz(52.0), 10_000.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="flat-high"),
    pytest.param(
        hz(50.0, baseline_w=3_000.0), 3_000.0, R.FREQUENCY_RESPONSE, (50_000.0, 40_000.0), id="base"
    ),
    pytest.param(
        hz(49.625, baseline_w=3_000.0),
        -2_000.0,
        R.FREQUENCY_RESPONSE,
        (50_000.0, 40_000.0),
        id="baseline-plus-response",
    ),
    pytest.param(hz(None), 0.0, R.AWAITING_INPUT, (50_000.0, 40_000.0), id="no-measurement"),
    pytest.param(hz(49.0, curve=()), 0.0, R.AWAITING_INPUT, (50_000.0, 40_000.0), id="no-curve"),
    pytest.param(
        {**hz(49.0), "vehicle": {"discharge_allowed": False}},
        0.0,
        R.LIMITED_BY_VEHICLE,
        (50_000.0, 0.0),
        id="vehicle-refuses-discharge",
    ),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason", "ceilings"), LOCAL_FREQUENCY)
def test_local_frequency(
    overrides: dict[str, Any], power_w: float, reason: Reason, ceilings: tuple[float, float]
) -> None:
    check(make(M.LOCAL_FREQUENCY, **overrides), power_w, reason, ceilings)


def site(limit_w: float | None, site_w: float | None, own_w: float | None, **more: Any) -> Any:
    return {
        "grid": {"site_limit_w": limit_w, "site_power_w": site_w, **more},
        "measured_power_w": own_w,
    }


LOCAL_LOAD_BALANCING = [
    pytest.param(site(40e3, 30e3, 10e3), 20_000.0, R.SITE_LIMIT, (50_000.0, 40_000.0), id="room"),
    pytest.param(site(40e3, 45e3, 10e3), 5_000.0, R.SITE_LIMIT, (50_000.0, 40_000.0), id="less"),
    pytest.param(
        site(40e3, 45e3, 0.0), -5_000.0, R.SITE_LIMIT, (50_000.0, 40_000.0), id="over-discharges"
    ),
    pytest.param(
        site(40e3, 40e3, -5e3), -5_000.0, R.SITE_LIMIT, (50_000.0, 40_000.0), id="holds-discharge"
    ),
    pytest.param(
        site(100e3, 0.0, 0.0), 50_000.0, R.LIMITED_BY_RATING, (50_000.0, 40_000.0), id="ceiling"
    ),
    pytest.param(
        site(None, 80e3, 0.0),
        50_000.0,
        R.LIMITED_BY_RATING,
        (50_000.0, 40_000.0),
        id="no-site-limit-as-charging-only",
    ),
    pytest.param(
        site(40e3, None, 0.0), 0.0, R.AWAITING_INPUT, (50_000.0, 40_000.0), id="no-site-meter"
    ),
    pytest.param(
        site(40e3, 30e3, None), 0.0, R.AWAITING_INPUT, (50_000.0, 40_000.0), id="no-evse-meter"
    ),
    pytest.param(
        {**site(40e3, 45e3, 0.0), "vehicle": {"discharge_allowed": False}},
        0.0,
        R.LIMITED_BY_VEHICLE,
        (50_000.0, 0.0),
        id="over-but-vehicle-refuses-discharge",
    ),
    pytest.param(
        site(40e3, 100e3, 0.0),
        -40_000.0,
        R.LIMITED_BY_VEHICLE,
        (50_000.0, 40_000.0),
        id="far-over-clamped",
    ),
]


@pytest.mark.parametrize(("overrides", "power_w", "reason", "ceilings"), LOCAL_LOAD_BALANCING)
def test_local_load_balancing(
    overrides: dict[str, Any], power_w: float, reason: Reason, ceilings: tuple[float, float]
) -> None:
    check(make(M.LOCAL_LOAD_BALANCING, **overrides), power_w, reason, ceilings)


def test_no_voltage_means_no_current_based_limits() -> None:
    inputs = make(
        M.CENTRAL_SETPOINT,
        schedule={"setpoint_w": -45_000.0},
        vehicle={"voltage_v": None, "max_charge_current_a": 1.0, "max_discharge_current_a": 1.0},
        rating={"max_current_a": 1.0},
    )
    check(inputs, -40_000.0, R.LIMITED_BY_VEHICLE, (50_000.0, 40_000.0))


def test_unknown_soc_applies_no_soc_rule() -> None:
    inputs = make(M.CENTRAL_SETPOINT, schedule={"setpoint_w": -1_000.0}, vehicle={"soc_pct": None})
    check(inputs, -1_000.0, R.SETPOINT, (50_000.0, 40_000.0))


def test_the_mode_is_reported_and_a_wire_string_is_accepted() -> None:
    schedule = ScheduleNow(None, None, -1_000.0, mode="CentralSetpoint")  # type: ignore[arg-type]
    assert schedule.mode is M.CENTRAL_SETPOINT
    command = compute_command(replace(make(), schedule=schedule))
    assert (command.mode, command.power_w) == (M.CENTRAL_SETPOINT, -1_000.0)


def test_negative_zero_never_leaves_the_core() -> None:
    command = compute_command(make(M.CENTRAL_SETPOINT, schedule={"setpoint_w": -0.0}))
    assert str(command.power_w) == "0.0"
