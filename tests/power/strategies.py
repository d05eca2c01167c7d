"""Hypothesis strategies for the energy manager's inputs, and an independent oracle of its limits.

Two scales: ``realistic`` values (W up to 400 kW, Hz around 50, many exact zeros and Nones, gates
mostly open so that the interesting paths run) and ``extreme`` values (any finite float of the
right sign) for totality.
"""

from __future__ import annotations

import math
from typing import TypeVar

from hypothesis import strategies as st

from station.power import (
    EvseRating,
    ExternalInputs,
    GridState,
    OperationMode,
    PowerInputs,
    ScheduleNow,
    VehicleLimits,
)

T = TypeVar("T")


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


def curves(
    x: st.SearchStrategy[float], power_w: st.SearchStrategy[float]
) -> st.SearchStrategy[tuple[tuple[float, float], ...]]:
    points = st.lists(st.tuples(x, power_w), max_size=8, unique_by=lambda point: point[0])
    return points.map(lambda pts: tuple(sorted(pts)))


class Scale:
    """The value ranges of one scale, with every derived strategy built once.

    (Building strategies inside the composite on every draw costs more than drawing from them.)
    """

    def __init__(
        self,
        *,
        magnitude: st.SearchStrategy[float],
        signed: st.SearchStrategy[float],
        frequency_hz: st.SearchStrategy[float],
        signal: st.SearchStrategy[float],
        voltage_v: st.SearchStrategy[float],
        current_a: st.SearchStrategy[float],
    ) -> None:
        self.magnitude = magnitude
        self.current_a = current_a
        self.opt_magnitude = optional(magnitude)
        self.opt_negative = optional(magnitude.map(lambda w: -w))
        self.opt_signed = optional(signed)
        self.opt_frequency_hz = optional(frequency_hz)
        self.opt_signal = optional(signal)
        self.opt_voltage_v = optional(voltage_v)
        self.opt_current_a = optional(current_a)
        self.freq_curves = curves(frequency_hz, signed)
        self.signal_curves = curves(signal, signed)


_W = 400_000.0
REALISTIC = Scale(
    magnitude=st.one_of(st.just(0.0), st.floats(0.0, _W), st.sampled_from([3_700.0, 11_000.0])),
    signed=st.one_of(st.just(0.0), st.floats(-_W, _W)),
    frequency_hz=st.floats(45.0, 55.0),
    signal=st.integers(-1_000, 1_000).map(float),
    voltage_v=st.one_of(st.just(0.0), st.floats(0.0, 1_000.0)),
    current_a=st.one_of(st.just(0.0), st.floats(0.0, 500.0)),
)
_ANY = st.floats(allow_nan=False, allow_infinity=False)
_ANY_MAGNITUDE = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
EXTREME = Scale(
    magnitude=_ANY_MAGNITUDE,
    signed=_ANY,
    frequency_hz=_ANY_MAGNITUDE,
    signal=_ANY,
    voltage_v=_ANY_MAGNITUDE,
    current_a=_ANY_MAGNITUDE,
)

# Mostly True, so that most examples get past the gates.
mostly_true = st.integers(0, 9).map(lambda n: n > 0)
opt_percent = optional(
    st.one_of(st.sampled_from([0.0, 20.0, 50.0, 80.0, 100.0]), st.floats(0.0, 100.0))
)
evse_ids = st.integers(1, 4)
ANY_MODE = st.sampled_from(OperationMode)


