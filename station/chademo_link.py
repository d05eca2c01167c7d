"""A CHAdeMO EVSE composed for :mod:`station.app`: the session's world and its reports.

``app.py`` stays the composition root; this module holds the part of it that exists for each
``[[evse]]`` with an ``[evse.chademo]`` table: the :class:`~station.chademo.evse.ChademoEvse`
(session + CAN + hardware ports), its simulated peers (the CHAdeMO vehicle on the same bus, the
hardware: insulation monitor, contactors, lock, emergency stop, the DC path), and the bridge that
turns what the session reports into the transactions' events and the smart-charging needs:

=====================================  ==========================================================
session report / hardware              becomes
=====================================  ==========================================================
VehicleConnected                       CablePlugged (+ the configured ``local_token`` presented)
contactors closed / opened             PowerPathClosed / PowerPathOpened
EnergyFlowStarted / EnergyFlowStopped  EnergyTransferStarted / EnergyTransferStopped (EV when the
                                       station still commands power, else EVSE)
ChargingNeeds (first of a session, and NotifyEVChargingNeeds (DC, or DC_BPT for a
  when more than the SoC changes)        discharge-compatible vehicle), through smart charging
SessionStopped / FaultDetected         a vehicle stop request: EnergyTransferStopped(EV,
                                       StoppedByEV); a fault: Fault(reason per
                                       :data:`~station.chademo.session.OCPP_STOPPED_REASON`);
                                       a stop the station asked for: nothing more
SessionEnded                           CableUnplugged
=====================================  ==========================================================

And the other way, as the transactions' EVSE port: ``close_power_path`` authorizes the session
(it then locks, tests the insulation and closes the contactors itself: no contactor closes without
a passed insulation test), ``open_power_path`` stops it (current to 5 A or less, welding check,
contactors open, unlock). The energy manager's command goes to the session, which never lets the
current exceed min(vehicle request, command / voltage, station rating).

Sign (DESIGN.md): the session's output current is + into the vehicle; so are the meter's
registers (import = into the vehicle, export = out of it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from station.chademo.evse import TICK_S, ChademoEvse
from station.chademo.frames import Quirks
from station.chademo.hardware import SimHardware
from station.chademo.session import (
    OCPP_STOPPED_REASON,
    SAFE_VOLTAGE_V,
    ChargingNeeds,
    EnergyFlowStarted,
    EnergyFlowStopped,
    FaultDetected,
    Output,
    SessionConfig,
    SessionEnded,
    SessionState,
    SessionStopped,
    StopReason,
    VehicleConnected,
)
from station.clock import Clock
from station.config import ChademoConfig, EvseConfig
from station.errors import StationError
from station.power import PowerCommand, VehicleLimits
from station.sim.chademo_vehicle import (
    ChademoVehicleSpec,
    InjectedFault,
    SimChademoVehicle,
    SimDcPath,
)
from station.sim.control import CommandError, ControlServer
from station.sim.vehicle import EvSpec, VehicleSink
from station.smartcharging.needs import ChargingNeeds as EvNeeds
from station.smartcharging.needs import EnergyTransferMode
from station.transactions import (
    CablePlugged,
    CableUnplugged,
    EnergyTransferStarted,
    EnergyTransferStopped,
    Event,
    Fault,
    IdToken,
    IdTokenType,
    MeterReading,
    PowerPathClosed,
    PowerPathOpened,
    StoppedReason,
    Suspender,
)

__all__ = ["ChademoLink", "register_chademo_commands"]

log = logging.getLogger(__name__)

NEEDS_SETTLE_S = 0.3
"""How long the vehicle's parameters must stay unchanged before NotifyEVChargingNeeds."""
UNPLUG_WAIT_S = 15.0
"""``station sim unplug`` of a locked connector: how long the driver waits for the unlock."""

