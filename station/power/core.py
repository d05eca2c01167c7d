"""The energy manager's pure core: every limit and mode in, one power command per EVSE out.

Owns the rule that turns "the composite schedule now" plus everything else that constrains an EVSE
(its rating, the vehicle's limits and SoC bounds, the grid and DER constraints, availability, the
operator) into one signed :class:`PowerCommand`. It must not do I/O, read a clock, log, keep state
between calls, or import protocol types (DESIGN.md "Protocol types stay at the edge"): the shell
maps OCPP composite schedules, DER controls, CHAdeMO/ISO 15118 vehicle limits and inverter
measurements into these input types and pushes the command out through its ports.

Sign and units (DESIGN.md "Conventions"): power is seen from the vehicle, ``+`` = into the vehicle
(charging), ``-`` = out of it (discharging). Fields that hold a signed value follow that sign
(``setpoint_w``, ``discharge_limit_w`` <= 0 as in the OCPP 2.1 schema, ``power_w``); fields named
``max_*`` or ``*_ceiling_w`` hold a magnitude >= 0. ``None`` always means "no such constraint" or
"not known", never 0. **A limit of 0 means no power in that direction**, never a change of
direction: a schedule limit of 0 with no discharge limit gives 0 W, not a discharge.

Rule 1, gates (checked in this order; any one gives 0 W with both ceilings 0):

=================================  =================  ============================================
condition                          ``reason``         source
=================================  =================  ============================================
``grid.in_window`` is False        GRID_TRIP          IEEE 1547-2018 cl. 6.4 / 6.5: outside the
                                                      voltage/frequency window the DER shall cease
                                                      to energize (cl. 3.1), at once, whatever
                                                      the schedule says.
``operative`` is False             INOPERATIVE        OCPP G03/G04 ChangeAvailability
no vehicle connected               NO_VEHICLE
``energy_allowed`` is False        NOT_ALLOWED        no authorised transaction may draw power
                                                      now (OCPP blocks C and E; suspended by
                                                      the EVSE)
operation mode Idle                IDLE_MODE          OCPP 2.1 operationMode ``Idle``: no power
=================================  =================  ============================================

Rule 2, ceilings (magnitudes >= 0; the command always satisfies
``-discharge_ceiling_w <= power_w <= charge_ceiling_w``):

=====================  =========================================================================
charge ceiling         min of: 0 if ``soc_pct >= max_soc_pct``; schedule ``limit_w``; external
                       ``limit_w`` (ExternalLimits only); ``operator_limit_w``; grid
                       ``max_import_w``; vehicle ``max_charge_power_w``; vehicle
                       ``voltage_v * max_charge_current_a``; EVSE ``max_charge_power_w``; EVSE
                       ``voltage_v * max_current_a``. Terms that are ``None`` do not apply.
discharge ceiling      0 under ChargingOnly, or when the vehicle does not allow discharge, or
                       ``soc_pct <= min_soc_pct``; else min of: ``|schedule discharge_limit_w|``;
                       ``|external discharge_limit_w|`` (ExternalLimits only);
                       ``operator_limit_w``; grid ``max_export_w``; grid
                       ``der_limit_max_discharge_w``; vehicle ``max_discharge_power_w``;
                       vehicle ``voltage_v * max_discharge_current_a``; EVSE
                       ``max_discharge_power_w``; EVSE ``voltage_v * max_current_a``.
=====================  =========================================================================

Rule 3, the target per operation mode (OCPP 2.1 ChargingSchedulePeriodType ``operationMode``,
use cases Q01-Q12), then clamped into the ceilings of rule 2:

==================  ===============================================  ===========================
mode                target before clamping                           reason when not clamped
==================  ===============================================  ===========================
ChargingOnly        the charge ceiling (a limit is a cap the EV may  (the binding limit)
                    use in full); never discharges
CentralSetpoint     schedule ``setpoint_w``; none -> 0 W             SETPOINT / AWAITING_INPUT
ExternalSetpoint    external ``setpoint_w``; none yet -> 0 W         SETPOINT / AWAITING_INPUT
ExternalLimits      as ChargingOnly, with the external limits        (the binding limit)
                    tightening both ceilings; the discharge ceiling
                    is reported so a vehicle session that chooses
                    its own power (ISO 15118-20 BPT) may use it
CentralFrequency    ``baseline_w`` + signal-watt curve at the last   AFRR_SIGNAL
                    AFRRSignal ``signal``; no signal -> baseline
LocalFrequency      ``baseline_w`` + freq-watt curve at the          FREQUENCY_RESPONSE /
                    measured ``frequency_hz``; no frequency or no    AWAITING_INPUT
                    curve -> 0 W
LocalLoadBalancing  ``site_limit_w - (site_power_w -                 SITE_LIMIT / AWAITING_INPUT
                    measured_power_w)``: the most this EVSE may
                    draw and keep the site at its limit; negative
                    (site over its limit without us) -> discharge;
                    no site limit -> as ChargingOnly; no site or
                    EVSE measurement -> 0 W
==================  ===============================================  ===========================

When the target lies outside ``[-discharge_ceiling_w, charge_ceiling_w]`` the command is the
nearer ceiling and ``reason`` names the binding limit (``SOC_BOUND``, ``LIMITED_BY_*``). When
several limits bind at the same value, the first one in the order of rule 2 is named.

Rule 4, the DER frequency droop (OCPP 2.1 SetDERControl FreqDroop; IEEE 1547-2018 cl. 6.5.2.7),
applied after rule 3 and within every ceiling of rule 2:

======================================  =======================================================
condition                               effect
======================================  =======================================================
``grid.frequency_droop_pu`` None or 0   none (inside the dead band, or no droop control)
mode LocalFrequency                     none: the schedule's freq-watt curve already is the
                                        frequency response (the two are not added)
target reason AWAITING_INPUT            none: a mode that holds 0 W for want of an input keeps
                                        holding it
otherwise                               ``pre`` = the rule-3 command (clamped);
                                        ``pre + frequency_droop_pu * rating`` clamped into the
                                        ceilings, and **never across 0 W**: a charge can be
                                        reduced to 0 W but does not become a discharge, and
                                        the other way round; 0 W stays 0 W. Reason
                                        FREQUENCY_RESPONSE unless a ceiling binds.
======================================  =======================================================

``rating`` is the EVSE's own rating, ``max(rating.max_charge_power_w,
rating.max_discharge_power_w)``, so that with several EVSEs each contributes its share of the
station's per-unit droop. Not crossing 0 W is stricter than IEEE 1547 (which lets a storage DER
go from absorbing to injecting): the direction is the schedule's decision, and a limit of 0 means
no power in that direction, never a change of direction.

Decisions where OCPP 2.1 is silent (the normative text used is the JSON schema descriptions in
``ocpp/v21/schemas`` and the Part 2 appendices in the project's shared ``reference/ocpp/2.1``):

* ``setpoint`` under CentralSetpoint is what the mode is for (the schema makes ``limit`` optional
  for it, not ``setpoint``). A period without one is a malformed schedule: hold 0 W rather than
  guess a direction or charge at full power.
* ``v2xBaseline`` "is used as a baseline on top of which values from v2xFreqWattCurve and
  v2xSignalWattCurve are added"; absent = 0 W. It is not used by other modes.
* AFRRSignalRequest ``signal`` is an integer, "Value of signal in v2xSignalWattCurve", so it is
  not a -1..1 fraction: the core maps the raw signal through the period's ``signal_watt_curve``
  (``(signal, power_w)`` points). Before any AFRRSignal the activation is 0 W, so the target is
  the baseline; with no curve the station rejects AFRRSignal (reason code ``NoSignalWattCurve``)
  and the target is also the baseline.
* Curves are piecewise linear between their points and flat beyond the first and last point,
  as DER curves are evaluated (the schema gives only the points; IEEE 1547-2018 cl. 6.5.2.7
  frequency-droop has the same shape: a dead band, linear droop, then a limit). Their x values
  must be strictly increasing, which the edge ensures by sorting and rejecting duplicates.
* ExternalLimits lets "an external system" set limits (appendix: ExternalControlSignalsEnabled);
  the limits are caps, so the station charges up to them like ChargingOnly and reports the
  discharge ceiling. External limits and the external set-point apply only in their own mode;
  external constraints in every mode reach the core through the composite schedule instead
  (K11-K17).
* LocalLoadBalancing: the appendix variables ``V2XChargingCtrlr.LocalLoadBalancing``
  ``UpperThreshold`` + ``UpperOffset`` give ``site_limit_w`` (mapped by the shell). Site power
  is signed as import from the grid positive. The EVSE's own measured power is subtracted to
  find the rest of the site's load, so the result is a fixed point, not a feedback oscillation.
* ``operator_limit_w`` (a local cap, e.g. from a service tool or thermal derating) bounds the
  EVSE's power in both directions, as a magnitude.
* ``GridState.in_window`` False stops charging too, not only discharging: a tripped grid
  interface carries no power either way.
* Non-finite numbers (NaN, +-inf) and values of the wrong sign are rejected when an input is
  constructed (:class:`PowerValueError`, a ``ValueError``), so :func:`compute_command` is total:
  for every valid input it returns, and its ``power_w`` and ceilings are finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from station.errors import StationError

# One enum for the operation modes of the whole station: the one the smart-charging model uses.
from station.smartcharging.model import OperationMode

__all__ = [
    "Curve",
    "EvseRating",
    "ExternalInputs",
    "GridState",
    "OperationMode",
    "PowerCommand",
    "PowerInputs",
    "PowerValueError",
    "Reason",
    "ScheduleNow",
    "VehicleLimits",
    "compute_command",
]

Curve = tuple[tuple[float, float], ...]
"""Points ``(x, power_w)`` with strictly increasing ``x``: Hz for v2xFreqWattCurve, the raw
AFRRSignal value for v2xSignalWattCurve."""


class PowerValueError(StationError, ValueError):
    """An energy manager input (or output) holds a value it must not: NaN, inf, a wrong sign.

    Raised at construction, naming the field, so that :func:`compute_command` itself never
    raises. The shell converts protocol values at the edge and must not let these through.
    """


class Reason(StrEnum):
    """Why a :class:`PowerCommand` is what it is: a gate, the binding limit or the mode's target."""

    # Gates (rule 1): 0 W, both ceilings 0.
    GRID_TRIP = "GridTrip"
    INOPERATIVE = "Inoperative"
    NO_VEHICLE = "NoVehicle"
    NOT_ALLOWED = "NotAllowed"
    IDLE_MODE = "IdleMode"
    # The mode follows an input that is not there (yet): 0 W, ceilings still reported.
    AWAITING_INPUT = "AwaitingInput"
    # The binding limit (rule 2).
    SOC_BOUND = "SocBound"
    LIMITED_BY_SCHEDULE = "LimitedBySchedule"
    LIMITED_BY_EXTERNAL = "LimitedByExternal"
    LIMITED_BY_OPERATOR = "LimitedByOperator"
    LIMITED_BY_GRID = "LimitedByGrid"
    LIMITED_BY_VEHICLE = "LimitedByVehicle"
    LIMITED_BY_RATING = "LimitedByRating"
    # The mode's own target, within every limit (rule 3).
    SETPOINT = "Setpoint"
    AFRR_SIGNAL = "AfrrSignal"
    FREQUENCY_RESPONSE = "FrequencyResponse"
    SITE_LIMIT = "SiteLimit"


