"""Property tests: the energy manager's invariants hold for arbitrary inputs (issue 4).

The oracle in ``strategies.py`` lists the applicable limits plainly, without the core's code.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from station.power import OperationMode, PowerCommand, PowerInputs, Reason, compute_command
from tests.power.strategies import (
    EXTREME,
    charge_limits,
    charge_w,
    discharge_forbidden,
    discharge_limits,
    discharge_w,
    gated,
    is_positive_zero,
    power_inputs,
)

M = OperationMode
EXAMPLES = settings(max_examples=150)


def check_invariants(command: PowerCommand, inputs: PowerInputs) -> None:
    assert command.evse_id == inputs.evse_id
    assert command.mode is inputs.schedule.mode
    assert math.isfinite(command.power_w)
    assert command.charge_ceiling_w >= 0.0
    assert command.discharge_ceiling_w >= 0.0
    assert -command.discharge_ceiling_w <= command.power_w <= command.charge_ceiling_w
    if command.power_w == 0.0:
        assert is_positive_zero(command.power_w)


def never_exceeds_any_applicable_limit(command: PowerCommand, inputs: PowerInputs) -> None:
    for limit_w in charge_limits(inputs):
        assert charge_w(command.power_w) <= limit_w
        assert command.charge_ceiling_w <= limit_w
    for limit_w in discharge_limits(inputs):
        assert discharge_w(command.power_w) <= limit_w
        assert command.discharge_ceiling_w <= limit_w
    # And the ceilings are not needlessly tight: each is the tightest applicable limit.
    assert command.charge_ceiling_w == min(charge_limits(inputs))
    assert command.discharge_ceiling_w == min(discharge_limits(inputs))


def never_discharges_when_forbidden(command: PowerCommand, inputs: PowerInputs) -> None:
    """Not under ChargingOnly/Idle, nor without the vehicle's consent, at min SoC, out of window."""
    if discharge_forbidden(inputs):
        assert command.power_w >= 0.0
        assert command.discharge_ceiling_w == 0.0


GATE_REASONS = {
    Reason.GRID_TRIP,
    Reason.INOPERATIVE,
    Reason.NO_VEHICLE,
    Reason.NOT_ALLOWED,
    Reason.IDLE_MODE,
}


def exactly_zero_when_no_power_may_flow(command: PowerCommand, inputs: PowerInputs) -> None:
    if gated(inputs):
        assert is_positive_zero(command.power_w)
        assert (command.charge_ceiling_w, command.discharge_ceiling_w) == (0.0, 0.0)
        assert command.reason in GATE_REASONS
    else:
        assert command.reason not in GATE_REASONS
    if not inputs.grid.in_window:
        assert command.reason is Reason.GRID_TRIP


def a_zero_limit_never_reverses_direction(command: PowerCommand, inputs: PowerInputs) -> None:
    schedule = inputs.schedule
    if schedule.discharge_limit_w is not None and schedule.discharge_limit_w == 0.0:
        assert command.power_w >= 0.0
    if schedule.limit_w == 0.0:
        assert command.power_w <= 0.0
        if schedule.mode is M.CENTRAL_SETPOINT and (schedule.setpoint_w or 0.0) >= 0.0:
            assert is_positive_zero(command.power_w)


def deterministic(command: PowerCommand, inputs: PowerInputs) -> None:
    assert compute_command(copy.deepcopy(inputs)) == command
    assert compute_command(inputs) == command


@settings(max_examples=500)
@given(power_inputs())
def test_invariants_hold_for_arbitrary_inputs(inputs: PowerInputs) -> None:
    """Each check is named for the invariant of issue 4 it holds to."""
    command = compute_command(inputs)
    check_invariants(command, inputs)
    never_exceeds_any_applicable_limit(command, inputs)
    never_discharges_when_forbidden(command, inputs)
    exactly_zero_when_no_power_may_flow(command, inputs)
    a_zero_limit_never_reverses_direction(command, inputs)
    deterministic(command, inputs)