# Stops the station itself asked for: the transactions already know why.
_STATION_STOPS = frozenset(
    {StopReason.STATION_STOP, StopReason.REMOTE_STOP, StopReason.DEAUTHORIZED}
)
# The vehicle ended the energy transfer in an orderly way: a suspension by the EV, not a fault.
_VEHICLE_STOPS = frozenset({StopReason.VEHICLE_STOP_REQUEST})


class _Hardware(SimHardware):
    """The simulated ports, telling the link when the contactors change."""

    def __init__(self, on_contactors: Callable[[bool], None]) -> None:
        super().__init__()
        self._on_contactors = on_contactors

    def start_test(self, test_id: int, voltage_v: int) -> None:
        super().start_test(test_id, voltage_v)
        # ``station sim insulation EVSE fail`` sets the result of the next test only.
        self.next_insulation_pass = True

    def close(self) -> None:
        was = self.contactors_closed
        super().close()
        if not was:
            self._on_contactors(True)

    def open(self) -> None:
        was = self.contactors_closed
        super().open()
        if was:
            self._on_contactors(False)

    def set_output(self, voltage_v: float, current_a: float) -> None:
        # The command log of SimHardware would grow every 100 ms for ever: keep only changes.
        if (voltage_v, current_a) != (self.voltage_v, self.current_a):
            super().set_output(voltage_v, current_a)
            del self.commands[:-200]


def session_config(evse: EvseConfig, chademo: ChademoConfig) -> SessionConfig:
    """The session's ratings and timeouts from the EVSE's config."""
    v2h = evse.max_discharge_power_w > 0
    return SessionConfig(
        # CHAdeMO carries whole volts and amperes (0x108 b1-3): round the ratings down.
        max_voltage_v=int(evse.max_voltage_v),
        max_current_a=int(evse.max_current_a),
        max_discharge_current_a=int(evse.max_current_a) if v2h else 0,
        vehicle_timeout_s=chademo.vehicle_timeout_s,
        handshake_timeout_s=chademo.handshake_timeout_s,
        insulation_timeout_s=chademo.insulation_timeout_s,
        stop_timeout_s=chademo.stop_timeout_s,
        quirks=Quirks(inverted_200=chademo.quirk_inverted_200),
    )