# --- input validation -------------------------------------------------------------------------


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise PowerValueError(f"{name} must be a finite number, got {value!r}")


def _optional_finite(name: str, value: float | None) -> None:
    if value is not None:
        _finite(name, value)


def _non_negative(name: str, value: float | None) -> None:
    if value is not None:
        _finite(name, value)
        if value < 0:
            raise PowerValueError(f"{name} must be >= 0 (a magnitude), got {value!r}")


def _non_positive(name: str, value: float | None) -> None:
    if value is not None:
        _finite(name, value)
        if value > 0:
            raise PowerValueError(f"{name} must be <= 0 (discharge is negative), got {value!r}")


def _percent(name: str, value: float | None) -> None:
    if value is not None:
        _finite(name, value)
        if not 0 <= value <= 100:
            raise PowerValueError(f"{name} must be within 0..100, got {value!r}")


def _curve(name: str, curve: Curve) -> None:
    previous: float | None = None
    for index, (x, power_w) in enumerate(curve):
        _finite(f"{name}[{index}] x", x)
        _finite(f"{name}[{index}] power_w", power_w)
        if previous is not None and x <= previous:
            raise PowerValueError(f"{name} x values must be strictly increasing (point {index})")
        previous = x


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleNow:
    """The composite schedule of one EVSE at this instant, in W, signed per DESIGN.md.

    Built by the shell from the smart-charging composite schedule (OCPP K08; 2.1
    ChargingSchedulePeriodType). A 2.0.1 negative ``limit`` is turned into ``discharge_limit_w``
    at the edge; here ``limit_w`` is never negative.

    Attributes:
        limit_w: ``limit``: the most that may be charged (>= 0); None = no schedule limit.
        discharge_limit_w: ``dischargeLimit`` (<= 0): the most that may be discharged. Under
            ChargingOnly discharge is never allowed, whatever this says; under the V2X modes
            None means no schedule constraint on discharge.
        setpoint_w: ``setpoint`` (signed): the target under CentralSetpoint; ignored otherwise.
        mode: ``operationMode``; ChargingOnly when the period has none.
        freq_watt_curve: ``v2xFreqWattCurve`` as ``(frequency_hz, power_w)`` (LocalFrequency).
        signal_watt_curve: ``v2xSignalWattCurve`` as ``(signal, power_w)`` (CentralFrequency).
        baseline_w: ``v2xBaseline`` (signed), added to the curve value; None = 0 W.
    """

    limit_w: float | None
    discharge_limit_w: float | None
    setpoint_w: float | None
    mode: OperationMode = OperationMode.CHARGING_ONLY
    freq_watt_curve: Curve = ()
    signal_watt_curve: Curve = ()
    baseline_w: float | None = None

    def __post_init__(self) -> None:
        try:
            mode = OperationMode(self.mode)
        except ValueError:
            raise PowerValueError(f"schedule.mode {self.mode!r} is not an operation mode") from None
        object.__setattr__(self, "mode", mode)  # a plain "Idle" string becomes the member
        _non_negative("schedule.limit_w", self.limit_w)
        _non_positive("schedule.discharge_limit_w", self.discharge_limit_w)
        _optional_finite("schedule.setpoint_w", self.setpoint_w)
        _curve("schedule.freq_watt_curve", self.freq_watt_curve)
        _curve("schedule.signal_watt_curve", self.signal_watt_curve)
        _optional_finite("schedule.baseline_w", self.baseline_w)


