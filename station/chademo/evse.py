"""One CHAdeMO EVSE: the shell that drives the session with the bus, the hardware and the clock.

This module owns the I/O loop of one CHAdeMO connector. It feeds the sans-IO
:class:`~station.chademo.session.ChargerSession` with everything from outside: decoded vehicle
frames from :class:`~station.chademo.bus.ChademoBus` (on the event loop), the time from the
injected :class:`~station.clock.Clock` (a tick every 100 ms), the DC output measurement, the
insulation monitor's result and the emergency-stop input from the hardware ports
(:mod:`station.chademo.hardware`), bus faults, and the station's decisions (authorization, stop,
the energy manager's power command). It carries the session's outputs out: hardware commands to
the ports (:func:`~station.chademo.hardware.apply_command`), reports to its listeners, and the
newest charger frames into the cyclic CAN tasks after every input, so a new power command is on the
bus at the next 100 ms cycle.

To the rest of the station it is the EVSE's port: the energy manager reads
:meth:`ChademoEvse.vehicle_limits` (a ``VehicleView``) and sends :meth:`ChademoEvse.apply` (a
``PowerPort``); the transactions side listens to the session's reports (:meth:`subscribe`) and
calls :meth:`authorize` and :meth:`stop`. It must not decide anything about the sequence (the
session does) nor import ``can`` (the bus adapter does). The charger sends 0x208/0x209 only while
a discharge-compatible vehicle is connected to a V2H station.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from station.chademo.bus import DEFAULT_BITRATE, BusFault, ChademoBus, ReceivedFrame, open_can_bus
from station.chademo.errors import FrameError, LocalChademoError
from station.chademo.frames import (
    VEHICLE_FRAME_IDS,
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    decode_frame,
)
from station.chademo.hardware import (
    ConnectorLock,
    Contactors,
    DcOutput,
    EmergencyStopInput,
    InsulationMonitor,
    apply_command,
)
from station.chademo.session import (
    ChargerSession,
    ChargingNeeds,
    Output,
    SessionConfig,
    SessionState,
    SetOutput,
    StopReason,
    VehicleConnected,
)
from station.clock import Clock
from station.power import PowerCommand, VehicleLimits

__all__ = ["ChademoEvse", "ChademoHardware", "DcMeter", "EvseListener"]

log = logging.getLogger(__name__)

TICK_S = 0.1
"""The shell's cycle: timeouts, measurements and the hardware inputs (the CAN period)."""

_V2H_IDS = frozenset({0x208, 0x209})
_NOT_CONNECTED = frozenset(
    {SessionState.IDLE, SessionState.STOPPING, SessionState.UNLOCKED, SessionState.FAULT,
     SessionState.ERROR}
)  # fmt: skip


class ChademoHardware(ConnectorLock, InsulationMonitor, Contactors, DcOutput, EmergencyStopInput,
                      Protocol):  # fmt: skip
    """All five hardware ports of one connector in one object (SimHardware, SysfsGpioHardware)."""


class DcMeter(Protocol):
    """The DC output's measurement at the connector."""

    def measure(self) -> tuple[float, float]:
        """``(voltage_v, current_a)`` now; current + into the vehicle."""
        ...


EvseListener = Callable[[int, Output], None]
"""Called with ``(evse_id, report)`` for each session report (VehicleConnected, ChargingNeeds,
EnergyFlowStarted/Stopped, SessionStopped, FaultDetected, SessionEnded)."""


