"""A small local CSMS, built on the ``ocpp`` library, for the demo and the tests.

It accepts stations on ``ws://127.0.0.1:PORT/<path>/<station id>`` (or ``wss://`` with a
certificate), answers every message a station sends, records every frame, and lets an operator
send commands: from Python (:meth:`Csms.call`, :meth:`Csms.send_raw`) or, in ``station csms``,
one command per line on standard input::

    CS-001 GetVariables {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                             "variable": {"name": "HeartbeatInterval"}}]}

It is deliberately *not* built from the station's own OCPP code, so that tests of the station talk
to an independent peer. Its only listening address is loopback unless a test passes another.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from ocpp.exceptions import InternalError
from ocpp.messages import Call, MessageType
from ocpp.routing import on as _on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = ["Csms", "Frame", "StationLink"]

log = logging.getLogger(__name__)


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def on(action: str) -> Callable[[_Handler], _Handler]:
    """``ocpp.routing.on`` with types."""
    return cast(Callable[[_Handler], _Handler], _on(action))


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame that crossed a station connection, as the CSMS saw it."""

    station_id: str
    direction: str  # "in" (from the station) or "out"
    raw: str
    message: Any  # the parsed JSON, or None when it was not JSON
    connection: int = 0  # which connection it crossed (Csms.connections_seen at its opening)

    @property
    def message_type(self) -> int | None:
        if isinstance(self.message, list) and self.message and isinstance(self.message[0], int):
            return int(self.message[0])
        return None

    @property
    def action(self) -> str | None:
        if self.message_type == MessageType.Call and len(self.message) > 2:
            return str(self.message[2])
        return None

    @property
    def payload(self) -> dict[str, Any]:
        if self.message_type == MessageType.Call and len(self.message) > 3:
            return dict(self.message[3])
        if self.message_type == MessageType.CallResult and len(self.message) > 2:
            return dict(self.message[2])
        return {}


class _Handlers:
    """Answers to everything a station sends; shared by both versions."""

    csms: Csms
    station_id: str
    _call_result: Any

    @on("BootNotification")
    def on_boot_notification(self, **_: Any) -> Any:
        return self._call_result.BootNotification(
            current_time=_now(),
            interval=self.csms.heartbeat_interval_s,
            status=self.csms.boot_status(self.station_id),
        )

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return self._call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def on_status_notification(self, **_: Any) -> Any:
        return self._call_result.StatusNotification()

    @on("NotifyReport")
    def on_notify_report(self, **_: Any) -> Any:
        return self._call_result.NotifyReport()

    @on("NotifyEvent")
    def on_notify_event(self, **_: Any) -> Any:
        return self._call_result.NotifyEvent()

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, **_: Any) -> Any:
        return self._call_result.FirmwareStatusNotification()

    @on("LogStatusNotification")
    def on_log_status_notification(self, **_: Any) -> Any:
        return self._call_result.LogStatusNotification()

    @on("SecurityEventNotification")
    def on_security_event_notification(self, **_: Any) -> Any:
        return self._call_result.SecurityEventNotification()

    @on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        return self._call_result.DataTransfer(status="UnknownVendorId")

    # --- transactions (E, C, J blocks) ---------------------------------------------------------

    @on("Authorize")
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return self._call_result.Authorize(id_token_info=self.csms.id_token_info(id_token))

    @on("TransactionEvent")
    def on_transaction_event(self, id_token: dict[str, Any] | None = None, **_: Any) -> Any:
        if self.csms.transaction_event_errors > 0:
            self.csms.transaction_event_errors -= 1
            raise InternalError(description="TransactionEvent refused (transaction_event_errors)")
        if id_token is None:
            return self._call_result.TransactionEvent()
        return self._call_result.TransactionEvent(id_token_info=self.csms.id_token_info(id_token))

    @on("MeterValues")
    def on_meter_values(self, **_: Any) -> Any:
        return self._call_result.MeterValues()

    @on("ReportChargingProfiles")
    def on_report_charging_profiles(self, **_: Any) -> Any:
        return self._call_result.ReportChargingProfiles()

    @on("ReservationStatusUpdate")
    def on_reservation_status_update(self, **_: Any) -> Any:
        return self._call_result.ReservationStatusUpdate()

    # --- DER control (OCPP 2.1 R block) -----------------------------------------------------------

    @on("ReportDERControl")
    def on_report_der_control(self, **_: Any) -> Any:
        return self._call_result.ReportDERControl()

    @on("NotifyDERStartStop")
    def on_notify_der_start_stop(self, **_: Any) -> Any:
        return self._call_result.NotifyDERStartStop()

    @on("NotifyDERAlarm")
    def on_notify_der_alarm(self, **_: Any) -> Any:
        return self._call_result.NotifyDERAlarm()

    # --- smart charging and V2X (K, Q blocks) ----------------------------------------------------

    @on("NotifyChargingLimit")
    def on_notify_charging_limit(self, **_: Any) -> Any:
        return self._call_result.NotifyChargingLimit()

    @on("ClearedChargingLimit")
    def on_cleared_charging_limit(self, **_: Any) -> Any:
        return self._call_result.ClearedChargingLimit()

    @on("NotifyEVChargingNeeds")
    def on_notify_ev_charging_needs(self, **_: Any) -> Any:
        return self._call_result.NotifyEVChargingNeeds(status=self.csms.ev_charging_needs_status)

    @on("NotifyEVChargingSchedule")
    def on_notify_ev_charging_schedule(self, **_: Any) -> Any:
        return self._call_result.NotifyEVChargingSchedule(status="Accepted")

    @on("PullDynamicScheduleUpdate")
    def on_pull_dynamic_schedule_update(self, charging_profile_id: int, **_: Any) -> Any:
        update = self.csms.dynamic_schedule_updates.get(charging_profile_id)
        if update is None:
            return self._call_result.PullDynamicScheduleUpdate(
                status="Rejected", status_info={"reason_code": "UnknownProfile"}
            )
        return self._call_result.PullDynamicScheduleUpdate(
            status="Accepted", schedule_update=dict(update)
        )


