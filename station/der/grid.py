"""What the station does with each OCPP 2.1 DER control it accepts (pure).

Owns the station's capability set (:func:`supported_controls`: exactly the control types it
carries out; every other type is answered ``NotSupported`` by :func:`~station.der.build_control`)
and the mapping of each accepted control onto the part that carries it out:

====================  =========================================================================
control type          what it does (where)
====================  =========================================================================
LimitMaxDischarge     caps discharge at ``pctMaxDischargePower`` % of the rated discharge power
                      (energy manager, :class:`~station.der.service.DerGridView`)
FreqDroop             frequency droop at the measured grid frequency (:func:`droop_pu`), added
                      to every EVSE's command by the energy manager (``GridState.
                      frequency_droop_pu``, rule 4 of :mod:`station.power.core`)
Gradients             ramp-rate limit on the EVSE commands and so on the inverter set-point
                      (:class:`~station.der.ramp.RampingPowerPort`); moves towards 0 W are never
                      delayed
EnterService          the grid protection's enter-service window, delay and ramp
                      (:func:`enter_service_settings`)
HV/LV/HF/LFMustTrip   the grid protection's trip points of that kind (:func:`trip_points`)
====================  =========================================================================

Not carried out, so ``NotSupported``: VoltVar, VoltWatt, WattVar, WattPF, FixedPFAbsorb,
FixedPFInject and FixedVar (they need reactive-power or volt-watt functions, SunSpec models
705/706/712 or the 704 PF/Var set-points, which the station does not write); FreqWatt (a curve
whose y axis has no defined sign for a bidirectional DER in OCPP 2.1; FreqDroop expresses the
frequency-watt function); the May-Trip and momentary-cessation curves (HV/LV/HFMayTrip,
HV/LVMomCess: the protection knows must-trip points only) and PowerMonitoringMustTrip.

Without an inverter (``[inverter] link = "none"``) there are no grid measurements and no
protection: only LimitMaxDischarge and Gradients act (:data:`CONTROLS_WITHOUT_INVERTER`).

Units (decisions where OCPP 2.1 gives none):

* EnterService ``highVoltage``/``lowVoltage`` are **percent of the nominal voltage** (as the
  SunSpec 703 ``ES_V_Hi``/``ES_V_Lo`` they map to); the frequencies are Hz; ``delay`` and
  ``randomDelay`` s (the delay used is ``delay + random_fraction * randomDelay``); ``rampRate``
  is "in seconds", the enter-service period (0 = no ramp). Absent optional fields keep the
  configured value.
* Must-trip curves: each curve point is one trip point, ``x`` = clearing time in s, ``y`` =
  the threshold: percent of the nominal voltage (``yUnit`` ``PctEffectiveV``) for HV/LV, Hz
  (``yUnit`` ``Not_Applicable``) for HF/LF; other units are refused. While the control is
  active its points **replace** the configured points of that kind (the CSMS sets the curve:
  IEEE 1547-2018 makes the trip settings adjustable, not additive); the settings must still
  validate (the enter-service window inside the normal window) or the request is Rejected.
* FreqDroop ``overDroop``/``underDroop`` are per unit (IEEE 1547-2018 k_OF/k_UF, e.g. 0.05),
  ``overFreq``/``underFreq`` the absolute start frequencies, ``responseTime`` the open-loop
  response time (90 % of a step; :class:`~station.der.service.DerGridView` applies it as a
  first-order lag, 0 s = at once).
* Gradients ``gradient`` is the time in s to ramp from 0 to the EVSE's rating (0 = no limit);
  ``softGradient`` is used for a ramp that starts from 0 W (soft start), else ``gradient``.

No I/O, no clock, no randomness (``random_fraction`` is passed in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from station.der.model import (
    DerControl,
    DerControlType,
    DerCurve,
    DerUnit,
    EnterService,
    FreqDroop,
    Gradient,
)
from station.inverter.droop import DroopSettings, DroopValueError
from station.inverter.protection import (
    EnterServiceSettings,
    ProtectionSettings,
    ProtectionSettingsError,
    TripKind,
    TripPoint,
)

__all__ = [
    "CONTROLS_WITHOUT_INVERTER",
    "CONTROLS_WITH_INVERTER",
    "MUST_TRIP_KIND",
    "VOLT_CURVE_CONTROLS",
    "droop_pu",
    "droop_settings",
    "enter_service_settings",
    "gradient_ramp_s",
    "protection_settings",
    "supported_controls",
    "trip_points",
]

T = DerControlType

MUST_TRIP_KIND: Mapping[DerControlType, TripKind] = {
    T.HV_MUST_TRIP: TripKind.OVER_VOLTAGE,
    T.LV_MUST_TRIP: TripKind.UNDER_VOLTAGE,
    T.HF_MUST_TRIP: TripKind.OVER_FREQUENCY,
    T.LF_MUST_TRIP: TripKind.UNDER_FREQUENCY,
}
"""The protection's trip kind each must-trip curve sets."""

