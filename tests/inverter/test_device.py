"""The SunSpec inverter port against the simulated inverter, over real Modbus TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from station.clock import SystemClock
from station.inverter import (
    ControlScheme,
    FaultKind,
    FaultReport,
    InverterFaultError,
    InverterLinkError,
    InverterMeter,
    InverterOptions,
    InverterRefusedError,
    InverterTimeoutError,
    LocalInverterError,
    ModbusLink,
    ModbusSerial,
    ModbusSettings,
    ModbusTcp,
    SunSpecError,
    SunSpecInverter,
)
from station.inverter.sunspec import load_model
from station.sim.inverter import SimFault, SimInverter, SimInverterSpec

CLOCK = SystemClock()
FAST = InverterOptions(
    write_retries=1,
    settle_timeout_s=1.0,
    poll_interval_s=0.05,
    heartbeat_interval_s=0.2,
    reversion_timeout_s=1,
)
DATATYPE = ModbusClientMixin.DATATYPE


async def eventually(check: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait (on the real clock the simulated inverter runs on) until ``check()`` holds."""
    deadline = CLOCK.monotonic() + timeout_s
    while not check():
        if CLOCK.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def link_to(sim: SimInverter, timeout_s: float = 0.3) -> ModbusLink:
    settings = ModbusSettings(ModbusTcp("127.0.0.1", sim.port), timeout_s=timeout_s)
    return ModbusLink(settings, clock=CLOCK)


@contextlib.asynccontextmanager
async def running(
    spec: SimInverterSpec | None = None, options: InverterOptions = FAST
) -> AsyncIterator[tuple[SimInverter, SunSpecInverter, list[FaultReport]]]:
    sim = SimInverter(spec or SimInverterSpec(time_constant_s=0.05), clock=CLOCK)
    await sim.start()
    faults: list[FaultReport] = []
    inverter: SunSpecInverter | None = None
    try:
        inverter = await SunSpecInverter.open(
            link_to(sim), clock=CLOCK, options=options, on_fault=faults.append
        )
        yield sim, inverter, faults
    finally:
        if inverter is not None:
            sim.clear_fault()
            await inverter.close()
        await sim.stop()


async def raw_point(sim: SimInverter, model_id: int, name: str) -> int:
    """Read one point over Modbus with a separate link and decode it with pymodbus only."""
    p = load_model(model_id).point(name)
    datatype = {1: DATATYPE.INT16, 2: DATATYPE.INT32}[p.size]
    address = sim.spec.base_address + _model_offset(sim, model_id) + p.offset
    link = link_to(sim)
    try:
        words = await link.read(address, p.size)
    finally:
        await link.close()
    value = ModbusClientMixin.convert_from_registers(words, datatype)
    assert isinstance(value, int)
    return value


def _model_offset(sim: SimInverter, model_id: int) -> int:
    offset = 2
    for mid in sim.model_ids:
        if mid == model_id:
            return offset
        offset += 2 + load_model(mid).length
    raise AssertionError(model_id)


# ---------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("base", [0, 40000, 50000])
async def test_discovers_sunspec_at_each_base_address(base: int) -> None:
    async with running(SimInverterSpec(base_address=base)) as (sim, inverter, _):
        assert inverter.scheme is ControlScheme.DER_704
        assert sorted(inverter.models) == [1, 701, 702, 704, 715]
        assert inverter.models[1].address == base + 2
        assert inverter.identity.manufacturer == "station-sim"
        assert inverter.identity.serial_number == "SIM-0001"
        assert inverter.max_charge_power_w == sim.spec.max_power_w
        # arming the fail-safe: revert to 0 W, enabled, after the configured time
        assert await raw_point(sim, 704, "WSetRvrtTms") == FAST.reversion_timeout_s
        assert await raw_point(sim, 704, "WSetRvrt") == 0


async def test_discovers_the_legacy_12x_variant() -> None:
    async with running(SimInverterSpec(legacy=True, base_address=0)) as (sim, inverter, _):
        assert inverter.scheme is ControlScheme.STORAGE_124
        assert sorted(inverter.models) == [1, 103, 123, 124]
        assert await raw_point(sim, 124, "StorCtl_Mod") == 0b11
        assert await raw_point(sim, 124, "InOutWRte_RvrtTms") == FAST.reversion_timeout_s


async def test_a_silent_device_times_out_at_discovery() -> None:
    # a socket that accepts connections but never speaks Modbus
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        link = ModbusLink(
            ModbusSettings(ModbusTcp("127.0.0.1", silent.getsockname()[1]), timeout_s=0.2),
            clock=CLOCK,
        )
        with pytest.raises(InverterTimeoutError):
            await SunSpecInverter.open(link, clock=CLOCK, options=FAST)
        await link.close()


