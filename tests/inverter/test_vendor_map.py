"""Vendor register maps: the loader's errors, encoding round trips, and a real pymodbus server."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from station.clock import SystemClock
from station.inverter.device import FaultKind, FaultReport, InverterOptions
from station.inverter.errors import InverterFaultError, LocalInverterError
from station.inverter.modbus import ModbusSettings, ModbusTcp
from station.inverter.vendor import (
    Access,
    Register,
    RegisterMapError,
    RegisterTable,
    RegisterType,
    Sign,
    VendorInverter,
    VendorModbusLink,
    load_register_map,
    parse_register_map,
)

EXAMPLE = Path(__file__).parents[2] / "deploy" / "inverter-maps" / "example-dc-converter.toml"

GOOD = {"name": "voltage_v", "address": 0x3002, "table": "input", "type": "uint16", "scale": 0.1}
SETPOINT = {
    "name": "setpoint_w",
    "address": 0x4001,
    "type": "int32",
    "access": "rw",
    "sign": "export_positive",
}


def render(entries: list[dict[str, Any]], head: str = "") -> str:
    """TOML text for a list of ``[[register]]`` entries (JSON strings are TOML strings)."""
    out = [head]
    for entry in entries:
        out.append("[[register]]")
        out += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    return "\n".join(out) + "\n"


def load(tmp_path: Path, entries: list[dict[str, Any]], head: str = "") -> Any:
    path = tmp_path / "map.toml"
    path.write_text(render(entries, head), encoding="utf-8")
    return load_register_map(path)


# --- the loader ----------------------------------------------------------------------------------


def test_example_map_loads() -> None:
    m = load_register_map(EXAMPLE)
    limit = m["discharge_limit_w"]
    assert (limit.address, limit.table, limit.data_type, limit.access) == (
        0x4001,
        RegisterTable.HOLDING,
        RegisterType.UINT16,
        Access.READ_WRITE,
    )
    assert m["power_w"].sign is Sign.EXPORT_POSITIVE
    assert m["voltage_v"].scale == pytest.approx(0.1)
    assert m["energy_import_wh"].word_order == "little"
    assert m.model.startswith("DCX-11") and m.source == "example-dc-converter.toml"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"type": "int17"}, 'type "int17" is not one of int16, uint16, int32'),
        ({"table": "coil"}, 'table "coil" is not one of holding, input'),
        ({"access": "x"}, 'access "x" is not one of r, w, rw'),
        ({"word_order": "middle"}, 'word_order "middle" is not one of big, little'),
        ({"sign": "up"}, 'sign "up" is not one of export_positive, import_positive'),
        ({"address": 70000}, "address 70000 must be an integer 0..65535"),
        ({"address": -1}, "address -1 must be an integer"),
        ({"address": "0x4001"}, "address '0x4001' must be an integer"),
        ({"address": 0xFFFF}, "int32 at 0xffff runs past register 0xFFFF"),
        ({"scale": 0}, "scale 0 must be a finite number other than 0"),
        ({"scale": "x"}, "scale 'x' must be a finite number"),
        ({"scale": 1, "scale_pow10": 1}, "give scale or scale_pow10, not both"),
        ({"scale_pow10": 11}, "scale_pow10 11 must be an integer -10..10"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"unit": "kW"}, 'unit "kW" does not match the name (expected "W")'),
        ({"access": "r"}, 'setpoint_w is a control: access must be "w" or "rw"'),
        ({"table": "input"}, 'input registers are read-only; access must be "r", not "rw"'),
        ({"sign": None}, "sign is missing: setpoint_w is signed"),
        ({"type": "uint32"}, "a signed quantity cannot be uint32"),
    ],
)
def test_bad_entries_name_file_entry_and_problem(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    entry = {**SETPOINT, **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(RegisterMapError) as caught:
        load(tmp_path, [GOOD, entry])
    assert str(caught.value).startswith(f"map.toml: register[1] (setpoint_w): {problem}")


@pytest.mark.parametrize(
    ("entries", "head", "message"),
    [
        ([GOOD, {**GOOD, "address": 0x3010}], "", "register[1] (voltage_v): name is already used"),
        (
            [GOOD, {**SETPOINT, "address": 0x3001, "table": "input", "access": "r"}],
            "",
            "setpoint_w is a control",
        ),
        (
            [SETPOINT, {**GOOD, "name": "x_v", "address": 0x4002, "table": "holding"}],
            "",
            "register[1] (x_v): holding registers 0x4002+1 overlap register[0] (setpoint_w)",
        ),
        ([{**GOOD, "sign": "export_positive"}], "", "sign does not apply: voltage_v is a magn"),
        ([{"address": 1, "type": "int16"}], "", "register[0]: name is missing"),
        ([{**GOOD, "name": "Bad Name"}], "", "name 'Bad Name' must be lower case"),
        ([], "", "register: the map needs at least one [[register]]"),
        ([GOOD], "[device]\nserial = 'x'\n", "device.serial: unknown key"),
        ([GOOD], "colour = 1\n", "colour: unknown key"),
    ],
)
def test_map_level_errors(
    tmp_path: Path, entries: list[dict[str, Any]], head: str, message: str
) -> None:
    with pytest.raises(RegisterMapError) as caught:
        load(tmp_path, entries, head)
    assert str(caught.value).startswith("map.toml: ")
    assert message in str(caught.value)


def test_overlap_in_different_tables_is_fine(tmp_path: Path) -> None:
    m = load(tmp_path, [GOOD, {**SETPOINT, "address": 0x3002}])
    assert m["setpoint_w"].address == m["voltage_v"].address


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RegisterMapError, match="no such file"):
        load_register_map(tmp_path / "missing.toml")
    with pytest.raises(RegisterMapError, match="not valid TOML"):
        parse_register_map("[[register]\n", "bad.toml")
    with pytest.raises(RegisterMapError, match="is a directory"):
        load_register_map(tmp_path)


# --- encoding ------------------------------------------------------------------------------------


def test_register_level_sign_and_word_order() -> None:
    power = Register(
        "power_w", 0, RegisterTable.INPUT, RegisterType.INT32, sign=Sign.EXPORT_POSITIVE
    )
    assert power.encode(-5000.0) == [0, 5000]  # discharging 5 kW = exporting +5000
    assert power.decode([0xFFFF, 0xEC78]) == 5000.0  # device -5000 = importing = charging
    energy = Register(
        "energy_import_wh", 0, RegisterTable.INPUT, RegisterType.UINT32, word_order="little"
    )
    assert energy.encode(70000.0) == [70000 & 0xFFFF, 1]
    assert energy.decode([4464, 1]) == 70000.0
    scaled = Register("voltage_v", 0, RegisterTable.INPUT, RegisterType.UINT16, scale=0.1)
    assert scaled.decode([2305]) == pytest.approx(230.5)
    with pytest.raises(LocalInverterError, match="outside uint16"):
        Register("charge_limit_w", 0, RegisterTable.HOLDING, RegisterType.UINT16).encode(70000.0)
    with pytest.raises(LocalInverterError, match="finite"):
        power.encode(math.nan)


@given(
    st.sampled_from(list(RegisterType)),
    st.sampled_from([1.0, 0.1, 0.01, 10.0, 2.5]),
    st.sampled_from(["big", "little"]),
    st.sampled_from([None, Sign.EXPORT_POSITIVE, Sign.IMPORT_POSITIVE]),
    st.floats(-30_000.0, 30_000.0),
)
def test_round_trip(
    data_type: RegisterType, scale: float, word_order: str, sign: Sign | None, value: float
) -> None:
    register = Register(
        "x_w",
        0,
        RegisterTable.HOLDING,
        data_type,
        scale,
        word_order,
        Access.READ_WRITE,
        sign,  # type: ignore[arg-type]
    )
    try:
        words = register.encode(value)
    except LocalInverterError:
        raw = value * (-1 if sign is Sign.EXPORT_POSITIVE else 1) / scale
        assert (data_type.value.startswith("u") and round(raw) < 0) or abs(raw) > 32767
        return
    assert len(words) == register.count and all(0 <= w <= 0xFFFF for w in words)
    back = register.decode(words)
    if data_type.is_float:
        assert back == pytest.approx(value, rel=1e-6, abs=1e-3)
    else:
        assert abs(back - value) <= scale / 2 + 1e-9


# --- against a real Modbus server ----------------------------------------------------------------


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


def port_of(srv: ModbusTcpServer) -> int:
    return int(srv.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


def inverter(srv: ModbusTcpServer, faults: list[FaultReport] | None = None) -> VendorInverter:
    link = VendorModbusLink(
        ModbusSettings(ModbusTcp("127.0.0.1", port_of(srv)), device_id=1, timeout_s=1.0)
    )
    return VendorInverter(
        link,
        load_register_map(EXAMPLE),
        clock=SystemClock(),
        options=InverterOptions(write_retries=1),
        on_fault=None if faults is None else faults.append,
    )


async def test_measurements_come_back_in_the_station_sign(server: ModbusTcpServer) -> None:
    # power +5000 W exported (int32 big), 230.5 V, 59.98 Hz, 400.0 V DC, +12.5 A exported,
    # 70000 Wh imported (uint32, low word first), 1234 Wh exported
    await server.async_setValues(1, 4, 0x3000, [0, 5000, 2305, 5998, 4000, 125, 4464, 1, 1234, 0])
    inv = inverter(server)
    try:
        m = await inv.read_measurements()
        assert m.power_w == -5000.0  # out of the vehicle
        assert m.voltage_v == pytest.approx(230.5)
        assert m.frequency_hz == pytest.approx(59.98)
        assert m.energy_import_wh == 70000.0 and m.energy_export_wh == 1234.0
        assert await inv.read_value("dc_current_a") == pytest.approx(-12.5)
        await server.async_setValues(1, 4, 0x3000, [0xFFFF, 0xF830])  # device -2000: importing
        assert (await inv.read_measurements()).power_w == 2000.0
    finally:
        await inv.close()


async def test_setpoints_become_limits_at_the_register_level(server: ModbusTcpServer) -> None:
    inv = inverter(server)
    try:
        await inv.apply_setpoint(-3000.0)  # discharge 3 kW
        assert await server.async_getValues(1, 3, 0x4001, 2) == [3000, 0]
        await inv.apply_setpoint(2000.0)  # charge 2 kW
        assert await server.async_getValues(1, 3, 0x4001, 2) == [0, 2000]
        await inv.apply_setpoint(0.0)  # 0 means no power either way
        assert await server.async_getValues(1, 3, 0x4001, 2) == [0, 0]
        with pytest.raises(LocalInverterError, match="outside uint16"):
            await inv.apply_setpoint(-70_000.0)
        assert await server.async_getValues(1, 3, 0x4001, 2) == [0, 0]  # nothing written
        assert await inv.feed_heartbeat() and await inv.feed_heartbeat()
        assert await server.async_getValues(1, 3, 0x4000, 1) == [2]
        await inv.apply_setpoint(1500.0)
    finally:
        await inv.close()
    assert await server.async_getValues(1, 3, 0x4001, 2) == [0, 0]  # close commands 0 W


async def test_a_device_that_is_gone_is_a_fault(server: ModbusTcpServer) -> None:
    faults: list[FaultReport] = []
    inv = inverter(server, faults)
    await inv.apply_setpoint(1000.0)
    await server.shutdown()  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(InverterFaultError):
            await inv.apply_setpoint(-1000.0)
        assert inv.fault is not None and inv.fault.kind is FaultKind.NO_ANSWER
        assert [f.setpoint_w for f in faults] == [-1000.0]
        with pytest.raises(InverterFaultError):
            await inv.apply_setpoint(500.0)  # refused while the fault is held
        assert len(faults) == 1
        inv.clear_fault()
        assert inv.fault is None
    finally:
        await inv.close()


def test_a_map_without_controls_is_refused() -> None:
    m = parse_register_map(render([GOOD]), "m.toml")
    with pytest.raises(LocalInverterError, match="cannot command"):
        VendorInverter(VendorModbusLink(ModbusSettings()), m, clock=SystemClock())
