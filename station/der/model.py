"""DER control, pure: the controls a CSMS sets (OCPP 2.1 R01-R05), which of them win, and when.

This module owns the domain types of OCPP 2.1 DER control (SetDERControlRequest and its settings)
and every decision about them: is a request acceptable (:func:`build_control`), what a new control
supersedes (:meth:`DerControlSet.install`), what ClearDERControl and GetDERControl select, which
control of each type is *active* at ``now`` (:meth:`DerControlSet.active`), when the next scheduled
control starts or ends (:meth:`DerControlSet.next_change_after`) and which NotifyDERStartStop that
brings (:meth:`DerControlSet.transitions`), and the LimitMaxDischarge cap in W
(:func:`limit_max_discharge_w`). It must not do I/O, read a clock or import ``ocpp``: ``now`` is an
argument, ``station/ocpp/der_convert.py`` translates payloads, ``station/der/service.py`` is the
shell (store, timer, CSMS).

Rules (OCPP 2.1 Part 2, block R, and the SetDERControlRequest schema):

* A control is *default* (``isDefault`` true: no schedule, in force whenever no scheduled control
  of its type runs) or *scheduled* (``startTime`` + ``duration``: in force on
  ``[startTime, startTime + duration)``). EnterService and Gradients carry no schedule fields,
  so they can only be defaults; a default with a schedule, or a scheduled control without one, is
  Rejected (``InvalidSchedule``), as is a scheduled control whose window has already ended.
* ``controlType`` names exactly one setting field: the curve types use ``curve``, the others the
  field of their name (:data:`SETTING_OF`). A request without that field is Rejected
  (``MissingParam``); one with any other setting field is Rejected (``UnsupportedParam``). A type
  outside the station's capability set is ``NotSupported``.
* A control with the ``controlId`` of an installed one replaces it.
* Priority: 0 is the highest. Among controls of the same type and the same kind (default or
  scheduled) whose time in force overlaps, the one with the lower ``priority`` wins; at equal
  priority the one received later wins (the request carries no other order). The losers are
  *superseded* (``isSuperseded`` in ReportDERControl); ``supersededIds`` of SetDERControlResponse
  lists the controls that the new one superseded and that were not superseded before.
* Active at ``now``, per type: the winning scheduled control in its window, else the winning
  default. A scheduled control that starts sends NotifyDERStartStop ``started`` with the ids it
  displaces (the defaults of its type and the scheduled ones in their window it beats); one whose
  window ends sends ``started`` false and is removed.
* LimitMaxDischarge ``pctMaxDischargePower`` is a percentage (0-100) of the rated discharge power.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Union

__all__ = [
    "CURVE_TYPES",
    "DEFAULT_MAX_CONTROLS",
    "REPORT_ITEMS_MAX",
    "SETTING_OF",
    "SUNSPEC_CONTROLS",
    "SUPERSEDED_IDS_MAX",
    "CurvePoint",
    "DerAlarm",
    "DerControl",
    "DerControlSet",
    "DerControlStatus",
    "DerControlType",
    "DerCurve",
    "DerUnit",
    "DerValueError",
    "EnterService",
    "FixedPF",
    "FixedVar",
    "FreqDroop",
    "Gradient",
    "GridEventFault",
    "Hysteresis",
    "LimitMaxDischarge",
    "PowerDuringCessation",
    "ReactivePowerParams",
    "ReasonCode",
    "Rejection",
    "SetRequest",
    "Setting",
    "SettingKind",
    "StartStop",
    "VoltageParams",
    "build_control",
    "control_from_json",
    "control_to_json",
    "limit_max_discharge_w",
    "report_chunks",
]


class DerValueError(ValueError):
    """A DER value that the station cannot hold (a stored control that does not decode)."""


class DerControlType(StrEnum):
    """DERControlEnumType."""

    ENTER_SERVICE = "EnterService"
    FREQ_DROOP = "FreqDroop"
    FREQ_WATT = "FreqWatt"
    FIXED_PF_ABSORB = "FixedPFAbsorb"
    FIXED_PF_INJECT = "FixedPFInject"
    FIXED_VAR = "FixedVar"
    GRADIENTS = "Gradients"
    HF_MUST_TRIP = "HFMustTrip"
    HF_MAY_TRIP = "HFMayTrip"
    HV_MUST_TRIP = "HVMustTrip"
    HV_MOM_CESS = "HVMomCess"
    HV_MAY_TRIP = "HVMayTrip"
    LIMIT_MAX_DISCHARGE = "LimitMaxDischarge"
    LF_MUST_TRIP = "LFMustTrip"
    LV_MUST_TRIP = "LVMustTrip"
    LV_MOM_CESS = "LVMomCess"
    LV_MAY_TRIP = "LVMayTrip"
    POWER_MONITORING_MUST_TRIP = "PowerMonitoringMustTrip"
    VOLT_VAR = "VoltVar"
    VOLT_WATT = "VoltWatt"
    WATT_PF = "WattPF"
    WATT_VAR = "WattVar"


class DerUnit(StrEnum):
    """DERUnitEnumType: the unit of a curve's y values or of a FixedVar setpoint."""

    NOT_APPLICABLE = "Not_Applicable"
    PCT_MAX_W = "PctMaxW"
    PCT_MAX_VAR = "PctMaxVar"
    PCT_W_AVAIL = "PctWAvail"
    PCT_VAR_AVAIL = "PctVarAvail"
    PCT_EFFECTIVE_V = "PctEffectiveV"


