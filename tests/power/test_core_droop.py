"""Rule 4 of station.power.core: the DER frequency droop, within every ceiling, never across 0 W.

Table cases on the base EVSE of ``test_core_table`` (50 kW both ways, vehicle 60 kW in / 40 kW
out), then hypothesis properties over the shared input strategy with a droop drawn on top.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.power import (
    GridState,
    OperationMode,
    PowerInputs,
    PowerValueError,
    Reason,
    compute_command,
)
from tests.power.strategies import charge_w, discharge_w, power_inputs
from tests.power.test_core_table import make

M = OperationMode
R = Reason


def with_droop(inputs: PowerInputs, droop_pu: float | None) -> PowerInputs:
    return replace(inputs, grid=replace(inputs.grid, frequency_droop_pu=droop_pu))


SETPOINT = {"setpoint_w": -10_000.0}


@pytest.mark.parametrize(
    ("mode", "schedule", "droop_pu", "power_w", "reason"),
    [
        # Discharging 10 kW: under-frequency (-0.1 pu of 50 kW) discharges 5 kW more.
        (M.CENTRAL_SETPOINT, SETPOINT, -0.1, -15_000.0, R.FREQUENCY_RESPONSE),
        # Over-frequency reduces the discharge ...
        (M.CENTRAL_SETPOINT, SETPOINT, 0.1, -5_000.0, R.FREQUENCY_RESPONSE),
        # ... to 0 W, and never turns it into a charge.
        (M.CENTRAL_SETPOINT, SETPOINT, 1.0, 0.0, R.FREQUENCY_RESPONSE),
        # More discharge than the vehicle gives: its 40 kW binds.
        (M.CENTRAL_SETPOINT, SETPOINT, -1.0, -40_000.0, R.LIMITED_BY_VEHICLE),
        # Inside the dead band: no change, the mode's own reason.
        (M.CENTRAL_SETPOINT, SETPOINT, 0.0, -10_000.0, R.SETPOINT),
        (M.CENTRAL_SETPOINT, SETPOINT, None, -10_000.0, R.SETPOINT),
        # Charging at the rating: under-frequency lowers the charge, never below 0 W.
        (M.CHARGING_ONLY, {}, -0.5, 25_000.0, R.FREQUENCY_RESPONSE),
        (M.CHARGING_ONLY, {}, -1.5, 0.0, R.FREQUENCY_RESPONSE),
        # Over-frequency while charging at the ceiling: the ceiling binds.
        (M.CHARGING_ONLY, {}, 0.5, 50_000.0, R.LIMITED_BY_RATING),
        # 0 W stays 0 W (a limit of 0 means no power, in either direction).
        (M.CENTRAL_SETPOINT, {"setpoint_w": 0.0}, -0.5, 0.0, R.SETPOINT),
        (M.CHARGING_ONLY, {"limit_w": 0.0}, -0.5, 0.0, R.LIMITED_BY_SCHEDULE),
        # A mode waiting for its input keeps holding 0 W.
        (M.CENTRAL_SETPOINT, {}, -0.5, 0.0, R.AWAITING_INPUT),
    ],
)
def test_droop_table(
    mode: OperationMode,
    schedule: dict[str, float],
    droop_pu: float | None,
    power_w: float,
    reason: Reason,
) -> None:
    command = compute_command(make(mode, schedule=schedule, grid={"frequency_droop_pu": droop_pu}))
    assert (command.power_w, command.reason) == (power_w, reason)


def test_local_frequency_does_not_add_the_der_droop() -> None:
    curve = ((49.5, -10_000.0), (50.5, 10_000.0))
    inputs = make(
        M.LOCAL_FREQUENCY,
        schedule={"freq_watt_curve": curve},
        grid={"frequency_hz": 50.25},
    )
    plain = compute_command(inputs)
    assert plain.power_w == 5_000.0
    assert compute_command(with_droop(inputs, 0.3)) == plain


def test_a_grid_trip_wins_over_the_droop() -> None:
    command = compute_command(make(grid={"in_window": False, "frequency_droop_pu": -1.0}))
    assert (command.power_w, command.reason) == (0.0, R.GRID_TRIP)


@pytest.mark.parametrize("bad", [2.01, -3.0, float("nan"), float("inf")])
def test_droop_out_of_range_is_rejected(bad: float) -> None:
    with pytest.raises(PowerValueError, match="frequency_droop_pu"):
        GridState(in_window=True, frequency_droop_pu=bad)


# --- properties ------------------------------------------------------------------------------

droops = st.floats(-2.0, 2.0, allow_nan=False)


@settings(max_examples=400)
@given(power_inputs(), droops)
def test_droop_never_leaves_the_ceilings_nor_crosses_zero(
    inputs: PowerInputs, droop_pu: float
) -> None:
    plain = compute_command(inputs)
    command = compute_command(with_droop(inputs, droop_pu))
    # The ceilings are those of rule 2, untouched by the droop.
    assert command.charge_ceiling_w == plain.charge_ceiling_w
    assert command.discharge_ceiling_w == plain.discharge_ceiling_w
    assert -command.discharge_ceiling_w <= command.power_w <= command.charge_ceiling_w
    # Never across 0 W: the direction is the schedule's decision.
    if plain.power_w >= 0:
        assert command.power_w >= 0
    if plain.power_w <= 0:
        assert command.power_w <= 0
    if plain.power_w == 0:
        assert command.power_w == 0.0 and str(command.power_w) == "0.0"


@settings(max_examples=300)
@given(power_inputs())
def test_zero_droop_in_the_dead_band_changes_nothing(inputs: PowerInputs) -> None:
    assert compute_command(with_droop(inputs, 0.0)) == compute_command(inputs)


@settings(max_examples=300)
@given(power_inputs(), droops, droops)
def test_the_response_is_monotonic_in_the_droop(
    inputs: PowerInputs, first_pu: float, second_pu: float
) -> None:
    """More over-frequency response never lowers the power (never more discharge, less charge)."""
    low_pu, high_pu = sorted((first_pu, second_pu))
    low = compute_command(with_droop(inputs, low_pu))
    high = compute_command(with_droop(inputs, high_pu))
    assert high.power_w >= low.power_w
    assert charge_w(high.power_w) >= charge_w(low.power_w)
    assert discharge_w(high.power_w) <= discharge_w(low.power_w)