# ---------------------------------------------------------------------------- set-points, sign
async def test_charging_setpoint_is_negative_wset_at_the_register_level() -> None:
    async with running() as (sim, inverter, faults):
        await inverter.apply_setpoint(5000.0)  # + = into the vehicle
        assert await raw_point(sim, 704, "WSet") == -5000  # SunSpec: absorbing is negative
        assert await raw_point(sim, 704, "WSetEna") == 1
        assert await raw_point(sim, 704, "WSetMod") == 1  # watts
        await eventually(lambda: sim.measured_w < -4900)
        m = await inverter.read_measurements()
        assert m.power_w is not None and m.power_w > 4900  # negated once, back to station sign
        assert m.current_a is not None and m.current_a > 0
        assert m.frequency_hz == pytest.approx(50.0)
        assert m.voltage_v == pytest.approx(400.0)
        await eventually(lambda: sim.wh_absorbed >= 1.0)
        m = await inverter.read_measurements()
        assert m.energy_import_wh is not None and m.energy_import_wh >= 1  # TotWhAbs
        assert m.energy_export_wh == 0  # TotWhInj
        assert faults == []


async def test_discharging_setpoint_is_positive_wset_at_the_register_level() -> None:
    async with running() as (sim, inverter, _):
        await inverter.apply_setpoint(-4000.0)  # out of the vehicle
        assert await raw_point(sim, 704, "WSet") == 4000  # SunSpec: export is positive
        await eventually(lambda: sim.measured_w > 3900)
        m = await inverter.read_measurements()
        assert m.power_w is not None and m.power_w < -3900
        assert m.current_a is not None and m.current_a < 0
        await inverter.apply_setpoint(0.0)
        assert await raw_point(sim, 704, "WSet") == 0
        assert await raw_point(sim, 704, "WSetEna") == 1  # 0 W is held, not "no limit"


@pytest.mark.parametrize(("power_w", "in_pct", "out_pct"), [(5500.0, 50, -50), (-2200.0, -20, 20)])
async def test_legacy_setpoints_in_percent_of_wchamax(
    power_w: float, in_pct: int, out_pct: int
) -> None:
    spec = SimInverterSpec(legacy=True, time_constant_s=0.05)
    async with running(spec) as (sim, inverter, faults):
        await inverter.apply_setpoint(power_w)
        # InOutWRte_SF = -2: percent x 100
        assert await raw_point(sim, 124, "InWRte") == in_pct * 100
        assert await raw_point(sim, 124, "OutWRte") == out_pct * 100
        assert sim.target_w() == pytest.approx(-power_w)
        await eventually(lambda: abs(sim.measured_w + power_w) < 50)
        m = await inverter.read_measurements()
        assert m.power_w == pytest.approx(power_w, abs=50)
        assert faults == []


async def test_bad_setpoints_change_nothing() -> None:
    async with running() as (sim, inverter, _):
        writes = sim.writes
        for bad in (math.nan, math.inf):
            with pytest.raises(LocalInverterError):
                await inverter.apply_setpoint(bad)
        with pytest.raises(LocalInverterError):
            await inverter.apply_setpoint(1e12)  # beyond int32 watts
        assert sim.writes == writes


async def test_legacy_refuses_more_than_wchamax() -> None:
    async with running(SimInverterSpec(legacy=True)) as (sim, inverter, _):
        with pytest.raises(LocalInverterError, match="WChaMax"):
            await inverter.apply_setpoint(sim.spec.max_power_w + 1000)


# ---------------------------------------------------------------------------- set-and-verify faults
@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (SimFault.REFUSE_WRITES, FaultKind.REFUSED),
        (SimFault.WRONG_READBACK, FaultKind.WRONG_READBACK),
    ],
)
async def test_setpoint_faults_go_to_zero_and_are_reported(
    fault: SimFault, kind: FaultKind
) -> None:
    async with running() as (sim, inverter, faults):
        await inverter.apply_setpoint(3000.0)
        await eventually(lambda: sim.measured_w < -2900)
        sim.inject_fault(fault)
        with pytest.raises(InverterFaultError) as caught:
            await inverter.apply_setpoint(6000.0)
        assert caught.value.report.kind is kind
        assert [f.kind for f in faults] == [kind]
        assert faults[0].setpoint_w == 6000.0
        # safe state: 0 W written, accepted and followed
        assert await raw_point(sim, 704, "WSet") == 0
        assert sim.target_w() == 0
        await eventually(lambda: abs(sim.measured_w) < 50)
        # held at 0 W until the fault is cleared
        sim.clear_fault()
        with pytest.raises(InverterFaultError):
            await inverter.apply_setpoint(1000.0)
        assert len(faults) == 1
        inverter.clear_fault()
        await inverter.apply_setpoint(1000.0)
        assert await raw_point(sim, 704, "WSet") == -1000