class PowerDuringCessation(StrEnum):
    """PowerDuringCessationEnumType."""

    ACTIVE = "Active"
    REACTIVE = "Reactive"


class GridEventFault(StrEnum):
    """GridEventFaultEnumType (NotifyDERAlarm)."""

    CURRENT_IMBALANCE = "CurrentImbalance"
    LOCAL_EMERGENCY = "LocalEmergency"
    LOW_INPUT_POWER = "LowInputPower"
    OVER_CURRENT = "OverCurrent"
    OVER_FREQUENCY = "OverFrequency"
    OVER_VOLTAGE = "OverVoltage"
    PHASE_ROTATION = "PhaseRotation"
    REMOTE_EMERGENCY = "RemoteEmergency"
    UNDER_FREQUENCY = "UnderFrequency"
    UNDER_VOLTAGE = "UnderVoltage"
    VOLTAGE_IMBALANCE = "VoltageImbalance"


class DerControlStatus(StrEnum):
    """DERControlStatusEnumType."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    NOT_SUPPORTED = "NotSupported"
    NOT_FOUND = "NotFound"


class ReasonCode(StrEnum):
    """The reason codes (OCPP 2.1 Part 2 appendix, "Reason codes") a rejection carries."""

    MISSING_PARAM = "MissingParam"
    UNSUPPORTED_PARAM = "UnsupportedParam"
    UNSUPPORTED_REQUEST = "UnsupportedRequest"
    INVALID_VALUE = "InvalidValue"
    VALUE_OUT_OF_RANGE = "ValueOutOfRange"
    INVALID_SCHEDULE = "InvalidSchedule"
    OUT_OF_STORAGE = "OutOfStorage"


class SettingKind(StrEnum):
    """Which setting of SetDERControlRequest a control type uses."""

    CURVE = "curve"
    ENTER_SERVICE = "enter_service"
    FIXED_PF_ABSORB = "fixed_pf_absorb"
    FIXED_PF_INJECT = "fixed_pf_inject"
    FIXED_VAR = "fixed_var"
    FREQ_DROOP = "freq_droop"
    GRADIENT = "gradient"
    LIMIT_MAX_DISCHARGE = "limit_max_discharge"


T = DerControlType

CURVE_TYPES: frozenset[DerControlType] = frozenset(
    {
        T.FREQ_WATT,
        T.HF_MUST_TRIP,
        T.HF_MAY_TRIP,
        T.HV_MUST_TRIP,
        T.HV_MOM_CESS,
        T.HV_MAY_TRIP,
        T.LF_MUST_TRIP,
        T.LV_MUST_TRIP,
        T.LV_MOM_CESS,
        T.LV_MAY_TRIP,
        T.POWER_MONITORING_MUST_TRIP,
        T.VOLT_VAR,
        T.VOLT_WATT,
        T.WATT_PF,
        T.WATT_VAR,
    }
)
"""Control types whose setting is a ``curve`` (DERCurveType)."""

SETTING_OF: Mapping[DerControlType, SettingKind] = {
    **{t: SettingKind.CURVE for t in CURVE_TYPES},
    T.ENTER_SERVICE: SettingKind.ENTER_SERVICE,
    T.FIXED_PF_ABSORB: SettingKind.FIXED_PF_ABSORB,
    T.FIXED_PF_INJECT: SettingKind.FIXED_PF_INJECT,
    T.FIXED_VAR: SettingKind.FIXED_VAR,
    T.FREQ_DROOP: SettingKind.FREQ_DROOP,
    T.GRADIENTS: SettingKind.GRADIENT,
    T.LIMIT_MAX_DISCHARGE: SettingKind.LIMIT_MAX_DISCHARGE,
}
"""The one setting field each control type carries."""

SUNSPEC_CONTROLS: frozenset[DerControlType] = frozenset(T) - {T.POWER_MONITORING_MUST_TRIP}
"""What a SunSpec 7xx inverter can express (models 702-711): every type but the OCPP-specific
PowerMonitoringMustTrip. Not the station's capability set: the station carries out only
:data:`station.der.grid.CONTROLS_WITH_INVERTER` (:func:`station.der.grid.supported_controls`)."""

DEFAULT_MAX_CONTROLS = 64
"""How many controls the station holds at once (a bound on storage; beyond: OutOfStorage)."""

REPORT_ITEMS_MAX = 24
"""ReportDERControlRequest: at most 24 entries per setting list (schema ``maxItems``)."""

SUPERSEDED_IDS_MAX = 24
"""``supersededIds``: at most 24 ids (schema ``maxItems``)."""

_CURVE_POINTS_MAX = 10  # DERCurveType.curveData maxItems


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """DERCurvePointsType: ``y`` in the curve's ``y_unit``; ``x`` depends on the curve type."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """HysteresisType; ``high``/``low`` in the curve's ``y_unit``, ``gradient_pct_per_s`` %/s."""

    high: float | None = None
    low: float | None = None
    delay_s: float | None = None
    gradient_pct_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class ReactivePowerParams:
    """ReactivePowerParamsType (VoltVar only)."""

    v_ref_pct: float | None = None
    autonomous_v_ref_enable: bool | None = None
    autonomous_v_ref_time_constant_s: float | None = None


@dataclass(frozen=True, slots=True)
class VoltageParams:
    """VoltageParamsType (EN 50549-1 §4.9.3.4 10-minute mean, cessation behaviour)."""

    hv10_min_mean_value: float | None = None
    hv10_min_mean_trip_delay_s: float | None = None
    power_during_cessation: PowerDuringCessation | None = None


@dataclass(frozen=True, slots=True)
class DerCurve:
    """DERCurveType: one curve control (the curve types, and PowerMonitoringMustTrip)."""

    priority: int
    y_unit: DerUnit
    points: tuple[CurvePoint, ...]
    hysteresis: Hysteresis | None = None
    reactive_power_params: ReactivePowerParams | None = None
    voltage_params: VoltageParams | None = None
    response_time_s: float | None = None
    start_time: datetime | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class EnterService:
    """EnterServiceType. The voltages are as the CSMS sends them: OCPP gives no unit (SunSpec 703
    uses percent of nominal); the frequencies are in Hz. Default control only (no schedule)."""

    priority: int
    high_voltage: float
    low_voltage: float
    high_freq_hz: float
    low_freq_hz: float
    delay_s: float | None = None
    random_delay_s: float | None = None
    ramp_rate_s: float | None = None


@dataclass(frozen=True, slots=True)
class FixedPF:
    """FixedPFType: ``displacement`` cos(phi) 0..1; ``excitation`` true = absorbing reactive
    power (under-excited)."""

    priority: int
    displacement: float
    excitation: bool
    start_time: datetime | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class FixedVar:
    """FixedVarType: ``setpoint_pct`` -100..100 of what ``unit`` names."""

    priority: int
    setpoint_pct: float
    unit: DerUnit
    start_time: datetime | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class FreqDroop:
    """FreqDroopType: droop starts above ``over_freq_hz`` and below ``under_freq_hz``."""

    priority: int
    over_freq_hz: float
    under_freq_hz: float
    over_droop: float
    under_droop: float
    response_time_s: float
    start_time: datetime | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class Gradient:
    """GradientType: default and soft-start ramp times (0: not applicable). Default only."""

    priority: int
    gradient_s: float
    soft_gradient_s: float


@dataclass(frozen=True, slots=True)
class LimitMaxDischarge:
    """LimitMaxDischargeType: ``pct_max_discharge_power`` 0..100 of the rated discharge power
    (absent: no cap, only the power-monitoring curve)."""

    priority: int
    pct_max_discharge_power: float | None = None
    power_monitoring_must_trip: DerCurve | None = None
    start_time: datetime | None = None
    duration_s: float | None = None


Setting = Union[DerCurve, EnterService, FixedPF, FixedVar, FreqDroop, Gradient, LimitMaxDischarge]  # noqa: UP007

_SETTING_CLASS: Mapping[SettingKind, type] = {
    SettingKind.CURVE: DerCurve,
    SettingKind.ENTER_SERVICE: EnterService,
    SettingKind.FIXED_PF_ABSORB: FixedPF,
    SettingKind.FIXED_PF_INJECT: FixedPF,
    SettingKind.FIXED_VAR: FixedVar,
    SettingKind.FREQ_DROOP: FreqDroop,
    SettingKind.GRADIENT: Gradient,
    SettingKind.LIMIT_MAX_DISCHARGE: LimitMaxDischarge,
}


# --- controls ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DerControl:
    """One installed DER control.

    Attributes:
        control_id: ``controlId`` (at most 36 characters), unique in the station.
        control_type: which control.
        is_default: a default control (no schedule) or a scheduled one.
        setting: the setting of the class :data:`SETTING_OF` names for the type.
        received_at: when the station accepted it (breaks priority ties: the later one wins).
    """

    control_id: str
    control_type: DerControlType
    is_default: bool
    setting: Setting
    received_at: datetime

    @property
    def kind(self) -> SettingKind:
        return SETTING_OF[self.control_type]

    @property
    def priority(self) -> int:
        return self.setting.priority

    @property
    def start_time(self) -> datetime | None:
        return getattr(self.setting, "start_time", None)

    @property
    def duration_s(self) -> float | None:
        return getattr(self.setting, "duration_s", None)

    @property
    def end_time(self) -> datetime | None:
        start, duration_s = self.start_time, self.duration_s
        if self.is_default or start is None or duration_s is None:
            return None
        return start + timedelta(seconds=duration_s)

    def in_window(self, now: datetime) -> bool:
        """A scheduled control in force at ``now`` (never true for a default)."""
        start, end = self.start_time, self.end_time
        return start is not None and end is not None and start <= now < end

    def beats(self, other: DerControl) -> bool:
        """Wins against ``other`` of the same kind: lower priority value, then received later,
        then (only to be total) the larger id."""
        return (self.priority, -self.received_at.timestamp(), _neg(self.control_id)) < (
            other.priority,
            -other.received_at.timestamp(),
            _neg(other.control_id),
        )


def _neg(text: str) -> tuple[int, ...]:
    return (*(-ord(c) for c in text), 1)


@dataclass(frozen=True, slots=True)
class SetRequest:
    """A SetDERControlRequest as the domain sees it: every setting field that was present."""

    control_id: str
    control_type: DerControlType
    is_default: bool
    settings: Mapping[SettingKind, Setting]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request is not carried out: the status and statusInfo to answer with."""

    status: DerControlStatus
    reason_code: ReasonCode
    additional_info: str


