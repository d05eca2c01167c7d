"""The CSMS link: connection lifecycle, registration, heartbeat, and the CSMS's requests.

This module owns *when* the station talks to the CSMS (B01-B04 boot and reconnect, heartbeat,
StatusNotification) and the thin ``@on`` handlers for provisioning and availability (B05-B08,
B11/B12, G03/G04, F06, P01). Each handler converts its input, asks a pure core (device model,
availability) and returns a ``call_result`` of the session's version; follow-up messages are sent
from ``@after`` hooks, which :class:`~station.ocpp.session.CsmsSession` runs as supervised tasks.
One set of handlers serves ``ocpp2.0.1`` and ``ocpp2.1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ocpp.exceptions import FormatViolationError, OccurrenceConstraintViolationError
from websockets.exceptions import ConnectionClosed

from station import __version__
from station.availability import AvailabilityModel
from station.clock import Clock, format_ocpp_time, parse_ocpp_time
from station.config import Config
from station.errors import CallRejectedError, CallTimeoutError, ConnectionLostError, OcppError
from station.ocpp.auth_handlers import AuthorizationHandlers
from station.ocpp.der_handlers import DerHandlers
from station.ocpp.devicemodel import DeviceModel, split_report
from station.ocpp.msglog import MessageLog
from station.ocpp.sc_handlers import SmartChargingHandlers
from station.ocpp.session import CsmsSession, Spawn, after, on
from station.ocpp.transport import ConnectError, TransportSettings, backoff_delay, open_connection
from station.ocpp.tx_handlers import TransactionHandlers
from station.store import AvailabilityRepository, VariableRepository

__all__ = ["LinkStatus", "OcppLink", "Registration", "ResetRequest"]

log = logging.getLogger(__name__)


class Registration(StrEnum):
    """Where the station stands with the CSMS (RegistrationStatusEnumType, plus NONE)."""

    NONE = "None"
    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class ResetRequest:
    """A Reset the station must carry out (B11/B12). ``evse_id`` None = the whole station."""

    kind: str  # ResetEnumType: Immediate, OnIdle (2.1 adds ImmediateAndResume)
    evse_id: int | None


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A snapshot for status displays."""

    connected: bool
    version: str | None
    registration: Registration


