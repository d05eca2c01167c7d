"""The CHAdeMO CAN adapter: python-can in, bytes and arbitration ids out (STYLE.md A2.1).

This module owns the charger's side of the bus: it opens ``can.Bus`` from configuration
(``socketcan`` on hardware, ``virtual`` in the tests and the demo), keeps one cyclic send task per
charger frame id at the 100 ms period and puts the newest data into it with
``CyclicSendTaskABC.modify_data`` (the timing is never restarted), and hands every received data
frame to a callback on the asyncio loop through a ``can.Notifier(..., loop=loop)`` (the reader
runs in python-can's thread or on the loop's file-descriptor reader; the callback never blocks the
loop). Bus faults (a failed send, a failed receive, an error frame, bus-off or error-passive when
the interface exposes its state) are reported once each through a second callback, so the shell
can stop the session safely.

It must not decode frames (that is :mod:`station.chademo.frames`) nor decide anything about the
session (that is :mod:`station.chademo.session`). It is, with the simulated vehicle, the only
module of the package that imports ``can`` (DESIGN.md "Protocol types stay at the edge").

Facts: the charger sends 0x108 and 0x109 every 100 ms, and 0x208/0x209 in discharge mode
([EV] ``SEND_CAN_TIMEOUT_MS = 100``, [BE] 100 ms interval); 11-bit ids, DLC 8, 500 kbit/s by
default ([BE]); see ``reference/chademo.md``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import can

from station.chademo.errors import ChademoBusError

__all__ = [
    "DEFAULT_BITRATE",
    "DEFAULT_PERIOD_MS",
    "BusFault",
    "BusFaultKind",
    "ChademoBus",
    "ReceivedFrame",
    "open_can_bus",
]

log = logging.getLogger(__name__)

DEFAULT_BITRATE = 500_000
"""CHAdeMO's CAN bit rate ([BE] default; no primary citation, so configurable)."""

DEFAULT_PERIOD_MS = 100
"""The charger frame period ([EV] ``SEND_CAN_TIMEOUT_MS = 100``, [BE] 100 ms)."""

_CAN_ERR_CRTL = 0x004
"""SocketCAN error class: controller problem (linux/can/error.h ``CAN_ERR_CRTL``)."""
_CAN_ERR_BUSOFF = 0x040
"""SocketCAN error class: bus off (linux/can/error.h ``CAN_ERR_BUSOFF``)."""
_STANDARD_ID_MAX = 0x7FF
_NOTIFIER_TIMEOUT_S = 0.1
"""How long the notifier's reader thread blocks per ``recv`` (bounds the time ``close`` takes)."""


class BusFaultKind(StrEnum):
    """What went wrong on the bus."""

    SEND_FAILED = "SendFailed"
    RECEIVE_FAILED = "ReceiveFailed"
    ERROR_FRAME = "ErrorFrame"
    ERROR_PASSIVE = "ErrorPassive"
    BUS_OFF = "BusOff"


@dataclass(frozen=True, slots=True)
class BusFault:
    """A bus fault, as reported to the shell.

    Attributes:
        kind: what went wrong.
        detail: a human-readable description (the python-can error text, the error frame).
        error: the translated exception, when there was one.
    """

    kind: BusFaultKind
    detail: str
    error: ChademoBusError | None = None


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """One data frame from the bus.

    Attributes:
        arbitration_id: the 11-bit identifier.
        data: the payload (8 bytes for a well-formed CHAdeMO frame; the codec checks).
        timestamp_s: python-can's receive timestamp, seconds (interface clock; for logs only).
    """

    arbitration_id: int
    data: bytes
    timestamp_s: float


FrameCallback = Callable[[ReceivedFrame], None]
FaultCallback = Callable[[BusFault], None]


def open_can_bus(interface: str, channel: str, *, bitrate: int = DEFAULT_BITRATE) -> can.BusABC:
    """Open a python-can bus.

    Args:
        interface: the python-can interface name (``socketcan``, ``virtual``, ``pcan``...).
        channel: the interface's channel (``can0``; any name for ``virtual``).
        bitrate: bits per second; interfaces that cannot set it (socketcan, virtual) ignore it.

    Returns:
        The open bus; the caller owns it (or hands it to :class:`ChademoBus`, which closes it).

    Raises:
        ChademoBusError: python-can could not open the interface.
    """
    if bitrate <= 0:
        raise ValueError(f"bitrate must be positive, got {bitrate!r}")
    try:
        return can.Bus(interface=interface, channel=channel, bitrate=bitrate)
    except (can.CanError, ImportError, OSError) as exc:
        raise ChademoBusError(f"cannot open CAN {interface}:{channel}: {exc}") from exc