@dataclass(frozen=True, slots=True)
class StartStop:
    """A NotifyDERStartStop to send: ``control_id`` started (or ended) at ``at``."""

    control_id: str
    started: bool
    at: datetime
    superseded_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DerAlarm:
    """A NotifyDERAlarm: a grid event of ``control_type`` began (or ended)."""

    control_type: DerControlType
    at: datetime
    grid_event_fault: GridEventFault | None = None
    alarm_ended: bool = False
    extra_info: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise DerValueError("DerAlarm.at must be timezone-aware")
        if self.extra_info is not None and len(self.extra_info) > 200:
            raise DerValueError("DerAlarm.extra_info: at most 200 characters (extraInfo)")


# --- validation ----------------------------------------------------------------------------------


def build_control(
    request: SetRequest,
    *,
    supported: frozenset[DerControlType],
    now: datetime,
) -> DerControl | Rejection:
    """SetDERControl: the control to install, or why not.

    Args:
        request: the request's fields.
        supported: the control types the station can carry out (its capability set).
        now: the present time (a scheduled control that has already ended is refused).

    Returns:
        The control (``received_at`` = ``now``), or a :class:`Rejection` (NotSupported for a type
        outside ``supported``, Rejected for anything wrong with the request).
    """
    control_type = request.control_type
    if control_type not in supported:
        return Rejection(
            DerControlStatus.NOT_SUPPORTED,
            ReasonCode.UNSUPPORTED_REQUEST,
            f"control type {control_type} is not supported by this station",
        )
    if not request.control_id or len(request.control_id) > 36:
        return _rejected(ReasonCode.INVALID_VALUE, "controlId must have 1 to 36 characters")
    kind = SETTING_OF[control_type]
    others = sorted(k.value for k in request.settings if k is not kind)
    if others:
        return _rejected(
            ReasonCode.UNSUPPORTED_PARAM,
            f"{control_type} takes only its {kind.value} setting, not {', '.join(others)}",
        )
    setting = request.settings.get(kind)
    if setting is None:
        return _rejected(ReasonCode.MISSING_PARAM, f"{control_type} needs its {kind.value} setting")
    if not isinstance(setting, _SETTING_CLASS[kind]):
        return _rejected(ReasonCode.INVALID_VALUE, f"{kind.value} holds the wrong setting")
    if (
        isinstance(setting, LimitMaxDischarge)
        and setting.power_monitoring_must_trip is not None
        and T.POWER_MONITORING_MUST_TRIP not in supported
    ):
        # Carried out only where PowerMonitoringMustTrip is: never silently accepted.
        return _rejected(
            ReasonCode.UNSUPPORTED_PARAM,
            "powerMonitoringMustTrip is not supported by this station",
        )
    problem = _value_problem(setting)
    if problem is not None:
        return _rejected(*problem)
    control = DerControl(request.control_id, control_type, request.is_default, setting, now)
    schedule_problem = _schedule_problem(control, now)
    if schedule_problem is not None:
        return _rejected(ReasonCode.INVALID_SCHEDULE, schedule_problem)
    return control


