"""The field CHAdeMO link's parts: the inverter DC stage's cap and freshness, the GPIO wrapper,
and the vendor map's DC measurement over a real pymodbus server."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from station.chademo.hardware import GpioPins
from station.chademo_link import InverterDcStage, _FieldHardware
from station.clock import SystemClock
from station.config import GridConfig
from station.inverter.device import InverterMeasurements, InverterPort
from station.inverter.modbus import ModbusSettings, ModbusTcp
from station.inverter.protection import GridProtection
from station.inverter.supervisor import InverterSupervisor
from station.inverter.vendor import VendorInverter, VendorModbusLink, load_register_map

DC_MAP = (
    Path(__file__).resolve().parents[1] / "deploy" / "inverter-maps" / "example-dc-converter.toml"
)


@dataclass
class ManualClock:
    """A clock the test moves by hand (monotonic seconds and a UTC wall time)."""

    t: float = 100.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t


async def _never() -> InverterPort:
    raise AssertionError("not connected in these tests")


def supervisor(clock: ManualClock) -> InverterSupervisor:
    return InverterSupervisor(
        connect=_never,
        protection=GridProtection(GridConfig().protection_settings()),
        clock=clock,
        poll_interval_s=0.05,
        rating_w=20_000.0,
    )


def reading(
    clock: ManualClock, voltage_v: float | None, current_a: float | None
) -> InverterMeasurements:
    return InverterMeasurements(
        timestamp=clock.now(),
        power_w=None,
        current_a=None,
        voltage_v=230.0,
        frequency_hz=60.0,
        energy_import_wh=None,
        energy_export_wh=None,
        dc_voltage_v=voltage_v,
        dc_current_a=current_a,
    )


def stage_at(voltage_v: float, current_a: float) -> InverterDcStage:
    clock = ManualClock()
    sup = supervisor(clock)
    stage = InverterDcStage(1, clock, stale_after_s=1.0)
    stage.bind(sup)
    sup.measurements = reading(clock, voltage_v, 0.0)
    assert stage.measure() == (voltage_v, 0.0)
    stage.set_output(410.0, current_a)
    return stage


@given(
    voltage_v=st.floats(0.0, 1000.0),
    current_a=st.floats(-200.0, 200.0),
    command_w=st.floats(-100_000.0, 100_000.0),
)
def test_the_set_point_share_never_exceeds_the_command_or_the_session(
    voltage_v: float, current_a: float, command_w: float
) -> None:
    allowed_w = stage_at(voltage_v, current_a).allowed_w(command_w)
    assert abs(allowed_w) <= abs(command_w)
    assert abs(allowed_w) <= abs(current_a * voltage_v) + 1e-6
    # Same direction as the command, or nothing: a limit of 0 is never a change of direction.
    assert allowed_w == 0.0 or math.copysign(1, allowed_w) == math.copysign(1, command_w)
    assert allowed_w == 0.0 or math.copysign(1, allowed_w) == math.copysign(1, current_a)
    if voltage_v <= 10.0 or current_a == 0.0:
        assert allowed_w == 0.0


def test_the_share_follows_the_session_and_the_measured_voltage() -> None:
    stage = stage_at(380.0, 40.0)
    assert stage.allowed_w(20_000.0) == 15_200.0  # 40 A at the measured 380 V, not 410 V
    assert stage.allowed_w(10_000.0) == 10_000.0  # the command binds
    assert stage.allowed_w(-5_000.0) == 0.0  # the session charges: no discharge
    changes: list[str] = []
    stage.on_change = lambda: changes.append("change")
    stage.set_output(0.0, 0.0)
    assert stage.allowed_w(20_000.0) == 0.0 and changes == ["change"]
    stage.set_output(0.0, 0.0)  # no change: not sent again
    assert changes == ["change"]


def test_a_stale_measurement_is_kept_not_zeroed_and_reported() -> None:
    clock = ManualClock()
    sup = supervisor(clock)
    stage = InverterDcStage(1, clock, stale_after_s=1.0)
    lost: list[str] = []
    stage.on_lost = lost.append
    assert stage.measure() == (0.0, 0.0) and not stage.fresh  # unbound: nothing measured
    stage.bind(sup)
    assert stage.measure() == (0.0, 0.0) and lost[-1] == "no measurement from the inverter yet"
    sup.measurements = reading(clock, 395.0, 30.0)
    assert stage.measure() == (395.0, 30.0) and stage.fresh
    stage.set_output(410.0, 30.0)
    assert stage.allowed_w(20_000.0) == 11_850.0
    count = len(lost)
    clock.t += 0.9
    assert stage.measure() == (395.0, 30.0) and len(lost) == count  # still fresh
    clock.t += 0.2
    # The link went quiet: the last values stay (a live 395 V never reads as 0 V), the loss
    # is reported on every cycle, and nothing may be commanded.
    assert stage.measure() == (395.0, 30.0) and not stage.fresh
    assert stage.measure() == (395.0, 30.0)
    assert lost[-2:] == ["no new inverter measurement for 1.1 s"] * 2
    assert stage.allowed_w(20_000.0) == 0.0
    sup.measurements = reading(clock, 5.0, 0.0)
    assert stage.measure() == (5.0, 0.0) and stage.fresh
    sup.measurements = reading(clock, None, None)
    stage.measure()
    assert lost[-1] == "the inverter reports no DC voltage/current"


PINS = GpioPins(lock=5, contactors=6, insulation_test=13, insulation_ok=19, estop=26)


def gpio_root(tmp_path: Path) -> Path:
    for pin in (5, 6, 13, 19, 26):
        (tmp_path / f"gpio{pin}").mkdir()
        (tmp_path / f"gpio{pin}" / "value").write_text("0\n")
    return tmp_path


def test_field_gpio_waits_for_the_monitor_and_fails_safe(tmp_path: Path) -> None:
    root = gpio_root(tmp_path)
    clock = ManualClock()
    stage = InverterDcStage(1, clock)
    contactors: list[bool] = []
    hw = _FieldHardware(PINS, root, stage, contactors.append)
    assert hw.result() is None
    hw.start_test(4, 500)
    assert (root / "gpio13" / "value").read_text() == "1"
    assert hw.result() is None  # the monitor has not said "good" yet: no verdict
    (root / "gpio19" / "value").write_text("1\n")
    assert hw.result() == (4, True)
    hw.close()
    # The test relay is released before the contactors close; the link hears of the close once.
    assert (root / "gpio13" / "value").read_text() == "0"
    assert (root / "gpio6" / "value").read_text() == "1"
    hw.close()
    hw.set_output(410.0, 25.0)
    assert (stage.voltage_v, stage.current_a) == (410.0, 25.0)
    hw.open()
    assert contactors == [True, False]
    # Unreadable inputs are the safe answers: estop pressed, insulation failed.
    (root / "gpio26" / "value").write_text("1\n")
    assert hw.pressed() is False
    (root / "gpio26" / "value").unlink()
    assert hw.pressed() is True
    (root / "gpio19" / "value").write_text("maybe\n")
    assert hw.result() == (4, False)


@pytest.fixture
async def server() -> AsyncIterator[ModbusTcpServer]:
    bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
    holding = SimData(address=0x4000, values=[0] * 3, datatype=DataType.REGISTERS)
    inputs = SimData(address=0x3000, values=[0] * 10, datatype=DataType.REGISTERS)
    device = SimDevice(id=1, simdata=(bits, list(bits), [holding], [inputs]))
    srv = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await srv.serve_forever(background=True)
    yield srv
    await srv.shutdown()  # type: ignore[no-untyped-call]


async def test_the_vendor_map_reads_the_dc_side_in_the_station_sign(
    server: ModbusTcpServer,
) -> None:
    # 387.5 V DC; the device counts discharge as positive: -32.1 A is 32.1 A into the vehicle.
    await server.async_setValues(1, 4, 0x3004, [3875, -321 & 0xFFFF])
    port = int(server.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    link = VendorModbusLink(ModbusSettings(ModbusTcp("127.0.0.1", port), device_id=1))
    inverter = VendorInverter(link, load_register_map(DC_MAP), clock=SystemClock())
    try:
        m = await inverter.read_measurements()
        assert m.dc_voltage_v == pytest.approx(387.5)
        assert m.dc_current_a == pytest.approx(32.1)
        assert m.dc_power_w is None  # the example map has no DC power register
    finally:
        await inverter.close()
