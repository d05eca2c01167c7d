"""CSMS requests about smart charging and V2X (K, Q blocks): a mixin of the station's session.

The handlers here convert their input (``station.ocpp.convert``), ask the smart-charging service
(``self.link.smart_charging``) and return a ``call_result`` of the session's version; see
``link.py`` for the pattern. Implemented: SetChargingProfile (K01), ClearChargingProfile (K10),
GetChargingProfiles + ReportChargingProfiles (K09), GetCompositeSchedule (K08), for
``ocpp2.0.1`` and ``ocpp2.1`` alike (the version only changes the payload shapes); and the 2.1-only
UpdateDynamicSchedule (K28), NotifyAllowedEnergyTransfer (Q) and AFRRSignal (Q, CentralFrequency;
over ``ocpp2.0.1`` these stay NotImplemented: ``rpc.check_call`` knows them as no 2.0.1 action).
What the station sends on its own (NotifyChargingLimit, PullDynamicScheduleUpdate,
NotifyEVChargingNeeds ...) is ``sc_notify.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import FormatViolationError
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError

from station.errors import OcppError
from station.ocpp.convert import (
    ConvertError,
    afrr_signal_from_ocpp,
    clear_criteria_from_ocpp,
    composite_to_ocpp,
    energy_modes_from_ocpp,
    profile_criteria_from_ocpp,
    profile_from_ocpp,
    profile_to_ocpp,
    schedule_update_from_ocpp,
)
from station.ocpp.session import after, on
from station.smartcharging import OcppVersion, RateUnit, ReportBatch, report_batches
from station.smartcharging.service import SmartChargingService

if TYPE_CHECKING:
    from station.ocpp.link import OcppLink

__all__ = ["SmartChargingHandlers"]

log = logging.getLogger(__name__)

PROFILES_PER_REPORT = 8
"""ChargingProfiles per ReportChargingProfilesRequest (OCPP defines no variable for it)."""


class SmartChargingHandlers:
    """``@on`` handlers for charging profiles, composite schedules and V2X."""

    link: OcppLink
    results: Any
    calls: Any
    version: str

    def _smart_charging(self) -> SmartChargingService:
        service = self.link.smart_charging
        if not isinstance(service, SmartChargingService):
            raise OcppNotImplementedError(description="smart charging is not available")
        return service

    # ------------------------------------------------------------------- K01 set profile

    @on("SetChargingProfile")
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> Any:
        service = self._smart_charging()
        try:
            profile = profile_from_ocpp(
                charging_profile, evse_id=evse_id, received_at=service.clock.now()
            )
        except ConvertError as exc:
            raise FormatViolationError(description=str(exc)) from None
        rejection = service.set_profile(profile, OcppVersion(self.version))
        if rejection is None:
            return self.results.SetChargingProfile(status="Accepted")
        return self.results.SetChargingProfile(
            status="Rejected",
            status_info={
                "reason_code": str(rejection.reason_code),
                "additional_info": rejection.additional_info,
            },
        )

    # ----------------------------------------------------------------- K10 clear profile

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        gone = self._smart_charging().clear(
            profile_id=charging_profile_id,
            criteria=clear_criteria_from_ocpp(charging_profile_criteria),
        )
        return self.results.ClearChargingProfile(status="Accepted" if gone else "Unknown")

    # ------------------------------------------------------------------ K09 get profiles

    def _report(
        self, charging_profile: Mapping[str, Any], evse_id: int | None
    ) -> tuple[ReportBatch, ...]:
        criteria = profile_criteria_from_ocpp(charging_profile, evse_id=evse_id)
        found = self._smart_charging().query(criteria)
        return report_batches(found, max_profiles_per_message=PROFILES_PER_REPORT)

    @on("GetChargingProfiles")
    def on_get_charging_profiles(
        self,
        request_id: int,
        charging_profile: dict[str, Any],
        evse_id: int | None = None,
        **_: Any,
    ) -> Any:
        batches = self._report(charging_profile, evse_id)
        return self.results.GetChargingProfiles(status="Accepted" if batches else "NoProfiles")

    @after("GetChargingProfiles")
    def after_get_charging_profiles(
        self,
        request_id: int,
        charging_profile: dict[str, Any],
        evse_id: int | None = None,
        **_: Any,
    ) -> Coroutine[Any, Any, None] | None:
        # Runs synchronously right after the response: the same selection as the answer.
        if not isinstance(self.link.smart_charging, SmartChargingService):
            return None
        batches = self._report(charging_profile, evse_id)
        if not batches:
            return None
        return self._send_reports(request_id, batches)

    async def _send_reports(self, request_id: int, batches: tuple[ReportBatch, ...]) -> None:
        """K09.FR.?: ReportChargingProfiles per EVSE and source, tbc on all but the last."""
        for batch in batches:
            request = self.calls.ReportChargingProfiles(
                request_id=request_id,
                charging_limit_source=batch.limit_source,
                evse_id=batch.evse_id,
                charging_profile=[profile_to_ocpp(p, self.version) for p in batch.profiles],
                tbc=batch.tbc,
            )
            try:
                await self.link.call(request)
            except OcppError as exc:
                log.warning("ReportChargingProfiles %d failed: %s", request_id, exc)
                return

    # ------------------------------------------------------------ K08 composite schedule

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(
        self,
        duration: int,
        evse_id: int,
        charging_rate_unit: str | None = None,
        **_: Any,
    ) -> Any:
        service = self._smart_charging()
        if duration < 0:
            return self.results.GetCompositeSchedule(
                status="Rejected",
                status_info={"reason_code": "InvalidValue", "additional_info": "duration < 0"},
            )
        # Absent chargingRateUnit: the station's choice; W, the unit of a DC station's ratings.
        unit = RateUnit(charging_rate_unit) if charging_rate_unit else RateUnit.W
        schedule = service.composite(evse_id, duration, unit)
        if schedule is None:
            return self.results.GetCompositeSchedule(
                status="Rejected",
                status_info={
                    "reason_code": "UnknownEvse",
                    "additional_info": f"the station has no EVSE {evse_id}",
                },
            )
        return self.results.GetCompositeSchedule(
            status="Accepted",
            schedule=composite_to_ocpp(
                schedule, self.version, fill_limit=service.rating_limit(evse_id, unit)
            ),
        )

    # ----------------------------------------------------- K28 dynamic schedule (2.1 only)

    @on("UpdateDynamicSchedule")
    def on_update_dynamic_schedule(
        self, charging_profile_id: int, schedule_update: dict[str, Any], **_: Any
    ) -> Any:
        service = self._smart_charging()
        try:
            update = schedule_update_from_ocpp(schedule_update)
        except ConvertError as exc:
            raise FormatViolationError(description=str(exc)) from None
        rejection = service.update_dynamic_schedule(charging_profile_id, update)
        if rejection is None:
            return self.results.UpdateDynamicSchedule(status="Accepted")
        return self.results.UpdateDynamicSchedule(
            status="Rejected",
            status_info={
                "reason_code": str(rejection.reason_code),
                "additional_info": rejection.additional_info,
            },
        )

    # ------------------------------------------------- Q allowed energy transfer (2.1 only)

    @on("NotifyAllowedEnergyTransfer")
    def on_notify_allowed_energy_transfer(
        self, transaction_id: str, allowed_energy_transfer: list[str], **_: Any
    ) -> Any:
        service = self._smart_charging()
        try:
            modes = energy_modes_from_ocpp(allowed_energy_transfer)
        except ConvertError as exc:
            raise FormatViolationError(description=str(exc)) from None
        if service.allowed_energy_transfer(transaction_id, modes):
            return self.results.NotifyAllowedEnergyTransfer(status="Accepted")
        return self.results.NotifyAllowedEnergyTransfer(
            status="Rejected",
            status_info={
                "reason_code": "TxNotFound",
                "additional_info": f"no transaction {transaction_id} is running",
            },
        )

    # ------------------------------------------------- Q AFRRSignal (2.1 only, CentralFrequency)

    @on("AFRRSignal")
    def on_afrr_signal(self, timestamp: str, signal: int, **_: Any) -> Any:
        service = self._smart_charging()
        try:
            at, value = afrr_signal_from_ocpp(timestamp, signal)
        except ConvertError as exc:
            raise FormatViolationError(description=str(exc)) from None
        rejection = service.afrr_signal(at, value)
        if rejection is None:
            return self.results.AFRRSignal(status="Accepted")
        return self.results.AFRRSignal(
            status="Rejected",
            status_info={
                "reason_code": rejection.reason_code,
                "additional_info": rejection.additional_info,
            },
        )