def _rejected(reason: ReasonCode, info: str) -> Rejection:
    return Rejection(DerControlStatus.REJECTED, reason, info)


def _schedule_problem(control: DerControl, now: datetime) -> str | None:
    setting = control.setting
    has_schedule = hasattr(setting, "start_time")
    start, duration_s = control.start_time, control.duration_s
    if control.is_default:
        if start is not None or duration_s is not None:
            return "a default control has no startTime or duration"
        return None
    if not has_schedule:
        return f"{control.control_type} can only be a default control (it has no schedule)"
    if start is None or duration_s is None:
        return "a scheduled control needs startTime and duration"
    if start.tzinfo is None:
        return "startTime must carry a time zone"
    if not duration_s > 0:
        return "duration must be more than 0 s"
    end = control.end_time
    if end is not None and end <= now:
        return "the control's time in force has already ended"
    return None


def _value_problem(setting: Setting) -> tuple[ReasonCode, str] | None:
    """A value that is not finite or out of its range; checks nested curves too."""
    for name, value in _numbers(setting):
        if not math.isfinite(value):
            return ReasonCode.INVALID_VALUE, f"{name} must be a finite number"
    if setting.priority < 0:
        return ReasonCode.VALUE_OUT_OF_RANGE, "priority must be 0 or more"
    if isinstance(setting, DerCurve):
        return _curve_problem(setting, "curve")
    if isinstance(setting, FixedPF) and not 0.0 <= setting.displacement <= 1.0:
        return ReasonCode.VALUE_OUT_OF_RANGE, "displacement (cos phi) must be within 0..1"
    if isinstance(setting, FixedVar) and not -100.0 <= setting.setpoint_pct <= 100.0:
        return ReasonCode.VALUE_OUT_OF_RANGE, "fixedVar setpoint must be within -100..100 %"
    if isinstance(setting, FreqDroop):
        if setting.over_freq_hz <= 0 or setting.under_freq_hz <= 0:
            return ReasonCode.VALUE_OUT_OF_RANGE, "freqDroop frequencies must be more than 0 Hz"
        if setting.under_freq_hz > setting.over_freq_hz:
            return ReasonCode.INVALID_VALUE, "freqDroop underFreq is above overFreq"
        if setting.response_time_s < 0:
            return ReasonCode.VALUE_OUT_OF_RANGE, "freqDroop responseTime must be 0 s or more"
    if isinstance(setting, EnterService):
        if setting.low_voltage > setting.high_voltage:
            return ReasonCode.INVALID_VALUE, "enterService lowVoltage is above highVoltage"
        if setting.low_freq_hz > setting.high_freq_hz:
            return ReasonCode.INVALID_VALUE, "enterService lowFreq is above highFreq"
        for name in ("delay_s", "random_delay_s", "ramp_rate_s"):
            value = getattr(setting, name)
            if value is not None and value < 0:
                return ReasonCode.VALUE_OUT_OF_RANGE, f"enterService {name} must be 0 or more"
    if isinstance(setting, Gradient) and (setting.gradient_s < 0 or setting.soft_gradient_s < 0):
        return ReasonCode.VALUE_OUT_OF_RANGE, "gradient values must be 0 s or more"
    if isinstance(setting, LimitMaxDischarge):
        pct = setting.pct_max_discharge_power
        if pct is not None and not 0.0 <= pct <= 100.0:
            return ReasonCode.VALUE_OUT_OF_RANGE, "pctMaxDischargePower must be within 0..100"
        if setting.power_monitoring_must_trip is not None:
            return _curve_problem(setting.power_monitoring_must_trip, "powerMonitoringMustTrip")
    return None