class _Recording:
    """Records frames on their way in and out of the library's ChargePoint."""

    csms: Csms
    station_id: str
    connection_no: int
    _connection: Any

    async def route_message(self, raw_msg: str) -> Any:
        frame = self.csms._record(self.station_id, "in", raw_msg, self.connection_no)
        action = frame.action
        if action is not None and action in self.csms.ignore_actions:
            self.csms.ignore_actions.discard(action)
            log.info("station %s: %s left unanswered (ignore_actions)", self.station_id, action)
            return None
        delay_s = self.csms.response_delay_s.get(action) if action is not None else None
        if delay_s:
            # Answer from a task: the library awaits a handler inside its receive loop, so a
            # handler that waited would stop this CSMS from reading anything else meanwhile.
            route = super().route_message  # type: ignore[misc]
            self.csms._later(delay_s, lambda: route(raw_msg))
            return None
        try:
            return await super().route_message(raw_msg)  # type: ignore[misc]
        except ConnectionClosed:
            # The station closed while we were answering (after a Reset, say). Frames it sent
            # before closing are still queued: keep reading, so that every one is recorded.
            log.info("station %s: connection closed before our answer went out", self.station_id)
            return None

    async def _send(self, message: str) -> None:
        self.csms._record(self.station_id, "out", message, self.connection_no)
        await self._connection.send(message)


class _Station201(_Recording, _Handlers, ChargePoint201):  # type: ignore[misc]
    pass


class _Station21(_Recording, _Handlers, ChargePoint21):  # type: ignore[misc]
    pass


@dataclass
class StationLink:
    """One connected station."""

    station_id: str
    version: str
    point: Any  # the library ChargePoint
    connection: ServerConnection
    tls_subject: str | None = None
    task: asyncio.Task[None] | None = None
    #: The HTTP headers of the opening handshake (e.g. to check which carry Authorization).
    request_headers: Headers | None = None


@dataclass
class _Waiter:
    predicate: Callable[[Frame], bool]
    future: asyncio.Future[Frame]


