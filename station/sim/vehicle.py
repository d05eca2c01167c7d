"""The simulated world at each EVSE: one vehicle (battery, limits, V2X) and the EVSE's meter.

One :class:`SimVehicle` per EVSE is everything the station sees of a car until the CHAdeMO and
ISO 15118 links exist, and it is consistent from every side:

- to the transactions service it is the EVSE's :class:`~station.transactions.service.EvsePort`
  (power path, connector lock, meter) and reports cable, token and energy-transfer events;
- to the energy manager (through :class:`SimFleet`) it is the
  :class:`~station.smartcharging.service.VehicleView` (connected, charge/discharge limits,
  discharge allowed, SoC and its bounds, voltage) and the
  :class:`~station.smartcharging.service.PowerPort` that receives the :class:`PowerCommand`.

The vehicle follows the *commanded* power while it is plugged and the power path is closed,
within its own limits: it never discharges unless it allows V2X, takes no charge at or above its
maximum SoC and gives none at or below its minimum. The meter integrates that power over the
injected clock into two registers that only count up (positive: Energy.Active.Import.Register,
into the vehicle; negative: Energy.Active.Export.Register), and the SoC moves with the net energy
over the battery capacity (no losses). Power follows the sign convention of DESIGN.md.

The simulated world outlives the firmware, as a car and a meter outlive a station's reboot: with
a ``state_file`` the vehicle writes its plug state, battery and the meter's registers there at
every plug, unplug and meter reading, and a new :class:`SimVehicle` (after a crash, a power loss
or a Reset) starts from it, still plugged if it was, with the power path open. That is what
lets the transactions service resume a transaction (OCPP 2.1 ResumptionTimeout) or find the EV
still connected.

Nothing here polls: the vehicle tells its listeners (the energy manager) when its limits change,
including the moment its SoC reaches a bound at the present power (one timer, re-armed at every
change). ``station sim`` drives it through :func:`register_commands`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from station.clock import Clock
from station.power import PowerCommand, VehicleLimits
from station.sim.control import CommandError, ControlServer
from station.smartcharging.needs import ChargingNeeds, EnergyTransferMode
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
    StoppedReason,
    Suspender,
)

__all__ = [
    "EvSpec",
    "SimFleet",
    "SimMeter",
    "SimPeer",
    "SimVehicle",
    "VehicleSink",
    "autostart",
    "register_commands",
]

log = logging.getLogger(__name__)

_SOC_EPSILON_PCT = 1e-6
"""SoC this close to a bound counts as at the bound (the integration is in floating point)."""


class VehicleSink(Protocol):
    """Where the vehicle reports what happens (the transactions service)."""

    def submit(self, evse_id: int, event: Event) -> None: ...

    def present_token(self, evse_id: int, token: IdToken) -> None: ...


class SimPeer(Protocol):
    """A simulated EV at one EVSE as the fleet and ``station sim`` drive it: the protocol-less
    :class:`SimVehicle`, or a vehicle behind a protocol session (the CHAdeMO link)."""

    evse_id: int

    @property
    def plugged(self) -> bool: ...

    def attach(self, sink: VehicleSink) -> None: ...

    def subscribe(self, listener: Callable[[], None]) -> None: ...

    def on_needs(self, listener: Callable[[int, ChargingNeeds], None]) -> None: ...

    def limits(self) -> VehicleLimits: ...

    def apply(self, command: PowerCommand) -> None: ...

    def plug(self, spec: EvSpec | None = None) -> None: ...

    def unplug(self) -> None: ...

    def present(self, token: IdToken | str) -> None: ...

    def stop_charging(self) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def cancel_timer(self) -> None: ...

    # the transactions' EVSE port (station.transactions.service.EvsePort)
    def read_meter(self, now: datetime) -> MeterReading: ...

    def close_power_path(self) -> None: ...

    def open_power_path(self) -> None: ...

    def unlock_connector(self, connector_id: int) -> None: ...


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

    @property
    def at(self) -> datetime | None:
        """The instant the registers were integrated up to (None before the first reading)."""
        return self._at

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

    def read(self, now: datetime, *, soc_pct: float | None = None) -> MeterReading:
        self.advance(now)
        return MeterReading(
            timestamp=now,
            energy_import_wh=round(self.import_wh, 3),
            energy_export_wh=round(self.export_wh, 3),
            power_w=self.power_w,
            current_a=self.power_w / self.voltage_v,
            voltage_v=self.voltage_v,
            soc_pct=soc_pct,
        )


@dataclass(frozen=True, slots=True)
class EvSpec:
    """The vehicle a driver plugs in.

    Attributes:
        soc_pct: state of charge at plug-in, 0..100.
        capacity_kwh: usable battery capacity, > 0.
        v2x: the vehicle allows discharge (CHAdeMO bidirectional bit, ISO 15118-20 BPT).
        max_charge_power_w: the most it accepts; None: the EVSE's charge rating.
        max_discharge_power_w: the most it gives (a magnitude); None: the EVSE's discharge
            rating. Ignored (0) without ``v2x``.
        min_soc_pct: it gives no energy at or below this SoC.
        max_soc_pct: it takes no energy at or above this SoC.

    Raises:
        ValueError: a value out of range; the message names it.
    """

    soc_pct: float = 50.0
    capacity_kwh: float = 60.0
    v2x: bool = False
    max_charge_power_w: float | None = None
    max_discharge_power_w: float | None = None
    min_soc_pct: float = 10.0
    max_soc_pct: float = 100.0

    def __post_init__(self) -> None:
        for name in ("soc_pct", "min_soc_pct", "max_soc_pct"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.0 <= value <= 100.0:
                raise ValueError(f"{name} must be between 0 and 100, not {value}")
        if self.min_soc_pct > self.max_soc_pct:
            raise ValueError("min_soc_pct must not be above max_soc_pct")
        if not math.isfinite(self.capacity_kwh) or self.capacity_kwh <= 0:
            raise ValueError(f"capacity_kwh must be greater than 0, not {self.capacity_kwh}")
        for name in ("max_charge_power_w", "max_discharge_power_w"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be 0 or more, not {value}")


class SimVehicle:
    """A simulated EV at one EVSE (and the EVSE's power path and meter).

    Args:
        evse_id: the EVSE.
        connector_id: its connector.
        max_charge_power_w: the EVSE's charge rating (a vehicle's default limit).
        max_discharge_power_w: the EVSE's discharge rating (a V2X vehicle's default limit).
        clock: for the meter.
        state_file: where the simulated world persists (module docstring); None: nowhere. A
            file that cannot be read is logged and the world starts afresh.
    """

    def __init__(
        self,
        evse_id: int,
        *,
        connector_id: int = 1,
        max_charge_power_w: float,
        max_discharge_power_w: float | None = None,
        clock: Clock,
        state_file: Path | None = None,
    ) -> None:
        self.evse_id = evse_id
        self.connector_id = connector_id
        self.max_charge_power_w = max_charge_power_w
        self.max_discharge_power_w = (
            max_charge_power_w if max_discharge_power_w is None else max_discharge_power_w
        )
        self.clock = clock
        self.meter = SimMeter()
        self.plugged = False
        self.locked = False
        self.power_path_closed = False
        self.spec = EvSpec()
        #: The energy manager's last command for this EVSE (0 W until one arrives).
        self.command_w = 0.0
        self._ev_stopped = False
        self._flowing = False
        self._battery_wh = 0.0  # battery energy at the meter reading below
        self._net_at_plug_wh = 0.0  # meter import - export when the vehicle was plugged
        self._sink: VehicleSink | None = None
        self._listeners: list[Callable[[], None]] = []
        self._needs_listeners: list[Callable[[int, ChargingNeeds], None]] = []
        self._timer: asyncio.Handle | None = None
        self.state_file = state_file
        self._save_failed = False
        if state_file is not None:
            self._restore(state_file)

    # --- the world's persistence ------------------------------------------------------------

    def _restore(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("EVSE %d: simulated world not read from %s: %s", self.evse_id, path, exc)
            return
        try:
            data = json.loads(text)
            import_wh, export_wh = float(data["import_wh"]), float(data["export_wh"])
            plugged = bool(data["plugged"])
            spec = EvSpec(**data["spec"])
            if not (math.isfinite(import_wh) and math.isfinite(export_wh)):
                raise ValueError("energy registers must be finite")
            if min(import_wh, export_wh) < 0:
                raise ValueError("energy registers cannot be negative")
            ev_stopped = bool(data.get("ev_stopped", False))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("EVSE %d: simulated world in %s is corrupt (%s); starting afresh",
                        self.evse_id, path, exc)  # fmt: skip
            return
        self.meter.import_wh, self.meter.export_wh = import_wh, export_wh
        self.spec = spec
        self._battery_wh = spec.soc_pct / 100 * spec.capacity_kwh * 1000
        self._net_at_plug_wh = import_wh - export_wh
        self.plugged = self.locked = plugged
        self._ev_stopped = ev_stopped and plugged
        if plugged:
            log.info("EVSE %d: the simulated vehicle is still plugged in (SoC %.1f %%)",
                     self.evse_id, spec.soc_pct)  # fmt: skip

    def _save(self) -> None:
        """Write the world's state (a temporary file renamed over the old one: never torn)."""
        path = self.state_file
        if path is None:
            return
        # The SoC now is the spec's for a vehicle plugged in afresh after a restart.
        spec = replace(self.spec, soc_pct=round(self._soc_pct(), 6))
        data = {
            "plugged": self.plugged,
            "ev_stopped": self._ev_stopped,
            "spec": asdict(spec),
            "import_wh": self.meter.import_wh,
            "export_wh": self.meter.export_wh,
        }
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            if not self._save_failed:
                log.warning("EVSE %d: simulated world not saved to %s: %s",
                            self.evse_id, path, exc)  # fmt: skip
            self._save_failed = True
        else:
            self._save_failed = False

    def attach(self, sink: VehicleSink) -> None:
        self._sink = sink

    def subscribe(self, listener: Callable[[], None]) -> None:
        """``listener()`` is called whenever the vehicle's limits change (:meth:`limits`)."""
        self._listeners.append(listener)

    def on_needs(self, listener: Callable[[int, ChargingNeeds], None]) -> None:
        """``listener(evse_id, needs)`` when a vehicle plugs in and reports its charging needs
        (as an ISO 15118 vehicle does after ChargeParameterDiscovery; smart charging sends
        NotifyEVChargingNeeds)."""
        self._needs_listeners.append(listener)

    def charging_needs(self) -> ChargingNeeds:
        """The plugged vehicle's needs: DC, or DC_BPT for a V2X vehicle, with its limits."""
        spec = self.spec
        limits = self.limits()
        voltage_v = self.meter.voltage_v
        capacity_wh = spec.capacity_kwh * 1000
        soc = self._soc_pct()
        return ChargingNeeds(
            requested_energy_transfer=EnergyTransferMode.DC_BPT
            if spec.v2x
            else EnergyTransferMode.DC,
            available_energy_transfer=(
                (EnergyTransferMode.DC, EnergyTransferMode.DC_BPT)
                if spec.v2x
                else (EnergyTransferMode.DC,)
            ),
            ev_max_current_a=limits.max_charge_power_w / voltage_v,
            ev_max_voltage_v=voltage_v,
            ev_max_power_w=limits.max_charge_power_w,
            energy_capacity_wh=capacity_wh,
            energy_amount_wh=max(spec.max_soc_pct - soc, 0.0) / 100 * capacity_wh,
            soc_pct=round(soc),
            full_soc_pct=round(spec.max_soc_pct),
            max_charge_power_w=limits.max_charge_power_w,
            max_discharge_power_w=limits.max_discharge_power_w if spec.v2x else None,
            max_voltage_v=voltage_v,
            target_soc_pct=round(spec.max_soc_pct),
        )

    def _report(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.submit(self.evse_id, event)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    # --- what a driver does -----------------------------------------------------------------

    def plug(
        self,
        spec: EvSpec | None = None,
        *,
        soc_pct: float | None = None,
        capacity_kwh: float | None = None,
        v2x: bool | None = None,
        max_discharge_w: float | None = None,
    ) -> None:
        """Connect an EV (the connector locks); already plugged: nothing happens.

        Args:
            spec: the vehicle (default :class:`EvSpec`); the keywords override its fields.

        Raises:
            ValueError: an argument out of range (nothing changes).
        """
        spec = spec or EvSpec()
        overrides: dict[str, Any] = {
            "soc_pct": soc_pct,
            "capacity_kwh": capacity_kwh,
            "v2x": v2x,
            "max_discharge_power_w": max_discharge_w,
        }
        fields = {name: getattr(spec, name) for name in EvSpec.__dataclass_fields__}
        fields.update({k: v for k, v in overrides.items() if v is not None})
        spec = EvSpec(**fields)
        if self.plugged:
            return
        now = self.clock.now()
        self.meter.advance(now)
        self.spec = spec
        self._battery_wh = spec.soc_pct / 100 * spec.capacity_kwh * 1000
        self._net_at_plug_wh = self.meter.import_wh - self.meter.export_wh
        self._ev_stopped = False
        self.plugged = True
        self.locked = True
        self._save()
        log.info(
            "EVSE %d: vehicle plugged (SoC %.1f %%, %.1f kWh, V2X %s)",
            self.evse_id,
            spec.soc_pct,
            spec.capacity_kwh,
            "yes" if spec.v2x else "no",
        )
        self._report(CablePlugged(self.connector_id))
        self._notify()
        if self._needs_listeners:
            needs = self.charging_needs()
            for needs_listener in list(self._needs_listeners):
                needs_listener(self.evse_id, needs)

    def unplug(self) -> None:
        """Disconnect the EV; any energy flow stops first."""
        if not self.plugged:
            return
        self._set_power(0.0)
        self._flowing = False
        self.plugged = False
        self.locked = False
        self._save()
        self._report(CableUnplugged())
        self._notify()

    def present(self, token: IdToken | str) -> None:
        """Present a token at the EVSE's reader (a string is an ISO14443 RFID uid)."""
        if isinstance(token, str):
            token = IdToken(token, IdTokenType.ISO14443)
        if self._sink is not None:
            self._sink.present_token(self.evse_id, token)

    def stop_charging(self) -> None:
        """The EV stops taking or giving energy (the driver stopped in the car), until unplugged."""
        self._ev_stopped = True
        self._set_power(0.0)
        self._flowing = False
        self._report(EnergyTransferStopped(Suspender.EV))
        self._notify()

    # --- what the vehicle reports -----------------------------------------------------------

    @property
    def soc_pct(self) -> float:
        """The present state of charge (the last known one while unplugged)."""
        self._advance(self.clock.now())
        return self._soc_pct()

    def _soc_pct(self) -> float:
        spec = self.spec
        soc = 100 * self._battery_wh / (spec.capacity_kwh * 1000)
        for bound in (spec.min_soc_pct, spec.max_soc_pct):
            if abs(soc - bound) < _SOC_EPSILON_PCT:
                return bound
        return min(max(soc, 0.0), 100.0)

    def limits(self) -> VehicleLimits:
        """What the vehicle tells the energy manager now."""
        if not self.plugged:
            return VehicleLimits(
                connected=False,
                max_charge_power_w=0.0,
                max_discharge_power_w=0.0,
                discharge_allowed=False,
            )
        spec = self.spec
        charge_w = self.max_charge_power_w
        if spec.max_charge_power_w is not None:
            charge_w = spec.max_charge_power_w
        discharge_w = self.max_discharge_power_w
        if spec.max_discharge_power_w is not None:
            discharge_w = spec.max_discharge_power_w
        if self._ev_stopped:
            charge_w = discharge_w = 0.0
        return VehicleLimits(
            connected=True,
            max_charge_power_w=charge_w,
            max_discharge_power_w=discharge_w if spec.v2x else 0.0,
            discharge_allowed=spec.v2x,
            soc_pct=self.soc_pct,
            min_soc_pct=spec.min_soc_pct,
            max_soc_pct=spec.max_soc_pct,
            voltage_v=self.meter.voltage_v,
        )

    def status(self) -> dict[str, Any]:
        """Fields for ``station sim status``: the vehicle and the live meter."""
        now = self.clock.now()
        self._advance(now)
        reading = self.meter.read(now)
        return {
            "plugged": self.plugged,
            "v2x": self.plugged and self.spec.v2x,
            "soc_pct": round(self._soc_pct(), 4) if self.plugged else None,
            "measured_power_w": self.meter.power_w,
            "energy_import_wh": reading.energy_import_wh,
            "energy_export_wh": reading.energy_export_wh,
        }

    # --- the energy manager's command -------------------------------------------------------

    def apply(self, command: PowerCommand) -> None:
        """Follow the energy manager's command (within the vehicle's own limits)."""
        self.command_w = command.power_w
        self._follow()

    def _accepted_w(self) -> float:
        """The power the vehicle takes now for the present command (signed, DESIGN.md)."""
        if not (self.plugged and self.power_path_closed) or self._ev_stopped:
            return 0.0
        limits = self.limits()
        power_w = self.command_w
        if power_w > 0:
            if limits.soc_pct is not None and limits.soc_pct >= self.spec.max_soc_pct:
                return 0.0
            return min(power_w, limits.max_charge_power_w)
        if power_w < 0 and limits.discharge_allowed:
            if limits.soc_pct is not None and limits.soc_pct <= self.spec.min_soc_pct:
                return 0.0
            return max(power_w, -limits.max_discharge_power_w)
        return 0.0

    def _follow(self) -> None:
        """Set the power the vehicle takes now; report when energy starts or stops flowing."""
        power_w = self._accepted_w()
        self._set_power(power_w)
        flowing = power_w != 0.0
        if flowing == self._flowing:
            return
        self._flowing = flowing
        if flowing:
            self._report(EnergyTransferStarted())
            return
        spec, soc = self.spec, self._soc_pct()
        full = self.command_w > 0 and soc >= spec.max_soc_pct
        empty = self.command_w < 0 and spec.v2x and soc <= spec.min_soc_pct
        if full or empty:
            reason = StoppedReason.SOC_LIMIT_REACHED if full else None
            self._report(EnergyTransferStopped(Suspender.EV, reason))
        else:
            self._report(EnergyTransferStopped(Suspender.EVSE))

    def _set_power(self, power_w: float) -> None:
        now = self.clock.now()
        self._advance(now)
        self.meter.set_power(now, power_w)
        self._arm_bound_timer(power_w)

    def _advance(self, now: datetime) -> None:
        """Integrate up to ``now``; the battery stops taking (giving) energy at its SoC bound."""
        meter = self.meter
        at = meter.at
        if self.plugged and meter.power_w != 0.0 and at is not None and now > at:
            remaining_wh = self._to_bound_wh(meter.power_w)
            reach_s = remaining_wh / abs(meter.power_w) * 3600
            if reach_s < (now - at).total_seconds():
                meter.set_power(at + timedelta(seconds=reach_s), 0.0)
                log.info("EVSE %d: vehicle reached its SoC bound", self.evse_id)
                self._schedule_follow()
        meter.advance(now)
        if self.plugged:
            net_wh = meter.import_wh - meter.export_wh - self._net_at_plug_wh
            self._battery_wh = self.spec.soc_pct / 100 * self.spec.capacity_kwh * 1000 + net_wh

    def _to_bound_wh(self, power_w: float) -> float:
        spec = self.spec
        capacity_wh = spec.capacity_kwh * 1000
        if power_w > 0:
            return max(spec.max_soc_pct / 100 * capacity_wh - self._battery_wh, 0.0)
        return max(self._battery_wh - spec.min_soc_pct / 100 * capacity_wh, 0.0)

    def _arm_bound_timer(self, power_w: float) -> None:
        """Wake when the SoC reaches its bound at this power (no polling)."""
        self.cancel_timer()
        if power_w == 0.0:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next reading finds the bound
            return
        delay_s = self._to_bound_wh(power_w) / abs(power_w) * 3600
        self._timer = loop.call_later(delay_s + 0.001, self._bound_reached)

    def _bound_reached(self) -> None:
        self._timer = None
        self._advance(self.clock.now())
        self._follow()
        self._notify()

    def _schedule_follow(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.cancel_timer()
        self._timer = loop.call_soon(self._bound_reached)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- EvsePort ---------------------------------------------------------------------------

    def read_meter(self, now: datetime) -> MeterReading:
        self._advance(now)
        reading = self.meter.read(now, soc_pct=self._soc_pct() if self.plugged else None)
        self._save()  # before the reading is committed anywhere: registers never go back
        return reading

    def close_power_path(self) -> None:
        self.power_path_closed = True
        self._report(PowerPathClosed())
        self._follow()

    def open_power_path(self) -> None:
        self._set_power(0.0)
        self._flowing = False
        self.power_path_closed = False
        self._report(PowerPathOpened())

    def unlock_connector(self, connector_id: int) -> None:
        self.locked = False
        log.info("EVSE %d: connector %d unlocked", self.evse_id, connector_id)


class SimFleet(Mapping[int, SimPeer]):
    """The simulated vehicles by EVSE id, as the energy manager's vehicle view and power port.

    Records the last command per EVSE and every change (``last``, ``history``) and forwards each
    command to its EVSE's vehicle.
    """

    def __init__(self, vehicles: Mapping[int, SimPeer]) -> None:
        self._vehicles = dict(vehicles)
        self.last: dict[int, PowerCommand] = {}
        self.history: list[PowerCommand] = []

    def __getitem__(self, evse_id: int) -> SimPeer:
        return self._vehicles[evse_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._vehicles)

    def __len__(self) -> int:
        return len(self._vehicles)

    # VehicleView
    def vehicle_limits(self, evse_id: int) -> VehicleLimits:
        vehicle = self._vehicles.get(evse_id)
        if vehicle is None:
            return VehicleLimits(
                connected=False,
                max_charge_power_w=0.0,
                max_discharge_power_w=0.0,
                discharge_allowed=False,
            )
        return vehicle.limits()

    def on_needs(
        self, listener: Callable[[int, ChargingNeeds], None], evse_ids: AbstractSet[int]
    ) -> None:
        """``listener(evse_id, needs)`` when a vehicle plugs in at one of ``evse_ids``."""
        for evse_id in evse_ids:
            vehicle = self._vehicles.get(evse_id)
            if vehicle is not None:
                vehicle.on_needs(listener)

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` whenever a vehicle's limits change."""
        for vehicle in self._vehicles.values():
            vehicle.subscribe(listener)

    # PowerPort
    def apply(self, command: PowerCommand) -> None:
        if self.last.get(command.evse_id) != command:
            self.history.append(command)
        self.last[command.evse_id] = command
        vehicle = self._vehicles.get(command.evse_id)
        if vehicle is not None:
            vehicle.apply(command)

    def close(self) -> None:
        """Stop every vehicle's timer (the end of the run)."""
        for vehicle in self._vehicles.values():
            vehicle.cancel_timer()


async def autostart(vehicle: SimPeer, wait_online: Callable[[], Awaitable[None]]) -> None:
    """``[[evse]] sim_autostart``: once the CSMS link is up, plug in and present a token."""
    await wait_online()
    log.info("EVSE %d: simulated vehicle starts a session by itself", vehicle.evse_id)
    vehicle.plug()
    vehicle.present(f"SIM{vehicle.evse_id:05d}")


# --- station sim ---------------------------------------------------------------------------------

_EVSE_ARGS = frozenset({"evse"})
_PLUG_ARGS = frozenset({"evse", "soc_pct", "capacity_kwh", "v2x", "max_discharge_w"})
_TOKEN_ARGS = frozenset({"evse", "id", "type"})


def _only(args: Mapping[str, Any], allowed: AbstractSet[str]) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise CommandError(f"unknown argument(s) {unknown}; allowed: {sorted(allowed)}")


def _number(args: Mapping[str, Any], name: str) -> float | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandError(f'"{name}" must be a number')
    return float(value)


def register_commands(control: ControlServer, vehicles: Mapping[int, SimPeer]) -> None:
    """``station sim`` commands for the simulated vehicles: plug, unplug, token, ev_stop.

    Every argument is checked before anything changes; a bad one is a :class:`CommandError`.
    """

    def vehicle_of(args: Mapping[str, Any], allowed: AbstractSet[str] = _EVSE_ARGS) -> SimPeer:
        _only(args, allowed)
        evse = args.get("evse")
        if isinstance(evse, bool) or not isinstance(evse, int) or evse not in vehicles:
            raise CommandError(f'"evse" must be one of {sorted(vehicles)}')
        return vehicles[evse]

    def plugged(args: Mapping[str, Any]) -> SimPeer:
        vehicle = vehicle_of(args)
        if not vehicle.plugged:
            raise CommandError(f"no vehicle is plugged in at EVSE {vehicle.evse_id}")
        return vehicle

    def plug(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = vehicle_of(args, _PLUG_ARGS)
        v2x = args.get("v2x")
        if v2x is not None and not isinstance(v2x, bool):
            raise CommandError('"v2x" must be true or false')
        given: dict[str, Any] = {
            "soc_pct": _number(args, "soc_pct"),
            "capacity_kwh": _number(args, "capacity_kwh"),
            "v2x": v2x,
            "max_discharge_power_w": _number(args, "max_discharge_w"),
        }
        try:
            spec = EvSpec(**{k: v for k, v in given.items() if v is not None})
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if vehicle.plugged:
            raise CommandError(f"a vehicle is already plugged in at EVSE {vehicle.evse_id}")
        vehicle.plug(spec)
        return {}

    def unplug(args: Mapping[str, Any]) -> dict[str, Any]:
        plugged(args).unplug()
        return {}

    def ev_stop(args: Mapping[str, Any]) -> dict[str, Any]:
        plugged(args).stop_charging()
        return {}

    def token(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = vehicle_of(args, _TOKEN_ARGS)
        raw_id = args.get("id")
        if not isinstance(raw_id, str) or not raw_id:
            raise CommandError('"id" must be a non-empty string')
        try:
            presented = IdToken(raw_id, IdTokenType(args.get("type", "ISO14443")))
        except ValueError as exc:
            types = ", ".join(t.value for t in IdTokenType)
            raise CommandError(f'"id"/"type" ({types}): {exc}') from None
        vehicle.present(presented)
        return {}

    control.register(
        "plug",
        plug,
        'plug an EV in: {"evse": N, "soc_pct"?: 0-100, "capacity_kwh"?: >0, "v2x"?: bool, '
        '"max_discharge_w"?: >=0}',
    )
    control.register("unplug", unplug, 'unplug the EV: {"evse": N}')
    control.register("ev_stop", ev_stop, 'the EV stops taking/giving energy: {"evse": N}')
    control.register("token", token, 'present a token: {"evse": N, "id": "04A1B2C3", "type"?}')