CONTROLS_WITHOUT_INVERTER: frozenset[DerControlType] = frozenset(
    {T.LIMIT_MAX_DISCHARGE, T.GRADIENTS}
)
"""What the station carries out without an inverter (no grid measurements, no protection)."""

CONTROLS_WITH_INVERTER: frozenset[DerControlType] = CONTROLS_WITHOUT_INVERTER | frozenset(
    {T.FREQ_DROOP, T.ENTER_SERVICE, *MUST_TRIP_KIND}
)
"""What the station carries out with an inverter: the module docstring's table."""

VOLT_CURVE_CONTROLS: frozenset[DerControlType] = frozenset({T.VOLT_VAR, T.VOLT_WATT})
"""Carried out by the inverter itself (SunSpec 705/706), when it has those models."""


def supported_controls(
    has_inverter: bool,
    configured: frozenset[DerControlType] | None = None,
    *,
    volt_curves: bool = False,
) -> frozenset[DerControlType]:
    """The station's capability set for SetDERControl.

    Args:
        has_inverter: ``[inverter] link`` is not ``"none"``.
        configured: ``[inverter] der_controls`` when given (a further restriction); types in
            it that the station cannot carry out are not added.
        volt_curves: the inverter is known to have SunSpec 705/706 (volt-var / volt-watt
            curves); adds :data:`VOLT_CURVE_CONTROLS` (only with an inverter).

    Returns:
        :data:`CONTROLS_WITH_INVERTER` (plus :data:`VOLT_CURVE_CONTROLS` when asked) or
        :data:`CONTROLS_WITHOUT_INVERTER`, narrowed to ``configured``.
    """
    able = CONTROLS_WITH_INVERTER if has_inverter else CONTROLS_WITHOUT_INVERTER
    if has_inverter and volt_curves:
        able = able | VOLT_CURVE_CONTROLS
    return able if configured is None else able & configured


# --- FreqDroop -----------------------------------------------------------------------------------

_MAX_DROOP_PU = 2.0  # from full charge to full discharge


def droop_settings(control: FreqDroop, nominal_frequency_hz: float) -> DroopSettings:
    """The droop parameters of a FreqDroop control on a grid of ``nominal_frequency_hz``.

    Raises:
        DroopValueError: the control does not fit this grid (start frequencies on the wrong
            side of nominal, a droop that is not positive).
    """
    return DroopSettings.from_der(control, nominal_frequency_hz)


def droop_pu(frequency_hz: float, settings: DroopSettings) -> float:
    """The droop response at ``frequency_hz``, per unit of the rating (station sign).

    IEEE 1547-2018 cl. 6.5.2.7.2: above ``over_start_hz`` the power rises (more charge, less
    discharge) by ``(f - over_start_hz) / (f_N * k_over)`` pu; below ``under_start_hz`` it
    falls by ``(under_start_hz - f) / (f_N * k_under)`` pu.

    Returns:
        0.0 inside ``[under_start_hz, over_start_hz]`` (the dead band); otherwise the response,
        limited to -2..2 pu (a full swing from one rating to the other); non-decreasing in
        ``frequency_hz``.

    Raises:
        DroopValueError: ``frequency_hz`` is not finite.
    """
    if not math.isfinite(frequency_hz):
        raise DroopValueError(f"frequency_hz must be a finite number, got {frequency_hz!r}")
    f_n = settings.nominal_frequency_hz
    if frequency_hz > settings.over_start_hz:
        raw = (frequency_hz - settings.over_start_hz) / (f_n * settings.k_over)
    elif frequency_hz < settings.under_start_hz:
        raw = -(settings.under_start_hz - frequency_hz) / (f_n * settings.k_under)
    else:
        return 0.0
    return max(-_MAX_DROOP_PU, min(_MAX_DROOP_PU, raw))


