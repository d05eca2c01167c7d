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

In the field (``vehicle = "hardware"``, :class:`FieldChademoLink`) the same bridge runs without
any simulated peer: the vehicle is whatever speaks CHAdeMO on the configured CAN channel
(python-can ``socketcan``), the lock, insulation monitor, contactors and emergency stop are sysfs
GPIO lines (``[evse.chademo.gpio]``), and the inverter link is the DC power stage and the DC
meter (:class:`InverterDcStage`). How the session's output reaches the converter: the inverter
takes a power set-point, the sum of the EVSE power commands (``InverterFollowingPort``); this
EVSE's share of it is capped at what its session allows now, min(power command, the session's
current set-point x the measured DC voltage), in the command's direction, and 0 whenever the
session's output is 0, the contactors are open or the DC measurement is stale. Every change of
the session's output or of the measurement sends the set-point again at once. So the converter
never runs more than the session's current, which is itself at most min(vehicle request,
command / voltage, station rating); the vehicle's own current request is enforced by the session.
The EVSE's meter (the transactions' Energy.Active.Import.Register) integrates the inverter's DC
voltage x current at the connector.

Sign (DESIGN.md): the session's output current is + into the vehicle; so are the meter's
registers (import = into the vehicle, export = out of it) and the inverter's DC current (the
register map's ``sign`` converts once, at the inverter's edge).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.chademo.errors import LocalChademoError
from station.chademo.evse import TICK_S, ChademoEvse, ChademoHardware, DcMeter
from station.chademo.frames import Quirks
from station.chademo.hardware import GpioPins, SimHardware, SysfsGpioHardware
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
from station.config import ChademoConfig, EvseConfig, LinkKind
from station.errors import StationError
from station.inverter.device import InverterMeasurements
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

if TYPE_CHECKING:
    from station.inverter.supervisor import InverterSupervisor
    from station.links import InverterFollowingPort, InverterLinks