@dataclass(frozen=True, slots=True)
class EvseRating:
    """What the EVSE hardware can carry (device model ``EVSE.Power`` / ``EVSE.DischargePower``).

    Attributes:
        max_charge_power_w: rated (or configured) charge power, >= 0.
        max_discharge_power_w: rated discharge power as a magnitude, >= 0; 0 = not bidirectional.
        max_current_a: rated DC current, applied in both directions where the voltage is known.
    """

    max_charge_power_w: float
    max_discharge_power_w: float
    max_current_a: float

    def __post_init__(self) -> None:
        _non_negative("rating.max_charge_power_w", self.max_charge_power_w)
        _non_negative("rating.max_discharge_power_w", self.max_discharge_power_w)
        _non_negative("rating.max_current_a", self.max_current_a)


@dataclass(frozen=True, slots=True)
class VehicleLimits:
    """What the connected vehicle reports now (CHAdeMO 0x100-0x102/0x200, ISO 15118-20 BPT).

    Attributes:
        connected: a vehicle is plugged in and its session is up.
        max_charge_power_w: the most the vehicle accepts now, >= 0.
        max_discharge_power_w: the most it may deliver now, as a magnitude >= 0.
        discharge_allowed: the vehicle agreed to discharge (CHAdeMO 0x102 bidirectional bit,
            ISO 15118-20 BPT service selected).
        soc_pct: present state of charge, 0..100; None = unknown (no SoC rule applies).
        min_soc_pct: do not discharge at or below this SoC.
        max_soc_pct: do not charge at or above this SoC.
        voltage_v: present battery voltage, to turn the current limits into power.
        max_charge_current_a: the vehicle's charge current limit, >= 0.
        max_discharge_current_a: its discharge current limit, as a magnitude >= 0.
    """

    connected: bool
    max_charge_power_w: float
    max_discharge_power_w: float
    discharge_allowed: bool
    soc_pct: float | None = None
    min_soc_pct: float | None = None
    max_soc_pct: float | None = None
    voltage_v: float | None = None
    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None

    def __post_init__(self) -> None:
        _non_negative("vehicle.max_charge_power_w", self.max_charge_power_w)
        _non_negative("vehicle.max_discharge_power_w", self.max_discharge_power_w)
        _percent("vehicle.soc_pct", self.soc_pct)
        _percent("vehicle.min_soc_pct", self.min_soc_pct)
        _percent("vehicle.max_soc_pct", self.max_soc_pct)
        _non_negative("vehicle.voltage_v", self.voltage_v)
        _non_negative("vehicle.max_charge_current_a", self.max_charge_current_a)
        _non_negative("vehicle.max_discharge_current_a", self.max_discharge_current_a)