@EXAMPLES
@given(power_inputs(modes=st.sampled_from([M.CHARGING_ONLY, M.EXTERNAL_LIMITS])))
def test_charging_only_like_modes_charge_at_the_ceiling(inputs: PowerInputs) -> None:
    command = compute_command(inputs)
    assert command.power_w == command.charge_ceiling_w
    if inputs.schedule.limit_w == 0.0:  # a limit of 0 is no power, never a discharge
        assert is_positive_zero(command.power_w)


@EXAMPLES
@given(power_inputs(modes=st.sampled_from([M.CENTRAL_SETPOINT, M.EXTERNAL_SETPOINT])))
def test_setpoint_modes_follow_the_setpoint_clamped(inputs: PowerInputs) -> None:
    command = compute_command(inputs)
    if gated(inputs):
        return
    setpoint_w = (
        inputs.schedule.setpoint_w
        if inputs.schedule.mode is M.CENTRAL_SETPOINT
        else inputs.external.setpoint_w
    )
    target_w = 0.0 if setpoint_w is None else setpoint_w
    clamped = min(command.charge_ceiling_w, max(-command.discharge_ceiling_w, target_w))
    assert command.power_w == clamped
    if setpoint_w is None:
        assert command.reason is Reason.AWAITING_INPUT


@EXAMPLES
@given(power_inputs(modes=st.just(M.LOCAL_FREQUENCY)))
def test_local_frequency_stays_between_the_curve_values(inputs: PowerInputs) -> None:
    command = compute_command(inputs)
    curve, frequency_hz = inputs.schedule.freq_watt_curve, inputs.grid.frequency_hz
    if gated(inputs) or not curve or frequency_hz is None:
        assert command.power_w == 0.0
        return
    baseline_w = inputs.schedule.baseline_w or 0.0
    lowest = baseline_w + min(p for _, p in curve)
    highest = baseline_w + max(p for _, p in curve)
    clamp = min(command.charge_ceiling_w, max(-command.discharge_ceiling_w, lowest))
    assert clamp <= command.power_w or math.isclose(clamp, command.power_w, abs_tol=1e-6)
    clamp = min(command.charge_ceiling_w, max(-command.discharge_ceiling_w, highest))
    assert command.power_w <= clamp or math.isclose(clamp, command.power_w, abs_tol=1e-6)
    for x, p in curve:  # exact at the curve's own points
        if x == frequency_hz:
            expected = min(
                command.charge_ceiling_w, max(-command.discharge_ceiling_w, baseline_w + p)
            )
            assert command.power_w == expected


@EXAMPLES
@given(power_inputs(modes=st.just(M.LOCAL_LOAD_BALANCING)))
def test_local_load_balancing_keeps_the_site_limit_when_it_can(inputs: PowerInputs) -> None:
    command = compute_command(inputs)
    grid, own_w = inputs.grid, inputs.measured_power_w
    if gated(inputs) or grid.site_limit_w is None or grid.site_power_w is None or own_w is None:
        return
    rest_w = grid.site_power_w - own_w
    site_after_w = rest_w + command.power_w
    tolerance_w = 1e-6 * max(1.0, abs(rest_w), abs(grid.site_limit_w))
    # Never charges the site over its limit ...
    if command.power_w > 0:
        assert site_after_w <= grid.site_limit_w + tolerance_w
    # ... and discharges only as much as the limit needs, or all it may.
    if command.power_w < 0:
        assert (
            math.isclose(site_after_w, grid.site_limit_w, abs_tol=tolerance_w)
            or command.power_w == -command.discharge_ceiling_w
        )


# --- monotonicity: tightening any limit never increases |power| in either direction -----------

Tighten = Callable[[PowerInputs, float, float], PowerInputs]


def _cap(value: float | None, factor: float, fresh: float) -> float:
    """A tighter charge-style cap: a new cap where there was none, else a fraction of the old."""
    return fresh if value is None else value * factor


def _neg_cap(value: float | None, factor: float, fresh: float) -> float:
    return -fresh if value is None else value * factor


def _sub(part: str, name: str, how: Callable[[float | None, float, float], float]) -> Tighten:
    def tighten(inputs: PowerInputs, factor: float, fresh: float) -> PowerInputs:
        inner = getattr(inputs, part)
        return replace(
            inputs, **{part: replace(inner, **{name: how(getattr(inner, name), factor, fresh)})}
        )

    tighten.__name__ = f"{part}.{name}"
    return tighten