def _curve_problem(curve: DerCurve, name: str) -> tuple[ReasonCode, str] | None:
    if not 1 <= len(curve.points) <= _CURVE_POINTS_MAX:
        return ReasonCode.VALUE_OUT_OF_RANGE, f"{name} needs 1 to {_CURVE_POINTS_MAX} points"
    xs = [p.x for p in curve.points]
    if any(b <= a for a, b in itertools.pairwise(xs)):
        return ReasonCode.INVALID_VALUE, f"{name} x values must increase strictly"
    if curve.response_time_s is not None and curve.response_time_s < 0:
        return ReasonCode.VALUE_OUT_OF_RANGE, f"{name} responseTime must be 0 s or more"
    if curve.hysteresis is not None and (curve.hysteresis.delay_s or 0.0) < 0:
        return ReasonCode.VALUE_OUT_OF_RANGE, f"{name} hysteresisDelay must be 0 s or more"
    return None


def _numbers(value: Any, name: str = "") -> Iterable[tuple[str, float]]:
    """Every float in a setting (nested), with its field name."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield name, float(value)
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from _numbers(getattr(value, field.name), field.name)
    elif isinstance(value, tuple):
        for item in value:
            yield from _numbers(item, name)


# --- the set of installed controls ---------------------------------------------------------------


class DerControlSet:
    """The installed controls, immutable: every change returns a new set.

    Args:
        controls: the controls (their ids must be unique).

    Raises:
        DerValueError: two controls share an id.
    """

    __slots__ = ("_controls",)

    def __init__(self, controls: Iterable[DerControl] = ()) -> None:
        by_id: dict[str, DerControl] = {}
        for control in controls:
            if control.control_id in by_id:
                raise DerValueError(f"control id {control.control_id!r} appears twice")
            by_id[control.control_id] = control
        self._controls = by_id

    def __iter__(self) -> typing.Iterator[DerControl]:
        return iter(self._controls.values())

    def __len__(self) -> int:
        return len(self._controls)

    def __contains__(self, control_id: object) -> bool:
        return control_id in self._controls

    def get(self, control_id: str) -> DerControl | None:
        return self._controls.get(control_id)

    # ----------------------------------------------------------------------------- changes

    def install(self, control: DerControl) -> tuple[DerControlSet, tuple[str, ...]]:
        """Add ``control``, replacing the one with its id.

        Returns:
            The new set, and the ids the new control superseded that were not superseded
            before (same type and kind, overlapping, losing to it), at most
            :data:`SUPERSEDED_IDS_MAX`.
        """
        rest = [c for c in self if c.control_id != control.control_id]
        before = {c.control_id for c in rest if self.is_superseded(c)}
        after = DerControlSet([*rest, control])
        superseded = tuple(
            sorted(
                c.control_id
                for c in rest
                if c.control_id not in before
                and _rivals(c, control)
                and control.beats(c)
                and after.is_superseded(c)
            )
        )
        return after, superseded[:SUPERSEDED_IDS_MAX]

    def clear(
        self,
        *,
        is_default: bool,
        control_type: DerControlType | None = None,
        control_id: str | None = None,
    ) -> tuple[DerControlSet, tuple[str, ...]]:
        """ClearDERControl: remove the matching controls.

        ``control_id`` given: that control, if its kind matches ``is_default`` (``control_type``
        is not used then). Otherwise every control of the kind, of ``control_type`` if given.

        Returns:
            The new set and the removed ids (none: NotFound).
        """
        gone = {c.control_id for c in self.query(is_default, control_type, control_id)}
        if not gone:
            return self, ()
        return DerControlSet(c for c in self if c.control_id not in gone), tuple(sorted(gone))

    def remove(self, control_ids: Iterable[str]) -> DerControlSet:
        ids = set(control_ids)
        return DerControlSet(c for c in self if c.control_id not in ids)

    def expired(self, now: datetime) -> tuple[str, ...]:
        """Scheduled controls whose time in force has ended at ``now``."""
        return tuple(
            sorted(c.control_id for c in self if (end := c.end_time) is not None and end <= now)
        )

    # ----------------------------------------------------------------------------- queries

    def query(
        self,
        is_default: bool | None = None,
        control_type: DerControlType | None = None,
        control_id: str | None = None,
    ) -> tuple[DerControl, ...]:
        """GetDERControl / ClearDERControl selection, in a stable order (type, priority, id).

        ``control_id`` given: only that control (``control_type`` is not used then).
        """
        if control_id is not None:
            found = self.get(control_id)
            chosen = [] if found is None else [found]
        else:
            chosen = [c for c in self if control_type is None or c.control_type == control_type]
        chosen = [c for c in chosen if is_default is None or c.is_default == is_default]
        return tuple(sorted(chosen, key=lambda c: (c.control_type.value, c.priority, c.control_id)))

    def is_superseded(self, control: DerControl) -> bool:
        """Another control of its type and kind, in force at an overlapping time, beats it."""
        return any(
            other.control_id != control.control_id
            and _rivals(other, control)
            and other.beats(control)
            for other in self
        )

    def active(self, now: datetime) -> dict[DerControlType, DerControl]:
        """The control in force per type at ``now``: the winning scheduled control in its
        window, else the winning default."""
        chosen: dict[DerControlType, DerControl] = {}
        for control in self:
            if not (control.is_default or control.in_window(now)):
                continue
            current = chosen.get(control.control_type)
            if current is None or _wins_now(control, current):
                chosen[control.control_type] = control
        return chosen

    def next_change_after(self, now: datetime) -> datetime | None:
        """The next start or end of a scheduled control after ``now`` (None: none)."""
        times = [
            t
            for c in self
            if not c.is_default
            for t in (c.start_time, c.end_time)
            if t is not None and t > now
        ]
        return min(times, default=None)

    def transitions(self, running: frozenset[str], now: datetime) -> tuple[StartStop, ...]:
        """The NotifyDERStartStop due at ``now``, given the ids already reported started.

        A scheduled control in its window that is not in ``running`` has started (with the ids
        it displaces: the defaults of its type and the scheduled ones in their window it beats);
        one in ``running`` that is no longer in its window has ended. Ended ones come first.
        """
        events: list[StartStop] = []
        for control in sorted(self, key=lambda c: (c.start_time or now, c.control_id)):
            if control.is_default:
                continue
            end = control.end_time
            if control.control_id in running and not control.in_window(now):
                at = end if end is not None and end <= now else now
                events.append(StartStop(control.control_id, False, at))
        for control in sorted(self, key=lambda c: (c.start_time or now, c.control_id)):
            if control.is_default or control.control_id in running:
                continue
            if control.in_window(now):
                displaced = sorted(
                    other.control_id
                    for other in self
                    if other.control_id != control.control_id
                    and other.control_type == control.control_type
                    and (other.is_default or (other.in_window(now) and control.beats(other)))
                )
                assert control.start_time is not None
                events.append(
                    StartStop(
                        control.control_id,
                        True,
                        control.start_time,
                        tuple(displaced[:SUPERSEDED_IDS_MAX]),
                    )
                )
        return tuple(events)


def _rivals(a: DerControl, b: DerControl) -> bool:
    """Same type and kind, and in force at an overlapping time (defaults always overlap)."""
    if a.control_type != b.control_type or a.is_default != b.is_default:
        return False
    if a.is_default:
        return True
    a_start, a_end, b_start, b_end = a.start_time, a.end_time, b.start_time, b.end_time
    if a_start is None or a_end is None or b_start is None or b_end is None:
        return False
    return a_start < b_end and b_start < a_end


def _wins_now(a: DerControl, b: DerControl) -> bool:
    if a.is_default != b.is_default:
        return not a.is_default  # a scheduled control in its window beats every default
    return a.beats(b)


def limit_max_discharge_w(
    controls: DerControlSet, rated_discharge_w: float, now: datetime
) -> float | None:
    """The discharge cap (magnitude, W) of the LimitMaxDischarge control active at ``now``.

    Args:
        controls: the installed controls.
        rated_discharge_w: the rated discharge power the percentage refers to, >= 0.
        now: the present time.

    Returns:
        ``rated_discharge_w * pct / 100``, or None when no LimitMaxDischarge with a
        ``pctMaxDischargePower`` is active. 0 % means no discharge at all.

    Raises:
        DerValueError: ``rated_discharge_w`` is negative or not finite.
    """
    if not (math.isfinite(rated_discharge_w) and rated_discharge_w >= 0):
        raise DerValueError(f"rated_discharge_w must be finite and >= 0, not {rated_discharge_w}")
    control = controls.active(now).get(DerControlType.LIMIT_MAX_DISCHARGE)
    if control is None or not isinstance(control.setting, LimitMaxDischarge):
        return None
    pct = control.setting.pct_max_discharge_power
    if pct is None:
        return None
    return rated_discharge_w * pct / 100.0


def report_chunks(
    controls: Iterable[DerControl], max_per_message: int = REPORT_ITEMS_MAX
) -> tuple[tuple[DerControl, ...], ...]:
    """ReportDERControl parts: at most ``max_per_message`` controls each, in order; the shell
    sets ``tbc`` on all but the last.

    Raises:
        ValueError: ``max_per_message`` is less than 1.
    """
    if max_per_message < 1:
        raise ValueError("max_per_message must be 1 or more")
    items = tuple(controls)
    return tuple(items[i : i + max_per_message] for i in range(0, len(items), max_per_message))


# --- the store's encoding ------------------------------------------------------------------------


def control_to_json(control: DerControl) -> dict[str, Any]:
    """The control as JSON-ready data, in the DER core's own encoding (for ``store/``)."""
    return {
        "control_id": control.control_id,
        "control_type": control.control_type.value,
        "is_default": control.is_default,
        "received_at": control.received_at.isoformat(),
        "setting": _encode(control.setting),
    }