@dataclass(frozen=True, slots=True)
class GridState:
    """The grid connection as the inverter's protection and the site meter see it.

    Attributes:
        in_window: voltage and frequency are inside the protection window. False = cease to
            energize now (IEEE 1547-2018 cl. 6.4, 6.5).
        max_import_w: the most the EVSE may draw from the grid (a charge cap), >= 0.
        max_export_w: the most it may feed into the grid (a discharge cap), magnitude >= 0.
        frequency_hz: measured grid frequency, for LocalFrequency.
        der_limit_max_discharge_w: OCPP 2.1 SetDERControl LimitMaxDischarge, converted by the
            shell from percent of rated discharge power to W, magnitude >= 0.
        site_power_w: power measured at the site's grid connection, import positive
            (LocalLoadBalancing).
        site_limit_w: the import the site must stay at or below (LocalLoadBalancing).
        frequency_droop_pu: the DER FreqDroop response at the measured frequency, per unit of
            each EVSE's rating, within -2..2 (+ = more charge / less discharge, over-frequency;
            - = less charge / more discharge); 0 inside the dead band; None = no droop control
            (rule 4).
    """

    in_window: bool
    max_import_w: float | None = None
    max_export_w: float | None = None
    frequency_hz: float | None = None
    der_limit_max_discharge_w: float | None = None
    site_power_w: float | None = None
    site_limit_w: float | None = None
    frequency_droop_pu: float | None = None

    def __post_init__(self) -> None:
        _non_negative("grid.max_import_w", self.max_import_w)
        _non_negative("grid.max_export_w", self.max_export_w)
        _non_negative("grid.frequency_hz", self.frequency_hz)
        _non_negative("grid.der_limit_max_discharge_w", self.der_limit_max_discharge_w)
        _optional_finite("grid.site_power_w", self.site_power_w)
        _optional_finite("grid.site_limit_w", self.site_limit_w)
        _optional_finite("grid.frequency_droop_pu", self.frequency_droop_pu)
        if self.frequency_droop_pu is not None and not -2.0 <= self.frequency_droop_pu <= 2.0:
            raise PowerValueError(
                f"grid.frequency_droop_pu must be within -2..2, got {self.frequency_droop_pu!r}"
            )


