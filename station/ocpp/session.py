"""One OCPP-J session over one WebSocket: framing, routing, and our CALLs.

This module owns the RPC rules of OCPP-J Part 4 on a live connection; it does not know what any
action means (that is ``link.py``). It reuses the ``ocpp`` library's routing (``@on``/``@after``,
``create_route_map``) and schema validators, but replaces three parts of its ``ChargePoint`` that
are not standards-exact (DESIGN.md, "Known library facts"):

- framing and CALLERROR codes come from :mod:`station.ocpp.rpc` (the library answers malformed JSON
  with nothing and maps schema errors coarsely);
- key conversion comes from :mod:`station.ocpp.keys` (the library's regexes break ~43 v21 names);
- responses are matched to CALLs by message id with a future per CALL, at most one of ours in
  flight (Part 4 §4.1.1), and ``@after`` hooks run on the station's task group instead of being
  fire-and-forget.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, Protocol, TypeVar, cast

from ocpp.charge_point import ChargePoint, remove_nones, serialize_as_dict
from ocpp.exceptions import OCPPError
from ocpp.routing import after as _after
from ocpp.routing import on as _on

from station.errors import (
    CallRejectedError,
    CallTimeoutError,
    ConnectionLostError,
    LocalOcppError,
    RemoteOcppError,
)
from station.ocpp import keys, rpc
from station.ocpp.msglog import MessageLog

__all__ = ["Connection", "CsmsSession", "Spawn", "after", "on"]

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def on(action: str) -> Callable[[_Handler], _Handler]:
    """The library's ``@on`` with types: marks a method as the handler of ``action``."""
    return cast(Callable[[_Handler], _Handler], _on(action))


def after(action: str) -> Callable[[_Handler], _Handler]:
    """The library's ``@after`` with types: follow-up work once the response is sent.

    The hook is called synchronously right after the response went out; a coroutine it returns
    runs as a supervised task (see :class:`CsmsSession`).
    """
    return cast(Callable[[_Handler], _Handler], _after(action))