class ChademoEvse:
    """A CHAdeMO connector: session + CAN + hardware + clock.

    Use::

        evse = ChademoEvse(1, hardware, meter, clock, config=SessionConfig(...),
                           can_interface="virtual", can_channel="evse1")
        evse.subscribe(lambda evse_id, report: ...)
        await evse.start()          # or: task_group.create_task(evse.run())
        evse.authorize(); evse.set_power_command(7_000)
        await evse.aclose()          # stops a session safely, then closes the bus
    """

    def __init__(
        self,
        evse_id: int,
        hardware: ChademoHardware,
        meter: DcMeter,
        clock: Clock,
        *,
        config: SessionConfig | None = None,
        can_interface: str = "virtual",
        can_channel: str = "chademo",
        bitrate: int = DEFAULT_BITRATE,
        auto_authorize: bool = False,
    ) -> None:
        """Build the EVSE; the bus opens here, nothing runs before :meth:`start`.

        Args:
            evse_id: the EVSE's OCPP id.
            hardware: the connector's ports.
            meter: the DC output measurement.
            clock: time (monotonic for the session).
            config: the station's ratings and the session's timeouts.
            can_interface: python-can interface (``socketcan`` on hardware, ``virtual`` in tests).
            can_channel: its channel (``can0``).
            bitrate: CAN bit rate (500 kbit/s).
            auto_authorize: authorize every vehicle as it connects (free vend / local token).

        Raises:
            ChademoBusError: the CAN interface cannot be opened.
        """
        self.evse_id = evse_id
        self.session = ChargerSession(config)
        self._hardware = hardware
        self._meter = meter
        self._clock = clock
        self._auto_authorize = auto_authorize
        self._bus = ChademoBus(
            open_can_bus(can_interface, can_channel, bitrate=bitrate),
            on_frame=self._on_frame,
            on_fault=self._on_bus_fault,
        )
        self._listeners: list[EvseListener] = []
        self._limit_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._power_w = 0.0
        self._setpoint = SetOutput(0.0, 0.0)
        self._needs: ChargingNeeds | None = None
        self._v100: Vehicle100 | None = None
        self._v101: Vehicle101 | None = None
        self._v102: Vehicle102 | None = None
        self._v200: Vehicle200 | None = None
        self._delivered_test: int | None = None
        self._estop_seen = False
        self._measured = (0.0, 0.0)
        self._last_measured_at: float | None = None
        self.energy_import_wh = 0.0
        self.energy_export_wh = 0.0
        self.bad_frames = 0
        self.bus_faults: list[BusFault] = []
        self._error_logged: BaseException | None = None
        self._last_input_s = -math.inf

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start receiving and the 100 ms cycle as a task on the running loop."""
        self._begin()
        self._task = asyncio.get_running_loop().create_task(
            self._cycle(), name=f"chademo-evse-{self.evse_id}"
        )

    async def run(self) -> None:
        """Run until cancelled (for the composition root's TaskGroup); closes safely."""
        self._begin()
        try:
            await self._cycle()
        finally:
            self._shutdown()

    async def aclose(self) -> None:
        """Stop a session under way (outputs to 0, contactors open), stop the cycle, close CAN."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._shutdown()

    def _begin(self) -> None:
        if self._started:
            raise RuntimeError(f"EVSE {self.evse_id} already started")
        self._started = True
        self._bus.start(asyncio.get_running_loop())
        # The hardware starts safe whatever state it was left in (STYLE.md: idempotent reset).
        self._hardware.set_output(0.0, 0.0)
        self._hardware.open()

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.session.state not in (SessionState.IDLE, SessionState.ERROR):
            with contextlib.suppress(LocalChademoError):
                self._handle(self.session.stop(self._now(), StopReason.STATION_STOP))
        self._hardware.set_output(0.0, 0.0)
        self._hardware.open()
        self._bus.close()
        log.info("EVSE %d: CHAdeMO closed (%s)", self.evse_id, self.session.state)

    async def _cycle(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.tick()
            next_at += TICK_S
            delay = next_at - loop.time()
            if delay < 0:
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    # --- the station's side -------------------------------------------------------------------

    def subscribe(self, listener: EvseListener) -> None:
        """Be told of every session report (see :data:`EvseListener`)."""
        self._listeners.append(listener)

    def on_limits_change(self, listener: Callable[[], None]) -> None:
        """Be told when :meth:`vehicle_limits` may have changed (the energy manager re-runs)."""
        self._limit_listeners.append(listener)

    def authorize(self) -> None:
        """The transaction side authorized charging (local token or the CSMS)."""
        self._input(lambda now: self.session.authorize(now))

    def stop(self, reason: StopReason = StopReason.STATION_STOP) -> None:
        """Stop the session from the station's side (OCPP RemoteStop, local stop...)."""
        self._input(lambda now: self.session.stop(now, reason))

    def emergency_stop(self) -> None:
        """Emergency stop from software (the estop input is also read every tick)."""
        self._input(lambda now: self.session.emergency_stop(now))

    def reset(self) -> None:
        """Leave FAULT or ERROR once the output is known dead (operator action).

        Raises:
            LocalChademoError: a session is under way.
        """
        now = self._now()
        self._handle(self.session.reset(now))
        self._estop_seen = self._hardware.pressed()
        self._error_logged = None
        self._publish(now)

    def set_power_command(self, power_w: float) -> None:
        """The energy manager's set-point, W, + charge / - discharge; 0 = no power.

        Raises:
            LocalChademoError: ``power_w`` is not finite; nothing changes.
        """
        if (
            isinstance(power_w, bool)
            or not isinstance(power_w, int | float)
            or not math.isfinite(power_w)
        ):
            raise LocalChademoError(f"power_w must be a finite number, got {power_w!r}")
        self._power_w = float(power_w)
        self._input(lambda now: self.session.set_power_command(power_w, now))

    def apply(self, command: PowerCommand) -> None:
        """PowerPort: take the energy manager's command for this EVSE (others are ignored)."""
        if command.evse_id == self.evse_id:
            self.set_power_command(command.power_w)

    def vehicle_limits(self, evse_id: int | None = None) -> VehicleLimits:
        """VehicleView: what the connected vehicle allows now (for the energy manager)."""
        needs = self._needs
        if needs is None or self.session.state in _NOT_CONNECTED:
            return VehicleLimits(
                connected=False,
                max_charge_power_w=0.0,
                max_discharge_power_w=0.0,
                discharge_allowed=False,
            )
        voltage_v = self._measured[0] if self._measured[0] > 10.0 else needs.target_voltage_v
        v200 = self._v200
        return VehicleLimits(
            connected=True,
            max_charge_power_w=float(needs.max_charge_power_w),
            max_discharge_power_w=float(needs.max_discharge_power_w),
            discharge_allowed=needs.discharge_compatible,
            soc_pct=float(needs.soc_pct),
            min_soc_pct=(
                float(min(100, v200.min_battery_discharge_level_pct))
                if v200 is not None and needs.discharge_compatible
                else None
            ),
            voltage_v=float(voltage_v),
            max_charge_current_a=float(needs.max_charge_current_a),
            max_discharge_current_a=float(needs.max_discharge_current_a),
        )

    @property
    def state(self) -> SessionState:
        """The session's state."""
        return self.session.state

    @property
    def published_frames(self) -> dict[int, bytes]:
        """The charger frames the cyclic CAN tasks send from their next cycle on, by id (a copy).

        Every input (a power command included) hands the newest frames to the tasks before it
        returns, so after :meth:`set_power_command` this already carries the new current.
        """
        return self._bus.published

    def status(self) -> dict[str, Any]:
        """The EVSE's state, JSON-ready."""
        voltage_v, current_a = self._measured
        v102 = self._v102
        return {
            "evse_id": self.evse_id,
            "state": self.session.state.value,
            "session_id": self.session.session_id,
            "stop_reason": self.session.stop_reason.value if self.session.stop_reason else None,
            "power_command_w": self._power_w,
            "setpoint_voltage_v": self._setpoint.voltage_v,
            "setpoint_current_a": self._setpoint.current_a,
            "measured_voltage_v": voltage_v,
            "measured_current_a": current_a,
            "power_w": voltage_v * current_a,
            "energy_import_wh": round(self.energy_import_wh, 3),
            "energy_export_wh": round(self.energy_export_wh, 3),
            "soc_pct": v102.soc_pct if v102 is not None else None,
            "vehicle_request_a": v102.charging_current_request_a if v102 is not None else None,
            "target_voltage_v": v102.target_voltage_v if v102 is not None else None,
            "capacity_kwh": self._v101.capacity_kwh if self._v101 is not None else None,
            "bad_frames": self.bad_frames,
            "bus_faults": [f"{f.kind}: {f.detail}" for f in self.bus_faults],
            "error": repr(self.session.error) if self.session.error else None,
            "can": self._bus.channel_info,
        }

    # --- the cycle ------------------------------------------------------------------------------

    def tick(self) -> None:
        """One cycle: hardware inputs, measurement, timeouts, frames (called every 100 ms)."""
        now = self._now()
        self._bus.check_state()
        if self._hardware.pressed() and not self._estop_seen:
            self._estop_seen = True
            log.error("EVSE %d: emergency stop pressed", self.evse_id)
            self._input(lambda t: self.session.emergency_stop(t), now)
        elif not self._hardware.pressed():
            self._estop_seen = False
        result = self._hardware.result()
        if (
            result is not None
            and result[0] != self._delivered_test
            and self.session.state is SessionState.INSULATION_TEST
            and result[0] == self.session.session_id
        ):
            self._delivered_test = result[0]
            test_id, passed = result
            if not passed:
                log.error("EVSE %d: insulation test %d failed", self.evse_id, test_id)
            self._input(lambda t: self.session.insulation_result(passed, t, test_id=test_id), now)
        self._measure(now)
        self._input(lambda t: self.session.tick(t), now)

    def _measure(self, now: float) -> None:
        voltage_v, current_a = self._meter.measure()
        last = self._last_measured_at
        if last is not None and now > last:
            energy_wh = self._measured[0] * self._measured[1] * (now - last) / 3600.0
            if energy_wh >= 0:
                self.energy_import_wh += energy_wh
            else:
                self.energy_export_wh -= energy_wh
        self._measured = (voltage_v, current_a)
        self._last_measured_at = now
        self._input(lambda t: self.session.measured(voltage_v, current_a, t), now)

    # --- inputs from the bus ------------------------------------------------------------------

    def _on_frame(self, received: ReceivedFrame) -> None:
        if received.arbitration_id not in VEHICLE_FRAME_IDS:
            return
        try:
            frame = decode_frame(received.arbitration_id, received.data, self.session.config.quirks)
        except FrameError as exc:
            self.bad_frames += 1
            log.warning("EVSE %d: %s", self.evse_id, exc)
            return
        if isinstance(frame, Vehicle100):
            self._v100 = frame
        elif isinstance(frame, Vehicle101):
            self._v101 = frame
        elif isinstance(frame, Vehicle102):
            self._v102 = frame
        elif isinstance(frame, Vehicle200):
            self._v200 = frame
        if frame is not None:
            decoded = frame
            self._input(lambda now: self.session.receive(decoded, now))

    def _on_bus_fault(self, fault: BusFault) -> None:
        self.bus_faults.append(fault)
        self._input(lambda now: self.session.bus_error(now, f"{fault.kind}: {fault.detail}"))

    # --- machinery ------------------------------------------------------------------------------

    def _now(self) -> float:
        """The monotonic time, never earlier than the last one given to the session."""
        now = max(self._clock.monotonic(), self._last_input_s)
        self._last_input_s = now
        return now

    def _input(self, call: Callable[[float], list[Output]], now: float | None = None) -> None:
        """Give the session one input, carry out its outputs, publish the newest frames."""
        if self._closed:
            return
        when = self._now() if now is None else now
        # A tick's time is read at its start; an input handled meanwhile (a frame, a command)
        # may have read a later one. The session refuses time going backwards: never go back.
        when = max(when, self._last_input_s)
        self._last_input_s = when
        if self.session.state is SessionState.ERROR:
            self._log_error()
            return
        self._handle(call(when))
        self._publish(when)

    def _handle(self, outputs: list[Output]) -> None:
        limits_changed = False
        authorize = False
        for output in outputs:
            if isinstance(output, SetOutput):
                self._setpoint = output
            if apply_command(
                output,
                lock=self._hardware,
                insulation=self._hardware,
                contactors=self._hardware,
                output=self._hardware,
            ):
                log.debug("EVSE %d: %s", self.evse_id, output)
                continue
            if isinstance(output, ChargingNeeds):
                self._needs = output
            else:
                authorize = authorize or (
                    self._auto_authorize and isinstance(output, VehicleConnected)
                )
                log.info("EVSE %d: %s", self.evse_id, output)
            limits_changed = True
            for listener in list(self._listeners):
                listener(self.evse_id, output)
        if self.session.state is SessionState.ERROR:
            self._log_error()
        if limits_changed:
            for limit_listener in list(self._limit_listeners):
                limit_listener()
        if authorize and self.session.state is not SessionState.ERROR:
            log.info("EVSE %d: vehicle authorized automatically", self.evse_id)
            self._handle(self.session.authorize(self._now()))

    def _log_error(self) -> None:
        if self.session.error is not None and self.session.error is not self._error_logged:
            self._error_logged = self.session.error
            log.error("EVSE %d: session in ERROR: %r", self.evse_id, self.session.error)

    def _publish(self, now: float) -> None:
        if self._closed:
            return
        if self.session.state is SessionState.IDLE:
            self._bus.stop_sending()
            return
        frames = self.session.charger_frames(now)
        v2h = bool(self._needs is not None and self._needs.discharge_compatible)
        self._bus.publish(
            {
                frame.ARBITRATION_ID: frame.encode()
                for frame in frames
                if v2h or frame.ARBITRATION_ID not in _V2H_IDS
            }
        )