@dataclass(frozen=True, slots=True)
class ExternalInputs:
    """What an external system (site controller, EMS, aggregator) supplies through its port.

    Attributes:
        setpoint_w: signed target, used under ExternalSetpoint.
        limit_w: charge cap (>= 0), used under ExternalLimits.
        discharge_limit_w: discharge cap (<= 0, as the OCPP ``dischargeLimit``), ExternalLimits.
        afrr_signal: the last AFRRSignalRequest ``signal`` in force (an integer on the wire),
            used under CentralFrequency through the schedule's ``signal_watt_curve``.
    """

    setpoint_w: float | None = None
    limit_w: float | None = None
    discharge_limit_w: float | None = None
    afrr_signal: float | None = None

    def __post_init__(self) -> None:
        _optional_finite("external.setpoint_w", self.setpoint_w)
        _non_negative("external.limit_w", self.limit_w)
        _non_positive("external.discharge_limit_w", self.discharge_limit_w)
        _optional_finite("external.afrr_signal", self.afrr_signal)


@dataclass(frozen=True, slots=True)
class PowerInputs:
    """Everything that decides one EVSE's power now.

    Attributes:
        evse_id: the EVSE (>= 1).
        schedule: the composite schedule at this instant.
        rating: the EVSE's hardware rating.
        vehicle: the vehicle's present limits.
        grid: grid window, grid/DER limits and site measurements.
        external: external-system inputs for the External* and CentralFrequency modes.
        operative: the EVSE is Operative (OCPP ChangeAvailability).
        energy_allowed: a transaction may draw power now: authorised, power path closed, not
            suspended by the station.
        operator_limit_w: a local cap on the EVSE's power in either direction, >= 0.
        measured_power_w: the EVSE's own measured power (signed), for LocalLoadBalancing.
    """

    evse_id: int
    schedule: ScheduleNow
    rating: EvseRating
    vehicle: VehicleLimits
    grid: GridState
    external: ExternalInputs
    operative: bool
    energy_allowed: bool
    operator_limit_w: float | None
    measured_power_w: float | None = None

    def __post_init__(self) -> None:
        if self.evse_id < 1:
            raise PowerValueError(f"evse_id must be >= 1, got {self.evse_id!r}")
        _non_negative("operator_limit_w", self.operator_limit_w)
        _optional_finite("measured_power_w", self.measured_power_w)


