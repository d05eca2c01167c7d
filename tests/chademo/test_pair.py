"""Pair tests: the station's CHAdeMO EVSE (session + CAN adapter + simulated hardware) against the
simulated vehicle, each on its own python-can ``virtual`` bus on one channel, in real time.

Every path ends with the station's contactors open and its output at 0 A.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import can
import pytest

from station.chademo.evse import ChademoEvse
from station.chademo.hardware import SimHardware
from station.chademo.session import (
    EnergyFlowStarted,
    FaultDetected,
    FlowDirection,
    Output,
    SessionConfig,
    SessionEnded,
    SessionState,
    SessionStopped,
    StopReason,
    VehicleConnected,
)
from station.clock import SystemClock
from station.power import PowerCommand
from station.power.core import OperationMode, Reason
from station.sim.chademo_vehicle import (
    ChademoVehicleSpec,
    InjectedFault,
    SimChademoVehicle,
    SimDcPath,
    VehiclePhase,
)

T = TypeVar("T")

CONFIG = SessionConfig(
    max_voltage_v=500,
    max_current_a=125,
    max_discharge_current_a=50,
    vehicle_timeout_s=1.0,
    handshake_timeout_s=10.0,
)


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left running: {extra}")


@dataclass
class Pair:
    evse: ChademoEvse
    vehicle: SimChademoVehicle
    hardware: SimHardware
    path: SimDcPath
    reports: list[Output] = field(default_factory=list)

    async def until(self, what: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; evse={self.evse.status()} vehicle={self.vehicle.status()}"
                )
            await asyncio.sleep(0.02)

    def of(self, kind: type[T]) -> list[T]:
        return [r for r in self.reports if isinstance(r, kind)]

    def output_currents(self) -> list[float]:
        return [
            float(m.group(2))
            for c in self.hardware.commands
            if (m := re.fullmatch(r"output (\S+) (\S+)", c))
        ]

    def assert_safe(self) -> None:
        assert not self.hardware.contactors_closed
        assert self.hardware.current_a == 0
        assert self.path.measure() == (0.0, 0.0)


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    channel = f"test-pair-{uuid.uuid4().hex[:8]}"
    clock = SystemClock()
    hardware = SimHardware()
    vehicle = SimChademoVehicle(clock, interface="virtual", channel=channel)
    path = SimDcPath(hardware, vehicle)
    evse = ChademoEvse(
        1, hardware, path, clock, config=CONFIG, can_channel=channel, auto_authorize=True
    )
    p = Pair(evse, vehicle, hardware, path)
    evse.subscribe(lambda evse_id, report: p.reports.append(report))
    vehicle.start()
    await evse.start()
    try:
        yield p
    finally:
        await evse.aclose()
        await vehicle.close()
    p.assert_safe()


async def charging(p: Pair, spec: ChademoVehicleSpec, power_w: float) -> None:
    p.evse.set_power_command(power_w)
    p.vehicle.plug(spec)
    flowing = SessionState.CHARGING if power_w > 0 else SessionState.DISCHARGING
    await p.until(lambda: p.evse.state is flowing and p.hardware.current_a != 0)


async def test_full_charge_to_the_vehicles_target(pair: Pair) -> None:
    p = pair
    assert p.evse.vehicle_limits().connected is False
    spec = ChademoVehicleSpec(capacity_wh=200, soc_pct=86, target_soc_pct=90)
    await charging(p, spec, 20_000)
    limits = p.evse.vehicle_limits()
    assert limits.connected and limits.discharge_allowed and limits.soc_pct == 86
    assert limits.max_charge_power_w == 125 * 410
    await p.until(lambda: p.evse.state is SessionState.UNLOCKED, timeout_s=15)
    p.assert_safe()
    assert not p.hardware.locked
    assert p.vehicle.core.phase is VehiclePhase.FINISHED
    assert p.vehicle.core.battery.soc_pct >= 90
    stopped = p.of(SessionStopped)
    assert [s.reason for s in stopped] == [StopReason.VEHICLE_STOP_REQUEST]
    assert [e.direction for e in p.of(EnergyFlowStarted)] == [FlowDirection.CHARGE]
    # The current never exceeded min(request, command / V, station): 20 kW / 410 V.
    assert 0 < max(p.output_currents()) <= 20_000 / 410 + 1e-3  # logged with %g
    assert min(p.output_currents()) >= 0
    # Both sides integrated the same energy (measured V x I against 0x109's V x I).
    charged = p.vehicle.core.charged_wh
    assert charged == pytest.approx(8.0, abs=1.5)
    assert p.evse.energy_import_wh == pytest.approx(charged, rel=0.15)
    assert p.evse.energy_export_wh == 0
    assert p.evse.vehicle_limits().connected is False
    p.vehicle.unplug()
    await p.until(lambda: p.evse.state is SessionState.IDLE)
    assert len(p.of(SessionEnded)) == 1


async def test_full_v2h_discharge_following_a_negative_command(pair: Pair) -> None:
    p = pair
    spec = ChademoVehicleSpec(
        capacity_wh=200, soc_pct=22, min_discharge_soc_pct=20, max_discharge_current_a=40
    )
    command = PowerCommand(
        evse_id=1,
        power_w=-10_000,
        mode=OperationMode.CENTRAL_SETPOINT,
        reason=Reason.SETPOINT,
        charge_ceiling_w=0,
        discharge_ceiling_w=20_000,
    )
    p.evse.apply(command)
    p.vehicle.plug(spec)
    await p.until(lambda: p.evse.state is SessionState.DISCHARGING and p.hardware.current_a < 0)
    limits = p.evse.vehicle_limits()
    assert limits.discharge_allowed and limits.min_soc_pct == 20
    assert limits.max_discharge_current_a == 40
    # The vehicle hears the V2H frames and the energy flows out of its battery.
    await p.until(lambda: p.vehicle.core.present_power_w < 0)
    assert p.vehicle.core.charger_discharge is not None
    await p.until(lambda: p.vehicle.core.max_discharge_current_a == 0, timeout_s=15)
    await p.until(lambda: p.hardware.current_a == 0)
    assert p.vehicle.core.battery.soc_pct == pytest.approx(20, abs=0.5)
    currents = p.output_currents()
    assert min(currents) >= -10_000 / 410 - 1e-3 and max(currents) <= 0
    assert [e.direction for e in p.of(EnergyFlowStarted)] == [FlowDirection.DISCHARGE]
    p.evse.stop(StopReason.REMOTE_STOP)
    await p.until(lambda: p.evse.state is SessionState.UNLOCKED)
    p.assert_safe()
    discharged = p.vehicle.core.discharged_wh
    assert discharged == pytest.approx(4.0, abs=1.0)
    assert p.evse.energy_export_wh == pytest.approx(discharged, rel=0.15)
    assert [s.reason for s in p.of(SessionStopped)] == [StopReason.REMOTE_STOP]


async def test_power_command_zero_keeps_contactors_and_gives_no_power(pair: Pair) -> None:
    p = pair
    await charging(p, ChademoVehicleSpec(capacity_wh=2000, soc_pct=50), 10_000)
    p.evse.set_power_command(0)
    await p.until(lambda: p.evse.state is SessionState.CONTACTORS_CLOSED)
    assert p.hardware.contactors_closed and p.hardware.current_a == 0
    p.evse.set_power_command(5_000)
    await p.until(lambda: p.evse.state is SessionState.CHARGING and p.hardware.current_a > 0)
    assert p.hardware.current_a <= 5_000 / 410 + 1e-9


STOPS = [
    (InjectedFault.STOP_REQUEST, StopReason.VEHICLE_STOP_REQUEST),
    (InjectedFault.OVERVOLTAGE, StopReason.VEHICLE_FAULT),
    (InjectedFault.UNDERVOLTAGE, StopReason.VEHICLE_FAULT),
    (InjectedFault.CURRENT_DEVIATION, StopReason.VEHICLE_FAULT),
    (InjectedFault.HIGH_TEMPERATURE, StopReason.VEHICLE_FAULT),
    (InjectedFault.VOLTAGE_DEVIATION, StopReason.VEHICLE_FAULT),
    (InjectedFault.SYSTEM_FAULT, StopReason.VEHICLE_FAULT),
    (InjectedFault.SHIFT_LEVER, StopReason.SHIFT_LEVER),
    (InjectedFault.SILENCE, StopReason.VEHICLE_TIMEOUT),
]


@pytest.mark.parametrize(("fault", "reason"), STOPS, ids=[f.value for f, _ in STOPS])
async def test_vehicle_side_stops_while_charging(
    pair: Pair, fault: InjectedFault, reason: StopReason
) -> None:
    p = pair
    await charging(p, ChademoVehicleSpec(capacity_wh=2000, soc_pct=50), 20_000)
    p.vehicle.inject_fault(fault)
    # A silent vehicle has left: the session goes on from UNLOCKED to IDLE by itself.
    done = (SessionState.IDLE,) if fault is InjectedFault.SILENCE else (SessionState.UNLOCKED,)
    await p.until(lambda: p.evse.state in done)
    p.assert_safe()
    assert not p.hardware.locked
    assert [s.reason for s in p.of(SessionStopped)] == [reason]
    if fault is InjectedFault.SILENCE:
        assert len(p.of(SessionEnded)) == 1
    else:
        assert p.evse.status()["stop_reason"] == reason.value


async def test_incompatible_target_voltage_never_closes_contactors(pair: Pair) -> None:
    p = pair
    p.vehicle.plug(ChademoVehicleSpec())
    p.vehicle.inject_fault(InjectedFault.INCOMPATIBLE_VOLTAGE)
    await p.until(lambda: bool(p.of(SessionStopped)))
    assert [s.reason for s in p.of(SessionStopped)] == [StopReason.BATTERY_INCOMPATIBLE]
    await p.until(lambda: p.evse.state is SessionState.UNLOCKED)
    assert "close" not in p.hardware.commands
    # The vehicle hears 0x109 b5 bit3 "battery incompatible" and gives up.
    await p.until(lambda: p.vehicle.core.phase is VehiclePhase.FINISHED)
    assert "charger status" in str(p.vehicle.core.stop_reason)
    p.assert_safe()


async def test_insulation_failure_faults_before_any_contactor(pair: Pair) -> None:
    p = pair
    p.hardware.next_insulation_pass = False
    p.vehicle.plug(ChademoVehicleSpec())
    await p.until(lambda: p.evse.state is SessionState.FAULT)
    assert "close" not in p.hardware.commands
    faults = p.of(FaultDetected)
    assert [f.reason for f in faults] == [StopReason.INSULATION_FAILURE]
    await p.until(lambda: not p.hardware.locked)
    p.assert_safe()
    await p.until(lambda: p.vehicle.core.phase is VehiclePhase.FINISHED)
    # Latched: a new session needs the operator's reset, once the vehicle has gone.
    p.vehicle.unplug()
    await asyncio.sleep(0.3)
    assert p.evse.state is SessionState.FAULT
    p.hardware.next_insulation_pass = True
    p.evse.reset()
    assert p.evse.status()["state"] == SessionState.IDLE.value
    await charging(p, ChademoVehicleSpec(), 10_000)


async def test_emergency_stop_while_charging(pair: Pair) -> None:
    p = pair
    await charging(p, ChademoVehicleSpec(capacity_wh=2000, soc_pct=50), 20_000)
    p.hardware.estop = True
    await p.until(lambda: p.evse.state is SessionState.FAULT)
    p.assert_safe()  # at once, whatever the current
    assert [f.reason for f in p.of(FaultDetected)] == [StopReason.EMERGENCY_STOP]
    await p.until(lambda: p.vehicle.core.phase is VehiclePhase.FINISHED)
    await p.until(lambda: not p.hardware.locked)


async def test_station_stop_and_vehicle_limits_while_idle(pair: Pair) -> None:
    p = pair
    await charging(p, ChademoVehicleSpec(capacity_wh=2000, soc_pct=50), 20_000)
    assert p.evse.status()["state"] == "Charging"
    p.evse.stop()
    await p.until(lambda: p.evse.state is SessionState.UNLOCKED)
    p.assert_safe()
    assert [s.reason for s in p.of(SessionStopped)] == [StopReason.STATION_STOP]
    assert p.vehicle.core.phase is VehiclePhase.FINISHED
    assert len(p.of(VehicleConnected)) == 1


async def test_bad_power_command_changes_nothing(pair: Pair) -> None:
    p = pair
    p.evse.set_power_command(1_000)
    with pytest.raises(ValueError, match="finite"):
        p.evse.set_power_command(float("nan"))
    assert p.evse.status()["power_command_w"] == 1_000


async def test_bus_off_stops_the_session_safely(pair: Pair) -> None:
    p = pair
    await charging(p, ChademoVehicleSpec(capacity_wh=2000, soc_pct=50), 20_000)
    # Another node on the channel reports bus-off as SocketCAN does (error class CAN_ERR_BUSOFF).
    channel = p.evse.status()["can"].rsplit(" ", 1)[-1]
    other = can.Bus(interface="virtual", channel=channel)
    try:
        other.send(can.Message(arbitration_id=0x040, is_error_frame=True))
    finally:
        other.shutdown()
    await p.until(lambda: p.evse.state is SessionState.UNLOCKED)
    p.assert_safe()
    assert [s.reason for s in p.of(SessionStopped)] == [StopReason.BUS_ERROR]
    assert p.evse.status()["bus_faults"][0].startswith("BusOff")
