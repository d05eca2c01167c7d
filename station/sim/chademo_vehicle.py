"""A simulated CHAdeMO vehicle: a battery, a vehicle-side protocol core, and its own CAN node.

This module owns the *vehicle's* side of CHAdeMO for the demo and the tests, in three layers:

- :class:`Battery` (pure): capacity, stored energy, a voltage curve linear in SoC between the
  minimum and maximum pack voltage; it takes or gives energy and never leaves ``[0, capacity]``.
- :class:`VehicleCore` (sans-IO): the vehicle's protocol state machine after the vehicle-side code
  in [OI] (jsphuebner/stm32-car ``RunChaDeMo``): after the charger's 0x108 it sets "charging
  enabled" (0x102 b5 bit0); once the charger reports the connector locked (0x109 b5 bit2) it
  waits ``contactor_delay_s`` (the charger's insulation test), closes its contactors (clears
  0x102 b5 bit3) and ramps its current request (0x102 b3); it integrates the charger's present
  output (0x109 b1-3 charging, 0x208 b0 discharging) times voltage over the injected time into the
  battery; at its target SoC it asks 0 A and clears "charging enabled"; when the charger stops
  (0x109 b5 bit5 after charging, or a malfunction bit) it asks 0 A and opens its contactors once
  the current is at most 5 A. With V2H it sets 0x102 b5 bit7 and sends 0x200/0x201 [BE].
- :class:`SimChademoVehicle` (the shell): a separate ECU on the same python-can channel as the
  station (``virtual`` in the tests and the demo), sending its frames every 100 ms from an asyncio
  task and receiving the charger's through a ``can.Notifier(..., loop=...)``. ``station sim``
  drives it with :meth:`~SimChademoVehicle.plug`, :meth:`~SimChademoVehicle.unplug`,
  :meth:`~SimChademoVehicle.request_stop`, :meth:`~SimChademoVehicle.inject_fault` and reads
  :meth:`~SimChademoVehicle.status`.

It must not import the station's session or shell: it is the station's peer, and speaks only
frames (:mod:`station.chademo.frames`). Power and current follow DESIGN.md's sign: + = into the
vehicle. Facts and sources: ``reference/chademo.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import can

from station.chademo.errors import FrameError
from station.chademo.frames import (
    CHARGER_FRAME_IDS,
    Charger108,
    Charger109,
    Charger208,
    Charger209,
    ChargerStatus,
    Frame,
    Quirks,
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    Vehicle201,
    VehicleFault,
    VehicleStatus,
    decode_frame,
)
from station.chademo.hardware import SimHardware
from station.clock import Clock
from station.sim.control import CommandError, ControlServer

__all__ = [
    "Battery",
    "ChademoVehicleSpec",
    "InjectedFault",
    "SimChademoVehicle",
    "SimDcPath",
    "VehicleCore",
    "VehiclePhase",
    "register_commands",
]

log = logging.getLogger(__name__)

PERIOD_S = 0.1
"""The vehicle sends 0x100/0x101/0x102 (and 0x200/0x201) every 100 ms (reference/chademo.md)."""

STOPPED_CURRENT_A = 5
"""The vehicle opens its contactors once the charger's current is at most 5 A (reference step 7)."""

_MAX_STEP_S = 1.0
"""Longest interval integrated in one step (a stalled loop must not dump energy at once)."""