@st.composite
def power_inputs(
    draw: st.DrawFn,
    scale: Scale = REALISTIC,
    modes: st.SearchStrategy[OperationMode] = ANY_MODE,
) -> PowerInputs:
    """Arbitrary valid inputs: every optional limit may be absent, 0, or any value.

    Curves are drawn only for the mode that reads them (they cost most of the drawing time and
    no other mode looks at them).
    """
    s = scale
    mode = draw(modes)
    schedule = ScheduleNow(
        limit_w=draw(s.opt_magnitude),
        discharge_limit_w=draw(s.opt_negative),
        setpoint_w=draw(s.opt_signed),
        mode=mode,
        freq_watt_curve=draw(s.freq_curves) if mode is OperationMode.LOCAL_FREQUENCY else (),
        signal_watt_curve=draw(s.signal_curves) if mode is OperationMode.CENTRAL_FREQUENCY else (),
        baseline_w=draw(s.opt_signed),
    )
    rating = EvseRating(
        max_charge_power_w=draw(s.magnitude),
        max_discharge_power_w=draw(s.magnitude),
        max_current_a=draw(s.current_a),
    )
    vehicle = VehicleLimits(
        connected=draw(mostly_true),
        max_charge_power_w=draw(s.magnitude),
        max_discharge_power_w=draw(s.magnitude),
        discharge_allowed=draw(mostly_true),
        soc_pct=draw(opt_percent),
        min_soc_pct=draw(opt_percent),
        max_soc_pct=draw(opt_percent),
        voltage_v=draw(s.opt_voltage_v),
        max_charge_current_a=draw(s.opt_current_a),
        max_discharge_current_a=draw(s.opt_current_a),
    )
    grid = GridState(
        in_window=draw(mostly_true),
        max_import_w=draw(s.opt_magnitude),
        max_export_w=draw(s.opt_magnitude),
        frequency_hz=draw(s.opt_frequency_hz),
        der_limit_max_discharge_w=draw(s.opt_magnitude),
        site_power_w=draw(s.opt_signed),
        site_limit_w=draw(s.opt_signed),
    )
    external = ExternalInputs(
        setpoint_w=draw(s.opt_signed),
        limit_w=draw(s.opt_magnitude),
        discharge_limit_w=draw(s.opt_negative),
        afrr_signal=draw(s.opt_signal),
    )
    return PowerInputs(
        evse_id=draw(evse_ids),
        schedule=schedule,
        rating=rating,
        vehicle=vehicle,
        grid=grid,
        external=external,
        operative=draw(mostly_true),
        energy_allowed=draw(mostly_true),
        operator_limit_w=draw(s.opt_magnitude),
        measured_power_w=draw(s.opt_signed),
    )


# --- the oracle: the limits of DESIGN.md / issue 4, written out plainly --------------------------


def gated(inputs: PowerInputs) -> bool:
    """No power may flow at all."""
    return (
        not inputs.grid.in_window
        or not inputs.operative
        or not inputs.vehicle.connected
        or not inputs.energy_allowed
        or inputs.schedule.mode is OperationMode.IDLE
    )


def charge_limits(inputs: PowerInputs) -> list[float]:
    """Every limit that applies to charging, as magnitudes (0 = no charging)."""
    v, r, g = inputs.vehicle, inputs.rating, inputs.grid
    limits = [r.max_charge_power_w, v.max_charge_power_w]
    limits += [
        w
        for w in (inputs.schedule.limit_w, inputs.operator_limit_w, g.max_import_w)
        if w is not None
    ]
    if (
        inputs.schedule.mode is OperationMode.EXTERNAL_LIMITS
        and inputs.external.limit_w is not None
    ):
        limits.append(inputs.external.limit_w)
    if v.voltage_v is not None:
        limits.append(v.voltage_v * r.max_current_a)
        if v.max_charge_current_a is not None:
            limits.append(v.voltage_v * v.max_charge_current_a)
    if v.soc_pct is not None and v.max_soc_pct is not None and v.soc_pct >= v.max_soc_pct:
        limits.append(0.0)
    if gated(inputs):
        limits.append(0.0)
    return limits


def discharge_forbidden(inputs: PowerInputs) -> bool:
    v = inputs.vehicle
    return (
        gated(inputs)
        or inputs.schedule.mode is OperationMode.CHARGING_ONLY
        or not v.discharge_allowed
        or (v.soc_pct is not None and v.min_soc_pct is not None and v.soc_pct <= v.min_soc_pct)
    )


def discharge_limits(inputs: PowerInputs) -> list[float]:
    """Every limit that applies to discharging, as magnitudes (0 = no discharging)."""
    v, r, g, s = inputs.vehicle, inputs.rating, inputs.grid, inputs.schedule
    limits = [r.max_discharge_power_w, v.max_discharge_power_w]
    limits += [
        w
        for w in (inputs.operator_limit_w, g.max_export_w, g.der_limit_max_discharge_w)
        if w is not None
    ]
    if s.discharge_limit_w is not None:
        limits.append(abs(s.discharge_limit_w))
    if s.mode is OperationMode.EXTERNAL_LIMITS and inputs.external.discharge_limit_w is not None:
        limits.append(abs(inputs.external.discharge_limit_w))
    if v.voltage_v is not None:
        limits.append(v.voltage_v * r.max_current_a)
        if v.max_discharge_current_a is not None:
            limits.append(v.voltage_v * v.max_discharge_current_a)
    if discharge_forbidden(inputs):
        limits.append(0.0)
    return limits


def charge_w(power_w: float) -> float:
    return max(power_w, 0.0)


def discharge_w(power_w: float) -> float:
    return max(-power_w, 0.0)


def is_positive_zero(value: float) -> bool:
    return value == 0.0 and math.copysign(1.0, value) == 1.0