__all__ = [
    "ChademoLink",
    "FieldChademoLink",
    "InverterDcStage",
    "open_chademo_link",
    "register_chademo_commands",
]

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
        channel = evse.chademo.can_channel or channel
        self.hardware = _Hardware(self._contactors_changed)
        self.vehicle = SimChademoVehicle(
            clock, interface=evse.chademo.can_interface, channel=channel
        )
        self.dc_path = SimDcPath(self.hardware, self.vehicle)
        self._compose(evse, clock, self.hardware, self.dc_path, channel)

    def _compose(
        self,
        evse: EvseConfig,
        clock: Clock,
        hardware: ChademoHardware,
        meter: DcMeter,
        channel: str,
    ) -> None:
        """The part every CHAdeMO EVSE has: the session's shell on ``hardware`` and ``meter``,
        and the bridge from its reports to the transactions and smart charging."""
        assert evse.chademo is not None
        chademo = evse.chademo
        self.evse_id = evse.id
        self.connector_id = evse.connector_id
        self.config = evse
        self.clock = clock
        interface = chademo.can_interface
        self.evse = ChademoEvse(
            evse.id,
            hardware,
            meter,
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

    def bind_inverter(self, inverter: InverterLinks, port: InverterFollowingPort) -> None:
        """The station has an inverter: nothing to bind, the simulated DC path is this EVSE's
        power stage and meter (the inverter follows the EVSE commands through ``port``)."""

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

    def _estop_pressed(self) -> bool:
        return self.hardware.pressed()

    def reset_if_safe(self) -> bool:
        """Leave FAULT once the emergency stop is released (the idempotent reset to state 0)."""
        if self.evse.state is not SessionState.FAULT or self._estop_pressed():
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

    def simulated(link: ChademoLink) -> ChademoLink:
        if isinstance(link, FieldChademoLink):
            raise CommandError(_HARDWARE_VEHICLE.format(link.evse_id))
        return link

    def ev_fault(args: Mapping[str, Any]) -> dict[str, Any]:
        link = simulated(link_of(args, frozenset({"evse", "kind"})))
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
        link = simulated(link_of(args, frozenset({"evse", "result"})))
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


# --- the field (hardware) vehicle link ------------------------------------------------------------


class InverterDcStage:
    """A hardware CHAdeMO EVSE's DC side on the inverter: its ``DcOutput`` and its ``DcMeter``.

    The inverter (a bidirectional converter with a vendor register map) is the EVSE's DC power
    stage and its DC measurement. It takes a power set-point, not a current: the session's
    output (:class:`~station.chademo.session.SetOutput`, current + into the vehicle) becomes a
    cap on the EVSE's share of the inverter set-point, :meth:`allowed_w` = the power command
    limited to ``current_a x measured DC voltage`` in the command's direction (0 when they
    disagree, when the output is off or no live voltage is measured). The session's current is
    already at most min(vehicle request, command / voltage, rating), so the converter never runs
    more current than the session allows; the measured voltage (not the session's voltage
    limit, the vehicle's target voltage) is used because the battery sits below its target and
    ``current x target`` would let the converter push more current than the session's set-point.

    :meth:`measure` gives the inverter's last ``dc_voltage_v``/``dc_current_a`` (sign already
    converted at the inverter's edge). A measurement is fresh while the supervisor keeps reading
    new ones within ``stale_after_s`` (monotonic); when none is fresh, the last known values are
    returned (never an invented 0 V, which would pass the welding check) and ``on_lost`` is
    called on every cycle until one is fresh again (the link stops the session: no measurement,
    no power).

    Args:
        evse_id: the EVSE (for logs).
        clock: the station's clock (monotonic, for freshness).
        stale_after_s: how old the newest measurement may be.
    """

    def __init__(self, evse_id: int, clock: Clock, *, stale_after_s: float = 1.5) -> None:
        self.evse_id = evse_id
        self.clock = clock
        self.stale_after_s = stale_after_s
        self.supervisor: InverterSupervisor | None = None
        #: The session's output: its voltage limit and its current set-point (+ into the vehicle).
        self.voltage_v = 0.0
        self.current_a = 0.0
        #: Called when :meth:`allowed_w` may have changed (the set-point is sent again).
        self.on_change: Callable[[], None] = lambda: None
        #: Called with the reason on each cycle without a fresh DC measurement.
        self.on_lost: Callable[[str], None] = lambda detail: None
        self.measured: tuple[float, float] = (0.0, 0.0)
        self.fresh = False
        self._seen: InverterMeasurements | None = None
        self._seen_at_s = -math.inf

    def bind(self, supervisor: InverterSupervisor, *, stale_after_s: float | None = None) -> None:
        """Measure through ``supervisor`` (its newest :class:`InverterMeasurements`)."""
        self.supervisor = supervisor
        if stale_after_s is not None:
            self.stale_after_s = stale_after_s

    # DcOutput

    def set_output(self, voltage_v: float, current_a: float) -> None:
        """The session's output: what the converter may run is recomputed at once."""
        if (voltage_v, current_a) == (self.voltage_v, self.current_a):
            return
        self.voltage_v, self.current_a = float(voltage_v), float(current_a)
        self.on_change()

    def allowed_w(self, command_w: float) -> float:
        """The EVSE's share of the inverter set-point for its power command ``command_w``."""
        voltage_v = self.measured[0]
        if not self.fresh or voltage_v <= SAFE_VOLTAGE_V or self.current_a == 0.0:
            return 0.0
        session_w = self.current_a * voltage_v
        if command_w > 0 and session_w > 0:
            return float(math.floor(min(command_w, session_w)))
        if command_w < 0 and session_w < 0:
            return float(math.ceil(max(command_w, session_w)))
        return 0.0  # a limit of 0 is no power, never a change of direction

    # DcMeter

    def measure(self) -> tuple[float, float]:
        """``(voltage_v, current_a)`` at the output, current + into the vehicle."""
        now_s = self.clock.monotonic()
        m = self.supervisor.measurements if self.supervisor is not None else None
        if m is not None and m is not self._seen:
            self._seen, self._seen_at_s = m, now_s
        detail = ""
        if m is None:
            detail = "no measurement from the inverter yet"
        elif m.dc_voltage_v is None or m.dc_current_a is None:
            detail = "the inverter reports no DC voltage/current"
        elif now_s - self._seen_at_s > self.stale_after_s:
            detail = f"no new inverter measurement for {now_s - self._seen_at_s:.1f} s"
        if detail:
            if self.fresh:
                log.error("EVSE %d: DC measurement lost: %s", self.evse_id, detail)
                self.fresh = False
                self.on_change()
            self.on_lost(detail)
            return self.measured
        assert m is not None and m.dc_voltage_v is not None and m.dc_current_a is not None
        measured = (m.dc_voltage_v, m.dc_current_a)
        changed = measured != self.measured or not self.fresh
        if not self.fresh:
            log.info("EVSE %d: DC measurement from the inverter", self.evse_id)
        self.measured, self.fresh = measured, True
        if changed:
            self.on_change()
        return measured


class _FieldHardware(SysfsGpioHardware):
    """The connector's GPIO relays and inputs, with the inverter as the DC output.

    Tells the link when the contactors change; reads an input that cannot be read as the safe
    answer (emergency stop pressed, insulation failed) instead of stopping the EVSE's cycle; and
    waits for the insulation monitor's pass (:meth:`result`).
    """

    def __init__(
        self,
        pins: GpioPins,
        root: Path,
        dc: InverterDcStage,
        on_contactors: Callable[[bool], None],
    ) -> None:
        super().__init__(pins, root)
        self.dc = dc
        self._on_contactors = on_contactors
        self._read_error: str | None = None

    def close(self) -> None:
        was = self.contactors_closed
        super().close()
        if not was:
            self._on_contactors(True)

    def open(self) -> None:
        was = self.contactors_closed
        try:
            super().open()
        finally:
            if was and not self.contactors_closed:
                self._on_contactors(False)

    def set_output(self, voltage_v: float, current_a: float) -> None:
        super().set_output(voltage_v, current_a)
        self.dc.set_output(voltage_v, current_a)

    def _unreadable(self, exc: LocalChademoError) -> None:
        if str(exc) != self._read_error:
            self._read_error = str(exc)
            log.error("%s (taken as the safe answer)", exc)

    def pressed(self) -> bool:
        try:
            return super().pressed()
        except LocalChademoError as exc:
            self._unreadable(exc)
            return True

    def result(self) -> tuple[int, bool] | None:
        """A pass once ``insulation_ok`` reads 1 with the test running; nothing before (the
        monitor takes its time: the session's ``insulation_timeout_s`` turns no pass in time
        into a failure); an unreadable input is a failure."""
        try:
            result = super().result()
        except LocalChademoError as exc:
            self._unreadable(exc)
            return None if self._test_id is None else (self._test_id, False)
        if result is None or not result[1]:
            return None
        return result


_HARDWARE_VEHICLE = "EVSE {} has a hardware vehicle: this is a command for a simulated one"


class FieldChademoLink(ChademoLink):
    """One CHAdeMO EVSE in the field (``vehicle = "hardware"``): a real vehicle on CAN, the
    connector's relays on sysfs GPIO (``[evse.chademo.gpio]``), the inverter as the DC stage.

    The vehicle is found by its frames (the session leaves state 0 when 0x100-0x102 arrive and
    ends the session when they stop); there is no simulated vehicle, so ``station sim`` commands
    for one (plug, unplug, ev_stop, ev_fault, insulation) answer a :class:`CommandError`; the
    emergency stop from ``station sim estop`` is a software emergency stop, and its release
    resets a latched fault only when the estop input is released too.
    """

    def __init__(self, evse: EvseConfig, clock: Clock, *, channel: str) -> None:
        assert evse.chademo is not None and evse.chademo.gpio is not None
        gpio = evse.chademo.gpio
        self.dc = InverterDcStage(evse.id, clock)
        self.gpio = _FieldHardware(
            GpioPins(
                lock=gpio.lock,
                contactors=gpio.contactors,
                insulation_test=gpio.insulation_test,
                insulation_ok=gpio.insulation_ok,
                estop=gpio.estop,
                estop_active_low=gpio.estop_active_low,
            ),
            gpio.root,
            self.dc,
            self._contactors_changed,
        )
        self._compose(evse, clock, self.gpio, self.dc, evse.chademo.can_channel or channel)
        self.dc.on_lost = self._measurement_lost
        self._reset_wanted = False

    def bind_inverter(self, inverter: InverterLinks, port: InverterFollowingPort) -> None:
        """The inverter is this EVSE's DC stage: its measurement is the meter, and its share of
        the set-point is capped by what the session allows (:meth:`InverterDcStage.allowed_w`)."""
        config = inverter.config
        stale_after_s = config.timeout_s + 3 * config.poll_interval_s + 3 * TICK_S
        self.dc.bind(inverter.supervisor, stale_after_s=stale_after_s)
        port.caps[self.evse_id] = self.dc.allowed_w
        self.dc.on_change = port.refresh

    def _measurement_lost(self, detail: str) -> None:
        if self.evse.state in _NO_POWER_STATES:
            return
        log.error("EVSE %d: stopping the session: %s", self.evse_id, detail)
        self.evse.stop(StopReason.INTERNAL_ERROR)

    async def run(self) -> None:
        """The EVSE's cycle and the estop-release watch until cancelled (then it closes
        safely)."""
        watch = asyncio.get_running_loop().create_task(self._watch_estop())
        try:
            await self.evse.run()
        finally:
            watch.cancel()
            if self._needs_timer is not None:
                self._needs_timer.cancel()

    async def _watch_estop(self) -> None:
        """Releasing the emergency-stop button resets the fault it latched, once the output is
        measured dead (:meth:`reset_if_safe`); other faults stay latched until an operator
        resets the station."""
        was_pressed = False
        while True:
            pressed = self.gpio.pressed()
            if was_pressed and not pressed:
                log.warning("EVSE %d: emergency stop released", self.evse_id)
                self._reset_wanted = True
            was_pressed = pressed
            if self._reset_wanted and (
                self.evse.state is not SessionState.FAULT or self.reset_if_safe()
            ):
                self._reset_wanted = False
            await asyncio.sleep(TICK_S)

    def _estop_pressed(self) -> bool:
        return self.gpio.pressed()

    def reset_if_safe(self) -> bool:
        """Leave FAULT once the emergency stop is released and the inverter measures the
        output dead (at most 10 V, a fresh measurement)."""
        voltage_v = self.dc.measured[0]
        if self.evse.state is SessionState.FAULT and not (
            self.dc.fresh and abs(voltage_v) <= SAFE_VOLTAGE_V
        ):
            log.debug("EVSE %d: not reset: the output is not measured dead", self.evse_id)
            return False
        return super().reset_if_safe()

    @property
    def plugged(self) -> bool:
        """A vehicle session is under way (the vehicle talks on the bus)."""
        return self.evse.state not in _NOT_PLUGGED

    def _simulated_only(self) -> CommandError:
        return CommandError(_HARDWARE_VEHICLE.format(self.evse_id))

    def plug(self, spec: EvSpec | None = None) -> None:
        raise self._simulated_only()

    def unplug(self) -> None:
        raise self._simulated_only()

    def stop_charging(self) -> None:
        raise self._simulated_only()

    def vehicle_fault(self, kind: str) -> None:
        raise self._simulated_only()

    def estop(self, pressed: bool) -> None:
        """Software emergency stop (``station sim estop``); released: reset a latched fault
        once the estop input is released as well."""
        if pressed:
            self._reset_wanted = False
            self.evse.emergency_stop()
        else:
            self._reset_wanted = not self.reset_if_safe()  # else once the output is dead

    def status(self) -> dict[str, Any]:
        """``station sim status`` fields: the session, the GPIO outputs, the DC measurement."""
        evse = self.evse.status()
        connected = self.plugged
        return {
            "plugged": connected,
            "v2x": connected and self.limits().discharge_allowed,
            "soc_pct": evse["soc_pct"] if connected else None,
            "measured_power_w": evse["power_w"] + 0.0,
            "energy_import_wh": evse["energy_import_wh"],
            "energy_export_wh": evse["energy_export_wh"],
            "chademo": {
                "vehicle_link": "hardware",
                "state": evse["state"],
                "stop_reason": evse["stop_reason"],
                "setpoint_current_a": evse["setpoint_current_a"],
                "measured_voltage_v": evse["measured_voltage_v"],
                "measured_current_a": evse["measured_current_a"],
                "vehicle_request_a": evse["vehicle_request_a"],
                "dc_measurement_fresh": self.dc.fresh,
                "estop": self.gpio.pressed(),
                "contactors_closed": self.gpio.contactors_closed,
                "locked": self.gpio.locked,
                "can": evse["can"],
            },
        }


_NOT_PLUGGED = frozenset(
    {SessionState.IDLE, SessionState.UNLOCKED, SessionState.FAULT, SessionState.ERROR}
)
_NO_POWER_STATES = frozenset(
    {SessionState.IDLE, SessionState.STOPPING, SessionState.UNLOCKED, SessionState.FAULT,
     SessionState.ERROR}
)  # fmt: skip


def open_chademo_link(evse: EvseConfig, clock: Clock, *, channel: str) -> ChademoLink:
    """The CHAdeMO link for ``evse``: the field one for ``vehicle = "hardware"``, else the
    simulated vehicle and hardware (see :class:`ChademoLink` for ``channel``)."""
    if evse.vehicle is LinkKind.HARDWARE:
        return FieldChademoLink(evse, clock, channel=channel)
    return ChademoLink(evse, clock, channel=channel)