# --- the battery (pure) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Battery:
    """A traction battery: stored energy and a voltage linear in SoC. No losses.

    Attributes:
        capacity_wh: usable capacity, > 0.
        energy_wh: stored energy, within ``[0, capacity_wh]``.
        min_voltage_v: pack voltage at 0 % SoC, > 0.
        max_voltage_v: pack voltage at 100 % SoC, >= ``min_voltage_v``.
    """

    capacity_wh: float
    energy_wh: float
    min_voltage_v: float
    max_voltage_v: float

    def __post_init__(self) -> None:
        for name in ("capacity_wh", "energy_wh", "min_voltage_v", "max_voltage_v"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"battery {name} must be a finite number, got {value!r}")
        if self.capacity_wh <= 0:
            raise ValueError(f"battery capacity_wh must be > 0, got {self.capacity_wh!r}")
        if not 0 <= self.energy_wh <= self.capacity_wh:
            raise ValueError(
                f"battery energy_wh {self.energy_wh!r} outside [0, {self.capacity_wh!r}]"
            )
        if not 0 < self.min_voltage_v <= self.max_voltage_v:
            raise ValueError(
                f"battery voltages need 0 < min <= max, got {self.min_voltage_v!r}, "
                f"{self.max_voltage_v!r}"
            )

    @classmethod
    def at_soc(
        cls, capacity_wh: float, soc_pct: float, min_voltage_v: float, max_voltage_v: float
    ) -> Battery:
        """A battery holding ``soc_pct`` of its capacity.

        Raises:
            ValueError: ``soc_pct`` outside 0..100 or a bad capacity/voltage.
        """
        if not 0 <= soc_pct <= 100:
            raise ValueError(f"battery soc_pct must be within 0..100, got {soc_pct!r}")
        # min(): capacity * 100 / 100 may round to just above the capacity.
        energy_wh = min(capacity_wh, capacity_wh * soc_pct / 100)
        return cls(capacity_wh, energy_wh, min_voltage_v, max_voltage_v)

    @property
    def soc_pct(self) -> float:
        """State of charge, 0..100."""
        return min(100.0, max(0.0, 100.0 * self.energy_wh / self.capacity_wh))

    @property
    def voltage_v(self) -> float:
        """Open-circuit pack voltage, linear in SoC between the minimum and maximum."""
        span = self.max_voltage_v - self.min_voltage_v
        return self.min_voltage_v + span * self.soc_pct / 100

    def transfer(self, energy_wh: float) -> tuple[Battery, float]:
        """Take (``energy_wh`` > 0) or give (< 0) energy, as much as the capacity allows.

        Returns:
            The new battery and the energy actually moved (same sign as ``energy_wh``, never
            larger in magnitude): ``new.energy_wh == old.energy_wh + moved``.

        Raises:
            ValueError: ``energy_wh`` is not finite.
        """
        if not math.isfinite(energy_wh):
            raise ValueError(f"energy_wh must be finite, got {energy_wh!r}")
        target = min(self.capacity_wh, max(0.0, self.energy_wh + energy_wh))
        moved = target - self.energy_wh
        return replace(self, energy_wh=target), moved