class Connection(Protocol):
    """What a session needs of a WebSocket (as the ``ocpp`` library expects)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...


def _modules(version: str) -> tuple[ModuleType, ModuleType]:
    if version == "2.1":
        from ocpp.v21 import call, call_result
    elif version == "2.0.1":
        from ocpp.v201 import call, call_result
    else:  # pragma: no cover - guarded by the transport
        raise LocalOcppError(f"unsupported OCPP version {version!r}")
    return call, call_result


class CsmsSession(ChargePoint):  # type: ignore[misc]
    """The station's side of one OCPP-J connection.

    Subclasses add ``@on(action)`` handlers; each returns a ``call_result`` dataclass of the
    session's version (``self.results``) or a snake_case ``dict``.

    Args:
        station_id: the station's identity (for logs).
        connection: the open WebSocket.
        version: ``"2.0.1"`` or ``"2.1"``, from the negotiated subprotocol.
        message_timeout_s: how long one of our CALLs waits (OCPPCommCtrlr.MessageTimeout).
        message_log: where every frame is recorded.
        spawn: runs ``@after`` hooks as tasks the station supervises.
        id_factory: message ids for our CALLs (injected for tests, STYLE.md A2.5).
    """

    def __init__(
        self,
        station_id: str,
        connection: Connection,
        *,
        version: str,
        message_timeout_s: float,
        message_log: MessageLog,
        spawn: Spawn,
        id_factory: Callable[[], object] = uuid.uuid4,
    ) -> None:
        super().__init__(station_id, connection, response_timeout=message_timeout_s, logger=log)
        self.version = version
        self.calls, self.results = _modules(version)
        self._call = self.calls
        self._call_result = self.results
        self._ocpp_version = version
        self.message_timeout_s = message_timeout_s
        self._message_log = message_log
        self._spawn = spawn
        self._unique_id_generator = id_factory
        self._pending: dict[str, tuple[str, asyncio.Future[rpc.Frame]]] = {}
        self._closed = False
        #: While the CSMS has rejected our boot, CSMS-initiated messages are not answered (B03).
        self.ignore_csms_calls = False
        # Only actions with an @on handler: an @after hook alone does not answer a CALL.
        self.supported_actions: frozenset[str] = frozenset(
            action for action, handlers in self.route_map.items() if "_on_action" in handlers
        )

    # ----------------------------------------------------------------------------- receiving

    async def serve(self) -> None:
        """Read frames until the connection closes (the transport's exception propagates)."""
        try:
            while True:
                raw = await self._connection.recv()
                await self.route_message(raw)
        finally:
            self.close()

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Handle one inbound frame; never raises for anything the CSMS sent."""
        self._message_log.write("in", raw_msg)
        try:
            frame = rpc.parse_frame(raw_msg, self.version)
        except rpc.FrameError as exc:
            log.warning("%s: bad frame (%s): %s", self.id, exc.error_code, exc.description)
            if exc.reply and not self.ignore_csms_calls:
                await self._send(rpc.encode(rpc.call_error_for(exc)))
            return
        if isinstance(frame, rpc.Call):
            await self._dispatch(frame)
        elif isinstance(frame, rpc.CallResult | rpc.CallError):
            pending = self._pending.get(frame.message_id)
            if pending is None or pending[1].done():
                log.warning(
                    "%s: response to unknown message id %r ignored", self.id, frame.message_id
                )
            else:
                pending[1].set_result(frame)
                # Let the waiting caller act on its response (e.g. a Rejected boot starts
                # ignoring the CSMS, B03) before the next frame is read and dispatched.
                # asyncio wakes tasks in FIFO order, so one yield is enough.
                await asyncio.sleep(0)
        elif isinstance(frame, rpc.CallResultError):
            # OCPP 2.1 Part 4 §4.2.3: the CSMS could not process one of our CALLRESULTs.
            log.error(
                "%s: CSMS rejected our response %s: %s %s",
                self.id,
                frame.message_id,
                frame.error_code,
                frame.error_description,
            )
        else:
            # OCPP 2.1 Part 4 §4.2.4: a SEND gets no response.
            log.info("%s: SEND %s received and ignored", self.id, frame.action)

    async def _dispatch(self, call: rpc.Call) -> None:
        if self.ignore_csms_calls:
            log.info("%s: %s ignored while the boot is rejected (B03)", self.id, call.action)
            return
        try:
            rpc.check_call(call, self.version, self.supported_actions)
        except rpc.FrameError as exc:
            log.warning(
                "%s: %s refused: %s %s", self.id, call.action, exc.error_code, exc.description
            )
            await self._send(rpc.encode(rpc.call_error_for(exc)))
            return
        handlers = self.route_map[call.action]
        kwargs = keys.to_snake(call.payload, self.version)
        try:
            result = handlers["_on_action"](**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except OCPPError as exc:
            log.warning(
                "%s: %s answered with %s: %s", self.id, call.action, exc.code, exc.description
            )
            await self._send_error(call.message_id, exc.code, str(exc.description), exc.details)
            return
        except Exception:  # a bug in a handler must not take the link down
            log.exception("%s: handler for %s failed", self.id, call.action)
            await self._send_error(call.message_id, "InternalError", "handler failed", {})
            return
        payload = self.to_wire(result)
        try:
            rpc.check_payload(rpc.MessageType.CALLRESULT, call.action, payload, self.version)
        except rpc.FrameError as exc:  # our own response is invalid: our bug, say so
            log.error("%s: our %s response is invalid: %s", self.id, call.action, exc.description)
            await self._send_error(call.message_id, "InternalError", "invalid response", {})
            return
        await self._send(rpc.encode(rpc.CallResult(call.message_id, payload)))
        after = handlers.get("_after_action")
        if after is not None:
            follow_up = after(**kwargs)
            if inspect.iscoroutine(follow_up):
                self._spawn(follow_up)

    async def _send_error(
        self, message_id: str, code: str, description: str, details: dict[str, Any] | None
    ) -> None:
        frame = rpc.CallError(message_id, code, description[:255], details or {})
        await self._send(rpc.encode(frame))

    # ------------------------------------------------------------------------------- calling

    def to_wire(self, payload: object) -> dict[str, Any]:
        """A ``call``/``call_result`` dataclass or snake_case dict → camelCase wire payload."""
        if isinstance(payload, dict):
            data: Any = remove_nones(payload)
        else:
            data = remove_nones(serialize_as_dict(payload))
        wire = keys.to_camel(data, self.version)
        assert isinstance(wire, dict)
        return wire

    async def call(
        self,
        payload: object,
        suppress: bool = False,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one CALL and return the response dataclass.

        At most one of our CALLs is in flight (Part 4 §4.1.1); others wait their turn.

        Raises:
            LocalOcppError: the payload we built is not valid for this version.
            CallRejectedError: the CSMS answered with a CALLERROR.
            CallTimeoutError: no answer within MessageTimeout.
            ConnectionLostError: the connection closed first.
            RemoteOcppError: the CSMS's response is not schema-valid.
        """
        action = type(payload).__name__
        body = self.to_wire(payload)
        try:
            rpc.check_payload(rpc.MessageType.CALL, action, body, self.version)
        except rpc.FrameError as exc:
            raise LocalOcppError(f"{action}: invalid request: {exc.description}") from exc
        return await self.call_wire(action, body, unique_id=unique_id, timeout_s=timeout_s)

    async def call_wire(
        self,
        action: str,
        body: dict[str, Any],
        *,
        unique_id: str | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one CALL whose camelCase ``body`` the caller has already checked against this
        version's request schema (the durable queue checks a TransactionEvent once, when it is
        queued, not at every attempt); the response is checked here as in :meth:`call`.

        Raises:
            The errors of :meth:`call`, except LocalOcppError.
        """
        timeout = self.message_timeout_s if timeout_s is None else timeout_s
        async with self._call_lock:
            if self._closed:
                raise ConnectionLostError(f"{action}: not connected")
            message_id = unique_id or str(self._unique_id_generator())
            future: asyncio.Future[rpc.Frame] = asyncio.get_running_loop().create_future()
            self._pending[message_id] = (action, future)
            try:
                await self._send(rpc.encode(rpc.Call(message_id, action, body)))
                # Not asyncio.wait_for: on Python 3.11, when the response (or close()) and a
                # cancellation of this task arrive together, it returns the result or raises
                # ConnectionLostError instead of CancelledError, so a stopping station (or
                # the link's task group) loses the cancellation. Awaiting the future directly
                # lets Task.cancel() cancel it, so close() cannot fail it afterwards.
                async with asyncio.timeout(timeout):
                    frame = await future
            except TimeoutError:
                raise CallTimeoutError(f"{action}: no response within {timeout:g} s") from None
            finally:
                self._pending.pop(message_id, None)
                if future.done() and not future.cancelled():
                    # close() may have failed it while we were still sending: mark the
                    # exception retrieved, or asyncio logs "Future exception was never
                    # retrieved".
                    future.exception()
        if isinstance(frame, rpc.CallError):
            raise CallRejectedError(action, frame.error_code, frame.error_description)
        assert isinstance(frame, rpc.CallResult)
        try:
            rpc.check_payload(rpc.MessageType.CALLRESULT, action, frame.payload, self.version)
        except rpc.FrameError as exc:
            if self.version == "2.1":
                # OCPP 2.1 Part 4 §4.2.3: tell the CSMS its response could not be processed.
                error = rpc.CallResultError(
                    message_id, exc.error_code, exc.description, exc.details
                )
                await self._send(rpc.encode(error))
            raise RemoteOcppError(f"{action}: invalid response: {exc.description}") from exc
        result_cls = getattr(self.results, action)
        return result_cls(**keys.to_snake(frame.payload, self.version))

    async def _send(self, message: str) -> None:
        self._message_log.write("out", message)
        await self._connection.send(message)

    def close(self) -> None:
        """Fail every CALL still waiting: the connection is gone."""
        self._closed = True
        for action, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLostError(f"{action}: connection closed"))