def control_from_json(data: Mapping[str, Any]) -> DerControl:
    """The inverse of :func:`control_to_json`.

    Raises:
        DerValueError: the data is not a control in this encoding.
    """
    try:
        control_type = DerControlType(data["control_type"])
        cls = _SETTING_CLASS[SETTING_OF[control_type]]
        setting = _decode(data["setting"], cls)
        received_at = _aware(datetime.fromisoformat(data["received_at"]))
        control_id = data["control_id"]
        is_default = data["is_default"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DerValueError(f"not a stored DER control: {exc}") from exc
    if not isinstance(control_id, str) or not isinstance(is_default, bool):
        raise DerValueError("not a stored DER control: bad control_id or is_default")
    return DerControl(control_id, control_type, is_default, setting, received_at)


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("a stored time has no time zone")
    return when.astimezone(UTC)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _encode(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


def _decode(data: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if data is None:
            return None
        return _decode(data, options[0])
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if not isinstance(data, list):
            raise ValueError(f"expected a list, got {type(data).__name__}")
        return tuple(_decode(item, item_hint) for item in data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise ValueError(f"expected an object for {hint.__name__}")
        hints = typing.get_type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{hint.__name__}: unknown fields {sorted(unknown)}")
        return hint(**{k: _decode(v, hints[k]) for k, v in data.items()})
    if hint is datetime:
        return _aware(datetime.fromisoformat(data))
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return hint(data)
    if hint is bool:
        if not isinstance(data, bool):
            raise ValueError("expected a boolean")
        return data
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError("expected an integer")
        return data
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError("expected a number")
        return float(data)
    raise ValueError(f"cannot decode {hint!r}")