# --- output ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowerCommand:
    """What one EVSE should do now.

    Attributes:
        evse_id: the EVSE.
        power_w: the set-point, signed: ``+`` charge, ``-`` discharge; always within
            ``[-discharge_ceiling_w, charge_ceiling_w]``.
        mode: the operation mode the command was computed under.
        reason: why ``power_w`` has this value (see :class:`Reason`).
        charge_ceiling_w: the most charging may use now, >= 0 (for the vehicle session's
            maximum, e.g. CHAdeMO available output, ISO 15118-20 EVSEMaximumChargePower).
        discharge_ceiling_w: the most discharging may use now, magnitude >= 0.
    """

    evse_id: int
    power_w: float
    mode: OperationMode
    reason: Reason
    charge_ceiling_w: float
    discharge_ceiling_w: float

    def __post_init__(self) -> None:
        _finite("power_w", self.power_w)
        _non_negative("charge_ceiling_w", self.charge_ceiling_w)
        _non_negative("discharge_ceiling_w", self.discharge_ceiling_w)
        if not -self.discharge_ceiling_w <= self.power_w <= self.charge_ceiling_w:
            raise PowerValueError(
                f"power_w {self.power_w!r} outside "
                f"[-{self.discharge_ceiling_w!r}, {self.charge_ceiling_w!r}]"
            )


# --- the function -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    value_w: float
    reason: Reason


def _tightest(terms: Iterable[tuple[float | None, Reason]]) -> _Bound:
    """The smallest applicable term; on a tie the first listed wins (rule 2's order)."""
    best: _Bound | None = None
    for value_w, reason in terms:
        if value_w is not None and (best is None or value_w < best.value_w):
            best = _Bound(value_w, reason)
    assert best is not None, "the EVSE rating always applies"
    return best


def _product(voltage_v: float | None, current_a: float | None) -> float | None:
    if voltage_v is None or current_a is None:
        return None
    return voltage_v * current_a  # may overflow to inf for absurd inputs: then it never binds


def _gate(inputs: PowerInputs) -> Reason | None:
    """Rule 1: a reason to carry no power at all, or None."""
    if not inputs.grid.in_window:
        return Reason.GRID_TRIP  # IEEE 1547-2018 cl. 6.4/6.5: cease to energize
    if not inputs.operative:
        return Reason.INOPERATIVE
    if not inputs.vehicle.connected:
        return Reason.NO_VEHICLE
    if not inputs.energy_allowed:
        return Reason.NOT_ALLOWED
    if inputs.schedule.mode is OperationMode.IDLE:
        return Reason.IDLE_MODE
    return None


