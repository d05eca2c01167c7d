"""The inverter shell: set-points out, measurements in, grid protection on every measurement.

Owns the running link to the bidirectional inverter (any :class:`InverterPort`: SunSpec or a
vendor register map). Three loops run while the station runs:

- **measure**: every ``poll_interval_s`` read the measurements and feed them to the pure
  :class:`~station.inverter.protection.GridProtection`. A failed read is an unknown grid, which
  the protection treats as out of range (cease to energize) — no measurement, no power. When
  the verdict says discharge or any power must stop, the supervisor writes the new set-point
  itself, at once, before the energy manager has re-evaluated (safety is never traded for a
  round trip); then it tells the station (``on_grid_change``) so every EVSE's command follows.
- **write**: the newest wanted set-point (:meth:`InverterSupervisor.set_setpoint`, the sum of
  the EVSE commands) is written with set-and-verify (the port's ``apply_setpoint``); values
  arriving while a write runs are coalesced into the next one.
- **supervise**: the port's own ``run`` (heartbeat, reversion fail-safe, convergence watch).

A fault the port declares (refused write, wrong read-back, no answer, not following) holds the
inverter at 0 W; the energy manager sees no import and no export capacity while it lasts, the
station is told (``on_fault``: a log line, a NotifyEvent), and after ``fault_retry_s`` the
supervisor clears it and tries again, as inverters restart after a fault by themselves.

It does no protocol work: alarms and faults leave through callbacks the composition root wires
to NotifyDERAlarm / NotifyEvent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from station.clock import Clock
from station.der import GridEventFault
from station.inverter.device import FaultReport, InverterMeasurements, InverterPort
from station.inverter.errors import (
    InverterError,
    InverterFaultError,
    LocalInverterError,
    RemoteInverterError,
)
from station.inverter.protection import GridProtection, GridVerdict, to_grid_state
from station.power import GridState
from station.transactions import MeterReading

__all__ = ["GridAlarm", "InverterSupervisor"]

log = logging.getLogger(__name__)

_CONNECT_RETRY_MIN_S = 0.5
_CONNECT_RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class GridAlarm:
    """A grid fault began (``ended`` False) or ended, for NotifyDERAlarm / NotifyEvent."""

    fault: GridEventFault
    ended: bool
    reason: str
    voltage_v: float | None
    frequency_hz: float | None


class InverterSupervisor:
    """Runs one inverter for the station.

    Args:
        connect: opens the inverter (discovery, identity, fail-safe armed, 0 W commanded),
            with :meth:`port_fault` as its fault callback; retried with back-off until it
            succeeds.
        protection: the grid protection core for this grid connection.
        clock: the station's clock.
        poll_interval_s: the measurement period (the grid trip latency is at most about one
            period plus one Modbus round trip).
        rating_w: the power the enter-service ramp scales.
        fault_retry_s: how long a declared inverter fault holds 0 W before a new attempt.
        on_grid_change: called when the grid state the energy manager sees changes.
        on_alarm: called once per grid fault start and end.
        on_fault: called once per inverter fault and once when it is cleared (``None``).
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[InverterPort]],
        protection: GridProtection,
        clock: Clock,
        poll_interval_s: float,
        rating_w: float,
        fault_retry_s: float = 60.0,
        on_grid_change: Callable[[], None] = lambda: None,
        on_alarm: Callable[[GridAlarm], None] = lambda alarm: None,
        on_fault: Callable[[FaultReport | None], None] = lambda report: None,
    ) -> None:
        if not (math.isfinite(poll_interval_s) and poll_interval_s > 0):
            raise LocalInverterError("poll_interval_s must be a positive number")
        self._connect = connect
        self.protection = protection
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.rating_w = rating_w
        self.fault_retry_s = fault_retry_s
        self.on_grid_change = on_grid_change
        self.on_alarm = on_alarm
        self.on_fault = on_fault
        self.port: InverterPort | None = None
        self.verdict: GridVerdict | None = None
        self.measurements: InverterMeasurements | None = None
        self.wanted_w = 0.0
        self.written_w: float | None = None
        self._state = GridState(in_window=False)
        self._wake = asyncio.Event()
        self._fault_at: float | None = None
        self._meter_import_wh = 0.0
        self._meter_export_wh = 0.0
        #: Monotonic times of the last trip seen and of the 0 W write that followed it (for
        #: the trip-latency benchmark and the status).
        self.last_trip_s: float | None = None
        self.last_trip_zero_s: float | None = None

    # --- what the station sees ----------------------------------------------------------------

    def grid_state(self) -> GridState:
        """The energy manager's grid view (no power until the first valid measurement)."""
        return self._state

    def _compute_state(self) -> GridState:
        if self.verdict is None:
            return GridState(in_window=False)
        if self.port is not None and self.port.fault is not None:
            # The converter holds 0 W: neither direction has any capacity.
            return to_grid_state(self.verdict, rating_w=0.0, max_import_w=0.0, max_export_w=0.0)
        # The ramp ceiling applies only while ramping; at full power the EVSE ratings bind
        # (else every full-power command would name the grid as its limit).
        ramping = self.verdict.power_fraction < 1.0
        return to_grid_state(self.verdict, rating_w=self.rating_w if ramping else None)

    def _allowed_w(self, power_w: float) -> float:
        """``power_w`` within what the grid verdict allows now (the safety clamp)."""
        state = self._state
        if not state.in_window:
            return 0.0
        if power_w < 0 and state.max_export_w is not None:
            return max(power_w, -state.max_export_w)
        if power_w > 0 and state.max_import_w is not None:
            return min(power_w, state.max_import_w)
        return power_w

    def set_setpoint(self, power_w: float) -> None:
        """The power the station wants through the inverter now (+ = into the vehicles)."""
        if not math.isfinite(power_w):
            raise LocalInverterError(f"set-point must be a finite number, got {power_w}")
        self.wanted_w = power_w
        self._wake.set()

    def read_meter(self, now: datetime) -> MeterReading:
        """The inverter's registers as the EVSE meter (last measurement; 0 before the first)."""
        m = self.measurements
        if m is None:
            return MeterReading(timestamp=now, energy_import_wh=0.0, energy_export_wh=0.0)
        if m.energy_import_wh is not None:
            self._meter_import_wh = max(self._meter_import_wh, m.energy_import_wh)
        if m.energy_export_wh is not None:
            self._meter_export_wh = max(self._meter_export_wh, m.energy_export_wh)
        return MeterReading(
            timestamp=now,
            energy_import_wh=self._meter_import_wh,
            energy_export_wh=self._meter_export_wh,
            power_w=m.power_w,
            current_a=m.current_a,
            voltage_v=m.voltage_v,
            frequency_hz=m.frequency_hz,
        )

    def status(self) -> dict[str, Any]:
        """For ``station sim status``: the link, the grid verdict, the set-point."""
        verdict, m = self.verdict, self.measurements
        port = self.port
        return {
            "connected": port is not None,
            "setpoint_w": self.written_w,
            "wanted_w": self.wanted_w,
            "measured_power_w": None if m is None else m.power_w,
            "voltage_v": None if m is None else m.voltage_v,
            "frequency_hz": None if m is None else m.frequency_hz,
            "energy_import_wh": None if m is None else m.energy_import_wh,
            "energy_export_wh": None if m is None else m.energy_export_wh,
            "grid": None if verdict is None else verdict.status.value,
            "grid_reason": None if verdict is None else verdict.reason,
            "discharge_allowed": bool(verdict and verdict.discharge_allowed),
            "fault": None if port is None or port.fault is None else port.fault.kind.value,
        }

    def port_fault(self, report: FaultReport) -> None:
        """The port's ``on_fault``: it declared a fault and commanded 0 W."""
        self.written_w = 0.0
        self.on_fault(report)

    # --- the loops ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, then measure, write and supervise until cancelled; 0 W on the way out."""
        port = await self._open()
        self.port = port
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._measure_loop(), name="inverter-measure")
                group.create_task(self._write_loop(), name="inverter-write")
                group.create_task(self._supervise(port), name="inverter-supervise")
        finally:
            self.port = None
            with contextlib.suppress(InverterError):
                await port.close()
            log.info("inverter: stopped (0 W commanded)")

    async def _open(self) -> InverterPort:
        delay_s = _CONNECT_RETRY_MIN_S
        while True:
            try:
                return await self._connect()
            except InverterError as exc:
                log.warning("inverter: cannot open (%s); next attempt in %.1f s", exc, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, _CONNECT_RETRY_MAX_S)

    async def _supervise(self, port: InverterPort) -> None:
        """``port.run()``, cancelled for certain: a cancellation its Modbus requests swallow
        (see :func:`_raise_if_cancelling`) is repeated until the port's loop has ended."""
        inner = asyncio.ensure_future(port.run())
        try:
            await asyncio.wait({inner})
            inner.result()
        finally:
            while not inner.done():
                inner.cancel()
                await asyncio.wait({inner}, timeout=1.0)

    async def _measure_loop(self) -> None:
        while True:
            await self.measure_once()
            _raise_if_cancelling()
            await asyncio.sleep(self.poll_interval_s)

    async def measure_once(self) -> GridVerdict:
        """Read the measurements once and evaluate the protection (the loop's body)."""
        port = self.port
        assert port is not None, "measure_once before run"
        voltage_v: float | None = None
        frequency_hz: float | None = None
        try:
            m = await port.read_measurements()
        except RemoteInverterError as exc:
            log.debug("inverter: no measurement: %s", exc)
        else:
            self.measurements = m
            voltage_v, frequency_hz = m.voltage_v, m.frequency_hz
        verdict = self.protection.observe(voltage_v, frequency_hz, self.clock.monotonic())
        self._judge(verdict)
        self._retry_fault()
        return verdict

    def _judge(self, verdict: GridVerdict) -> None:
        before = self.verdict
        self.verdict = verdict
        if before is None or before.status is not verdict.status:
            level = (
                logging.WARNING
                if verdict.tripped or not verdict.discharge_allowed
                else logging.INFO
            )
            log.log(level, "grid: %s (%s)", verdict.status.value, verdict.reason)
        for fault in verdict.alarms_started:
            self.on_alarm(GridAlarm(fault, False, verdict.reason, *self._vf()))
        for fault in verdict.alarms_ended:
            self.on_alarm(GridAlarm(fault, True, verdict.reason, *self._vf()))
        self._refresh_state()

    def _vf(self) -> tuple[float | None, float | None]:
        m = self.measurements
        return (None, None) if m is None else (m.voltage_v, m.frequency_hz)

    def _refresh_state(self) -> None:
        state = self._compute_state()
        if state == self._state:
            return
        was_in_window = self._state.in_window
        self._state = state
        if was_in_window and not state.in_window:
            self.last_trip_s = self.clock.monotonic()
        if self.written_w is not None and self._allowed_w(self.written_w) != self.written_w:
            # Tighter than what the inverter runs at: write now, not after the round trip
            # through the energy manager.
            self._wake.set()
        self.on_grid_change()

    def _retry_fault(self) -> None:
        port = self.port
        if port is None:
            return
        if port.fault is None:
            self._fault_at = None
            return
        now = self.clock.monotonic()
        if self._fault_at is None:
            self._fault_at = now
            self._refresh_state()
            return
        if now - self._fault_at >= self.fault_retry_s:
            log.warning(
                "inverter: fault %s cleared after %.0f s; trying again",
                port.fault.kind.value,
                self.fault_retry_s,
            )
            port.clear_fault()
            self._fault_at = None
            self.on_fault(None)
            self._refresh_state()
            self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.write_once()
            _raise_if_cancelling()

    async def write_once(self) -> None:
        """Write the newest wanted set-point, clamped by the grid verdict (the loop's body)."""
        port = self.port
        assert port is not None, "write_once before run"
        target_w = self._allowed_w(self.wanted_w)
        if port.fault is not None and target_w != 0.0:
            target_w = 0.0  # the port holds 0 W until the fault is cleared
        if target_w == self.written_w:
            return
        try:
            await port.apply_setpoint(target_w)
        except InverterFaultError:
            self.written_w = 0.0  # the port commanded 0 W and reported (port_fault)
            self._refresh_state()
            return
        except LocalInverterError as exc:
            log.error("inverter: set-point %.0f W not expressible (%s); 0 W", target_w, exc)
            self.wanted_w = 0.0
            self._wake.set()
            return
        except RemoteInverterError as exc:
            log.warning("inverter: set-point %.0f W not written: %s", target_w, exc)
            return
        self.written_w = target_w
        if target_w == 0.0 and self.last_trip_s is not None and not self._state.in_window:
            self.last_trip_zero_s = self.clock.monotonic()
        log.debug("inverter: set-point %.0f W", target_w)


def _raise_if_cancelling() -> None:
    """Honour a cancellation that a Modbus request swallowed.

    On Python 3.11 ``asyncio.wait_for`` (which pymodbus awaits each answer with) returns the
    answer instead of raising when the task is cancelled just as the answer arrives; the request
    then looks like a success and the loop would run on for ever, so the station's shutdown
    would hang. ``Task.cancelling()`` still counts the request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