# --- Gradients -----------------------------------------------------------------------------------


def gradient_ramp_s(control: Gradient, from_zero: bool) -> float | None:
    """The ramp time (0 to the rating, s) a Gradients control asks for, or None (no limit).

    Args:
        control: the setting.
        from_zero: the ramp starts at 0 W (a soft start: ``softGradient`` when it is set).
    """
    if from_zero and control.soft_gradient_s > 0:
        return control.soft_gradient_s
    return control.gradient_s if control.gradient_s > 0 else None


# --- EnterService and the must-trip curves -------------------------------------------------------


def enter_service_settings(
    control: EnterService, base: EnterServiceSettings, random_fraction: float = 0.0
) -> EnterServiceSettings:
    """The protection's enter-service criteria from an EnterService control.

    Args:
        control: the setting (voltages in percent of nominal, frequencies in Hz).
        base: the configured criteria, kept where the control leaves a field out.
        random_fraction: 0..1, the share of ``randomDelay`` added to the delay.

    Raises:
        ProtectionSettingsError: the window is empty or a value out of range.
    """
    if not 0.0 <= random_fraction <= 1.0:
        raise ProtectionSettingsError("random_fraction must be within 0..1")
    delay_s = base.delay_s if control.delay_s is None else control.delay_s
    if control.random_delay_s is not None:
        delay_s += random_fraction * control.random_delay_s
    return EnterServiceSettings(
        low_voltage_pu=control.low_voltage / 100.0,
        high_voltage_pu=control.high_voltage / 100.0,
        low_frequency_hz=control.low_freq_hz,
        high_frequency_hz=control.high_freq_hz,
        delay_s=delay_s,
        ramp_s=base.ramp_s if control.ramp_rate_s is None else control.ramp_rate_s,
    )


def trip_points(control_type: DerControlType, curve: DerCurve) -> tuple[TripPoint, ...]:
    """The trip points of a must-trip curve (one per curve point).

    Raises:
        ProtectionSettingsError: not a must-trip type, a ``yUnit`` other than the one its kind
            needs, a negative clearing time or an unusable threshold.
    """
    kind = MUST_TRIP_KIND.get(control_type)
    if kind is None:
        raise ProtectionSettingsError(f"{control_type} is not a must-trip curve")
    unit = DerUnit.PCT_EFFECTIVE_V if kind.is_voltage else DerUnit.NOT_APPLICABLE
    if curve.y_unit is not unit:
        raise ProtectionSettingsError(
            f"{control_type} needs yUnit {unit.value} "
            f"({'percent of nominal voltage' if kind.is_voltage else 'Hz'}), not {curve.y_unit}"
        )
    divisor = 100.0 if kind.is_voltage else 1.0
    return tuple(
        TripPoint(kind, point.y / divisor, point.x, f"{control_type}[{index}]")
        for index, point in enumerate(curve.points)
    )


def protection_settings(
    base: ProtectionSettings,
    active: Mapping[DerControlType, DerControl],
    random_fraction: float = 0.0,
) -> ProtectionSettings:
    """The protection settings with the active DER controls applied to the configured ones.

    Args:
        base: the configured settings (``[grid]``).
        active: the control in force per type (:meth:`DerService.active`).
        random_fraction: see :func:`enter_service_settings`.

    Returns:
        ``base`` with the points of each active must-trip curve's kind replaced by the curve's
        points, and the enter-service criteria of an active EnterService.

    Raises:
        ProtectionSettingsError: the result does not validate (names the problem).
    """
    points = base.trip_points
    for control_type, kind in MUST_TRIP_KIND.items():
        control = active.get(control_type)
        if control is None or not isinstance(control.setting, DerCurve):
            continue
        points = tuple(p for p in points if p.kind is not kind) + trip_points(
            control_type, control.setting
        )
    enter = base.enter_service
    control = active.get(T.ENTER_SERVICE)
    if control is not None and isinstance(control.setting, EnterService):
        enter = enter_service_settings(control.setting, enter, random_fraction)
    return ProtectionSettings(
        nominal_voltage_v=base.nominal_voltage_v,
        nominal_frequency_hz=base.nominal_frequency_hz,
        trip_points=points,
        enter_service=enter,
        observation_period_s=base.observation_period_s,
        start_in_service=base.start_in_service,
    )