async def test_no_answer_is_a_fault_and_the_inverter_reverts_by_itself() -> None:
    async with running() as (sim, inverter, faults):
        await inverter.apply_setpoint(4000.0)
        sim.inject_fault(SimFault.NO_ANSWER)
        with pytest.raises(InverterFaultError) as caught:
            await inverter.apply_setpoint(5000.0)
        assert caught.value.report.kind is FaultKind.NO_ANSWER
        assert [f.kind for f in faults] == [FaultKind.NO_ANSWER]
        # the 0 W write could not get through either: the device's own fail-safe takes over
        await eventually(lambda: sim.reverted, timeout_s=FAST.reversion_timeout_s + 2)
        assert sim.target_w() == 0
        # when the link comes back, supervision gets 0 W accepted
        sim.clear_fault()
        await inverter.tick()
        assert await raw_point(sim, 704, "WSet") == 0
        assert await raw_point(sim, 704, "WSetEna") == 1


async def test_not_following_is_a_fault() -> None:
    async with running() as (sim, inverter, faults):
        sim.inject_fault(SimFault.NOT_FOLLOWING)
        await inverter.apply_setpoint(7000.0)  # taken and read back correctly
        assert faults == []
        supervision = asyncio.create_task(inverter.run())
        try:
            await eventually(lambda: bool(faults), timeout_s=FAST.settle_timeout_s + 2)
        finally:
            supervision.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervision
        assert faults[0].kind is FaultKind.NOT_FOLLOWING
        assert faults[0].setpoint_w == 7000.0
        assert await raw_point(sim, 704, "WSet") == 0
        assert inverter.fault is faults[0]


# ---------------------------------------------------------------------------- fail-safe
@pytest.mark.parametrize("legacy", [False, True])
async def test_reversion_when_the_station_stops_heartbeating(legacy: bool) -> None:
    spec = SimInverterSpec(legacy=legacy, time_constant_s=0.05)
    async with running(spec) as (sim, inverter, faults):
        await inverter.apply_setpoint(3300.0)
        supervision = asyncio.create_task(inverter.run())
        try:
            # heartbeats keep it going well past the reversion time
            await asyncio.sleep(FAST.reversion_timeout_s * 1.6)
            assert not sim.reverted
            assert sim.target_w() == pytest.approx(-3300.0)
        finally:
            supervision.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervision
        # the station "dies": no heartbeat, no writes
        await eventually(lambda: sim.reverted, timeout_s=FAST.reversion_timeout_s + 1.5)
        assert sim.target_w() == 0
        await eventually(lambda: abs(sim.measured_w) < 50)
        assert faults == []


# ---------------------------------------------------------------------------- meter, link errors
async def test_meter_adapter_gives_transaction_meter_readings() -> None:
    async with running() as (sim, inverter, _):
        meter = InverterMeter(inverter)
        with pytest.raises(LocalInverterError):
            meter.read_meter(CLOCK.now())
        await inverter.apply_setpoint(6000.0)
        await eventually(lambda: sim.wh_absorbed >= 1.0)
        await meter.refresh()
        reading = meter.read_meter(CLOCK.now())
        assert reading.power_w is not None and reading.power_w > 0
        assert reading.energy_import_wh >= 1.0
        assert reading.energy_export_wh == 0.0
        assert reading.frequency_hz == pytest.approx(50.0)


async def test_link_errors_are_translated() -> None:
    async with running() as (sim, _, _):
        link = link_to(sim)
        with pytest.raises(InverterRefusedError) as caught:
            await link.read(100, 2)  # nothing there
        assert caught.value.code == 2
        with pytest.raises(InverterRefusedError):
            await link.write(sim.spec.base_address + 2, [1])  # model 1's ID is read-only
        await link.close()
        with pytest.raises(LocalInverterError):
            await link.read(sim.spec.base_address, 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    settings = ModbusSettings(ModbusTcp("127.0.0.1", free_port), reconnect_min_s=5)
    link = ModbusLink(settings, clock=CLOCK)
    with pytest.raises(InverterLinkError, match="cannot connect"):
        await link.read(0, 2)
    with pytest.raises(InverterLinkError, match="next attempt"):
        await link.read(0, 2)  # in back-off: no new attempt
    await link.close()


async def test_sunspec_error_for_a_device_without_set_point_models() -> None:
    with pytest.raises(SunSpecError):
        SunSpecInverter(ModbusLink(ModbusSettings()), (), clock=CLOCK)


async def test_rtu_framing_through_the_serial_adapter() -> None:
    # pyserial's socket:// URL carries the serial line over loopback; the framing is RTU
    spec = SimInverterSpec(rtu_over_tcp=True, time_constant_s=0.05)
    sim = SimInverter(spec, clock=CLOCK)
    await sim.start()
    settings = ModbusSettings(ModbusSerial(f"socket://127.0.0.1:{sim.port}"), timeout_s=0.5)
    link = ModbusLink(settings, clock=CLOCK)
    try:
        inverter = await SunSpecInverter.open(link, clock=CLOCK, options=FAST)
        await inverter.apply_setpoint(2500.0)
        assert sim.target_w() == -2500.0
        await inverter.close()
    finally:
        await link.close()
        await sim.stop()
