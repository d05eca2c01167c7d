"""What the station tells the CSMS on its own about smart charging: the service's CSMS port.

Implements :class:`station.smartcharging.service.CsmsNotifier` on the OCPP link:
NotifyChargingLimit / ClearedChargingLimit (K11-K13), PullDynamicScheduleUpdate (2.1 K29),
NotifyEVChargingNeeds (K15-K17, with 2.1 ``v2xChargingParameters``) and
NotifyEVChargingSchedule. Each call is spawned on the station's task group and returns at once
(the service is synchronous); answers that matter go back to the service
(:meth:`~station.smartcharging.service.SmartChargingService.dynamic_update_received`,
:meth:`~station.smartcharging.service.SmartChargingService.charging_needs_answered`).

While the CSMS is unreachable nothing is queued: these messages describe a present state that
the station reports again when it changes (a pull is asked again at the next interval). It must
not decide anything about smart charging itself; payloads come from ``convert.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from station.clock import format_ocpp_time
from station.errors import OcppError
from station.ocpp.convert import (
    ConvertError,
    needs_to_ocpp,
    schedule_to_ocpp,
    schedule_update_from_ocpp,
)
from station.smartcharging import (
    ChargingNeeds,
    ChargingNeedsStatus,
    ChargingSchedule,
    ExternalLimit,
    OcppVersion,
)
from station.smartcharging.service import SmartChargingService

if TYPE_CHECKING:
    from station.ocpp.link import OcppLink

__all__ = ["OcppSmartChargingNotifier"]

log = logging.getLogger(__name__)

_Build = Callable[[Any, OcppVersion], object]


class OcppSmartChargingNotifier:
    """The smart-charging service's :class:`CsmsNotifier` over the OCPP link.

    Args:
        link: the CSMS link (its current session, registration and ``spawn``).
    """

    def __init__(self, link: OcppLink) -> None:
        self.link = link

    # ------------------------------------------------------------------------- plumbing

    def _send(
        self,
        action: str,
        build: _Build,
        on_answer: Callable[[Any], None] | None = None,
        *,
        v21_only: bool = False,
    ) -> None:
        from station.ocpp.link import Registration

        link = self.link
        session = link.session
        if session is None or link.registration is not Registration.ACCEPTED:
            log.info("%s not sent: the CSMS is not reachable", action)
            return
        version = OcppVersion(session.version)
        if v21_only and version != OcppVersion.V2_1:
            log.info("%s not sent: it needs OCPP 2.1 (connected with %s)", action, version)
            return
        payload = build(session.calls, version)
        link.spawn(self._call(action, payload, on_answer))

    async def _call(
        self, action: str, payload: object, on_answer: Callable[[Any], None] | None
    ) -> None:
        try:
            result = await self.link.call(payload)
        except OcppError as exc:
            log.warning("%s failed: %s", action, exc)
            return
        if on_answer is not None:
            on_answer(result)

    def _service(self) -> SmartChargingService | None:
        service = self.link.smart_charging
        return service if isinstance(service, SmartChargingService) else None

    # --------------------------------------------------------------- external limits (K11-K13)

    def charging_limit_set(self, limit: ExternalLimit, schedule: ChargingSchedule) -> None:
        def build(calls: Any, version: OcppVersion) -> object:
            return calls.NotifyChargingLimit(
                charging_limit={
                    "charging_limit_source": str(limit.source),
                    "is_grid_critical": limit.is_grid_critical,
                },
                evse_id=limit.evse_id,
                charging_schedule=[schedule_to_ocpp(schedule, version)],
            )

        self._send("NotifyChargingLimit", build)

    def charging_limit_cleared(self, evse_id: int, source: str) -> None:
        def build(calls: Any, version: OcppVersion) -> object:
            return calls.ClearedChargingLimit(charging_limit_source=str(source), evse_id=evse_id)

        self._send("ClearedChargingLimit", build)

    # --------------------------------------------------------------- dynamic profiles (K29)

    def pull_dynamic_update(self, profile_id: int) -> None:
        def build(calls: Any, version: OcppVersion) -> object:
            return calls.PullDynamicScheduleUpdate(charging_profile_id=profile_id)

        def answered(result: Any) -> None:
            service = self._service()
            if service is None:
                return
            if result.status != "Accepted" or result.schedule_update is None:
                log.info("PullDynamicScheduleUpdate %d answered %s", profile_id, result.status)
                return
            try:
                update = schedule_update_from_ocpp(result.schedule_update)
            except ConvertError as exc:
                log.warning("PullDynamicScheduleUpdate %d: unusable answer: %s", profile_id, exc)
                return
            service.dynamic_update_received(profile_id, update)

        self._send("PullDynamicScheduleUpdate", build, answered, v21_only=True)

    # ------------------------------------------------------------ vehicle needs (K15-K17, Q)

    def ev_charging_needs(self, evse_id: int, needs: ChargingNeeds, at: datetime) -> None:
        def build(calls: Any, version: OcppVersion) -> object:
            fields: dict[str, Any] = {
                "evse_id": evse_id,
                "charging_needs": needs_to_ocpp(needs, version),
            }
            if needs.max_schedule_tuples is not None:
                fields["max_schedule_tuples"] = needs.max_schedule_tuples
            if version == OcppVersion.V2_1:
                fields["timestamp"] = format_ocpp_time(at)
            return calls.NotifyEVChargingNeeds(**fields)

        def answered(result: Any) -> None:
            service = self._service()
            if service is not None:
                service.charging_needs_answered(evse_id, ChargingNeedsStatus(result.status))

        self._send("NotifyEVChargingNeeds", build, answered)

    def ev_charging_schedule(
        self, evse_id: int, time_base: datetime, schedule: ChargingSchedule
    ) -> None:
        def build(calls: Any, version: OcppVersion) -> object:
            return calls.NotifyEVChargingSchedule(
                time_base=format_ocpp_time(time_base),
                evse_id=evse_id,
                charging_schedule=schedule_to_ocpp(schedule, version),
            )

        self._send("NotifyEVChargingSchedule", build)