@dataclass
class Csms:
    """A local CSMS. Use ``async with Csms(...) as csms`` or ``start``/``stop``.

    Args:
        host: the listening address (loopback).
        port: 0 picks a free port (see :attr:`port` after start).
        subprotocols: what it accepts, in its order of preference.
        heartbeat_interval_s: the interval it hands out in BootNotification.
        boot_statuses: per station, the registration statuses to answer in turn (the last one
            repeats); default Accepted.
        basic_auth: station id → password; when set, HTTP Basic authentication is required.
        ssl_context: a server context for ``wss://`` (profiles 2 and 3).
        ignore_actions: actions whose next CALL from a station is recorded but never answered
            (each once: the action leaves the set when it is used).
        response_delay_s: action → seconds to wait before answering a station's CALL of it;
            meanwhile the CSMS keeps reading and answering everything else.
    """

    host: str = "127.0.0.1"
    port: int = 0
    subprotocols: tuple[str, ...] = ("ocpp2.1", "ocpp2.0.1")
    heartbeat_interval_s: int = 300
    boot_statuses: dict[str, list[str]] = field(default_factory=dict)
    basic_auth: dict[str, str] | None = None
    ssl_context: ssl.SSLContext | None = None
    ignore_actions: set[str] = field(default_factory=set)
    response_delay_s: dict[str, float] = field(default_factory=dict)
    #: idToken values it accepts (Authorize, TransactionEvent idTokenInfo); None: every token.
    accepted_tokens: set[str] | None = None
    #: How many of the next TransactionEvents it answers with a CALLERROR (InternalError).
    transaction_event_errors: int = 0
    #: The status it answers NotifyEVChargingNeeds with (Accepted, Processing, Rejected, ...).
    ev_charging_needs_status: str = "Accepted"
    #: Per charging profile id, the scheduleUpdate it answers PullDynamicScheduleUpdate with
    #: (snake_case; only unsuffixed fields: the library's converter breaks the _L2/_L3 names);
    #: an id not listed is answered Rejected.
    dynamic_schedule_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    on_frame: Callable[[Frame], None] | None = None
    frames: list[Frame] = field(default_factory=list)
    stations: dict[str, StationLink] = field(default_factory=dict)
    connections_seen: int = 0
    refused: list[tuple[str, int]] = field(default_factory=list)
    _server: Server | None = None
    _waiters: list[_Waiter] = field(default_factory=list)
    _connected: dict[str, asyncio.Event] = field(default_factory=dict)
    _links_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _delayed: set[asyncio.Task[None]] = field(default_factory=set)

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> Csms:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=list(self.subprotocols),  # type: ignore[arg-type]
            process_request=self._check_auth,
            ssl=self.ssl_context,
            compression=None,
            ping_interval=None,
        )
        sockets = list(self._server.sockets)
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._delayed):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Csms:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/ocpp"

    def id_token_info(self, id_token: dict[str, Any]) -> dict[str, Any]:
        """The idTokenInfo for a token (snake_case, as the library's handlers return it)."""
        accepted = self.accepted_tokens is None or id_token.get("id_token") in self.accepted_tokens
        return {"status": "Accepted" if accepted else "Invalid"}

    def boot_status(self, station_id: str) -> str:
        statuses = self.boot_statuses.get(station_id)
        if not statuses:
            return "Accepted"
        return statuses.pop(0) if len(statuses) > 1 else statuses[0]

    async def drop(self, station_id: str) -> None:
        """Close a station's connection from the CSMS side."""
        link = self.stations.get(station_id)
        if link is not None:
            await link.connection.close()

    # ---------------------------------------------------------------------------- serving

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        station_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        if self.basic_auth is None:
            return None
        expected = self.basic_auth.get(station_id)
        supplied = _basic_credentials(request.headers)
        if expected is None or supplied != (station_id, expected):
            self.refused.append((station_id, 401))
            return connection.respond(401, "Unauthorized\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections_seen += 1
        station_id = (
            connection.request.path.rstrip("/").rsplit("/", 1)[-1] if connection.request else ""
        )
        version = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}.get(connection.subprotocol or "")
        if version is None:
            await connection.close(1002, "no OCPP subprotocol")
            return
        cls = _Station21 if version == "2.1" else _Station201
        point = cls(station_id, connection, response_timeout=10)
        point.csms = self
        point.station_id = station_id
        point.connection_no = self.connections_seen
        peer = connection.transport.get_extra_info("peercert") if self.ssl_context else None
        link = StationLink(station_id, version, point, connection, _subject_cn(peer))
        link.request_headers = connection.request.headers if connection.request else None
        self.stations[station_id] = link
        self._connected.setdefault(station_id, asyncio.Event()).set()
        async with self._links_changed:
            self._links_changed.notify_all()
        log.info("station %s connected (OCPP %s)", station_id, version)
        try:
            await point.start()
        except Exception as exc:  # the connection ending is the normal way out
            log.info("station %s disconnected: %s", station_id, exc)
        finally:
            if self.stations.get(station_id) is link:
                del self.stations[station_id]
                self._connected[station_id].clear()

    def _record(self, station_id: str, direction: str, raw: str, connection: int = 0) -> Frame:
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            message = None
        frame = Frame(station_id, direction, raw, message, connection)
        self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.predicate(frame):
                waiter.future.set_result(frame)
                self._waiters.remove(waiter)
        return frame

    def _later(self, delay_s: float, answer: Callable[[], Awaitable[Any]]) -> None:
        """Run ``answer`` after ``delay_s`` as a task of this CSMS (see ``response_delay_s``)."""

        async def answer_later() -> None:
            await asyncio.sleep(delay_s)
            try:
                await answer()
            except ConnectionClosed:
                log.info("connection closed before a delayed answer went out")

        task = asyncio.get_running_loop().create_task(answer_later())
        self._delayed.add(task)
        task.add_done_callback(self._delayed.discard)

    # ---------------------------------------------------------------------- operator side

    async def wait_connected(self, station_id: str, timeout_s: float = 10) -> StationLink:
        event = self._connected.setdefault(station_id, asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout_s)
        return self.stations[station_id]

    async def wait_reconnected(
        self, station_id: str, previous: StationLink, timeout_s: float = 10
    ) -> StationLink:
        """The station's connection once it is a new one, not ``previous`` (after a drop)."""

        def fresh() -> bool:
            link = self.stations.get(station_id)
            return link is not None and link is not previous

        async with self._links_changed:
            await asyncio.wait_for(self._links_changed.wait_for(fresh), timeout_s)
        return self.stations[station_id]

    async def wait_for(
        self,
        predicate: Callable[[Frame], bool],
        *,
        timeout_s: float = 10,
        include_past: bool = False,
    ) -> Frame:
        """The next frame (or, with ``include_past``, any recorded frame) matching ``predicate``."""
        if include_past:
            for frame in self.frames:
                if predicate(frame):
                    return frame
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(predicate, future))
        return await asyncio.wait_for(future, timeout_s)

    async def wait_action(
        self,
        action: str,
        station_id: str | None = None,
        *,
        timeout_s: float = 10,
        include_past: bool = False,
    ) -> Frame:
        """The next CALL of ``action`` from a station."""
        return await self.wait_for(
            lambda f: (
                f.direction == "in"
                and f.action == action
                and (station_id is None or f.station_id == station_id)
            ),
            timeout_s=timeout_s,
            include_past=include_past,
        )

    def received(self, action: str, station_id: str | None = None) -> list[Frame]:
        return [
            f
            for f in self.frames
            if f.direction == "in"
            and f.action == action
            and (station_id is None or f.station_id == station_id)
        ]

    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 10
    ) -> Frame:
        """Send a CALL with a camelCase payload and return the station's response frame.

        The payload goes out exactly as given (no key conversion), so tests control the wire.
        """
        link = self.stations[station_id]
        message_id = f"csms-{id(payload)}-{len(self.frames)}"
        raw = Call(message_id, action, payload).to_json()
        waiting = asyncio.ensure_future(
            self.wait_for(
                lambda f: (
                    f.direction == "in"
                    and f.station_id == station_id
                    and isinstance(f.message, list)
                    and len(f.message) > 1
                    and f.message[0] in (3, 4)
                    and f.message[1] == message_id
                ),
                timeout_s=timeout_s,
            )
        )
        await asyncio.sleep(0)
        await link.point._send(raw)
        return await waiting

    async def send_raw(
        self, station_id: str, raw: str | bytes, *, expect_reply: bool = True, timeout_s: float = 5
    ) -> Frame | None:
        """Send any text (or binary) frame and return the station's next non-CALL frame."""
        link = self.stations[station_id]
        waiting = asyncio.ensure_future(
            self.wait_for(
                lambda f: (
                    f.direction == "in"
                    and f.station_id == station_id
                    and f.message_type not in (MessageType.Call,)
                ),
                timeout_s=timeout_s,
            )
        )
        await asyncio.sleep(0)
        text = raw if isinstance(raw, str) else raw.decode("latin-1")
        self._record(station_id, "out", text, link.point.connection_no)
        await link.connection.send(raw)
        if not expect_reply:
            with contextlib.suppress(TimeoutError):
                return await waiting
            return None
        return await waiting


