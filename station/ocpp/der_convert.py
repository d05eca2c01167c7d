"""OCPP 2.1 DER control payloads <-> the DER core's types (R01-R05).

The only translator between SetDERControl / ReportDERControl / NotifyDERStartStop /
NotifyDERAlarm payloads and :mod:`station.der`. Payloads here are the snake_case dicts the session
hands to handlers and takes from ``call`` dataclasses (:mod:`station.ocpp.keys` does the exact
camelCase renaming, including ``fixedPFAbsorb``/``fixedPFInject``/``fixedPF``, which the
``ocpp`` library's own conversion gets wrong). No I/O; the schema has been checked before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from station.clock import format_ocpp_time, parse_ocpp_time
from station.der import (
    CurvePoint,
    DerAlarm,
    DerControl,
    DerControlType,
    DerCurve,
    DerUnit,
    EnterService,
    FixedPF,
    FixedVar,
    FreqDroop,
    Gradient,
    Hysteresis,
    LimitMaxDischarge,
    PowerDuringCessation,
    ReactivePowerParams,
    SetRequest,
    Setting,
    SettingKind,
    StartStop,
    VoltageParams,
)
from station.ocpp.convert import ConvertError

__all__ = [
    "alarm_payload",
    "report_payload",
    "set_request_from_ocpp",
    "setting_from_ocpp",
    "start_stop_payload",
]


def set_request_from_ocpp(
    *, is_default: bool, control_id: str, control_type: str, fields: Mapping[str, Any]
) -> SetRequest:
    """A SetDERControlRequest (snake_case, as the handler receives it) as a :class:`SetRequest`.

    Args:
        is_default: ``isDefault``.
        control_id: ``controlId``.
        control_type: ``controlType``.
        fields: the other fields of the request; the setting fields among them are read.

    Raises:
        ConvertError: a value the schema lets through but that cannot be read (a dateTime
            without a time zone).
    """
    settings: dict[SettingKind, Setting] = {}
    for kind in SettingKind:
        data = fields.get(kind.value)
        if data is not None:
            settings[kind] = setting_from_ocpp(kind, data)
    return SetRequest(control_id, DerControlType(control_type), is_default, settings)


def setting_from_ocpp(kind: SettingKind, data: Mapping[str, Any]) -> Setting:
    """One setting object (snake_case) as the DER core's setting for ``kind``.

    Raises:
        ConvertError: see :func:`set_request_from_ocpp`.
    """
    if kind is SettingKind.CURVE:
        return _curve(data)
    if kind is SettingKind.ENTER_SERVICE:
        return EnterService(
            priority=int(data["priority"]),
            high_voltage=float(data["high_voltage"]),
            low_voltage=float(data["low_voltage"]),
            high_freq_hz=float(data["high_freq"]),
            low_freq_hz=float(data["low_freq"]),
            delay_s=_opt_float(data.get("delay")),
            random_delay_s=_opt_float(data.get("random_delay")),
            ramp_rate_s=_opt_float(data.get("ramp_rate")),
        )
    if kind in (SettingKind.FIXED_PF_ABSORB, SettingKind.FIXED_PF_INJECT):
        return FixedPF(
            priority=int(data["priority"]),
            displacement=float(data["displacement"]),
            excitation=bool(data["excitation"]),
            **_schedule(data),
        )
    if kind is SettingKind.FIXED_VAR:
        return FixedVar(
            priority=int(data["priority"]),
            setpoint_pct=float(data["setpoint"]),
            unit=DerUnit(data["unit"]),
            **_schedule(data),
        )
    if kind is SettingKind.FREQ_DROOP:
        return FreqDroop(
            priority=int(data["priority"]),
            over_freq_hz=float(data["over_freq"]),
            under_freq_hz=float(data["under_freq"]),
            over_droop=float(data["over_droop"]),
            under_droop=float(data["under_droop"]),
            response_time_s=float(data["response_time"]),
            **_schedule(data),
        )
    if kind is SettingKind.GRADIENT:
        return Gradient(
            priority=int(data["priority"]),
            gradient_s=float(data["gradient"]),
            soft_gradient_s=float(data["soft_gradient"]),
        )
    monitoring = data.get("power_monitoring_must_trip")
    return LimitMaxDischarge(
        priority=int(data["priority"]),
        pct_max_discharge_power=_opt_float(data.get("pct_max_discharge_power")),
        power_monitoring_must_trip=None if monitoring is None else _curve(monitoring),
        **_schedule(data),
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_ocpp_time(text)
    except ValueError as exc:
        raise ConvertError(f"startTime: {exc}") from None


def _schedule(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "start_time": _time(data.get("start_time")),
        "duration_s": _opt_float(data.get("duration")),
    }


def _curve(data: Mapping[str, Any]) -> DerCurve:
    hysteresis = data.get("hysteresis")
    reactive = data.get("reactive_power_params")
    voltage = data.get("voltage_params")
    return DerCurve(
        priority=int(data["priority"]),
        y_unit=DerUnit(data["y_unit"]),
        points=tuple(CurvePoint(float(p["x"]), float(p["y"])) for p in data["curve_data"]),
        hysteresis=None
        if hysteresis is None
        else Hysteresis(
            high=_opt_float(hysteresis.get("hysteresis_high")),
            low=_opt_float(hysteresis.get("hysteresis_low")),
            delay_s=_opt_float(hysteresis.get("hysteresis_delay")),
            gradient_pct_per_s=_opt_float(hysteresis.get("hysteresis_gradient")),
        ),
        reactive_power_params=None
        if reactive is None
        else ReactivePowerParams(
            v_ref_pct=_opt_float(reactive.get("v_ref")),
            autonomous_v_ref_enable=reactive.get("autonomous_v_ref_enable"),
            autonomous_v_ref_time_constant_s=_opt_float(
                reactive.get("autonomous_v_ref_time_constant")
            ),
        ),
        voltage_params=None
        if voltage is None
        else VoltageParams(
            hv10_min_mean_value=_opt_float(voltage.get("hv10_min_mean_value")),
            hv10_min_mean_trip_delay_s=_opt_float(voltage.get("hv10_min_mean_trip_delay")),
            power_during_cessation=None
            if voltage.get("power_during_cessation") is None
            else PowerDuringCessation(voltage["power_during_cessation"]),
        ),
        response_time_s=_opt_float(data.get("response_time")),
        **_schedule(data),
    )


# --- domain -> OCPP ------------------------------------------------------------------------------


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _time_text(when: datetime | None) -> str | None:
    return None if when is None else format_ocpp_time(when)


def _curve_to_ocpp(curve: DerCurve) -> dict[str, Any]:
    h, r, v = curve.hysteresis, curve.reactive_power_params, curve.voltage_params
    return _drop_none(
        {
            "priority": curve.priority,
            "y_unit": curve.y_unit.value,
            "curve_data": [{"x": p.x, "y": p.y} for p in curve.points],
            "hysteresis": None
            if h is None
            else _drop_none(
                {
                    "hysteresis_high": h.high,
                    "hysteresis_low": h.low,
                    "hysteresis_delay": h.delay_s,
                    "hysteresis_gradient": h.gradient_pct_per_s,
                }
            ),
            "reactive_power_params": None
            if r is None
            else _drop_none(
                {
                    "v_ref": r.v_ref_pct,
                    "autonomous_v_ref_enable": r.autonomous_v_ref_enable,
                    "autonomous_v_ref_time_constant": r.autonomous_v_ref_time_constant_s,
                }
            ),
            "voltage_params": None
            if v is None
            else _drop_none(
                {
                    "hv10_min_mean_value": v.hv10_min_mean_value,
                    "hv10_min_mean_trip_delay": v.hv10_min_mean_trip_delay_s,
                    "power_during_cessation": None
                    if v.power_during_cessation is None
                    else v.power_during_cessation.value,
                }
            ),
            "response_time": curve.response_time_s,
            "start_time": _time_text(curve.start_time),
            "duration": curve.duration_s,
        }
    )


def _setting_to_ocpp(setting: Setting) -> dict[str, Any]:
    if isinstance(setting, DerCurve):
        return _curve_to_ocpp(setting)
    if isinstance(setting, EnterService):
        return _drop_none(
            {
                "priority": setting.priority,
                "high_voltage": setting.high_voltage,
                "low_voltage": setting.low_voltage,
                "high_freq": setting.high_freq_hz,
                "low_freq": setting.low_freq_hz,
                "delay": setting.delay_s,
                "random_delay": setting.random_delay_s,
                "ramp_rate": setting.ramp_rate_s,
            }
        )
    if isinstance(setting, Gradient):
        return {
            "priority": setting.priority,
            "gradient": setting.gradient_s,
            "soft_gradient": setting.soft_gradient_s,
        }
    schedule = {
        "start_time": _time_text(setting.start_time),
        "duration": setting.duration_s,
    }
    if isinstance(setting, FixedPF):
        body: dict[str, Any] = {
            "displacement": setting.displacement,
            "excitation": setting.excitation,
        }
    elif isinstance(setting, FixedVar):
        body = {"setpoint": setting.setpoint_pct, "unit": setting.unit.value}
    elif isinstance(setting, FreqDroop):
        body = {
            "over_freq": setting.over_freq_hz,
            "under_freq": setting.under_freq_hz,
            "over_droop": setting.over_droop,
            "under_droop": setting.under_droop,
            "response_time": setting.response_time_s,
        }
    else:
        monitoring = setting.power_monitoring_must_trip
        body = {
            "pct_max_discharge_power": setting.pct_max_discharge_power,
            "power_monitoring_must_trip": None
            if monitoring is None
            else _curve_to_ocpp(monitoring),
        }
    return _drop_none({"priority": setting.priority, **body, **schedule})


def _report_entry(control: DerControl, superseded: bool) -> dict[str, Any]:
    """One entry of ReportDERControlRequest's list for the control's setting kind."""
    setting = _setting_to_ocpp(control.setting)
    kind = control.kind
    if kind is SettingKind.CURVE:
        return {
            "id": control.control_id,
            "curve_type": control.control_type.value,
            "is_default": control.is_default,
            "is_superseded": superseded,
            "curve": setting,
        }
    if kind in (SettingKind.ENTER_SERVICE, SettingKind.GRADIENT):
        return {"id": control.control_id, kind.value: setting}  # no isDefault/isSuperseded
    inner = (
        "fixed_pf"
        if kind in (SettingKind.FIXED_PF_ABSORB, SettingKind.FIXED_PF_INJECT)
        else kind.value
    )
    return {
        "id": control.control_id,
        "is_default": control.is_default,
        "is_superseded": superseded,
        inner: setting,
    }


def report_payload(
    request_id: int,
    controls: tuple[DerControl, ...],
    *,
    is_superseded: Callable[[DerControl], bool],
    tbc: bool,
) -> dict[str, Any]:
    """A ReportDERControlRequest (snake_case fields of ``call.ReportDERControl``)."""
    payload: dict[str, Any] = {"request_id": request_id}
    for control in controls:
        payload.setdefault(control.kind.value, []).append(
            _report_entry(control, is_superseded(control))
        )
    if tbc:
        payload["tbc"] = True
    return payload


def start_stop_payload(event: StartStop) -> dict[str, Any]:
    """A NotifyDERStartStopRequest (snake_case)."""
    payload: dict[str, Any] = {
        "control_id": event.control_id,
        "started": event.started,
        "timestamp": format_ocpp_time(event.at),
    }
    if event.superseded_ids:
        payload["superseded_ids"] = list(event.superseded_ids)
    return payload


def alarm_payload(alarm: DerAlarm) -> dict[str, Any]:
    """A NotifyDERAlarmRequest (snake_case)."""
    return _drop_none(
        {
            "control_type": alarm.control_type.value,
            "timestamp": format_ocpp_time(alarm.at),
            "grid_event_fault": None
            if alarm.grid_event_fault is None
            else alarm.grid_event_fault.value,
            "alarm_ended": True if alarm.alarm_ended else None,
            "extra_info": alarm.extra_info,
        }
    )