def _charge_ceiling(inputs: PowerInputs) -> _Bound:
    """Rule 2, charge side: the tightest applicable charge limit, >= 0."""
    vehicle, rating, grid = inputs.vehicle, inputs.rating, inputs.grid
    full = (
        vehicle.soc_pct is not None
        and vehicle.max_soc_pct is not None
        and vehicle.soc_pct >= vehicle.max_soc_pct
    )
    external = inputs.schedule.mode is OperationMode.EXTERNAL_LIMITS
    return _tightest(
        (
            (0.0 if full else None, Reason.SOC_BOUND),
            (inputs.schedule.limit_w, Reason.LIMITED_BY_SCHEDULE),
            (inputs.external.limit_w if external else None, Reason.LIMITED_BY_EXTERNAL),
            (inputs.operator_limit_w, Reason.LIMITED_BY_OPERATOR),
            (grid.max_import_w, Reason.LIMITED_BY_GRID),
            (vehicle.max_charge_power_w, Reason.LIMITED_BY_VEHICLE),
            (_product(vehicle.voltage_v, vehicle.max_charge_current_a), Reason.LIMITED_BY_VEHICLE),
            (rating.max_charge_power_w, Reason.LIMITED_BY_RATING),
            (_product(vehicle.voltage_v, rating.max_current_a), Reason.LIMITED_BY_RATING),
        )
    )


def _magnitude(discharge_limit_w: float | None) -> float | None:
    return None if discharge_limit_w is None else -discharge_limit_w + 0.0  # -(-0.0) is 0.0


def _discharge_ceiling(inputs: PowerInputs) -> _Bound:
    """Rule 2, discharge side: the tightest applicable discharge limit, as a magnitude >= 0."""
    vehicle, rating, grid = inputs.vehicle, inputs.rating, inputs.grid
    charging_only = inputs.schedule.mode is OperationMode.CHARGING_ONLY
    empty = (
        vehicle.soc_pct is not None
        and vehicle.min_soc_pct is not None
        and vehicle.soc_pct <= vehicle.min_soc_pct
    )
    external = inputs.schedule.mode is OperationMode.EXTERNAL_LIMITS
    external_limit = _magnitude(inputs.external.discharge_limit_w) if external else None
    return _tightest(
        (
            (0.0 if charging_only else None, Reason.LIMITED_BY_SCHEDULE),
            (None if vehicle.discharge_allowed else 0.0, Reason.LIMITED_BY_VEHICLE),
            (0.0 if empty else None, Reason.SOC_BOUND),
            (_magnitude(inputs.schedule.discharge_limit_w), Reason.LIMITED_BY_SCHEDULE),
            (external_limit, Reason.LIMITED_BY_EXTERNAL),
            (inputs.operator_limit_w, Reason.LIMITED_BY_OPERATOR),
            (grid.max_export_w, Reason.LIMITED_BY_GRID),
            (grid.der_limit_max_discharge_w, Reason.LIMITED_BY_GRID),
            (vehicle.max_discharge_power_w, Reason.LIMITED_BY_VEHICLE),
            (
                _product(vehicle.voltage_v, vehicle.max_discharge_current_a),
                Reason.LIMITED_BY_VEHICLE,
            ),
            (rating.max_discharge_power_w, Reason.LIMITED_BY_RATING),
            (_product(vehicle.voltage_v, rating.max_current_a), Reason.LIMITED_BY_RATING),
        )
    )


