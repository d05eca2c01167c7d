"""Conversion between OCPP smart-charging payloads and :mod:`station.smartcharging` types.

This module is the only translator between the wire shapes of OCPP 2.0.1 / 2.1 smart charging
(``ChargingProfileType``, ``ClearChargingProfileType``, ``ChargingProfileCriterionType``,
``CompositeScheduleType``) and the station's domain types (STYLE.md A2.7). It takes and returns
*snake_case* dicts, exactly as handlers receive them and as :meth:`CsmsSession.to_wire` sends
them (key conversion, including the v21 per-phase ``limit_L2`` -> ``limit_l2`` names, is
:mod:`station.ocpp.keys`'s job, not this module's). It does no I/O and keeps no state.

Conventions applied here, once (DESIGN.md):

* **Stored as received**: a profile keeps the values the CSMS sent, also a 2.0.1 negative
  ``limit`` (the composite schedule reads it as a discharge limit,
  :func:`station.smartcharging.from_legacy_negative_limit`), so ReportChargingProfiles (K09)
  reports it back unchanged. OCPP 2.1 ``dischargeLimit``/``setpoint`` already use the station's
  sign and are stored as received too.
* **Units**: period values stay in the schedule's ``chargingRateUnit`` (A or W); v2x curve
  points become ``frequency_hz`` / ``power_w``; durations are whole seconds.
* **Time**: every dateTime is parsed into an aware UTC ``datetime``
  (:func:`station.clock.parse_ocpp_time`); one without a time zone is refused
  (:class:`ConvertError`), and outgoing instants are written with
  :func:`station.clock.format_ocpp_time` (UTC, milliseconds, ``Z``).
* The price information of a schedule (``salesTariff``, ``absolutePriceSchedule``,
  ``priceLevelSchedule``) is kept as opaque JSON text of its snake_case form and written back
  as it came.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from station.clock import format_ocpp_time, parse_ocpp_time
from station.errors import StationError
from station.smartcharging import (
    ChargingNeeds,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    ClearCriteria,
    CompositeSchedule,
    EnergyTransferMode,
    FreqWattPoint,
    LimitAtSoc,
    OcppVersion,
    OperationMode,
    PeriodValue,
    ProfileCriteria,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    ScheduleUpdate,
    SignalWattPoint,
    SmartChargingValueError,
    to_legacy_limit,
)

__all__ = [
    "ConvertError",
    "afrr_signal_from_ocpp",
    "clear_criteria_from_ocpp",
    "composite_to_ocpp",
    "energy_modes_from_ocpp",
    "needs_to_ocpp",
    "profile_criteria_from_ocpp",
    "profile_from_ocpp",
    "profile_to_ocpp",
    "schedule_to_ocpp",
    "schedule_update_from_ocpp",
]

_PRICE_KEYS = ("sales_tariff", "absolute_price_schedule", "price_level_schedule")

# Per-phase period fields: (domain attribute, snake_case key) in wire order.
_PERIOD_DECIMALS = (
    ("limit", "limit"),
    ("limit_l2", "limit_l2"),
    ("limit_l3", "limit_l3"),
    ("discharge_limit", "discharge_limit"),
    ("discharge_limit_l2", "discharge_limit_l2"),
    ("discharge_limit_l3", "discharge_limit_l3"),
    ("setpoint", "setpoint"),
    ("setpoint_l2", "setpoint_l2"),
    ("setpoint_l3", "setpoint_l3"),
    ("setpoint_reactive", "setpoint_reactive"),
    ("setpoint_reactive_l2", "setpoint_reactive_l2"),
    ("setpoint_reactive_l3", "setpoint_reactive_l3"),
)


class ConvertError(StationError, ValueError):
    """A schema-valid payload still cannot be read (e.g. a dateTime without a time zone).

    The handler answers with a FormatViolation CALLERROR: the value breaks the schema's
    ``format: date-time`` (RFC 3339 requires the offset), which the validator does not check.
    """


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ocpp_time(str(value))
    except ValueError as exc:
        raise ConvertError(f"{name}: {exc}") from None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


# --- ChargingProfileType -> domain -------------------------------------------------------------


def _period_from_ocpp(data: Mapping[str, Any]) -> SchedulePeriod:
    decimals = {attr: _number(data.get(key)) for attr, key in _PERIOD_DECIMALS}
    return SchedulePeriod(
        start_period_s=int(data["start_period"]),
        number_phases=data.get("number_phases"),
        phase_to_use=data.get("phase_to_use"),
        operation_mode=OperationMode(data.get("operation_mode", OperationMode.CHARGING_ONLY)),
        preconditioning_request=bool(data.get("preconditioning_request", False)),
        evse_sleep=bool(data.get("evse_sleep", False)),
        v2x_baseline=_number(data.get("v2x_baseline")),
        v2x_freq_watt_curve=tuple(
            FreqWattPoint(frequency_hz=float(p["frequency"]), power_w=float(p["power"]))
            for p in data.get("v2x_freq_watt_curve") or ()
        ),
        v2x_signal_watt_curve=tuple(
            SignalWattPoint(signal=int(p["signal"]), power_w=float(p["power"]))
            for p in data.get("v2x_signal_watt_curve") or ()
        ),
        **decimals,
    )


def _schedule_from_ocpp(data: Mapping[str, Any], where: str) -> ChargingSchedule:
    price = {key: data[key] for key in _PRICE_KEYS if data.get(key) is not None}
    soc = data.get("limit_at_soc")
    return ChargingSchedule(
        id=int(data["id"]),
        rate_unit=RateUnit(data["charging_rate_unit"]),
        periods=tuple(_period_from_ocpp(p) for p in data["charging_schedule_period"]),
        start_schedule=_time(data.get("start_schedule"), f"{where}.startSchedule"),
        duration_s=data.get("duration"),
        min_charging_rate=_number(data.get("min_charging_rate")),
        limit_at_soc=(
            None if soc is None else LimitAtSoc(soc_pct=int(soc["soc"]), limit=float(soc["limit"]))
        ),
        power_tolerance=_number(data.get("power_tolerance")),
        use_local_time=bool(data.get("use_local_time", False)),
        randomized_delay_s=int(data.get("randomized_delay", 0)),
        signature_id=data.get("signature_id"),
        digest_value=data.get("digest_value"),
        price_schedule_json=json.dumps(price, sort_keys=True) if price else None,
    )


def profile_from_ocpp(
    data: Mapping[str, Any], *, evse_id: int, received_at: datetime
) -> ChargingProfile:
    """A SetChargingProfileRequest ``chargingProfile`` (snake_case keys) as a domain profile.

    Works for both versions: a 2.0.1 payload simply has none of the 2.1 fields. Values are
    taken as received (see the module docstring); whether the profile may be installed is
    :func:`station.smartcharging.validate`'s decision, not this function's.

    Args:
        data: the ``charging_profile`` kwarg of the handler (schema-valid).
        evse_id: the request's ``evseId``.
        received_at: now; the start of validity of a profile without ``validFrom``.

    Returns:
        The profile, with ``limit_source`` CSO.

    Raises:
        ConvertError: a dateTime without time zone or otherwise unreadable.
    """
    schedules = data["charging_schedule"]  # 1-3 schedules in both versions
    try:
        return ChargingProfile(
            id=int(data["id"]),
            stack_level=int(data["stack_level"]),
            purpose=ChargingProfilePurpose(data["charging_profile_purpose"]),
            kind=ChargingProfileKind(data["charging_profile_kind"]),
            schedules=tuple(
                _schedule_from_ocpp(s, f"chargingSchedule[{i}]") for i, s in enumerate(schedules)
            ),
            evse_id=evse_id,
            recurrency=(
                None
                if data.get("recurrency_kind") is None
                else RecurrencyKind(data["recurrency_kind"])
            ),
            valid_from=_time(data.get("valid_from"), "validFrom"),
            valid_to=_time(data.get("valid_to"), "validTo"),
            transaction_id=data.get("transaction_id"),
            max_offline_duration_s=data.get("max_offline_duration"),
            invalid_after_offline_duration=bool(data.get("invalid_after_offline_duration", False)),
            dyn_update_interval_s=data.get("dyn_update_interval"),
            dyn_update_time=_time(data.get("dyn_update_time"), "dynUpdateTime"),
            price_schedule_signature=data.get("price_schedule_signature"),
            received_at=received_at,
        )
    except SmartChargingValueError as exc:  # pragma: no cover - _time() refuses naive values
        raise ConvertError(str(exc)) from exc


# --- domain -> ChargingProfileType -------------------------------------------------------------


def _decimal(value: float) -> float | int:
    """Integral values go out as JSON integers (``16``, not ``16.0``); both are schema-valid."""
    return int(value) if float(value).is_integer() else value


def _period_to_ocpp(period: SchedulePeriod, version: OcppVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"start_period": period.start_period_s}
    v21 = version == OcppVersion.V2_1
    for attr, key in _PERIOD_DECIMALS:
        value = getattr(period, attr)
        if value is not None and (v21 or attr == "limit"):
            out[key] = _decimal(value)
    if period.number_phases is not None:
        out["number_phases"] = period.number_phases
    if period.phase_to_use is not None:
        out["phase_to_use"] = period.phase_to_use
    if v21:
        if period.operation_mode != OperationMode.CHARGING_ONLY:
            out["operation_mode"] = str(period.operation_mode)
        if period.preconditioning_request:
            out["preconditioning_request"] = True
        if period.evse_sleep:
            out["evse_sleep"] = True
        if period.v2x_baseline is not None:
            out["v2x_baseline"] = _decimal(period.v2x_baseline)
        if period.v2x_freq_watt_curve:
            out["v2x_freq_watt_curve"] = [
                {"frequency": _decimal(p.frequency_hz), "power": _decimal(p.power_w)}
                for p in period.v2x_freq_watt_curve
            ]
        if period.v2x_signal_watt_curve:
            out["v2x_signal_watt_curve"] = [
                {"signal": p.signal, "power": _decimal(p.power_w)}
                for p in period.v2x_signal_watt_curve
            ]
    return out


def _schedule_to_ocpp(schedule: ChargingSchedule, version: OcppVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": schedule.id,
        "charging_rate_unit": str(schedule.rate_unit),
        "charging_schedule_period": [_period_to_ocpp(p, version) for p in schedule.periods],
    }
    if schedule.start_schedule is not None:
        out["start_schedule"] = format_ocpp_time(schedule.start_schedule)
    if schedule.duration_s is not None:
        out["duration"] = schedule.duration_s
    if schedule.min_charging_rate is not None:
        out["min_charging_rate"] = _decimal(schedule.min_charging_rate)
    if schedule.price_schedule_json is not None:
        price = json.loads(schedule.price_schedule_json)
        out.update(
            {k: v for k, v in price.items() if version == OcppVersion.V2_1 or k == "sales_tariff"}
        )
    if version == OcppVersion.V2_1:
        if schedule.limit_at_soc is not None:
            out["limit_at_soc"] = {
                "soc": schedule.limit_at_soc.soc_pct,
                "limit": _decimal(schedule.limit_at_soc.limit),
            }
        if schedule.power_tolerance is not None:
            out["power_tolerance"] = _decimal(schedule.power_tolerance)
        if schedule.use_local_time:
            out["use_local_time"] = True
        if schedule.randomized_delay_s:
            out["randomized_delay"] = schedule.randomized_delay_s
        if schedule.signature_id is not None:
            out["signature_id"] = schedule.signature_id
        if schedule.digest_value is not None:
            out["digest_value"] = schedule.digest_value
    return out


def profile_to_ocpp(profile: ChargingProfile, version: OcppVersion | str) -> dict[str, Any]:
    """A domain profile as a ``ChargingProfileType`` (snake_case keys) for ReportChargingProfiles.

    The inverse of :func:`profile_from_ocpp` for the fields the version defines: a 2.0.1
    profile comes back exactly as it was received (negative limits included).

    Args:
        profile: an installed profile.
        version: the session's OCPP version (2.1-only fields are left out over 2.0.1).
    """
    version = OcppVersion(version)
    out: dict[str, Any] = {
        "id": profile.id,
        "stack_level": profile.stack_level,
        "charging_profile_purpose": str(profile.purpose),
        "charging_profile_kind": str(profile.kind),
        "charging_schedule": [_schedule_to_ocpp(s, version) for s in profile.schedules],
    }
    if profile.recurrency is not None:
        out["recurrency_kind"] = str(profile.recurrency)
    if profile.valid_from is not None:
        out["valid_from"] = format_ocpp_time(profile.valid_from)
    if profile.valid_to is not None:
        out["valid_to"] = format_ocpp_time(profile.valid_to)
    if profile.transaction_id is not None:
        out["transaction_id"] = profile.transaction_id
    if version == OcppVersion.V2_1:
        if profile.max_offline_duration_s is not None:
            out["max_offline_duration"] = profile.max_offline_duration_s
        if profile.invalid_after_offline_duration:
            out["invalid_after_offline_duration"] = True
        if profile.dyn_update_interval_s is not None:
            out["dyn_update_interval"] = profile.dyn_update_interval_s
        if profile.dyn_update_time is not None:
            out["dyn_update_time"] = format_ocpp_time(profile.dyn_update_time)
        if profile.price_schedule_signature is not None:
            out["price_schedule_signature"] = profile.price_schedule_signature
    return out


# --- criteria ----------------------------------------------------------------------------------


def clear_criteria_from_ocpp(data: Mapping[str, Any] | None) -> ClearCriteria | None:
    """ClearChargingProfileRequest ``chargingProfileCriteria`` (absent: None)."""
    if data is None:
        return None
    purpose = data.get("charging_profile_purpose")
    return ClearCriteria(
        evse_id=data.get("evse_id"),
        purpose=None if purpose is None else ChargingProfilePurpose(purpose),
        stack_level=data.get("stack_level"),
    )


def profile_criteria_from_ocpp(data: Mapping[str, Any], *, evse_id: int | None) -> ProfileCriteria:
    """GetChargingProfilesRequest ``chargingProfile`` criterion plus its ``evseId``."""
    purpose = data.get("charging_profile_purpose")
    ids = data.get("charging_profile_id")
    sources = data.get("charging_limit_source")
    return ProfileCriteria(
        evse_id=evse_id,
        purpose=None if purpose is None else ChargingProfilePurpose(purpose),
        stack_level=data.get("stack_level"),
        profile_ids=None if ids is None else frozenset(int(i) for i in ids),
        limit_sources=None if sources is None else frozenset(str(s) for s in sources),
    )


# --- CompositeScheduleType ---------------------------------------------------------------------


def _composite_period(
    start_s: int, value: PeriodValue, version: OcppVersion, fill_limit: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"start_period": start_s}
    if version == OcppVersion.V2_0_1:
        # One number: a commanded discharge is a negative limit, Idle is 0 (K08 over 2.0.1).
        legacy = to_legacy_limit(value)
        out["limit"] = _decimal(fill_limit if legacy is None else legacy)
    else:
        out["limit"] = _decimal(fill_limit if value.limit is None else value.limit)
        for attr, key in _PERIOD_DECIMALS[1:]:
            found = getattr(value, attr)
            if found is not None:
                out[key] = _decimal(found)
        out["operation_mode"] = str(value.operation_mode)
        if value.preconditioning_request:
            out["preconditioning_request"] = True
        if value.evse_sleep:
            out["evse_sleep"] = True
        if value.v2x_baseline is not None:
            out["v2x_baseline"] = _decimal(value.v2x_baseline)
        if value.v2x_freq_watt_curve:
            out["v2x_freq_watt_curve"] = [
                {"frequency": _decimal(p.frequency_hz), "power": _decimal(p.power_w)}
                for p in value.v2x_freq_watt_curve
            ]
        if value.v2x_signal_watt_curve:
            out["v2x_signal_watt_curve"] = [
                {"signal": p.signal, "power": _decimal(p.power_w)}
                for p in value.v2x_signal_watt_curve
            ]
    if value.number_phases is not None:
        out["number_phases"] = value.number_phases
    if value.phase_to_use is not None:
        out["phase_to_use"] = value.phase_to_use
    return out


def composite_to_ocpp(
    schedule: CompositeSchedule, version: OcppVersion | str, *, fill_limit: float
) -> dict[str, Any]:
    """A composite schedule as GetCompositeScheduleResponse ``schedule`` (snake_case keys).

    Args:
        schedule: from :func:`station.smartcharging.composite_schedule`, in the requested unit.
        version: 2.0.1 gets one signed ``limit`` per period
            (:func:`station.smartcharging.to_legacy_limit`); 2.1 gets ``limit``,
            ``dischargeLimit``, ``setpoint``, ``operationMode`` and the other V2X fields.
        fill_limit: the ``limit`` for periods no profile limits (the EVSE's rating in the
            schedule's unit): ``limit`` is required in 2.0.1 and what a CSMS expects in 2.1.
    """
    version = OcppVersion(version)
    return {
        "evse_id": schedule.evse_id,
        "duration": schedule.duration_s,
        "schedule_start": format_ocpp_time(schedule.schedule_start),
        "charging_rate_unit": str(schedule.rate_unit),
        "charging_schedule_period": [
            _composite_period(p.start_period_s, p.value, version, fill_limit)
            for p in schedule.periods
        ],
    }


# --- schedules the station reports (NotifyChargingLimit, NotifyEVChargingSchedule) -------------


def schedule_to_ocpp(schedule: ChargingSchedule, version: OcppVersion | str) -> dict[str, Any]:
    """A domain schedule as a ``ChargingScheduleType`` (snake_case keys) of ``version``."""
    return _schedule_to_ocpp(schedule, OcppVersion(version))


# --- dynamic profiles (2.1 UpdateDynamicSchedule, PullDynamicScheduleUpdate) -------------------


def schedule_update_from_ocpp(data: Mapping[str, Any]) -> ScheduleUpdate:
    """A ``ChargingScheduleUpdateType`` (snake_case keys) as a :class:`ScheduleUpdate`.

    Raises:
        ConvertError: a value that is not a finite number.
    """
    try:
        return ScheduleUpdate(**{attr: _number(data.get(key)) for attr, key in _PERIOD_DECIMALS})
    except (SmartChargingValueError, TypeError, ValueError) as exc:
        raise ConvertError(f"scheduleUpdate: {exc}") from None


# --- AFRRSignal (2.1 Q, CentralFrequency) -----------------------------------------------------


def afrr_signal_from_ocpp(timestamp: Any, signal: Any) -> tuple[datetime, int]:
    """AFRRSignalRequest ``timestamp`` and ``signal`` as (aware UTC time, integer signal).

    ``signal`` is the x value of v2xSignalWattCurve (schema: integer), so it stays an integer.

    Raises:
        ConvertError: a timestamp without time zone, or a signal that is not an integer.
    """
    at = _time(timestamp, "timestamp")
    if at is None:
        raise ConvertError("timestamp: required")
    if isinstance(signal, bool) or not isinstance(signal, int):
        raise ConvertError(f"signal: not an integer: {signal!r}")
    return at, signal


# --- vehicle needs and allowed energy transfer (K15-K17, Q) ------------------------------------

_V201_MODES = frozenset(
    {
        EnergyTransferMode.DC,
        EnergyTransferMode.AC_SINGLE_PHASE,
        EnergyTransferMode.AC_TWO_PHASE,
        EnergyTransferMode.AC_THREE_PHASE,
    }
)

# ChargingNeeds attribute -> V2XChargingParametersType key (snake_case), 2.1 only.
_V2X_KEYS = (
    ("min_charge_power_w", "min_charge_power"),
    ("max_charge_power_w", "max_charge_power"),
    ("min_discharge_power_w", "min_discharge_power"),
    ("max_discharge_power_w", "max_discharge_power"),
    ("min_charge_current_a", "min_charge_current"),
    ("max_charge_current_a", "max_charge_current"),
    ("min_discharge_current_a", "min_discharge_current"),
    ("max_discharge_current_a", "max_discharge_current"),
    ("min_voltage_v", "min_voltage"),
    ("max_voltage_v", "max_voltage"),
    ("target_soc_pct", "target_soc"),
    ("ev_target_energy_request_wh", "ev_target_energy_request"),
    ("ev_min_energy_request_wh", "ev_min_energy_request"),
    ("ev_max_energy_request_wh", "ev_max_energy_request"),
    ("ev_min_v2x_energy_request_wh", "ev_min_v2x_energy_request"),
    ("ev_max_v2x_energy_request_wh", "ev_max_v2x_energy_request"),
)

# ChargingNeeds attribute -> DCChargingParametersType key (snake_case), both versions.
_DC_KEYS = (
    ("ev_max_current_a", "ev_max_current"),
    ("ev_max_voltage_v", "ev_max_voltage"),
    ("ev_max_power_w", "ev_max_power"),
    ("energy_capacity_wh", "ev_energy_capacity"),
    ("energy_amount_wh", "energy_amount"),
    ("soc_pct", "state_of_charge"),
    ("full_soc_pct", "full_soc"),
    ("bulk_soc_pct", "bulk_soc"),
)

_DC_LIKE = frozenset(
    {
        EnergyTransferMode.DC,
        EnergyTransferMode.DC_BPT,
        EnergyTransferMode.DC_ACDP,
        EnergyTransferMode.DC_ACDP_BPT,
    }
)


def _legacy_mode(mode: EnergyTransferMode) -> EnergyTransferMode:
    """The 2.0.1 mode for a 2.1 one: every DC variant is DC, every AC variant three-phase AC."""
    if mode in _V201_MODES:
        return mode
    return EnergyTransferMode.DC if mode in _DC_LIKE else EnergyTransferMode.AC_THREE_PHASE


def _dc_value(key: str, value: float, v21: bool) -> float | int:
    """A DCChargingParametersType value: SoCs are integers; 2.0.1 has integers only, and a
    maximum is rounded down there (never announce more than the EV takes), energy to nearest."""
    if key in ("state_of_charge", "full_soc", "bulk_soc"):
        return int(value)
    if v21:
        return _decimal(value)
    return math.floor(value) if key.startswith("ev_max") else round(value)


def needs_to_ocpp(needs: ChargingNeeds, version: OcppVersion | str) -> dict[str, Any]:
    """A :class:`ChargingNeeds` as a ``ChargingNeedsType`` (snake_case keys) of ``version``.

    Over 2.0.1 the requested mode is mapped onto the modes 2.0.1 knows (DC_BPT -> DC) and the
    V2X parameters are left out (2.0.1 has none; its DC parameters are integers). The
    ``dcChargingParameters`` are sent for a DC mode when the required ``evMaxCurrent`` and
    ``evMaxVoltage`` are known.
    """
    version = OcppVersion(version)
    v21 = version == OcppVersion.V2_1
    mode = needs.requested_energy_transfer
    out: dict[str, Any] = {"requested_energy_transfer": str(mode if v21 else _legacy_mode(mode))}
    if needs.departure_time is not None:
        out["departure_time"] = format_ocpp_time(needs.departure_time)
    dc = {key: getattr(needs, attr) for attr, key in _DC_KEYS if getattr(needs, attr) is not None}
    if mode in _DC_LIKE and "ev_max_current" in dc and "ev_max_voltage" in dc:
        out["dc_charging_parameters"] = {k: _dc_value(k, v, v21) for k, v in dc.items()}
    if v21:
        if needs.available_energy_transfer:
            out["available_energy_transfer"] = [str(m) for m in needs.available_energy_transfer]
        v2x = {
            key: _decimal(getattr(needs, attr))
            for attr, key in _V2X_KEYS
            if getattr(needs, attr) is not None
        }
        if "target_soc" in v2x:
            v2x["target_soc"] = int(v2x["target_soc"])
        if v2x:
            out["v2x_charging_parameters"] = v2x
    return out


def energy_modes_from_ocpp(values: Any) -> frozenset[EnergyTransferMode]:
    """NotifyAllowedEnergyTransfer ``allowedEnergyTransfer`` as modes.

    Raises:
        ConvertError: a value that is not an EnergyTransferModeEnumType.
    """
    try:
        return frozenset(EnergyTransferMode(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConvertError(f"allowedEnergyTransfer: {exc}") from None
