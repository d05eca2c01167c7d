"""The optional hardware links, composed for :mod:`station.app`: the inverter and its grid.

``app.py`` stays the composition root; this module holds the part of it that exists only when
``[inverter] link`` is not ``"none"``: the simulated SunSpec inverter (``"simulated"``) or the
Modbus client of a real one (``"hardware"``), the :class:`InverterSupervisor` that runs it with
the grid protection, the power port that makes the inverter follow the EVSE commands, and the
``station sim`` commands for the grid and the inverter.

Sign (DESIGN.md): every power here is seen from the vehicles; the inverter's set-point is the
sum of the EVSE power commands (what the vehicles take comes through the inverter from the grid,
what they give goes back through it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from station.clock import Clock
from station.config import Config, InverterConfig, LinkKind
from station.inverter.device import (
    InverterOptions,
    InverterPort,
    SunSpecInverter,
)
from station.inverter.modbus import ModbusLink, ModbusSerial, ModbusSettings, ModbusTcp
from station.inverter.protection import GridProtection
from station.inverter.supervisor import InverterSupervisor
from station.power import PowerCommand
from station.sim.control import CommandError, ControlServer
from station.sim.inverter import SimFault, SimInverter, SimInverterSpec
from station.smartcharging.service import PowerPort
from station.transactions import MeterReading
from station.transactions.service import EvsePort

if TYPE_CHECKING:
    from station.der.protection import DerProtection
    from station.der.service import DerService
    from station.der.volt_curves import DerVoltCurves

__all__ = ["InverterFollowingPort", "InverterLinks", "InverterMeteredEvse"]

log = logging.getLogger(__name__)

# ``station sim inverter-fault KIND``: the command line's words for the simulated faults.
_FAULTS = {
    "no-answer": SimFault.NO_ANSWER,
    "refuse-write": SimFault.REFUSE_WRITES,
    "wrong-readback": SimFault.WRONG_READBACK,
    "not-following": SimFault.NOT_FOLLOWING,
}


def inverter_options(config: InverterConfig) -> InverterOptions:
    """Set-and-verify, heartbeat and fail-safe settings from ``[inverter]``."""
    return InverterOptions(
        write_retries=config.write_retries,
        tolerance_w=config.tolerance_w,
        tolerance_pct=config.tolerance_pct,
        settle_timeout_s=config.settle_timeout_s,
        poll_interval_s=max(config.poll_interval_s, 0.1),
        heartbeat_interval_s=config.heartbeat_interval_s,
        reversion_timeout_s=config.reversion_timeout_s,
    )


class InverterLinks:
    """The inverter of one station run: its simulator (if any) and its supervisor.

    Args:
        config: the station's configuration (``[inverter]``, ``[grid]``, the EVSE ratings).
        clock: the station's clock.
    """

    def __init__(self, config: Config, clock: Clock) -> None:
        inverter = config.inverter
        self.config = inverter
        self.clock = clock
        charge_w = sum(e.max_charge_power_w for e in config.evse)
        discharge_w = sum(e.max_discharge_power_w for e in config.evse)
        self.rating_w = max(charge_w, discharge_w)
        self.sim: SimInverter | None = None
        if inverter.link is LinkKind.SIMULATED:
            self.sim = SimInverter(
                SimInverterSpec(
                    base_address=inverter.sim_base_address,
                    legacy=inverter.sim_legacy,
                    device_id=inverter.device_id,
                    max_power_w=max(self.rating_w, 1.0),
                    time_constant_s=inverter.sim_time_constant_s,
                    voltage_v=config.grid.nominal_voltage_v,
                    frequency_hz=config.grid.nominal_frequency_hz,
                    volt_curves=not inverter.sim_legacy,
                ),
                clock=clock,
            )
        self.supervisor = InverterSupervisor(
            connect=self._connect,
            protection=GridProtection(config.grid.protection_settings()),
            clock=clock,
            poll_interval_s=inverter.poll_interval_s,
            rating_w=self.rating_w,
            fault_retry_s=inverter.fault_retry_s,
        )
        self.der_protection: DerProtection | None = None
        self.der_volt_curves: DerVoltCurves | None = None

    def attach_der(self, der: DerService) -> None:
        """Carry out the DER controls that act on the grid protection (EnterService, the
        must-trip curves) and check FreqDroop against this grid (:mod:`station.der.protection`);
        write the active VoltVar / VoltWatt curves to the inverter's 705/706 on every change and
        on every connection (:mod:`station.der.volt_curves`).
        """
        from station.der.protection import DerProtection
        from station.der.volt_curves import DerVoltCurves

        protection = self.supervisor.protection
        self.der_protection = DerProtection(der, protection, protection.settings)
        self.der_volt_curves = DerVoltCurves(der, lambda: self.supervisor.port)

    def _modbus(self) -> ModbusSettings:
        inverter = self.config
        transport: ModbusTcp | ModbusSerial
        if self.sim is not None:
            transport = ModbusTcp("127.0.0.1", self.sim.port)
        elif inverter.transport == "rtu":
            transport = ModbusSerial(
                inverter.serial_device,
                baudrate=inverter.baudrate,
                parity=inverter.parity,
                stopbits=inverter.stopbits,
            )
        else:
            transport = ModbusTcp(inverter.host, inverter.port)
        return ModbusSettings(transport, device_id=inverter.device_id, timeout_s=inverter.timeout_s)

    async def _connect(self) -> InverterPort:
        options = inverter_options(self.config)
        on_fault = self.supervisor.port_fault
        if self.config.register_map is not None:
            from station.inverter.vendor import (
                VendorInverter,
                VendorModbusLink,
                load_register_map,
            )

            vendor_link = VendorModbusLink(self._modbus(), clock=self.clock)
            register_map = load_register_map(self.config.register_map)
            return VendorInverter(
                vendor_link, register_map, clock=self.clock, options=options, on_fault=on_fault
            )
        link = ModbusLink(self._modbus(), clock=self.clock)
        try:
            port = await SunSpecInverter.open(
                link, clock=self.clock, options=options, on_fault=on_fault
            )
        except BaseException:
            await link.close()
            raise
        if self.der_volt_curves is not None:
            await self.der_volt_curves.sync(port)
        return port

    async def start(self) -> None:
        """Start the simulated inverter (before the supervisor connects to it)."""
        if self.sim is not None:
            await self.sim.start()

    async def stop(self) -> None:
        if self.sim is not None:
            await self.sim.stop()

    def status(self) -> dict[str, Any]:
        """``station sim status``: the supervisor's view, and the simulated device's own."""
        status = self.supervisor.status()
        if self.sim is not None:
            status["device"] = self.sim.status()
        return status

    def register_commands(self, control: ControlServer) -> None:
        """``station sim grid`` and ``station sim inverter-fault`` for the simulated inverter."""
        sim = self.sim
        if sim is None:
            return

        def grid(args: Mapping[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(args) - {"frequency_hz", "voltage_v", "ramp_s"})
            if unknown:
                raise CommandError(
                    f"unknown argument(s) {unknown}; allowed: frequency_hz, voltage_v, ramp_s"
                )
            values: dict[str, float | None] = {}
            for name, low, high in (
                ("frequency_hz", 0.0, 100.0),
                ("voltage_v", 0.0, 2000.0),
                ("ramp_s", 0.0, 3600.0),
            ):
                value = args.get(name)
                if value is None:
                    values[name] = None
                    continue
                number_ok = isinstance(value, int | float) and not isinstance(value, bool)
                if not number_ok or not math.isfinite(value) or not low <= value <= high:
                    raise CommandError(f'"{name}" must be a number from {low:g} to {high:g}')
                values[name] = float(value)
            if values["frequency_hz"] is None and values["voltage_v"] is None:
                raise CommandError('give "frequency_hz" and/or "voltage_v"')
            sim.set_grid(values["frequency_hz"], values["voltage_v"], values["ramp_s"])
            log.info("sim grid: %s", {k: v for k, v in values.items() if v is not None})
            return {"grid": {"frequency_hz": sim.frequency_hz, "voltage_v": sim.voltage_v}}

        def inverter_fault(args: Mapping[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(args) - {"kind"})
            if unknown:
                raise CommandError(f"unknown argument(s) {unknown}; allowed: kind")
            kind = args.get("kind")
            choices = ", ".join([*_FAULTS, "clear"])
            if kind == "clear":
                sim.clear_fault()
                return {"fault": None}
            if not isinstance(kind, str) or kind not in _FAULTS:
                raise CommandError(f'"kind" must be one of {choices}')
            sim.inject_fault(_FAULTS[kind])
            return {"fault": kind}

        control.register(
            "grid",
            grid,
            'step or ramp the simulated grid: {"frequency_hz"?: Hz, "voltage_v"?: V, "ramp_s"?: s}',
        )
        control.register(
            "inverter_fault",
            inverter_fault,
            'the simulated inverter misbehaves: {"kind": "no-answer"|"refuse-write"|'
            '"wrong-readback"|"not-following"|"clear"}',
        )


class InverterFollowingPort:
    """The energy manager's power port: the EVSEs get their commands, the inverter the sum.

    An EVSE whose inverter is its DC power stage (a hardware CHAdeMO EVSE) registers a cap in
    ``caps``: its share of the set-point is then ``caps[evse_id](command_w)`` (never more than
    its session allows now), and it calls :meth:`refresh` when that allowance changes.

    Args:
        inner: the EVSE power port (it keeps ``last``, the newest command per EVSE).
        supervisor: the inverter's supervisor.
    """

    def __init__(self, inner: PowerPort, supervisor: InverterSupervisor) -> None:
        self.inner = inner
        self.supervisor = supervisor
        self.last: dict[int, PowerCommand] = {}
        self.caps: dict[int, Callable[[float], float]] = {}

    def apply(self, command: PowerCommand) -> None:
        self.inner.apply(command)
        self.last[command.evse_id] = command
        self.refresh()

    def refresh(self) -> None:
        """Send the sum of the (capped) EVSE commands to the inverter again."""
        total_w = 0.0
        for evse_id, command in self.last.items():
            cap = self.caps.get(evse_id)
            total_w += command.power_w if cap is None else cap(command.power_w)
        self.supervisor.set_setpoint(total_w)


class InverterMeteredEvse:
    """An EVSE port whose meter is the inverter's registers (a station with one EVSE).

    Everything but the meter is the inner port's (the vehicle's power path and lock); the
    reading carries the inner port's SoC.
    """

    def __init__(self, inner: EvsePort, supervisor: InverterSupervisor) -> None:
        self.inner = inner
        self.supervisor = supervisor

    def read_meter(self, now: datetime) -> MeterReading:
        reading = self.supervisor.read_meter(now)
        soc = self.inner.read_meter(now).soc_pct
        if soc is None:
            return reading
        return replace(reading, soc_pct=soc)

    def close_power_path(self) -> None:
        self.inner.close_power_path()

    def open_power_path(self) -> None:
        self.inner.open_power_path()

    def unlock_connector(self, connector_id: int) -> None:
        self.inner.unlock_connector(connector_id)

    @property
    def plugged(self) -> bool:
        return self.inner.plugged
