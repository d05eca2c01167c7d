"""A simulated vehicle and meter for one EVSE: the station's :class:`EvsePort` without hardware.

The vehicle can be plugged and unplugged and can present a token (as a driver at the reader
would); the station drives its power path. While the power path is closed the vehicle draws the
EVSE's maximum charge power (until the energy manager commands a set-point), and the meter
integrates the power over the injected clock into the two energy registers, which only count up:
Energy.Active.Import (into the vehicle) and Energy.Active.Export (out of it). Power follows the
station's sign convention (DESIGN.md): positive charges the vehicle.

Tests drive it through ``Station.vehicles[evse_id]``; later ``station sim`` will too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from station.clock import Clock
from station.sim.control import CommandError, ControlServer
from station.transactions import (
    CablePlugged,
    CableUnplugged,
    EnergyTransferStarted,
    EnergyTransferStopped,
    Event,
    IdToken,
    IdTokenType,
    MeterReading,
    PowerPathClosed,
    PowerPathOpened,
    Suspender,
)

__all__ = ["SimMeter", "SimVehicle", "VehicleSink", "autostart", "register_commands"]

log = logging.getLogger(__name__)


class VehicleSink(Protocol):
    """Where the vehicle reports what happens (the transactions service)."""

    def submit(self, evse_id: int, event: Event) -> None: ...

    def present_token(self, evse_id: int, token: IdToken) -> None: ...


class SimMeter:
    """Integrates a signed power into two monotonic energy registers, on the given timestamps."""

    def __init__(
        self, *, import_wh: float = 0.0, export_wh: float = 0.0, voltage_v: float = 400.0
    ) -> None:
        self.import_wh = import_wh
        self.export_wh = export_wh
        self.voltage_v = voltage_v
        self.power_w = 0.0
        self._at: datetime | None = None

    def advance(self, now: datetime) -> None:
        """Integrate the current power up to ``now`` (a time before the last one adds nothing)."""
        if self._at is not None and now > self._at:
            energy_wh = self.power_w * (now - self._at).total_seconds() / 3600
            if energy_wh >= 0:
                self.import_wh += energy_wh
            else:
                self.export_wh -= energy_wh
        if self._at is None or now > self._at:
            self._at = now

    def set_power(self, now: datetime, power_w: float) -> None:
        self.advance(now)
        self.power_w = power_w

    def read(self, now: datetime) -> MeterReading:
        self.advance(now)
        return MeterReading(
            timestamp=now,
            energy_import_wh=round(self.import_wh, 3),
            energy_export_wh=round(self.export_wh, 3),
            power_w=self.power_w,
            current_a=self.power_w / self.voltage_v,
            voltage_v=self.voltage_v,
        )


class SimVehicle:
    """A simulated EV at one EVSE (and the EVSE's power path and meter).

    Args:
        evse_id: the EVSE.
        connector_id: its connector.
        max_charge_power_w: the power drawn while the power path is closed.
        clock: for the meter.
    """

    def __init__(
        self, evse_id: int, *, connector_id: int = 1, max_charge_power_w: float, clock: Clock
    ) -> None:
        self.evse_id = evse_id
        self.connector_id = connector_id
        self.max_charge_power_w = max_charge_power_w
        self.clock = clock
        self.meter = SimMeter()
        self.plugged = False
        self.locked = False
        self.power_path_closed = False
        self._sink: VehicleSink | None = None

    def attach(self, sink: VehicleSink) -> None:
        self._sink = sink

    def _report(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.submit(self.evse_id, event)

    # --- what a driver does -----------------------------------------------------------------

    def plug(self) -> None:
        """Connect the EV (the connector locks)."""
        if self.plugged:
            return
        self.plugged = True
        self.locked = True
        self._report(CablePlugged(self.connector_id))

    def unplug(self) -> None:
        """Disconnect the EV; any energy flow stops first."""
        if not self.plugged:
            return
        self.meter.set_power(self.clock.now(), 0.0)
        self.plugged = False
        self.locked = False
        self._report(CableUnplugged())

    def present(self, token: IdToken | str) -> None:
        """Present a token at the EVSE's reader (a string is an ISO14443 RFID uid)."""
        if isinstance(token, str):
            token = IdToken(token, IdTokenType.ISO14443)
        if self._sink is not None:
            self._sink.present_token(self.evse_id, token)

    def stop_charging(self) -> None:
        """The EV stops drawing energy (full, or the driver stopped in the car)."""
        self.meter.set_power(self.clock.now(), 0.0)
        self._report(EnergyTransferStopped(Suspender.EV))

    # --- EvsePort ---------------------------------------------------------------------------

    def read_meter(self, now: datetime) -> MeterReading:
        return self.meter.read(now)

    def close_power_path(self) -> None:
        self.power_path_closed = True
        self._report(PowerPathClosed())
        if self.plugged:
            self.meter.set_power(self.clock.now(), self.max_charge_power_w)
            self._report(EnergyTransferStarted())

    def open_power_path(self) -> None:
        self.meter.set_power(self.clock.now(), 0.0)
        self.power_path_closed = False
        self._report(PowerPathOpened())

    def unlock_connector(self, connector_id: int) -> None:
        self.locked = False
        log.info("EVSE %d: connector %d unlocked", self.evse_id, connector_id)


async def autostart(vehicle: SimVehicle, wait_online: Callable[[], Awaitable[None]]) -> None:
    """``[[evse]] sim_autostart``: once the CSMS link is up, plug in and present a token."""
    await wait_online()
    log.info("EVSE %d: simulated vehicle starts a session by itself", vehicle.evse_id)
    vehicle.plug()
    vehicle.present(f"SIM{vehicle.evse_id:05d}")


def register_commands(control: ControlServer, vehicles: Mapping[int, SimVehicle]) -> None:
    """``station sim`` commands for the simulated vehicles: plug, unplug, token, ev_stop."""

    def vehicle_of(args: Mapping[str, Any]) -> SimVehicle:
        evse = args.get("evse")
        if isinstance(evse, bool) or not isinstance(evse, int) or evse not in vehicles:
            raise CommandError(f'"evse" must be one of {sorted(vehicles)}')
        return vehicles[evse]

    def plug(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle_of(args).plug()
        return {}

    def unplug(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle_of(args).unplug()
        return {}

    def ev_stop(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle_of(args).stop_charging()
        return {}

    def token(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = vehicle_of(args)
        try:
            presented = IdToken(str(args["id"]), IdTokenType(args.get("type", "ISO14443")))
        except (KeyError, ValueError) as exc:
            raise CommandError(f'"id" (and optional "type", an IdTokenEnumType): {exc}') from None
        vehicle.present(presented)
        return {}

    control.register("plug", plug, 'plug the simulated EV in: {"evse": N}')
    control.register("unplug", unplug, 'unplug the simulated EV: {"evse": N}')
    control.register("ev_stop", ev_stop, 'the EV stops drawing energy: {"evse": N}')
    control.register("token", token, 'present a token: {"evse": N, "id": "04A1B2C3", "type"?}')