class ChademoLink:
    """One CHAdeMO EVSE with its simulated vehicle and hardware, as the station sees it.

    Args:
        evse: the EVSE's config (with its ``chademo`` table).
        clock: the station's clock.
        channel: the CAN channel when the config names none (unique per station run, since the
            ``virtual`` interface joins every bus of the process with the same channel name).
    """

    def __init__(self, evse: EvseConfig, clock: Clock, *, channel: str) -> None:
        assert evse.chademo is not None
        chademo = evse.chademo
        self.evse_id = evse.id
        self.connector_id = evse.connector_id
        self.config = evse
        self.clock = clock
        interface = chademo.can_interface
        channel = chademo.can_channel or channel
        self.hardware = _Hardware(self._contactors_changed)
        self.vehicle = SimChademoVehicle(clock, interface=interface, channel=channel)
        self.dc_path = SimDcPath(self.hardware, self.vehicle)
        self.evse = ChademoEvse(
            evse.id,
            self.hardware,
            self.dc_path,
            clock,
            config=session_config(evse, chademo),
            can_interface=interface,
            can_channel=channel,
            bitrate=chademo.can_bitrate,
        )
        self.evse.subscribe(self._report)
        self.local_token = chademo.local_token
        #: ``on_faulted(True)`` when the session latches a fault (emergency stop, insulation,
        #: stop timeout), ``on_faulted(False)`` once it is reset: the connector's Faulted status.
        self.on_faulted: Callable[[bool], None] = lambda faulted: None
        self.last: PowerCommand | None = None
        self._sink: VehicleSink | None = None
        self._needs_listeners: list[Callable[[int, EvNeeds], None]] = []
        self._sent_needs: EvNeeds | None = None
        self._pending_needs: EvNeeds | None = None
        self._needs_timer: asyncio.TimerHandle | None = None
        self._unplugging: asyncio.Task[None] | None = None
        # Entering FAULT reports SessionStopped and FaultDetected with the same reason: one
        # event for the transactions (and one log line) per session and reason.
        self._stops_reported: set[tuple[int, StopReason]] = set()

    # --- wiring -------------------------------------------------------------------------------

    def attach(self, sink: VehicleSink) -> None:
        """Where the session's events go (the transactions service)."""
        self._sink = sink

    def subscribe(self, listener: Callable[[], None]) -> None:
        """``listener()`` when the vehicle's limits may have changed."""
        self.evse.on_limits_change(listener)

    def on_needs(self, listener: Callable[[int, EvNeeds], None]) -> None:
        """``listener(evse_id, needs)`` for NotifyEVChargingNeeds."""
        self._needs_listeners.append(listener)

    async def run(self) -> None:
        """The vehicle's node and the EVSE's cycle, until cancelled (then both close safely)."""
        self.vehicle.start()
        try:
            await self.evse.run()
        finally:
            if self._needs_timer is not None:
                self._needs_timer.cancel()
            if self._unplugging is not None:
                self._unplugging.cancel()
            await self.vehicle.close()

    # --- the session's reports ----------------------------------------------------------------

    def _submit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.submit(self.evse_id, event)

    def _contactors_changed(self, closed: bool) -> None:
        self._submit(PowerPathClosed() if closed else PowerPathOpened())

    def _report(self, evse_id: int, report: Output) -> None:
        if isinstance(report, VehicleConnected):
            self._sent_needs = None
            self._submit(CablePlugged(self.connector_id))
            if self.local_token and self._sink is not None:
                token = IdToken(self.local_token, IdTokenType.LOCAL)
                self._sink.present_token(self.evse_id, token)
        elif isinstance(report, ChargingNeeds):
            self._needs(report)
        elif isinstance(report, EnergyFlowStarted):
            self._submit(EnergyTransferStarted())
        elif isinstance(report, EnergyFlowStopped):
            commanded = self.last is not None and self.last.power_w != 0.0
            self._submit(EnergyTransferStopped(Suspender.EV if commanded else Suspender.EVSE))
        elif isinstance(report, SessionStopped | FaultDetected):
            if isinstance(report, FaultDetected):
                self.on_faulted(True)  # G01: Faulted until the session is reset
            key = (report.session_id, report.reason)
            if key not in self._stops_reported:
                self._stops_reported = {k for k in self._stops_reported if k[0] == key[0]}
                self._stops_reported.add(key)
                self._stopped(report.reason, report.detail)
        elif isinstance(report, SessionEnded):
            self._submit(CableUnplugged())
            self.on_faulted(False)

    def _stopped(self, reason: StopReason, detail: str) -> None:
        log.warning("EVSE %d: CHAdeMO session stopped: %s %s", self.evse_id, reason, detail)
        if reason in _STATION_STOPS:
            return
        ocpp_reason = StoppedReason(OCPP_STOPPED_REASON[reason])
        if reason in _VEHICLE_STOPS:
            self._submit(EnergyTransferStopped(Suspender.EV, ocpp_reason))
        else:
            self._submit(Fault(ocpp_reason))

    def _needs(self, report: ChargingNeeds) -> None:
        v2h = report.discharge_compatible
        needs = EvNeeds(
            requested_energy_transfer=EnergyTransferMode.DC_BPT if v2h else EnergyTransferMode.DC,
            available_energy_transfer=(
                (EnergyTransferMode.DC, EnergyTransferMode.DC_BPT)
                if v2h
                else (EnergyTransferMode.DC,)
            ),
            ev_max_current_a=float(report.max_charge_current_a),
            ev_max_voltage_v=float(report.max_voltage_v),
            ev_max_power_w=float(report.max_charge_power_w),
            energy_capacity_wh=report.capacity_kwh * 1000,
            soc_pct=report.soc_pct,
            min_charge_power_w=float(report.min_charge_power_w),
            max_charge_power_w=float(report.max_charge_power_w),
            min_discharge_power_w=0.0 if v2h else None,
            max_discharge_power_w=float(report.max_discharge_power_w) if v2h else None,
            min_charge_current_a=float(report.min_charge_current_a),
            max_charge_current_a=float(report.max_charge_current_a),
            min_discharge_current_a=0.0 if v2h else None,
            max_discharge_current_a=float(report.max_discharge_current_a) if v2h else None,
            min_voltage_v=float(report.min_voltage_v),
            max_voltage_v=float(report.max_voltage_v),
        )
        sent = self._sent_needs
        if sent is not None and replace(sent, soc_pct=needs.soc_pct) == needs:
            return  # only the SoC moved: the CSMS follows it in the meter values
        # The parameters arrive frame by frame (0x100, 0x101, 0x102, then 0x200): report the
        # settled set once, a moment after the last change, not every partial one.
        self._pending_needs = needs
        if self._needs_timer is None:
            loop = asyncio.get_running_loop()
            self._needs_timer = loop.call_later(NEEDS_SETTLE_S, self._flush_needs)

    def _flush_needs(self) -> None:
        self._needs_timer = None
        needs, self._pending_needs = self._pending_needs, None
        if needs is None or self.evse.state is SessionState.IDLE:
            return
        self._sent_needs = needs
        for listener in list(self._needs_listeners):
            listener(self.evse_id, needs)

    # --- the energy manager's ports -------------------------------------------------------------

    def limits(self) -> VehicleLimits:
        return self.evse.vehicle_limits()

    def apply(self, command: PowerCommand) -> None:
        self.last = command
        self.evse.apply(command)

    # --- the transactions' EVSE port --------------------------------------------------------------

    def read_meter(self, now: datetime) -> MeterReading:
        status = self.evse.status()
        voltage_v = float(status["measured_voltage_v"])
        current_a = float(status["measured_current_a"])
        soc = status["soc_pct"] if self.evse.state is not SessionState.IDLE else None
        return MeterReading(
            timestamp=now,
            energy_import_wh=round(self.evse.energy_import_wh, 3),
            energy_export_wh=round(self.evse.energy_export_wh, 3),
            power_w=voltage_v * current_a + 0.0,
            current_a=current_a + 0.0,
            voltage_v=voltage_v,
            soc_pct=None if soc is None else float(soc),
        )

    def close_power_path(self) -> None:
        """Authorized and connected: the session may lock, test and close the contactors."""
        self.evse.authorize()

    def open_power_path(self) -> None:
        """Stop the energy transfer: the session's stop sequence opens the contactors."""
        if self.evse.state not in (SessionState.IDLE, SessionState.UNLOCKED, SessionState.FAULT):
            self.evse.stop(StopReason.STATION_STOP)

    def unlock_connector(self, connector_id: int) -> None:
        """UnlockConnector (F05): only ever through the stop sequence (never under current)."""
        if self.evse.state not in (SessionState.IDLE, SessionState.UNLOCKED, SessionState.FAULT):
            self.evse.stop(StopReason.STATION_STOP)
        log.info("EVSE %d: connector %d unlock requested", self.evse_id, connector_id)

    # --- what the driver does (``station sim``) -------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self.vehicle.plugged

    def plug(self, spec: EvSpec | None = None) -> None:
        """Plug the simulated CHAdeMO vehicle in, described as any simulated EV is."""
        spec = spec or EvSpec()
        evse = self.config
        pack_v = 400.0
        discharge_w = spec.max_discharge_power_w
        if discharge_w is None:
            discharge_w = evse.max_discharge_power_w
        charge_w = spec.max_charge_power_w or evse.max_charge_power_w
        self.vehicle.plug(
            ChademoVehicleSpec(
                capacity_wh=spec.capacity_kwh * 1000,
                soc_pct=spec.soc_pct,
                min_voltage_v=300.0,
                max_voltage_v=pack_v,
                target_voltage_v=int(min(410, evse.max_voltage_v)),
                max_charge_current_a=max(1, min(255, int(charge_w / pack_v))),
                max_discharge_current_a=max(0, min(255, int(discharge_w / pack_v))),
                min_discharge_soc_pct=spec.min_soc_pct,
                target_soc_pct=spec.max_soc_pct,
                v2h=spec.v2x,
            )
        )

    def unplug(self) -> None:
        """The driver leaves: an energized session is stopped from the car first (the
        connector stays locked until the stop sequence unlocks it), then the cable comes out."""
        if self._unplugging is not None and not self._unplugging.done():
            return
        if not self.hardware.locked:
            self.vehicle.unplug()
            self._reset_when_gone()
            return
        self.vehicle.request_stop()
        self._unplugging = asyncio.get_running_loop().create_task(self._unplug_when_unlocked())

    def _reset_when_gone(self) -> None:
        """A session latched in FAULT (insulation failure, emergency stop, stop timeout) never
        sees the vehicle leave: once the cable is out, return it to state 0 so that the
        transaction ends (CableUnplugged) and a new session may start, unless the emergency stop
        is still pressed (its release resets) or the output is not dead."""
        if self.evse.state is SessionState.FAULT:
            self._unplugging = asyncio.get_running_loop().create_task(self._reset_after_unplug())

    async def _reset_after_unplug(self) -> None:
        # Let the vehicle's last frames (already on the bus) through first: a frame seen after
        # the reset would look like a new vehicle.
        await asyncio.sleep(2 * TICK_S)
        voltage_v = float(self.evse.status()["measured_voltage_v"])
        if voltage_v > SAFE_VOLTAGE_V:
            log.error(
                "EVSE %d: cable out but the output still shows %.0f V; the fault stays latched",
                self.evse_id,
                voltage_v,
            )
            return
        self.reset_if_safe()

    async def _unplug_when_unlocked(self) -> None:
        try:
            async with asyncio.timeout(UNPLUG_WAIT_S):
                while self.hardware.locked:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning(
                "EVSE %d: still locked after %.0f s; the cable is pulled anyway",
                self.evse_id,
                UNPLUG_WAIT_S,
            )
        if self.vehicle.plugged:
            self.vehicle.unplug()
            if self.evse.state is SessionState.FAULT:
                await self._reset_after_unplug()

    def present(self, token: IdToken | str) -> None:
        """A token at the EVSE's reader (a string is an ISO14443 RFID uid)."""
        if isinstance(token, str):
            token = IdToken(token, IdTokenType.ISO14443)
        if self._sink is not None:
            self._sink.present_token(self.evse_id, token)

    def stop_charging(self) -> None:
        self.vehicle.request_stop()

    def cancel_timer(self) -> None:
        """Nothing to cancel: the vehicle's node stops with :meth:`run`."""

    def status(self) -> dict[str, Any]:
        """``station sim status`` fields: the vehicle, the session, the DC meter."""
        evse = self.evse.status()
        vehicle = self.vehicle.status()
        return {
            "plugged": self.vehicle.plugged,
            "v2x": bool(vehicle.get("v2h")) and self.vehicle.plugged,
            "soc_pct": vehicle.get("soc_pct") if self.vehicle.plugged else None,
            "measured_power_w": evse["power_w"] + 0.0,
            "energy_import_wh": evse["energy_import_wh"],
            "energy_export_wh": evse["energy_export_wh"],
            "chademo": {
                "state": evse["state"],
                "stop_reason": evse["stop_reason"],
                "setpoint_current_a": evse["setpoint_current_a"],
                "measured_voltage_v": evse["measured_voltage_v"],
                "measured_current_a": evse["measured_current_a"],
                "vehicle_request_a": evse["vehicle_request_a"],
                "estop": self.hardware.estop,
                "next_insulation": "pass" if self.hardware.next_insulation_pass else "fail",
                "contactors_closed": self.hardware.contactors_closed,
                "locked": self.hardware.locked,
                "vehicle": vehicle.get("phase"),
                "faults": vehicle.get("faults"),
            },
        }

    # --- faults (``station sim``) -------------------------------------------------------------

    def vehicle_fault(self, kind: str) -> None:
        """``ev-fault``: the vehicle misbehaves (``clear``: it behaves again).

        Raises:
            ValueError: an unknown kind.
        """
        if kind == "clear":
            self.vehicle.clear_faults()
            return
        self.vehicle.inject_fault(_fault_kind(kind))

    def estop(self, pressed: bool) -> None:
        """The emergency-stop button; on release, a session left in FAULT is reset (the
        output is dead by then) so that a new one may start."""
        self.hardware.estop = pressed
        if not pressed:
            self.reset_if_safe()

    def reset_if_safe(self) -> bool:
        """Leave FAULT once the emergency stop is released (the idempotent reset to state 0)."""
        if self.evse.state is not SessionState.FAULT or self.hardware.pressed():
            return False
        try:
            self.evse.reset()
        except StationError as exc:
            log.info("EVSE %d: not reset yet: %s", self.evse_id, exc)
            return False
        log.info("EVSE %d: CHAdeMO session reset after the fault", self.evse_id)
        self.on_faulted(False)
        return True