class _Listener(can.Listener):
    """Receives on the loop (the notifier was given ``loop=``) and forwards to the adapter."""

    def __init__(self, owner: ChademoBus) -> None:
        self._owner = owner

    def on_message_received(self, msg: can.Message) -> None:
        self._owner._on_message(msg)

    def on_error(self, exc: Exception) -> None:
        self._owner._on_receive_error(exc)

    def stop(self) -> None:
        pass


class ChademoBus:
    """The charger's CAN port: cyclic charger frames out, vehicle frames in.

    Use::

        bus = ChademoBus(open_can_bus("virtual", "ev1"), on_frame=..., on_fault=...)
        bus.start(asyncio.get_running_loop())
        bus.publish({0x108: b"...", 0x109: b"..."})   # every change; the 100 ms timing goes on
        bus.publish({0x108: ..., 0x109: ..., 0x208: ..., 0x209: ...})  # V2H adds its frames
        bus.close()

    ``on_frame`` and ``on_fault`` are called on the loop given to :meth:`start`. Each fault kind is
    reported once until :meth:`clear_faults`; after a fault the shell should stop the session
    (the cyclic tasks keep sending the newest data, which the session turns into its stop frames).
    """

    def __init__(
        self,
        bus: can.BusABC,
        *,
        on_frame: FrameCallback,
        on_fault: FaultCallback,
        period_ms: int = DEFAULT_PERIOD_MS,
    ) -> None:
        """Wrap an open bus; nothing is sent or received before :meth:`start`.

        Args:
            bus: an open python-can bus; :meth:`close` shuts it down.
            on_frame: called on the loop with each received standard-id data frame.
            on_fault: called on the loop with each bus fault.
            period_ms: the cyclic send period (100 ms in CHAdeMO).

        Raises:
            ValueError: ``period_ms`` is not positive.
        """
        if period_ms <= 0:
            raise ValueError(f"period_ms must be positive, got {period_ms!r}")
        self._bus = bus
        self._on_frame = on_frame
        self._on_fault = on_fault
        self._period_s = period_ms / 1000.0
        self._tasks: dict[int, can.broadcastmanager.CyclicSendTaskABC] = {}
        self._data: dict[int, bytes] = {}
        self._notifier: can.Notifier | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reported: set[BusFaultKind] = set()
        self._closed = False
        self._lock = threading.Lock()

    @property
    def channel_info(self) -> str:
        """The interface's own description of the channel (for logs)."""
        return str(self._bus.channel_info)

    @property
    def published(self) -> dict[int, bytes]:
        """The data each cyclic task sends now, by arbitration id (a copy)."""
        return dict(self._data)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start receiving; callbacks run on ``loop``.

        Raises:
            RuntimeError: started twice, or after :meth:`close`.
        """
        if self._closed or self._notifier is not None:
            raise RuntimeError("ChademoBus already started or closed")
        self._loop = loop
        self._notifier = can.Notifier(
            self._bus, [_Listener(self)], timeout=_NOTIFIER_TIMEOUT_S, loop=loop
        )

    def publish(self, frames: Mapping[int, bytes]) -> None:
        """Make ``frames`` the charger frames on the bus, each sent every period.

        A frame already cyclic gets its new data on its next cycle (``modify_data``, same
        timing); a new id starts its own cyclic task at once; a cyclic id missing from
        ``frames`` stops (0x208/0x209 when discharge ends).

        Args:
            frames: payload by 11-bit arbitration id.

        Raises:
            ValueError: an id is not an 11-bit id or a payload is longer than 8 bytes; nothing
                changes.
            ChademoBusError: the interface refused to start a cyclic task.
        """
        for arbitration_id, data in frames.items():
            if not 0 <= arbitration_id <= _STANDARD_ID_MAX:
                raise ValueError(f"not an 11-bit CAN id: {arbitration_id!r}")
            if len(data) > 8:
                raise ValueError(f"CAN payload longer than 8 bytes for 0x{arbitration_id:03X}")
        if self._closed:
            return
        for arbitration_id in [i for i in self._tasks if i not in frames]:
            self._tasks.pop(arbitration_id).stop()
            self._data.pop(arbitration_id, None)
        for arbitration_id, data in frames.items():
            payload = bytes(data)
            if self._data.get(arbitration_id) == payload:
                continue
            message = can.Message(arbitration_id=arbitration_id, data=payload, is_extended_id=False)
            task = self._tasks.get(arbitration_id)
            if task is None:
                self._tasks[arbitration_id] = self._start_task(message)
            elif isinstance(task, can.ModifiableCyclicTaskABC):
                task.modify_data(message)
            else:  # an interface whose tasks cannot be modified: replace (timing restarts)
                task.stop()
                self._tasks[arbitration_id] = self._start_task(message)
            self._data[arbitration_id] = payload

    def stop_sending(self) -> None:
        """Stop every cyclic charger frame (the connector is idle)."""
        for task in self._tasks.values():
            task.stop()
        self._tasks.clear()
        self._data.clear()

    def send_once(self, arbitration_id: int, data: bytes) -> None:
        """Send one frame now, outside the cycle.

        Raises:
            ChademoBusError: the interface refused the frame.
        """
        message = can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False)
        try:
            self._bus.send(message, timeout=self._period_s)
        except can.CanError as exc:
            error = ChademoBusError(f"send 0x{arbitration_id:03X} failed: {exc}")
            self._report(BusFault(BusFaultKind.SEND_FAILED, str(exc), error))
            raise error from exc

    def check_state(self) -> None:
        """Report bus-off or error-passive if the interface exposes its state (PCAN, Kvaser...).

        Call it on every tick; interfaces without a state (socketcan reports through error
        frames, virtual has none) read as active.
        """
        try:
            state = self._bus.state
        except (NotImplementedError, can.CanError):
            return
        if state is can.BusState.ERROR:
            self._report(BusFault(BusFaultKind.BUS_OFF, "interface reports bus-off"))
        elif state is can.BusState.PASSIVE:
            self._report(BusFault(BusFaultKind.ERROR_PASSIVE, "interface reports error-passive"))

    def clear_faults(self) -> None:
        """Report each fault kind again from now on (after the shell has recovered)."""
        self._reported.clear()

    def close(self) -> None:
        """Stop the cyclic tasks, the notifier and the bus. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop_sending()
        if self._notifier is not None:
            self._notifier.stop(timeout=2 * _NOTIFIER_TIMEOUT_S + 1.0)
        try:
            self._bus.shutdown()
        except can.CanError as exc:
            log.warning("CAN %s: shutdown failed: %s", self.channel_info, exc)

    # --- internals -------------------------------------------------------------------------------

    def _start_task(self, message: can.Message) -> can.broadcastmanager.CyclicSendTaskABC:
        try:
            task = self._bus.send_periodic(message, self._period_s, autostart=False)
        except can.CanError as exc:
            error = ChademoBusError(f"cannot send 0x{message.arbitration_id:03X}: {exc}")
            raise error from exc
        if hasattr(task, "on_error"):
            # python-can's thread-based task: without on_error a failed send raises in its
            # thread and the frame silently stops; report it instead and keep trying.
            task.on_error = self._on_send_error
        if isinstance(task, can.RestartableCyclicTaskABC):
            task.start()
        return task

    def _on_send_error(self, exc: Exception) -> bool:
        # Runs in python-can's send thread.
        if not isinstance(exc, can.CanError | OSError):
            return False
        error = ChademoBusError(f"cyclic send failed: {exc}")
        error.__cause__ = exc
        self._report_threadsafe(BusFault(BusFaultKind.SEND_FAILED, str(exc), error))
        return not self._closed

    def _on_receive_error(self, exc: Exception) -> None:
        if self._closed:
            return
        error = ChademoBusError(f"receive failed: {exc}")
        error.__cause__ = exc
        self._report(BusFault(BusFaultKind.RECEIVE_FAILED, str(exc), error))

    def _on_message(self, msg: can.Message) -> None:
        if self._closed:
            return
        if msg.is_error_frame:
            self._on_error_frame(msg)
            return
        if msg.is_remote_frame or msg.is_extended_id:
            return
        self._on_frame(ReceivedFrame(msg.arbitration_id, bytes(msg.data), float(msg.timestamp)))

    def _on_error_frame(self, msg: can.Message) -> None:
        detail = f"error frame id=0x{msg.arbitration_id:X} data={bytes(msg.data).hex(' ')}"
        if msg.arbitration_id & _CAN_ERR_BUSOFF:
            self._report(BusFault(BusFaultKind.BUS_OFF, detail))
        elif msg.arbitration_id & _CAN_ERR_CRTL:
            self._report(BusFault(BusFaultKind.ERROR_PASSIVE, detail))
        else:
            self._report(BusFault(BusFaultKind.ERROR_FRAME, detail))

    def _report_threadsafe(self, fault: BusFault) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            log.error("CAN %s: %s: %s", self.channel_info, fault.kind, fault.detail)
            return
        loop.call_soon_threadsafe(self._report, fault)

    def _report(self, fault: BusFault) -> None:
        with self._lock:
            if fault.kind in self._reported:
                return
            self._reported.add(fault.kind)
        log.error("CAN %s: %s: %s", self.channel_info, fault.kind, fault.detail)
        self._on_fault(fault)

    def __repr__(self) -> str:
        ids = ", ".join(f"0x{i:03X}" for i in sorted(self._tasks))
        return f"ChademoBus({self.channel_info!r}, cyclic=[{ids}])"

    def __enter__(self) -> ChademoBus:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