def _top(name: str) -> Tighten:
    def tighten(inputs: PowerInputs, factor: float, fresh: float) -> PowerInputs:
        changes: dict[str, Any] = {name: _cap(getattr(inputs, name), factor, fresh)}
        return replace(inputs, **changes)

    tighten.__name__ = name
    return tighten


def _flag(part: str | None, name: str) -> Tighten:
    def tighten(inputs: PowerInputs, factor: float, fresh: float) -> PowerInputs:
        changes: dict[str, Any] = {name: False}
        if part is not None:
            changes = {part: replace(getattr(inputs, part), **changes)}
        return replace(inputs, **changes)

    tighten.__name__ = f"{part}.{name}=False"
    return tighten


def _raise_min_soc(inputs: PowerInputs, factor: float, fresh: float) -> PowerInputs:
    old = inputs.vehicle.min_soc_pct
    new = fresh % 100.0 if old is None else old + (100.0 - old) * factor
    return replace(inputs, vehicle=replace(inputs.vehicle, min_soc_pct=min(100.0, new)))


def _lower_max_soc(inputs: PowerInputs, factor: float, fresh: float) -> PowerInputs:
    old = inputs.vehicle.max_soc_pct
    new = fresh % 100.0 if old is None else old * factor
    return replace(inputs, vehicle=replace(inputs.vehicle, max_soc_pct=new))


def _idle(inputs: PowerInputs, factor: float, fresh: float) -> PowerInputs:
    return replace(inputs, schedule=replace(inputs.schedule, mode=M.IDLE))


TIGHTENINGS: list[Tighten] = [
    _sub("schedule", "limit_w", _cap),
    _sub("schedule", "discharge_limit_w", _neg_cap),
    _sub("rating", "max_charge_power_w", _cap),
    _sub("rating", "max_discharge_power_w", _cap),
    _sub("rating", "max_current_a", _cap),
    _sub("vehicle", "max_charge_power_w", _cap),
    _sub("vehicle", "max_discharge_power_w", _cap),
    _sub("vehicle", "max_charge_current_a", _cap),
    _sub("vehicle", "max_discharge_current_a", _cap),
    _sub("grid", "max_import_w", _cap),
    _sub("grid", "max_export_w", _cap),
    _sub("grid", "der_limit_max_discharge_w", _cap),
    _sub("external", "limit_w", _cap),
    _sub("external", "discharge_limit_w", _neg_cap),
    _top("operator_limit_w"),
    _flag("vehicle", "discharge_allowed"),
    _flag("vehicle", "connected"),
    _flag("grid", "in_window"),
    _flag(None, "operative"),
    _flag(None, "energy_allowed"),
    _raise_min_soc,
    _lower_max_soc,
    _idle,
]


@settings(max_examples=600)
@given(
    power_inputs(),
    st.sampled_from(TIGHTENINGS),
    st.floats(0.0, 1.0),
    st.floats(0.0, 400_000.0),
)
def test_tightening_a_limit_never_increases_power(
    inputs: PowerInputs, tighten: Tighten, factor: float, fresh: float
) -> None:
    before = compute_command(inputs)
    after = compute_command(tighten(inputs, factor, fresh))
    assert charge_w(after.power_w) <= charge_w(before.power_w)
    assert discharge_w(after.power_w) <= discharge_w(before.power_w)
    assert after.charge_ceiling_w <= before.charge_ceiling_w
    assert after.discharge_ceiling_w <= before.discharge_ceiling_w


# --- totality -------------------------------------------------------------------


@settings(max_examples=300)
@given(power_inputs(scale=EXTREME))
def test_total_for_any_finite_inputs(inputs: PowerInputs) -> None:
    """Never raises, and every invariant holds, even at the edges of float range."""
    command = compute_command(inputs)
    check_invariants(command, inputs)
    for limit_w in charge_limits(inputs):
        assert charge_w(command.power_w) <= limit_w
    for limit_w in discharge_limits(inputs):
        assert discharge_w(command.power_w) <= limit_w
    if discharge_forbidden(inputs):
        assert command.power_w >= 0.0