def _interpolate(curve: Curve, x: float) -> float:
    """Piecewise-linear ``power_w`` at ``x``, flat beyond the end points; ``curve`` non-empty."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, p0), (x1, p1) in pairwise(curve):
        if x <= x1:
            span = x1 - x0  # > 0: the points are strictly increasing
            if math.isfinite(span):
                t = (x - x0) / span
            else:  # the span overflowed: halve (exactly, at that magnitude) before subtracting
                t = (x * 0.5 - x0 * 0.5) / (x1 * 0.5 - x0 * 0.5)
            t = min(1.0, max(0.0, t))
            # Weighted sum, not p0 + t * (p1 - p0): exact at the points, no inf * 0 = NaN.
            return p0 * (1.0 - t) + p1 * t
    return curve[-1][1]


_FOLLOW_CEILING = math.inf
"""The target of ChargingOnly-like modes: as much as the charge ceiling allows."""


def _target(inputs: PowerInputs) -> tuple[float, Reason | None]:
    """Rule 3: the mode's target (signed, maybe +-inf) and its reason (None: the ceiling's)."""
    schedule, external, grid = inputs.schedule, inputs.external, inputs.grid
    mode = schedule.mode
    baseline_w = schedule.baseline_w if schedule.baseline_w is not None else 0.0
    if mode is OperationMode.CENTRAL_SETPOINT:
        if schedule.setpoint_w is None:
            return 0.0, Reason.AWAITING_INPUT
        return schedule.setpoint_w, Reason.SETPOINT
    if mode is OperationMode.EXTERNAL_SETPOINT:
        if external.setpoint_w is None:
            return 0.0, Reason.AWAITING_INPUT
        return external.setpoint_w, Reason.SETPOINT
    if mode is OperationMode.CENTRAL_FREQUENCY:
        if external.afrr_signal is None or not schedule.signal_watt_curve:
            return baseline_w, Reason.AFRR_SIGNAL
        activation_w = _interpolate(schedule.signal_watt_curve, external.afrr_signal)
        return baseline_w + activation_w, Reason.AFRR_SIGNAL
    if mode is OperationMode.LOCAL_FREQUENCY:
        if grid.frequency_hz is None or not schedule.freq_watt_curve:
            return 0.0, Reason.AWAITING_INPUT
        response_w = _interpolate(schedule.freq_watt_curve, grid.frequency_hz)
        return baseline_w + response_w, Reason.FREQUENCY_RESPONSE
    if mode is OperationMode.LOCAL_LOAD_BALANCING:
        if grid.site_limit_w is None:
            return _FOLLOW_CEILING, None
        if grid.site_power_w is None or inputs.measured_power_w is None:
            return 0.0, Reason.AWAITING_INPUT
        rest_of_site_w = grid.site_power_w - inputs.measured_power_w
        return grid.site_limit_w - rest_of_site_w, Reason.SITE_LIMIT
    # ChargingOnly and ExternalLimits (Idle never gets here: it is a gate).
    return _FOLLOW_CEILING, None


def _clamp(
    target_w: float, target_reason: Reason | None, charge: _Bound, discharge: _Bound
) -> tuple[float, Reason]:
    """``target_w`` within ``[-discharge, charge]``, with the reason that decided it."""
    if target_w > charge.value_w:
        return charge.value_w, charge.reason
    if target_w < -discharge.value_w:
        return -discharge.value_w, discharge.reason
    assert target_reason is not None  # only the finite targets of rule 3 get here
    return target_w, target_reason


def compute_command(inputs: PowerInputs) -> PowerCommand:
    """The power command for one EVSE now (rules 1-4 of the module docstring).

    Pure and deterministic: the same inputs always give the same command, and nothing outside
    ``inputs`` is read.

    Args:
        inputs: every limit, mode and measurement that applies to the EVSE at this instant.

    Returns:
        The signed set-point within ``[-discharge_ceiling_w, charge_ceiling_w]``, both
        ceilings, the mode and the reason. Exactly 0.0 W (never -0.0) with both ceilings 0 when
        a gate of rule 1 applies.

    Raises:
        Nothing for valid inputs; invalid values are rejected when the inputs are built
        (:class:`PowerValueError`).
    """
    mode = inputs.schedule.mode
    gate = _gate(inputs)
    if gate is not None:
        return PowerCommand(inputs.evse_id, 0.0, mode, gate, 0.0, 0.0)
    charge = _charge_ceiling(inputs)
    discharge = _discharge_ceiling(inputs)
    target_w, target_reason = _target(inputs)
    power_w, reason = _clamp(target_w, target_reason, charge, discharge)
    droop_pu = inputs.grid.frequency_droop_pu
    if (
        droop_pu
        and mode is not OperationMode.LOCAL_FREQUENCY
        and target_reason is not Reason.AWAITING_INPUT
        and power_w != 0.0
    ):
        # Rule 4: the droop moves the command within its direction and its ceilings.
        rating = inputs.rating
        base_w = max(rating.max_charge_power_w, rating.max_discharge_power_w)
        moved_w = power_w + droop_pu * base_w  # finite or +-inf; the clamp makes it finite
        if power_w > 0:
            power_w, reason = _clamp(
                max(moved_w, 0.0), Reason.FREQUENCY_RESPONSE, charge, discharge
            )
        else:
            power_w, reason = _clamp(
                min(moved_w, 0.0), Reason.FREQUENCY_RESPONSE, charge, discharge
            )
    return PowerCommand(
        evse_id=inputs.evse_id,
        power_w=power_w + 0.0,  # turns -0.0 into 0.0
        mode=mode,
        reason=reason,
        charge_ceiling_w=charge.value_w,
        discharge_ceiling_w=discharge.value_w,
    )
