"""CSMS requests about DER control (OCPP 2.1 block R, R01-R05): a mixin of the station's session.

The handlers here convert their input (:mod:`station.ocpp.der_convert`), ask the DER service
(``self.link.der``) and return a ``call_result``; see ``link.py`` for the pattern. Implemented:
SetDERControl, GetDERControl + ReportDERControl (sent after the response, split with ``tbc``),
ClearDERControl. The actions exist only in OCPP 2.1: on an ``ocpp2.0.1`` connection the session
answers them NotImplemented before any handler runs (Part 4 §4.1.7, ``rpc.check_call``).

:class:`OcppDerPort` is the DER service's CSMS port: NotifyDERStartStop and NotifyDERAlarm go out
once the link is online, and only over OCPP 2.1 (2.0.1 has no such messages: logged and dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import FormatViolationError
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError

from station.der import DerAlarm, DerControl, DerControlType, StartStop, report_chunks
from station.der.service import DerService
from station.errors import OcppError, StoreError
from station.ocpp.convert import ConvertError
from station.ocpp.der_convert import (
    alarm_payload,
    report_payload,
    set_request_from_ocpp,
    start_stop_payload,
)
from station.ocpp.session import after, on
from station.ocpp.tx_convert import OcppTransactionPort

if TYPE_CHECKING:
    from station.ocpp.link import OcppLink

__all__ = ["DerHandlers", "OcppDerPort"]

log = logging.getLogger(__name__)


class DerHandlers:
    """``@on`` handlers for DER control (OCPP 2.1)."""

    link: OcppLink
    results: Any
    calls: Any
    version: str

    def _der(self) -> DerService:
        service = self.link.der
        if not isinstance(service, DerService):
            raise OcppNotImplementedError(description="DER control is not available")
        return service

    # ----------------------------------------------------------------------- SetDERControl

    @on("SetDERControl")
    def on_set_der_control(
        self, is_default: bool, control_id: str, control_type: str, **fields: Any
    ) -> Any:
        service = self._der()
        try:
            request = set_request_from_ocpp(
                is_default=is_default,
                control_id=control_id,
                control_type=control_type,
                fields=fields,
            )
        except ConvertError as exc:
            raise FormatViolationError(description=str(exc)) from None
        try:
            outcome = service.set_control(request)
        except StoreError:
            log.exception("DER control %r could not be stored", control_id)
            return self.results.SetDERControl(
                status="Rejected",
                status_info={"reason_code": "InternalError", "additional_info": "store failed"},
            )
        if outcome.rejection is not None:
            return self.results.SetDERControl(
                status=outcome.status.value,
                status_info={
                    "reason_code": outcome.rejection.reason_code.value,
                    "additional_info": outcome.rejection.additional_info,
                },
            )
        return self.results.SetDERControl(
            status=outcome.status.value,
            superseded_ids=list(outcome.superseded_ids) or None,
        )

    @after("SetDERControl")
    def after_set_der_control(self, **_: Any) -> None:
        # A control that is in force at once announces its start only after our response.
        service = self.link.der
        if isinstance(service, DerService):
            service.refresh()

    # ----------------------------------------------------------------------- GetDERControl

    def _der_query(
        self, is_default: bool | None, control_type: str | None, control_id: str | None
    ) -> tuple[DerControl, ...]:
        return self._der().query(
            is_default=is_default,
            control_type=None if control_type is None else DerControlType(control_type),
            control_id=control_id,
        )

    @on("GetDERControl")
    def on_get_der_control(
        self,
        request_id: int,
        is_default: bool | None = None,
        control_type: str | None = None,
        control_id: str | None = None,
        **_: Any,
    ) -> Any:
        found = self._der_query(is_default, control_type, control_id)
        return self.results.GetDERControl(status="Accepted" if found else "NotFound")

    @after("GetDERControl")
    def after_get_der_control(
        self,
        request_id: int,
        is_default: bool | None = None,
        control_type: str | None = None,
        control_id: str | None = None,
        **_: Any,
    ) -> Coroutine[Any, Any, None] | None:
        # Runs synchronously right after the response: the same selection as the answer.
        if not isinstance(self.link.der, DerService):
            return None
        found = self._der_query(is_default, control_type, control_id)
        if not found:
            return None
        return self._send_der_reports(request_id, report_chunks(found))

    async def _send_der_reports(
        self, request_id: int, chunks: tuple[tuple[DerControl, ...], ...]
    ) -> None:
        """ReportDERControl in parts, ``tbc`` on all but the last."""
        service = self._der()
        for index, chunk in enumerate(chunks):
            payload = report_payload(
                request_id,
                chunk,
                is_superseded=service.is_superseded,
                tbc=index < len(chunks) - 1,
            )
            try:
                await self.link.call(self.calls.ReportDERControl(**payload))
            except OcppError as exc:
                log.warning("ReportDERControl %d part %d failed: %s", request_id, index, exc)
                return

    # --------------------------------------------------------------------- ClearDERControl

    @on("ClearDERControl")
    def on_clear_der_control(
        self,
        is_default: bool,
        control_type: str | None = None,
        control_id: str | None = None,
        **_: Any,
    ) -> Any:
        service = self._der()
        try:
            gone = service.clear(
                is_default=is_default,
                control_type=None if control_type is None else DerControlType(control_type),
                control_id=control_id,
            )
        except StoreError:
            log.exception("DER controls could not be cleared from the store")
            return self.results.ClearDERControl(
                status="Rejected",
                status_info={"reason_code": "InternalError", "additional_info": "store failed"},
            )
        return self.results.ClearDERControl(status="Accepted" if gone else "NotFound")


class OcppDerPort:
    """The OCPP link as the DER service's ``DerCsmsPort``."""

    def __init__(self, link: OcppLink) -> None:
        self._link = link
        self._online = OcppTransactionPort(link)

    async def notify_start_stop(self, event: StartStop) -> None:
        await self._send("NotifyDERStartStop", start_stop_payload(event))

    async def notify_alarm(self, alarm: DerAlarm) -> None:
        await self._send("NotifyDERAlarm", alarm_payload(alarm))

    async def _send(self, action: str, payload: dict[str, Any]) -> None:
        await self._online.wait_online()
        session = self._link.session
        if session is None or session.version != "2.1":
            log.info("%s not sent: the CSMS link is not OCPP 2.1", action)
            return
        try:
            await self._link.call(getattr(session.calls, action)(**payload))
        except OcppError as exc:
            log.warning("%s failed: %s", action, exc)