class OcppLink:
    """Keeps one OCPP connection to the CSMS alive and serves it.

    Args:
        config: the station configuration.
        device_model: the device model (values the CSMS reads and writes).
        variables: where changed device-model values are persisted.
        availability: the availability core; ``availability_store`` persists it.
        clock: wall clock; the CSMS's currentTime corrects it when it supports ``set_now``.
        message_log: every frame in and out.
        spawn: runs follow-up work on the station's task group.
        boot_reason: BootReasonEnumType for the first BootNotification of this run.
        busy_evses: EVSE ids with a transaction in progress (for Scheduled answers).
        on_reset: called when a Reset must be carried out.
    """

    def __init__(
        self,
        config: Config,
        *,
        device_model: DeviceModel,
        variables: VariableRepository,
        availability: AvailabilityModel,
        availability_store: AvailabilityRepository,
        clock: Clock,
        message_log: MessageLog,
        spawn: Spawn,
        boot_reason: str = "PowerUp",
        busy_evses: Callable[[], frozenset[int]] = frozenset,
        on_reset: Callable[[ResetRequest], None] = lambda request: None,
        rand: Callable[[], float] = random.random,
        id_factory: Callable[[], object] = uuid.uuid4,
    ) -> None:
        self.config = config
        self.device_model = device_model
        self.variables = variables
        self.availability = availability
        self.availability_store = availability_store
        self.clock = clock
        self.message_log = message_log
        self.spawn = spawn
        self.boot_reason = boot_reason
        self.busy_evses = busy_evses
        self.on_reset = on_reset
        self._rand = rand
        self._id_factory = id_factory
        self.registration = Registration.NONE
        #: Services the composition root (app.py) attaches; handlers reach them through the link.
        self.transactions: Any = None
        self.smart_charging: Any = None
        self.der: Any = None  # station.der.service.DerService (OCPP 2.1 DER control)
        self.reservations: Any = None
        self.session: StationSession | None = None
        self.version: str | None = None
        self.accepted = asyncio.Event()
        self.connected = asyncio.Event()
        self._boot_now = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()
        self._reconnect_now = asyncio.Event()
        self._offline_since: float | None = None
        self._stopping = False
        #: Resets answered Scheduled, waiting for their transactions to end (B11/B12 OnIdle).
        self.scheduled_resets: list[ResetRequest] = []
        self.connections = 0
        #: Told True once the CSMS accepted the station on a connection, False when the link is
        #: lost or a connection attempt fails (smart charging's maxOfflineDuration).
        self.online_listeners: list[Callable[[bool], None]] = []
        #: Called after a ChangeAvailability changed some connector's operative state (the
        #: energy manager re-evaluates: an inoperative EVSE draws no power).
        self.availability_listeners: list[Callable[[], None]] = []
        self._online: bool | None = None
        device_model.subscribe(self._variable_changed)

    # ---------------------------------------------------------------------------- lifecycle

    @property
    def status(self) -> LinkStatus:
        return LinkStatus(self.connected.is_set(), self.version, self.registration)

    def _settings(self) -> TransportSettings:
        csms = self.config.csms
        dm = self.device_model
        password = csms.basic_auth_password
        with contextlib.suppress(KeyError):
            password = dm.value("SecurityCtrlr", "BasicAuthPassword") or password
        return TransportSettings(
            url=csms.url,
            station_id=self.config.station.id,
            security_profile=csms.security_profile,
            subprotocols=csms.subprotocols,
            basic_auth_password=password,
            ca_file=csms.ca_file,
            client_cert_file=csms.client_cert_file,
            client_key_file=csms.client_key_file,
            ping_interval_s=dm.int_value("OCPPCommCtrlr", "WebSocketPingInterval"),
        )

    async def run(self) -> None:
        """Connect, register and serve; reconnect with back-off forever (Part 4 §5.3)."""
        attempt = 0
        while not self._stopping:
            try:
                connection, version = await open_connection(self._settings())
            except ConnectError as exc:
                self._set_online(False)
                delay = self._backoff(attempt)
                log.warning("CSMS connection failed (%s); retrying in %.1f s", exc, delay)
                attempt += 1
                await self._sleep_or(delay, self._reconnect_now)
                continue
            attempt = 0
            self.connections += 1
            log.info("connected to %s using OCPP %s", self.config.csms.url, version)
            try:
                await self._serve(connection, version)
            finally:
                await connection.close()
                self._went_offline()
            # Python 3.11: a task group whose children failed while the task was being
            # cancelled raises their errors and drops the cancellation, so the stop is a flag.
            if self._stopping:
                return
            delay = self._backoff(0)
            log.warning("CSMS connection lost; reconnecting in %.1f s", delay)
            await self._sleep_or(delay, self._reconnect_now)

    def _backoff(self, attempt: int) -> float:
        dm = self.device_model
        return backoff_delay(
            attempt,
            wait_minimum_s=dm.int_value("OCPPCommCtrlr", "RetryBackOffWaitMinimum"),
            random_range_s=dm.int_value("OCPPCommCtrlr", "RetryBackOffRandomRange"),
            repeat_times=dm.int_value("OCPPCommCtrlr", "RetryBackOffRepeatTimes"),
            rand=self._rand,
        )

    async def _serve(self, connection: Any, version: str) -> None:
        session = StationSession(
            self.config.station.id,
            connection,
            link=self,
            version=version,
            message_timeout_s=self.device_model.int_value(
                "OCPPCommCtrlr", "MessageTimeout", instance="Default"
            ),
            message_log=self.message_log,
            spawn=self.spawn,
            id_factory=self._id_factory,
        )
        self.session = session
        self.version = version
        self.connected.set()
        self._reconnect_now.clear()
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(session.serve())
                worker = group.create_task(self._registered_work(session))
                closer = group.create_task(self._reconnect_now.wait())
                await asyncio.wait({reader, worker, closer}, return_when=asyncio.FIRST_COMPLETED)
                for task in (reader, worker, closer):
                    task.cancel()
        except* ConnectionClosed as group_error:
            log.info("CSMS closed the connection: %s", group_error.exceptions[0])
        except* ConnectionLostError:
            pass
        except* OcppError as group_error:
            # The CSMS broke the protocol in a way no use case recovers from on this
            # connection (e.g. an invalid response): start again on a fresh one.
            log.error("OCPP session ended: %s", group_error.exceptions[0])
        finally:
            session.close()
            self.session = None

    def _set_online(self, online: bool) -> None:
        if self._online is online:
            return
        self._online = online
        for listener in list(self.online_listeners):
            listener(online)

    def _went_offline(self) -> None:
        self._set_online(False)
        self.connected.clear()
        self.version = None
        self._offline_since = self.clock.monotonic()

    async def _registered_work(self, session: StationSession) -> None:
        """Register (unless already accepted in this run), then keep the heartbeat."""
        offline_for = None
        if self._offline_since is not None:
            offline_for = self.clock.monotonic() - self._offline_since
        if self.registration is not Registration.ACCEPTED:
            await self._register(session)
            await self.send_all_statuses()
        else:
            # Part 4 §5.3: no new BootNotification on reconnect; B04: report connector status
            # again when the station was offline longer than OfflineThreshold.
            threshold = self.device_model.int_value("OCPPCommCtrlr", "OfflineThreshold")
            if offline_for is not None and offline_for > threshold:
                await self.send_all_statuses()
        self._offline_since = None
        self._set_online(True)
        await self._heartbeat_loop(session)

    async def _register(self, session: StationSession) -> None:
        """B01-B03: BootNotification until Accepted."""
        retry_s = self.config.csms.boot_retry_interval_s
        while True:
            self._boot_now.clear()
            # B03: a rejection holds until its interval has passed, so answer the CSMS again from
            # the next BootNotification on. Not later: the session may read a CSMS request sent
            # right behind an Accepted response before this coroutine resumes to see it.
            session.ignore_csms_calls = False
            station = self.config.station
            charging_station: dict[str, Any] = {
                "model": station.model,
                "vendor_name": station.vendor,
                "firmware_version": __version__,
            }
            if station.serial_number:
                charging_station["serial_number"] = station.serial_number
            request = session.calls.BootNotification(
                charging_station=charging_station, reason=self.boot_reason
            )
            try:
                response = await session.call(request)
            except ConnectionLostError:
                raise
            except OcppError as exc:  # CALLERROR, timeout, or an invalid response
                log.warning("BootNotification failed (%s); retrying in %d s", exc, retry_s)
                await self._sleep_or(retry_s, self._boot_now)
                continue
            self._sync_clock(response.current_time)
            self.registration = Registration(response.status)
            interval = int(response.interval)
            log.info("BootNotification %s (interval %d s)", response.status, interval)
            if self.registration is Registration.ACCEPTED:
                if interval > 0:
                    # B01.FR.04: the heartbeat interval comes from the response.
                    self.device_model.set_internal(
                        "OCPPCommCtrlr", "HeartbeatInterval", str(interval)
                    )
                    self._persist_variables()
                self.accepted.set()
                return
            # B02 Pending: answer the CSMS, send nothing but BootNotification.
            # B03 Rejected: send nothing and answer nothing until the interval has passed.
            if self.registration is Registration.REJECTED:
                session.ignore_csms_calls = True
            await self._sleep_or(interval if interval > 0 else retry_s, self._boot_now)

    async def _heartbeat_loop(self, session: StationSession) -> None:
        """B01.FR.04 / G02: Heartbeat every HeartbeatInterval; the answer syncs the clock."""
        while True:
            self._heartbeat_changed.clear()
            interval = self.device_model.int_value("OCPPCommCtrlr", "HeartbeatInterval")
            if await self._sleep_or(interval, self._heartbeat_changed):
                continue
            await self.send_heartbeat(session)

    async def send_heartbeat(self, session: StationSession) -> None:
        try:
            response = await session.call(session.calls.Heartbeat())
        except (CallRejectedError, CallTimeoutError) as exc:
            log.warning("Heartbeat failed: %s", exc)
            return
        self._sync_clock(response.current_time)

    async def _sleep_or(self, seconds: float, event: asyncio.Event) -> bool:
        """Sleep, or return early (True) when ``event`` is set."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation.
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await event.wait()
        except TimeoutError:
            return False
        return True

    def _sync_clock(self, current_time: str) -> None:
        set_now = getattr(self.clock, "set_now", None)
        if set_now is None:
            return
        try:
            set_now(parse_ocpp_time(current_time))
        except ValueError:
            log.warning("CSMS sent an unusable currentTime %r", current_time)

    # ----------------------------------------------------------------------------- sending

    async def send_all_statuses(self) -> None:
        await self.send_statuses(self.availability.connectors)

    async def send_statuses(self, connectors: Sequence[tuple[int, int]]) -> None:
        """G01: StatusNotification per connector; skipped while not accepted (sent on boot)."""
        session = self.session
        if session is None or self.registration is not Registration.ACCEPTED:
            return
        for evse_id, connector_id in connectors:
            request = session.calls.StatusNotification(
                timestamp=format_ocpp_time(self.clock.now()),
                connector_status=self.availability.status(evse_id, connector_id).value,
                evse_id=evse_id,
                connector_id=connector_id,
            )
            try:
                await session.call(request)
            except (CallRejectedError, CallTimeoutError) as exc:
                log.warning(
                    "StatusNotification evse=%d connector=%d failed: %s", evse_id, connector_id, exc
                )

    async def call(self, payload: object) -> Any:
        """Send a CALL on the current connection (for other parts of the station).

        Raises:
            ConnectionLostError: not connected, or not yet accepted by the CSMS.
        """
        session = self.session
        if session is None or self.registration is not Registration.ACCEPTED:
            raise ConnectionLostError(f"{type(payload).__name__}: CSMS link not available")
        return await session.call(payload)

    def transaction_ended(self, evse_id: int, transaction_id: str) -> None:
        """Carry out a Reset OnIdle that was Scheduled once what it waited for is idle (B11/B12)."""
        busy = self.busy_evses()
        for request in list(self.scheduled_resets):
            idle = not busy if request.evse_id is None else request.evse_id not in busy
            if idle:
                self.scheduled_resets.remove(request)
                log.info("transaction %s ended: carrying out the scheduled reset", transaction_id)
                self.on_reset(request)

    def stop(self) -> None:
        """Make :meth:`run` return instead of reconnecting (the caller also cancels it)."""
        self._stopping = True
        self._reconnect_now.set()

    def reconnect(self) -> None:
        """Drop the connection and connect again (e.g. new BasicAuthPassword, A01)."""
        self._reconnect_now.set()

    # ------------------------------------------------------------------------ device model

    def _persist_variables(self) -> None:
        changes = self.device_model.pending_changes()
        if changes:
            self.variables.save_many(changes)

    def _variable_changed(self, key: Any, value: str) -> None:
        if key.component == "OCPPCommCtrlr" and key.variable == "HeartbeatInterval":
            self._heartbeat_changed.set()

    def refresh_clock_variable(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.device_model.set_internal(
                "ClockCtrlr", "DateTime", format_ocpp_time(self.clock.now())
            )

    def limit(self, variable: str, instance: str) -> int:
        return self.device_model.int_value("DeviceDataCtrlr", variable, instance=instance)


def _wire_size(payload: Mapping[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


class StationSession(
    TransactionHandlers, AuthorizationHandlers, SmartChargingHandlers, DerHandlers, CsmsSession
):
    """The ``@on`` handlers the station offers on every connection.

    Provisioning and availability handlers are below; transactions and smart charging come from
    their mixins (``tx_handlers.py``, ``sc_handlers.py``).
    """

    def __init__(self, station_id: str, connection: Any, *, link: OcppLink, **kwargs: Any) -> None:
        self.link = link
        self._availability_changes: tuple[tuple[int, int], ...] = ()
        super().__init__(station_id, connection, **kwargs)

    # -------------------------------------------------------------- B06 / B05 variables

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        link = self.link
        # B06.FR.?: more items than ItemsPerMessageGetVariables / BytesPerMessage → CALLERROR.
        if len(get_variable_data) > link.limit("ItemsPerMessage", "GetVariables"):
            raise OccurrenceConstraintViolationError(
                description="more getVariableData than ItemsPerMessageGetVariables"
            )
        if _wire_size({"getVariableData": get_variable_data}) > link.limit(
            "BytesPerMessage", "GetVariables"
        ):
            raise FormatViolationError(description="request exceeds BytesPerMessageGetVariables")
        link.refresh_clock_variable()
        results = [
            link.device_model.get(item["component"], item["variable"], item.get("attribute_type"))
            for item in get_variable_data
        ]
        return self.results.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        link = self.link
        if len(set_variable_data) > link.limit("ItemsPerMessage", "SetVariables"):
            raise OccurrenceConstraintViolationError(
                description="more setVariableData than ItemsPerMessageSetVariables"
            )
        if _wire_size({"setVariableData": set_variable_data}) > link.limit(
            "BytesPerMessage", "SetVariables"
        ):
            raise FormatViolationError(description="request exceeds BytesPerMessageSetVariables")
        results = link.device_model.set_many(set_variable_data)
        link._persist_variables()
        return self.results.SetVariables(set_variable_result=results)

    @after("SetVariables")
    async def after_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> None:
        names = {item["variable"]["name"] for item in set_variable_data}
        if "BasicAuthPassword" in names and self.link.config.csms.security_profile in (1, 2):
            # A01.FR.?: after a new BasicAuthPassword the station reconnects with it.
            self.link.reconnect()

    # ---------------------------------------------------------------- B07 / B08 reports

    @on("GetBaseReport")
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        try:
            self.link.device_model.base_report(report_base)
        except ValueError:
            return self.results.GetBaseReport(status="NotSupported")
        return self.results.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    async def after_get_base_report(self, request_id: int, report_base: str, **_: Any) -> None:
        self.link.refresh_clock_variable()
        with contextlib.suppress(ValueError):
            await self._notify_report(request_id, self.link.device_model.base_report(report_base))

    @on("GetReport")
    def on_get_report(
        self,
        request_id: int,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        if component_variable and len(component_variable) > self.link.limit(
            "ItemsPerMessage", "GetReport"
        ):
            raise OccurrenceConstraintViolationError(
                description="more componentVariable than ItemsPerMessageGetReport"
            )
        items = self.link.device_model.criteria_report(component_criteria, component_variable)
        # B08.FR.?: nothing matches → EmptyResultSet and no NotifyReport.
        return self.results.GetReport(status="Accepted" if items else "EmptyResultSet")

    @after("GetReport")
    async def after_get_report(
        self,
        request_id: int,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> None:
        self.link.refresh_clock_variable()
        items = self.link.device_model.criteria_report(component_criteria, component_variable)
        if items:
            await self._notify_report(request_id, items)

    async def _notify_report(self, request_id: int, items: list[dict[str, Any]]) -> None:
        """B07.FR.?: NotifyReport in parts, seqNo from 0, tbc on all but the last."""
        parts = split_report(
            items,
            items_per_message=self.link.limit("ItemsPerMessage", "GetReport"),
            bytes_per_message=self.link.limit("BytesPerMessage", "GetReport"),
        )
        generated_at = format_ocpp_time(self.link.clock.now())
        for seq_no, part in enumerate(parts):
            request = self.calls.NotifyReport(
                request_id=request_id,
                generated_at=generated_at,
                seq_no=seq_no,
                report_data=part,
                tbc=seq_no < len(parts) - 1,
            )
            try:
                await self.call(request)
            except OcppError as exc:
                log.warning("NotifyReport %d part %d failed: %s", request_id, seq_no, exc)
                return

    # ------------------------------------------------------------------- B11 / B12 reset

    @on("Reset")
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        link = self.link
        if evse_id is not None and evse_id not in {e.id for e in link.config.evse}:
            return self.results.Reset(status="Rejected", status_info={"reason_code": "UnknownEvse"})
        busy = link.busy_evses()
        affected_busy = bool(busy) if evse_id is None else evse_id in busy
        if type == "OnIdle" and affected_busy:
            # B11.FR.?/B12.FR.?: wait for the transactions to end.
            return self.results.Reset(status="Scheduled")
        return self.results.Reset(status="Accepted")

    @after("Reset")
    async def after_reset(self, type: str, evse_id: int | None = None, **_: Any) -> None:
        link = self.link
        if evse_id is not None and evse_id not in {e.id for e in link.config.evse}:
            return
        busy = link.busy_evses()
        if type == "OnIdle" and (bool(busy) if evse_id is None else evse_id in busy):
            link.scheduled_resets.append(ResetRequest(type, evse_id))  # answered Scheduled
            return
        link.on_reset(ResetRequest(type, evse_id))

    # --------------------------------------------------------- G03 / G04 availability

    @on("ChangeAvailability")
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        link = self.link
        evse_id = evse["id"] if evse else None
        connector_id = evse.get("connector_id") if evse else None
        operative = operational_status == "Operative"
        outcome = link.availability.request(evse_id, connector_id, operative, link.busy_evses())
        if outcome.status == "Accepted":
            key = (evse_id or 0, connector_id or 0)
            link.availability_store.set(key[0], key[1], operative)
        self._availability_changes = outcome.changed
        return self.results.ChangeAvailability(status=outcome.status)

    @after("ChangeAvailability")
    def after_change_availability(self, **_: Any) -> Coroutine[Any, Any, None]:
        # Runs synchronously right after our response is sent, so it takes this request's changes;
        # the StatusNotifications go out as a supervised task.
        changed, self._availability_changes = self._availability_changes, ()
        if self.link.reservations is not None:
            self.link.reservations.refresh()  # H: an inoperative EVSE loses its reservation
        if changed:
            for listener in list(self.link.availability_listeners):
                listener()
        return self.link.send_statuses(changed)

    # ---------------------------------------------------------------- F06 trigger

    @on("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        link = self.link
        if requested_message == "BootNotification":
            # F06.FR.17: no BootNotification on request once accepted.
            status = "Rejected" if link.registration is Registration.ACCEPTED else "Accepted"
            return self.results.TriggerMessage(status=status)
        if requested_message in (
            "Heartbeat",
            "FirmwareStatusNotification",
            "LogStatusNotification",
        ):
            return self.results.TriggerMessage(status="Accepted")
        if requested_message == "StatusNotification":
            if not self._trigger_targets(evse):
                return self.results.TriggerMessage(status="Rejected")
            return self.results.TriggerMessage(status="Accepted")
        service = link.transactions
        evse_id = evse["id"] if evse else None
        if requested_message == "MeterValues" and service is not None:
            # F06: per EVSE, or every EVSE without one; an unknown EVSE is Rejected.
            accepted = bool(service.meter_value_evses(evse_id))
            return self.results.TriggerMessage(status="Accepted" if accepted else "Rejected")
        if requested_message == "TransactionEvent" and service is not None:
            # F06: only where a transaction runs (every EVSE with one, without an EVSE).
            accepted = bool(service.transaction_evses(evse_id))
            return self.results.TriggerMessage(status="Accepted" if accepted else "Rejected")
        return self.results.TriggerMessage(status="NotImplemented")

    def _trigger_targets(self, evse: dict[str, Any] | None) -> list[tuple[int, int]]:
        connectors = self.link.availability.connectors
        if evse is None:
            return list(connectors)
        connector_id = evse.get("connector_id")
        return [c for c in connectors if c[0] == evse["id"] and connector_id in (None, c[1])]

    @after("TriggerMessage")
    async def after_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> None:
        link = self.link
        if requested_message == "BootNotification":
            link._boot_now.set()
        elif requested_message == "Heartbeat" and link.registration is Registration.ACCEPTED:
            await link.send_heartbeat(self)
        elif requested_message == "StatusNotification":
            await link.send_statuses(self._trigger_targets(evse))
        elif requested_message == "FirmwareStatusNotification":
            # F06.FR.?: when no firmware update runs, the status is Idle.
            await self._send_quietly(self.calls.FirmwareStatusNotification(status="Idle"))
        elif requested_message == "LogStatusNotification":
            await self._send_quietly(self.calls.LogStatusNotification(status="Idle"))
        elif requested_message == "MeterValues" and link.transactions is not None:
            evse_ids = link.transactions.meter_value_evses(evse["id"] if evse else None)
            await link.transactions.send_meter_values(evse_ids)
        elif requested_message == "TransactionEvent" and link.transactions is not None:
            evse_ids = link.transactions.transaction_evses(evse["id"] if evse else None)
            link.transactions.trigger_transaction_event(evse_ids)

    async def _send_quietly(self, payload: object) -> None:
        try:
            await self.call(payload)
        except OcppError as exc:
            log.warning("%s failed: %s", type(payload).__name__, exc)

    # -------------------------------------------------------------------- P01 data transfer

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        # P01.FR.?: no vendor extensions are implemented.
        return self.results.DataTransfer(status="UnknownVendorId")