def _basic_credentials(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("Authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _subject_cn(peercert: Any) -> str | None:
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


async def run_operator_console(
    csms: Csms, lines: Iterable[str] | None = None, *, write: Callable[[str], None] = print
) -> None:
    """Read ``STATION ACTION JSON`` commands from stdin (or ``lines``) and print the answers."""
    loop = asyncio.get_running_loop()

    async def next_line() -> str | None:
        if lines is not None:
            return next(iter_lines, None)
        import sys

        line = await loop.run_in_executor(None, sys.stdin.readline)
        return line if line else None

    iter_lines = iter(lines or ())
    while True:
        line = await next_line()
        if line is None:
            return
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=2)
        if len(parts) < 2:
            write(
                "usage: STATION_ID ACTION [JSON payload], e.g. CS-001 TriggerMessage "
                '{"requestedMessage": "Heartbeat"}'
            )
            continue
        station_id, action = parts[0], parts[1]
        try:
            payload = json.loads(parts[2]) if len(parts) > 2 else {}
        except ValueError as exc:
            write(f"error: payload is not JSON: {exc}")
            continue
        if station_id not in csms.stations:
            write(f"error: station {station_id!r} is not connected")
            continue
        try:
            frame = await csms.call(station_id, action, payload)
        except TimeoutError:
            write(f"error: {station_id} did not answer {action}")
            continue
        write(frame.raw)
