"""The simulated external control system: ``station sim limit`` / ``limit-clear`` (K11-K13).

An EMS, a grid operator's signal or the operator on site sets a charging limit on the station
(EVSE 0) or on one EVSE through this port; smart charging installs it as a
ChargingStationExternalConstraints profile and tells the CSMS (NotifyChargingLimit /
ClearedChargingLimit). A real site wires its EMS to the same service methods
(:meth:`~station.smartcharging.service.SmartChargingService.set_external_limit`); this module
only turns control-protocol requests into those calls, checking every argument first.

The same external system also drives the 2.1 operation modes ExternalSetpoint and ExternalLimits
through the station's external port: ``station sim external`` / ``external-clear``
(:meth:`~station.smartcharging.service.SmartChargingService.set_external_inputs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from station.errors import StoreError
from station.sim.control import CommandError, ControlServer
from station.smartcharging import (
    ChargingLimitSource,
    ExternalLimit,
    SmartChargingValueError,
    external_profile_id,
)
from station.smartcharging.service import SmartChargingService

__all__ = ["register_limit_commands"]

_LIMIT_ARGS = frozenset({"evse", "power_w", "source", "discharge_limit_w", "grid_critical"})
_CLEAR_ARGS = frozenset({"evse", "source"})
_EXTERNAL_ARGS = frozenset({"evse", "setpoint_w", "limit_w", "discharge_limit_w"})
_EXTERNAL_CLEAR_ARGS = frozenset({"evse"})
_SOURCES = [str(s) for s in ChargingLimitSource]


def _check(args: Mapping[str, Any], allowed: frozenset[str]) -> tuple[int, str]:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise CommandError(f"unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
    evse = args.get("evse")
    if isinstance(evse, bool) or not isinstance(evse, int) or evse < 0:
        raise CommandError('"evse" must be an EVSE id, or 0 for the whole station')
    source = args.get("source", str(ChargingLimitSource.EMS))
    if source not in _SOURCES:
        raise CommandError(f'"source" must be one of {_SOURCES}')
    return evse, str(source)


def _number(args: Mapping[str, Any], name: str) -> float | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandError(f'"{name}" must be a number')
    return float(value)


def register_limit_commands(control: ControlServer, service: SmartChargingService) -> None:
    """``station sim`` commands of the external control system: limit, limit_clear, external,
    external_clear."""

    def limit(args: Mapping[str, Any]) -> dict[str, Any]:
        evse, source = _check(args, _LIMIT_ARGS)
        power_w = _number(args, "power_w")
        if power_w is None:
            raise CommandError('"power_w" is required (>= 0; 0 = no charging)')
        critical = args.get("grid_critical", False)
        if not isinstance(critical, bool):
            raise CommandError('"grid_critical" must be true or false')
        try:
            external = ExternalLimit(
                evse_id=evse,
                power_w=power_w,
                source=source,
                discharge_limit_w=_number(args, "discharge_limit_w"),
                is_grid_critical=critical,
            )
            notified = service.set_external_limit(external)
        except (SmartChargingValueError, StoreError) as exc:
            raise CommandError(str(exc)) from None
        return {"profile_id": external_profile_id(evse, source), "notified": notified}

    def limit_clear(args: Mapping[str, Any]) -> dict[str, Any]:
        evse, source = _check(args, _CLEAR_ARGS)
        try:
            cleared = service.clear_external_limit(evse, source)
        except StoreError as exc:
            raise CommandError(str(exc)) from None
        if not cleared:
            raise CommandError(f"no limit from {source} is set on EVSE {evse}")
        return {}

    control.register(
        "limit",
        limit,
        'an external system (EMS, SO, ...) limits charging: {"evse": N (0: station), '
        '"power_w": >=0, "source"?: EMS|Other|SO|CSO, "discharge_limit_w"?: <=0, '
        '"grid_critical"?: bool}',
    )
    control.register(
        "limit_clear",
        limit_clear,
        'the external system releases its limit: {"evse": N, "source"?: EMS|Other|SO|CSO}',
    )

    def external(args: Mapping[str, Any]) -> dict[str, Any]:
        evse, _ = _check(args, _EXTERNAL_ARGS)
        values = {name: _number(args, name) for name in sorted(_EXTERNAL_ARGS - {"evse"})}
        try:
            service.set_external_inputs(evse, **values)
        except SmartChargingValueError as exc:
            raise CommandError(str(exc)) from None
        return {"evse": evse, **{k: v for k, v in values.items() if v is not None}}

    def external_clear(args: Mapping[str, Any]) -> dict[str, Any]:
        evse, _ = _check(args, _EXTERNAL_CLEAR_ARGS)
        try:
            cleared = service.clear_external_inputs(evse)
        except SmartChargingValueError as exc:
            raise CommandError(str(exc)) from None
        if not cleared:
            raise CommandError(f"no external set-point or limits are set on EVSE {evse}")
        return {}

    control.register(
        "external",
        external,
        "the site controller's set-point and limits for operationMode ExternalSetpoint / "
        'ExternalLimits (replaces what it set before): {"evse": N (0: every EVSE), '
        '"setpoint_w"?: W (+ charge, - discharge), "limit_w"?: >=0, "discharge_limit_w"?: <=0}',
    )
    control.register(
        "external_clear",
        external_clear,
        'the site controller withdraws its set-point and limits: {"evse": N (0: every EVSE)}',
    )