# --- what the vehicle is ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChademoVehicleSpec:
    """A simulated CHAdeMO vehicle (defaults: a small V2H-capable pack, fast enough for tests).

    Attributes:
        capacity_wh: usable battery capacity (sent in 0x101 b5-6 at 0.1 kWh/bit).
        soc_pct: state of charge at plug-in.
        min_voltage_v: pack voltage at 0 % (0x100 b2-3).
        max_voltage_v: pack voltage at 100 % (0x100 b4-5 is this, rounded up).
        target_voltage_v: the charging target voltage (0x102 b1-2); must not exceed the charger's
            available voltage.
        max_charge_current_a: the most it asks for (0x102 b3).
        max_discharge_current_a: the most it gives in V2H (0x200 b0).
        min_discharge_soc_pct: no discharge at or below this SoC (0x200 b6).
        target_soc_pct: it stops charging at this SoC (0x200 b7 also carries it).
        v2h: discharge compatible (0x102 b5 bit7, sends 0x200/0x201).
        ramp_a_per_s: how fast its current request rises.
        contactor_delay_s: from "connector locked" to its contactors closing (insulation test
            time; [OI] waits 10 s, the default here is short for tests).
        protocol_number: 0x102 b0 (2 = CHAdeMO 1.x).
        quirks: how it lays out 0x200 ([BE] raw by default, [RS] inverted).
    """

    capacity_wh: float = 2_000.0
    soc_pct: float = 50.0
    min_voltage_v: float = 300.0
    max_voltage_v: float = 400.0
    target_voltage_v: int = 410
    max_charge_current_a: int = 100
    max_discharge_current_a: int = 50
    min_discharge_soc_pct: float = 20.0
    target_soc_pct: float = 90.0
    v2h: bool = True
    ramp_a_per_s: float = 200.0
    contactor_delay_s: float = 0.3
    protocol_number: int = 2
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self) -> None:
        Battery.at_soc(self.capacity_wh, self.soc_pct, self.min_voltage_v, self.max_voltage_v)
        if self.capacity_wh > 0xFFFF * 100:
            raise ValueError(f"capacity_wh {self.capacity_wh!r} does not fit 0x101 b5-6")
        if not 0 <= self.target_voltage_v <= 0xFFFF:
            raise ValueError(f"target_voltage_v {self.target_voltage_v!r} outside 0..65535")
        for name in ("max_charge_current_a", "max_discharge_current_a"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} {value!r} outside 0..255 A")
        for name in ("min_discharge_soc_pct", "target_soc_pct"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ValueError(f"{name} {value!r} outside 0..100")
        if self.ramp_a_per_s <= 0 or self.contactor_delay_s < 0:
            raise ValueError("ramp_a_per_s must be > 0 and contactor_delay_s >= 0")

    def battery(self) -> Battery:
        """The battery at plug-in."""
        return Battery.at_soc(
            self.capacity_wh, self.soc_pct, self.min_voltage_v, self.max_voltage_v
        )


class InjectedFault(StrEnum):
    """What the simulated vehicle can be told to do wrong (``inject_fault``)."""

    STOP_REQUEST = "stop_request"  # 0x102 b5 bit4
    OVERVOLTAGE = "overvoltage"  # 0x102 b4 bit0
    UNDERVOLTAGE = "undervoltage"  # 0x102 b4 bit1
    CURRENT_DEVIATION = "current_deviation"  # 0x102 b4 bit2
    HIGH_TEMPERATURE = "high_temperature"  # 0x102 b4 bit3
    VOLTAGE_DEVIATION = "voltage_deviation"  # 0x102 b4 bit4
    SYSTEM_FAULT = "system_fault"  # 0x102 b5 bit2
    SHIFT_LEVER = "shift_lever"  # 0x102 b5 bit1
    INCOMPATIBLE_VOLTAGE = "incompatible_voltage"  # 0x102 b1-2 above the charger's 0x108 b1-2
    SILENCE = "silence"  # stops sending altogether


_FAULT_FLAGS: dict[InjectedFault, VehicleFault] = {
    InjectedFault.OVERVOLTAGE: VehicleFault.BATTERY_OVERVOLTAGE,
    InjectedFault.UNDERVOLTAGE: VehicleFault.BATTERY_UNDERVOLTAGE,
    InjectedFault.CURRENT_DEVIATION: VehicleFault.BATTERY_CURRENT_DEVIATION,
    InjectedFault.HIGH_TEMPERATURE: VehicleFault.HIGH_BATTERY_TEMPERATURE,
    InjectedFault.VOLTAGE_DEVIATION: VehicleFault.BATTERY_VOLTAGE_DEVIATION,
}
_STATUS_FLAGS: dict[InjectedFault, VehicleStatus] = {
    InjectedFault.STOP_REQUEST: VehicleStatus.NORMAL_STOP_REQUEST,
    InjectedFault.SYSTEM_FAULT: VehicleStatus.CHARGING_SYSTEM_FAULT,
    InjectedFault.SHIFT_LEVER: VehicleStatus.SHIFT_LEVER_NOT_PARK,
}
_CHARGER_STOP_BITS = (
    ChargerStatus.CHARGER_MALFUNCTION
    | ChargerStatus.BATTERY_INCOMPATIBLE
    | ChargerStatus.CHARGING_SYSTEM_MALFUNCTION
)


class VehiclePhase(StrEnum):
    """Where the vehicle is in its sequence."""

    UNPLUGGED = "Unplugged"
    WAITING = "Waiting"  # plugged, sending, waiting for the charger's 0x108
    ENABLED = "Enabled"  # charging enabled, waiting for the connector lock
    LOCKED = "Locked"  # connector locked, insulation test time before the contactors close
    ENERGY = "Energy"  # contactors closed: charging or discharging as the charger drives
    STOPPING = "Stopping"  # asking 0 A, waiting for the current to fall before opening
    FINISHED = "Finished"  # contactors open after a session; unplug to start again


# --- the vehicle's protocol (sans-IO) -----------------------------------------------------------


class VehicleCore:
    """The vehicle's side of the sequence. No I/O: frames in, frames out, time passed in.

    Call :meth:`receive` with every charger frame and :meth:`tick` every 100 ms; ``tick``
    integrates the energy since the previous call and returns the frames to send now (none when
    unplugged or silenced).
    """

    def __init__(self) -> None:
        self._reset(ChademoVehicleSpec())

    def _reset(self, spec: ChademoVehicleSpec) -> None:
        self.spec = spec
        self.phase = VehiclePhase.UNPLUGGED
        self.battery = spec.battery()
        self.faults: set[InjectedFault] = set()
        self.stop_reason: str | None = None
        self.current_request_a = 0.0
        self.charged_wh = 0.0
        self.discharged_wh = 0.0
        self.charger: Charger108 | None = None
        self.charger_status: Charger109 | None = None
        self.charger_discharge: Charger208 | None = None
        self.charger_sequence: Charger209 | None = None
        self._charging_seen = False
        self._locked_at: float | None = None
        self._last_tick: float | None = None

    # inputs from outside (the sim control)

    def plug(self, spec: ChademoVehicleSpec, now: float) -> None:
        """Plug in a vehicle described by ``spec``.

        Raises:
            RuntimeError: already plugged (unplug first).
        """
        if self.phase is not VehiclePhase.UNPLUGGED:
            raise RuntimeError("a vehicle is already plugged in; unplug it first")
        self._reset(spec)
        self.phase = VehiclePhase.WAITING
        self._last_tick = now

    def unplug(self) -> None:
        """Unplug (contactors open, silence). The battery keeps its charge for status()."""
        self.phase = VehiclePhase.UNPLUGGED
        self.current_request_a = 0.0
        self._locked_at = None

    def request_stop(self) -> None:
        """The driver stops the session from the car (0x102 b5 bit4, normal stop request)."""
        self.inject_fault(InjectedFault.STOP_REQUEST)

    def inject_fault(self, kind: InjectedFault) -> None:
        """Start misbehaving as ``kind`` says; stays until :meth:`clear_faults` or unplug."""
        self.faults.add(InjectedFault(kind))
        if kind is not InjectedFault.SILENCE and kind is not InjectedFault.INCOMPATIBLE_VOLTAGE:
            self._stop(kind.value)

    def clear_faults(self) -> None:
        """Stop misbehaving (a silenced vehicle talks again)."""
        self.faults.clear()

    # inputs from the bus

    def receive(self, frame: Frame) -> None:
        """Take one charger frame (vehicle frames, echoed by nobody, are ignored)."""
        if isinstance(frame, Charger108):
            self.charger = frame
        elif isinstance(frame, Charger109):
            self.charger_status = frame
        elif isinstance(frame, Charger208):
            self.charger_discharge = frame
        elif isinstance(frame, Charger209):
            self.charger_sequence = frame

    # the cycle

    def tick(self, now: float) -> list[Frame]:
        """Advance to ``now`` (monotonic seconds) and return the frames to send now."""
        if self.phase is VehiclePhase.UNPLUGGED:
            self._last_tick = now
            return []
        self._integrate(now)
        self._advance(now)
        if InjectedFault.SILENCE in self.faults:
            return []
        return self.frames()

    def _integrate(self, now: float) -> None:
        last, self._last_tick = self._last_tick, now
        if last is None or self.phase not in (VehiclePhase.ENERGY, VehiclePhase.STOPPING):
            return
        dt_s = min(_MAX_STEP_S, max(0.0, now - last))
        power_w = self.present_power_w
        if power_w == 0.0 or dt_s == 0.0:
            return
        self.battery, moved_wh = self.battery.transfer(power_w * dt_s / 3600.0)
        if moved_wh > 0:
            self.charged_wh += moved_wh
        else:
            self.discharged_wh -= moved_wh

    @property
    def present_power_w(self) -> float:
        """The power the charger says it moves now, signed (+ into the vehicle)."""
        if self.phase not in (VehiclePhase.ENERGY, VehiclePhase.STOPPING):
            return 0.0
        status = self.charger_status
        if status is None:
            return 0.0
        voltage_v = float(status.present_output_voltage_v)
        power_w = voltage_v * status.present_output_current_a
        discharge = self.charger_discharge
        if discharge is not None and status.discharge_compatible:
            power_w -= voltage_v * discharge.present_discharge_current_a
        return power_w

    def _advance(self, now: float) -> None:
        status = self.charger_status.status if self.charger_status else ChargerStatus(0)
        if self.phase is VehiclePhase.WAITING and self.charger is not None:
            self.phase = VehiclePhase.ENABLED  # [OI] SetEnabled(true)
        if self.phase is VehiclePhase.ENABLED and status & ChargerStatus.CONNECTOR_LOCKED:
            self.phase = VehiclePhase.LOCKED
            self._locked_at = now
        if (
            self.phase is VehiclePhase.LOCKED
            and self._locked_at is not None
            and now - self._locked_at >= self.spec.contactor_delay_s
        ):
            self.phase = VehiclePhase.ENERGY  # [OI] SetContactor(true)
        if self.phase in (VehiclePhase.ENABLED, VehiclePhase.LOCKED, VehiclePhase.ENERGY):
            if status & _CHARGER_STOP_BITS:
                self._stop(f"charger status {status!r}")
            elif self._charging_seen and status & ChargerStatus.STOP_CONTROL:
                self._stop("charger stop control")
            elif self._locked_at is not None and not status & ChargerStatus.CONNECTOR_LOCKED:
                self._stop("connector unlocked")
        if self.phase is VehiclePhase.ENERGY:
            if status & ChargerStatus.CHARGING:
                self._charging_seen = True
            if self.battery.soc_pct >= self.spec.target_soc_pct and not self._discharging:
                self._stop("target SoC reached")
            else:
                self._ramp()
        if self.phase is VehiclePhase.STOPPING:
            self.current_request_a = 0.0
            if self._charger_current_a <= STOPPED_CURRENT_A:
                self.phase = VehiclePhase.FINISHED
                log.info("sim CHAdeMO vehicle: contactors open (%s)", self.stop_reason)

    @property
    def _discharging(self) -> bool:
        discharge = self.charger_discharge
        return discharge is not None and discharge.present_discharge_current_a > 0

    @property
    def _charger_current_a(self) -> int:
        status = self.charger_status
        charge = status.present_output_current_a if status else 0
        discharge = self.charger_discharge
        discharge_a = discharge.present_discharge_current_a if discharge is not None else 0
        return max(charge, discharge_a)

    def _ramp(self) -> None:
        wanted = float(self.spec.max_charge_current_a)
        step = self.spec.ramp_a_per_s * PERIOD_S
        self.current_request_a = min(wanted, self.current_request_a + step)

    def _stop(self, reason: str) -> None:
        if self.phase in (VehiclePhase.UNPLUGGED, VehiclePhase.STOPPING, VehiclePhase.FINISHED):
            return
        if self.phase is not VehiclePhase.ENERGY:
            self.phase = VehiclePhase.FINISHED
        else:
            self.phase = VehiclePhase.STOPPING
        self.stop_reason = reason
        self.current_request_a = 0.0
        log.info("sim CHAdeMO vehicle: stopping (%s)", reason)

    # what it says

    @property
    def contactors_closed(self) -> bool:
        """The vehicle's own contactors (0x102 b5 bit3 clear)."""
        return self.phase in (VehiclePhase.ENERGY, VehiclePhase.STOPPING)

    @property
    def max_discharge_current_a(self) -> int:
        """0x200 b0 now: the spec's limit above the minimum SoC, else 0."""
        if not self.spec.v2h or self.battery.soc_pct <= self.spec.min_discharge_soc_pct:
            return 0
        if self.phase not in (VehiclePhase.ENABLED, VehiclePhase.LOCKED, VehiclePhase.ENERGY):
            return 0
        return self.spec.max_discharge_current_a

    def target_voltage_v(self) -> int:
        """0x102 b1-2: the spec's, or above the charger's available voltage when told to."""
        if InjectedFault.INCOMPATIBLE_VOLTAGE in self.faults:
            available = self.charger.available_output_voltage_v if self.charger else 0
            return min(0xFFFF, max(self.spec.target_voltage_v, available) + 100)
        return self.spec.target_voltage_v

    def frames(self) -> list[Frame]:
        """The vehicle's frames for this cycle."""
        spec = self.spec
        status = VehicleStatus(0)
        if self.phase in (VehiclePhase.ENABLED, VehiclePhase.LOCKED, VehiclePhase.ENERGY):
            status |= VehicleStatus.CHARGING_ENABLED
        if not self.contactors_closed:
            status |= VehicleStatus.VEHICLE_CONTACTOR_OPEN
        if spec.v2h:
            status |= VehicleStatus.DISCHARGE_COMPATIBLE
        faults = VehicleFault(0)
        for kind in self.faults:
            faults |= _FAULT_FLAGS.get(kind, VehicleFault(0))
            status |= _STATUS_FLAGS.get(kind, VehicleStatus(0))
        soc = round(self.battery.soc_pct)
        frames: list[Frame] = [
            Vehicle100(
                minimum_charge_current_a=0,
                minimum_battery_voltage_v=math.floor(spec.min_voltage_v),
                maximum_battery_voltage_v=max(math.ceil(spec.max_voltage_v), spec.target_voltage_v),
                charged_rate_reference_pct=100,
            ),
            Vehicle101(
                max_charging_time_10s=None,
                max_charging_time_min=90,
                estimated_charging_time_min=self._estimated_minutes(),
                capacity_kwh=round(spec.capacity_wh / 100) / 10,
            ),
            Vehicle102(
                protocol_number=spec.protocol_number,
                target_voltage_v=self.target_voltage_v(),
                charging_current_request_a=math.floor(self.current_request_a),
                faults=faults,
                status=status,
                soc_pct=min(100, max(0, soc)),
            ),
        ]
        if spec.v2h:
            frames.append(
                Vehicle200(
                    max_discharge_current_a=self.max_discharge_current_a,
                    min_discharge_voltage_v=math.floor(spec.min_voltage_v),
                    min_battery_discharge_level_pct=round(spec.min_discharge_soc_pct),
                    max_remaining_capacity_for_charging_pct=round(spec.target_soc_pct),
                )
            )
            sequence = self.charger_sequence.sequence_control_number if self.charger_sequence else 0
            frames.append(
                Vehicle201(
                    sequence_number=sequence,
                    approx_discharge_completion_time_raw=0,
                    available_vehicle_energy_raw=min(0xFFFF, round(self._dischargeable_wh())),
                )
            )
        return frames

    def _estimated_minutes(self) -> int:
        missing_wh = max(0.0, self.spec.target_soc_pct - self.battery.soc_pct)
        missing_wh *= self.spec.capacity_wh / 100
        power_w = self.battery.voltage_v * max(1, self.spec.max_charge_current_a)
        return min(0xFE, math.ceil(60 * missing_wh / power_w))

    def _dischargeable_wh(self) -> float:
        floor_wh = self.spec.capacity_wh * self.spec.min_discharge_soc_pct / 100
        return max(0.0, self.battery.energy_wh - floor_wh)

    def status(self) -> dict[str, Any]:
        """Everything worth showing, JSON-ready."""
        charger = self.charger_status
        return {
            "phase": self.phase.value,
            "plugged": self.phase is not VehiclePhase.UNPLUGGED,
            "soc_pct": round(self.battery.soc_pct, 3),
            "battery_voltage_v": round(self.battery.voltage_v, 1),
            "energy_wh": round(self.battery.energy_wh, 3),
            "charged_wh": round(self.charged_wh, 3),
            "discharged_wh": round(self.discharged_wh, 3),
            "current_request_a": math.floor(self.current_request_a),
            "max_discharge_current_a": self.max_discharge_current_a,
            "present_power_w": self.present_power_w,
            "contactors_closed": self.contactors_closed,
            "faults": sorted(f.value for f in self.faults),
            "stop_reason": self.stop_reason,
            "charger_status": None if charger is None else int(charger.status),
            "v2h": self.spec.v2h,
        }


# --- the CAN node (shell) -----------------------------------------------------------------------


class SimChademoVehicle:
    """The simulated vehicle as its own CAN node on ``channel``.

    Use inside a running loop::

        vehicle = SimChademoVehicle(SystemClock(), interface="virtual", channel="evse1")
        vehicle.start()
        vehicle.plug(ChademoVehicleSpec(soc_pct=30))
        ...
        await vehicle.close()
    """

    def __init__(
        self,
        clock: Clock,
        *,
        interface: str = "virtual",
        channel: str = "chademo",
        bus: can.BusABC | None = None,
        period_s: float = PERIOD_S,
    ) -> None:
        """Create the node; nothing happens before :meth:`start`.

        Args:
            clock: time for the energy integration and the vehicle's delays (monotonic).
            interface: python-can interface of its own bus (ignored when ``bus`` is given).
            channel: the channel it shares with the station.
            bus: an already open bus to use instead (closed by :meth:`close`).
            period_s: its send period.
        """
        self._clock = clock
        self._bus = bus if bus is not None else can.Bus(interface=interface, channel=channel)
        self._period_s = period_s
        self.core = VehicleCore()
        self._notifier: can.Notifier | None = None
        self._task: asyncio.Task[None] | None = None
        self.frames_sent = 0
        self.bad_frames = 0

    def start(self) -> None:
        """Start listening and the 100 ms send loop on the running loop."""
        loop = asyncio.get_running_loop()
        self._notifier = can.Notifier(self._bus, [self._on_message], timeout=0.1, loop=loop)
        self._task = loop.create_task(self._run(), name="sim-chademo-vehicle")

    async def close(self) -> None:
        """Stop the send loop, the notifier and the bus."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None
        self._bus.shutdown()

    # the driver's side

    def plug(self, spec: ChademoVehicleSpec | None = None) -> None:
        """Plug a vehicle in (``spec`` or the default one); frames start on the next cycle.

        Raises:
            RuntimeError: already plugged.
        """
        self.core.plug(spec or ChademoVehicleSpec(), self._clock.monotonic())
        log.info("sim CHAdeMO vehicle plugged (SoC %.1f %%)", self.core.battery.soc_pct)

    def unplug(self) -> None:
        """Unplug: the vehicle falls silent."""
        self.core.unplug()
        log.info("sim CHAdeMO vehicle unplugged")

    def request_stop(self) -> None:
        """Stop from the car (0x102 b5 bit4)."""
        self.core.request_stop()

    def inject_fault(self, kind: InjectedFault | str) -> None:
        """Misbehave (see :class:`InjectedFault`).

        Raises:
            ValueError: ``kind`` is not a known fault.
        """
        self.core.inject_fault(InjectedFault(kind))
        log.info("sim CHAdeMO vehicle: fault %s injected", kind)

    def clear_faults(self) -> None:
        """Behave again."""
        self.core.clear_faults()

    @property
    def plugged(self) -> bool:
        """A vehicle is plugged in."""
        return self.core.phase is not VehiclePhase.UNPLUGGED

    @property
    def battery_voltage_v(self) -> float:
        """The pack voltage now (what a DC output sees once the contactors are closed)."""
        return self.core.battery.voltage_v

    @property
    def contactors_closed(self) -> bool:
        """The vehicle's contactors are closed."""
        return self.core.contactors_closed

    def status(self) -> dict[str, Any]:
        """The vehicle's state, JSON-ready (see :meth:`VehicleCore.status`)."""
        return {**self.core.status(), "frames_sent": self.frames_sent}

    # the node

    def _on_message(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame or msg.arbitration_id not in CHARGER_FRAME_IDS:
            return
        try:
            frame = decode_frame(msg.arbitration_id, bytes(msg.data), self.core.spec.quirks)
        except FrameError as exc:
            self.bad_frames += 1
            log.warning("sim CHAdeMO vehicle: bad charger frame: %s", exc)
            return
        if frame is not None:
            self.core.receive(frame)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            for frame in self.core.tick(self._clock.monotonic()):
                self._send(frame)
            next_at += self._period_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind: keep the period, skip the missed cycles
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    def _send(self, frame: Frame) -> None:
        message = can.Message(
            arbitration_id=frame.ARBITRATION_ID,
            data=frame.encode(self.core.spec.quirks),
            is_extended_id=False,
        )
        try:
            self._bus.send(message)
        except can.CanError as exc:
            log.warning("sim CHAdeMO vehicle: send failed: %s", exc)
            return
        self.frames_sent += 1


class SimDcPath:
    """The DC path between the station's simulated hardware and the simulated vehicle.

    It is the station's :class:`~station.chademo.evse.DcMeter`: the measured voltage is the
    battery's once both sides' contactors are closed (0 otherwise, or the battery's with
    ``welded`` set: a welded station contactor keeps the output live), and the current is the
    station's commanded current while the path is closed. The vehicle reads the result back from
    the station's 0x109/0x208, as a real car would.
    """

    def __init__(self, hardware: SimHardware, vehicle: SimChademoVehicle) -> None:
        self.hardware = hardware
        self.vehicle = vehicle
        self.welded = False

    def measure(self) -> tuple[float, float]:
        """``(voltage_v, current_a)`` at the station's output, current + into the vehicle."""
        vehicle_closed = self.vehicle.contactors_closed
        station_closed = self.hardware.contactors_closed or self.welded
        if not (vehicle_closed and station_closed):
            return 0.0, 0.0
        current_a = self.hardware.current_a if self.hardware.contactors_closed else 0.0
        return self.vehicle.battery_voltage_v, current_a


# --- station sim ---------------------------------------------------------------------------------

_PLUG_ARGS = frozenset({"evse", "soc_pct", "capacity_kwh", "v2h", "target_soc_pct"})


def register_commands(control: ControlServer, vehicles: Mapping[int, SimChademoVehicle]) -> None:
    """``station sim`` commands for the simulated CHAdeMO vehicles (one per CHAdeMO EVSE).

    ``chademo_plug {evse, soc_pct?, capacity_kwh?, v2h?, target_soc_pct?}``, ``chademo_unplug``,
    ``chademo_stop`` (the driver's stop request), ``chademo_fault {evse, kind}`` (see
    :class:`InjectedFault`), ``chademo_clear`` and ``chademo_status``, each with ``evse``. Every
    argument is checked before anything changes; a bad one is a :class:`CommandError`.
    """

    def vehicle_of(args: Mapping[str, Any], allowed: frozenset[str]) -> SimChademoVehicle:
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise CommandError(f"unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
        evse = args.get("evse")
        if isinstance(evse, bool) or not isinstance(evse, int) or evse not in vehicles:
            raise CommandError(f'"evse" must be one of {sorted(vehicles)}')
        return vehicles[evse]

    def number(args: Mapping[str, Any], name: str, default: float) -> float:
        value = args.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise CommandError(f'"{name}" must be a number')
        return float(value)

    def plug(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = vehicle_of(args, _PLUG_ARGS)
        if vehicle.plugged:
            raise CommandError("a vehicle is already plugged in; unplug it first")
        base = ChademoVehicleSpec()
        v2h = args.get("v2h", base.v2h)
        if not isinstance(v2h, bool):
            raise CommandError('"v2h" must be true or false')
        try:
            spec = replace(
                base,
                soc_pct=number(args, "soc_pct", base.soc_pct),
                capacity_wh=number(args, "capacity_kwh", base.capacity_wh / 1000) * 1000,
                target_soc_pct=number(args, "target_soc_pct", base.target_soc_pct),
                v2h=v2h,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        vehicle.plug(spec)
        return vehicle.status()

    def unplug(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = vehicle_of(args, frozenset({"evse"}))
        vehicle.unplug()
        return vehicle.status()

    def plugged(args: Mapping[str, Any], allowed: frozenset[str]) -> SimChademoVehicle:
        vehicle = vehicle_of(args, allowed)
        if not vehicle.plugged:
            raise CommandError("no vehicle is plugged in")
        return vehicle

    def stop(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = plugged(args, frozenset({"evse"}))
        vehicle.request_stop()
        return vehicle.status()

    def fault(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = plugged(args, frozenset({"evse", "kind"}))
        kinds = [k.value for k in InjectedFault]
        kind = args.get("kind")
        if kind not in kinds:
            raise CommandError(f'"kind" must be one of {kinds}')
        vehicle.inject_fault(InjectedFault(kind))
        return vehicle.status()

    def clear(args: Mapping[str, Any]) -> dict[str, Any]:
        vehicle = vehicle_of(args, frozenset({"evse"}))
        vehicle.clear_faults()
        return vehicle.status()

    def status(args: Mapping[str, Any]) -> dict[str, Any]:
        return vehicle_of(args, frozenset({"evse"})).status()

    control.register("chademo_plug", plug, "plug a CHAdeMO vehicle in: evse, soc_pct, ...")
    control.register("chademo_unplug", unplug, "unplug the CHAdeMO vehicle: evse")
    control.register("chademo_stop", stop, "the CHAdeMO vehicle asks to stop: evse")
    control.register("chademo_fault", fault, "the CHAdeMO vehicle misbehaves: evse, kind")
    control.register("chademo_clear", clear, "the CHAdeMO vehicle behaves again: evse")
    control.register("chademo_status", status, "the CHAdeMO vehicle's state: evse")