def _fault_kind(kind: str) -> InjectedFault:
    """``over-voltage``, ``overvoltage`` and ``over_voltage`` all name the same fault."""
    wanted = kind.replace("-", "").replace("_", "").lower()
    for fault in InjectedFault:
        if fault.value.replace("_", "") == wanted:
            return fault
    choices = ", ".join(f.value.replace("_", "-") for f in InjectedFault)
    raise ValueError(f'"kind" must be one of {choices}, clear')


def register_chademo_commands(control: ControlServer, links: Mapping[int, ChademoLink]) -> None:
    """``station sim ev-fault|estop|estop-release|insulation`` for the CHAdeMO EVSEs.

    Every argument is checked before anything changes; a bad one is a :class:`CommandError`.
    """

    def link_of(args: Mapping[str, Any], allowed: frozenset[str]) -> ChademoLink:
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise CommandError(f"unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
        evse = args.get("evse")
        if isinstance(evse, bool) or not isinstance(evse, int) or evse not in links:
            raise CommandError(f'"evse" must be one of the CHAdeMO EVSEs {sorted(links)}')
        return links[evse]

    def ev_fault(args: Mapping[str, Any]) -> dict[str, Any]:
        link = link_of(args, frozenset({"evse", "kind"}))
        kind = args.get("kind")
        if not isinstance(kind, str):
            raise CommandError('"kind" must be a string')
        if not link.plugged:
            raise CommandError(f"no vehicle is plugged in at EVSE {link.evse_id}")
        try:
            link.vehicle_fault(kind)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return {}

    def estop(args: Mapping[str, Any]) -> dict[str, Any]:
        link_of(args, frozenset({"evse"})).estop(True)
        return {}

    def estop_release(args: Mapping[str, Any]) -> dict[str, Any]:
        link_of(args, frozenset({"evse"})).estop(False)
        return {}

    def insulation(args: Mapping[str, Any]) -> dict[str, Any]:
        link = link_of(args, frozenset({"evse", "result"}))
        result = args.get("result")
        if result not in ("pass", "fail"):
            raise CommandError('"result" must be "pass" or "fail"')
        link.hardware.next_insulation_pass = result == "pass"
        return {}

    control.register(
        "ev_fault",
        ev_fault,
        'the CHAdeMO vehicle faults: {"evse": N, "kind": "stop-request"|"overvoltage"|'
        '"undervoltage"|"current-deviation"|"high-temperature"|"voltage-deviation"|'
        '"system-fault"|"shift-lever"|"incompatible-voltage"|"silence"|"clear"}',
    )
    control.register("estop", estop, 'press the EVSE\'s emergency stop: {"evse": N}')
    control.register(
        "estop_release", estop_release, 'release the EVSE\'s emergency stop: {"evse": N}'
    )
    control.register(
        "insulation",
        insulation,
        'the result of the EVSE\'s next insulation test: {"evse": N, "result": "pass"|"fail"}',
    )
