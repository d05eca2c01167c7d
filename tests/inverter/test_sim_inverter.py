"""The simulated inverter: physics on an injected clock, driven over real Modbus TCP (127.0.0.1)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from station.clock import SystemClock
from station.inverter import (
    InverterRefusedError,
    InverterTimeoutError,
    ModbusLink,
    ModbusSettings,
    ModbusTcp,
)
from station.inverter.sunspec import PointValue, decode_block, encode_point, load_model
from station.sim.inverter import SimFault, SimInverter, SimInverterSpec

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t


class Device:
    """The simulated inverter and a Modbus link to it, addressing points by model and name."""

    def __init__(self, sim: SimInverter, link: ModbusLink) -> None:
        self.sim = sim
        self.link = link

    def address(self, model_id: int) -> int:
        offset = self.sim.spec.base_address + 2
        for mid in self.sim.model_ids:
            if mid == model_id:
                return offset
            offset += 2 + load_model(mid).length
        raise AssertionError(model_id)

    async def write(self, model_id: int, values: dict[str, int]) -> None:
        model = load_model(model_id)
        points = sorted((model.point(n) for n in values), key=lambda p: p.offset)
        words: list[int] = []
        for p in points:
            assert p.offset == points[0].offset + len(words), "points must be contiguous"
            words += encode_point(p, values[p.name])
        await self.link.write(self.address(model_id) + points[0].offset, words)

    async def read(self, model_id: int) -> dict[str, PointValue]:
        model = load_model(model_id)
        return decode_block(model, await self.link.read(self.address(model_id), 2 + model.length))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def device(clock: ManualClock) -> AsyncIterator[Device]:
    sim = SimInverter(SimInverterSpec(time_constant_s=2.0), clock=clock)
    await sim.start()
    link = ModbusLink(
        ModbusSettings(ModbusTcp("127.0.0.1", sim.port), timeout_s=0.3), clock=SystemClock()
    )
    try:
        yield Device(sim, link)
    finally:
        await link.close()
        await sim.stop()


async def test_measured_power_follows_a_first_order_ramp(
    device: Device, clock: ManualClock
) -> None:
    await device.write(704, {"WSetEna": 1, "WSetMod": 1, "WSet": -6000})
    assert device.sim.target_w() == -6000
    clock.t += 2.0  # one time constant
    assert device.sim.status()["measured_w"] == pytest.approx(-6000 * (1 - math.exp(-1)), rel=1e-6)
    clock.t += 20.0
    m = await device.read(701)
    assert m["W"] == -6000  # W_SF = 0; absorbing is negative in SunSpec


async def test_energy_is_integrated_into_the_right_register(
    device: Device, clock: ManualClock
) -> None:
    await device.write(704, {"WSetEna": 1, "WSetMod": 1, "WSet": -6000})
    clock.t += 60.0  # settle (the ramp's own energy counts too)
    before = device.sim.status()["wh_absorbed"]
    clock.t += 1800.0
    m = await device.read(701)
    assert device.sim.status()["wh_absorbed"] - before == pytest.approx(3000.0, rel=1e-6)
    assert m["TotWhAbs"] == int(device.sim.wh_absorbed)
    assert m["TotWhInj"] == 0
    await device.write(704, {"WSet": 2000})
    clock.t += 60.0
    clock.t += 3600.0
    assert (await device.read(701))["TotWhInj"] == pytest.approx(2000 + 2000 * 60 / 3600, abs=80)


async def test_grid_step_ramp_and_islanding(device: Device, clock: ManualClock) -> None:
    device.sim.set_grid(frequency_hz=51.2)
    m = await device.read(701)
    assert m["Hz"] == 51200 and m["Hz_SF"] == -3
    device.sim.set_grid(voltage_v=440.0, ramp_s=10.0)
    clock.t += 5.0
    assert device.sim.status()["voltage_v"] == pytest.approx(420.0)
    clock.t += 6.0
    assert (await device.read(701))["LLV"] == 4400  # V_SF = -1
    device.sim.island(drift_hz_per_s=0.5)
    clock.t += 2.0
    status = device.sim.status()
    assert status["islanded"] and status["frequency_hz"] == pytest.approx(52.2)
    device.sim.set_grid(frequency_hz=50.0)
    assert not device.sim.status()["islanded"]
    with pytest.raises(ValueError):
        device.sim.set_grid(voltage_v=-1.0)
    with pytest.raises(ValueError):
        device.sim.set_grid(frequency_hz=math.nan)


async def test_reverts_when_heartbeat_and_writes_stop(device: Device, clock: ManualClock) -> None:
    await device.write(704, {"WSetRvrt": 0})
    await device.write(704, {"WSetEnaRvrt": 1, "WSetRvrtTms": 2})
    await device.write(704, {"WSetEna": 1, "WSetMod": 1, "WSet": 5000})
    clock.t += 1.9
    assert (await device.read(704))["WSetRvrtRem"] == 1
    await device.write(715, {"ControllerHb": 1})  # the heartbeat restarts the timer
    clock.t += 1.9
    assert not device.sim.reverted and device.sim.target_w() == 5000
    clock.t += 0.2
    ctl = await device.read(704)
    assert device.sim.reverted
    assert ctl["WSet"] == 0 and ctl["WSetEna"] == 1
    assert device.sim.target_w() == 0


async def test_legacy_variant_reverts_to_idle(clock: ManualClock) -> None:
    sim = SimInverter(SimInverterSpec(legacy=True, base_address=50000), clock=clock)
    await sim.start()
    link = ModbusLink(ModbusSettings(ModbusTcp("127.0.0.1", sim.port)), clock=SystemClock())
    device = Device(sim, link)
    try:
        assert sim.model_ids == (1, 103, 123, 124)
        await device.write(124, {"StorCtl_Mod": 3})
        await device.write(124, {"InOutWRte_RvrtTms": 3})
        await device.write(124, {"OutWRte": -5000, "InWRte": 5000})
        assert sim.target_w() == pytest.approx(-5500.0)  # charge the storage: absorb 50 %
        clock.t += 3.1
        assert sim.status()["reverted"] and sim.target_w() == 0
        assert (await device.read(124))["InWRte"] == 10000
    finally:
        await link.close()
        await sim.stop()


async def test_injected_faults(device: Device, clock: ManualClock) -> None:
    device.sim.inject_fault(SimFault.REFUSE_WRITES)
    with pytest.raises(InverterRefusedError) as caught:
        await device.write(704, {"WSetEna": 1, "WSetMod": 1, "WSet": -3000})
    assert caught.value.code == 3
    await device.write(704, {"WSetEna": 1, "WSetMod": 1, "WSet": 0})  # 0 W is accepted

    device.sim.inject_fault("wrong_readback")
    await device.write(704, {"WSet": -3000})
    assert (await device.read(704))["WSet"] == -1500

    device.sim.inject_fault(SimFault.NO_ANSWER)
    with pytest.raises(InverterTimeoutError):
        await device.read(704)
    device.sim.clear_fault()
    assert (await device.read(704))["WSet"] == -1500  # answers again, on a new connection

    device.sim.inject_fault(SimFault.NOT_FOLLOWING)
    await device.write(704, {"WSet": -8000})
    clock.t += 30.0
    assert device.sim.status()["measured_w"] == 0.0
    with pytest.raises(ValueError):
        device.sim.inject_fault("meltdown")


async def test_read_only_points_and_unmapped_registers_are_refused(device: Device) -> None:
    with pytest.raises(InverterRefusedError) as caught:
        await device.write(701, {"W": 5})
    assert caught.value.code == 2
    with pytest.raises(InverterRefusedError):
        await device.link.read(0, 2)  # the map is at 40000


async def test_status_is_json(device: Device) -> None:
    status = device.sim.status()
    assert json.loads(json.dumps(status)) == status
    assert status["port"] == device.sim.port
    assert status["models"] == [1, 701, 702, 704, 715]
