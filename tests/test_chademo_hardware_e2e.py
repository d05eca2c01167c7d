"""The field CHAdeMO link end to end: ``vehicle = "hardware"`` in a running station (issue 5).

A real :class:`~station.app.Station` runs in this event loop against the sim CSMS over a WebSocket
on 127.0.0.1, configured as a field unit: EVSE 1 is a hardware CHAdeMO EVSE (python-can
``virtual`` on a channel of its own, its relays and inputs on sysfs GPIO value files under
``tmp_path``) and the inverter is a ``hardware`` Modbus link to a real pymodbus TCP server on
127.0.0.1 with the example DC converter's register map. EVSE 2 is a simulated ``ccs`` EVSE, so
``station sim`` runs and its answers for the hardware EVSE can be checked.

The test plays the world, touching only those interfaces: the simulated CHAdeMO vehicle
(:class:`~station.sim.chademo_vehicle.SimChademoVehicle`) on the same CAN channel, an insulation
monitor that answers the test relay on the ``insulation_ok`` input, the emergency-stop loop, and a
DC converter that runs the station's charge limit (W) into the battery while the contactor
output reads 1 and reports its DC voltage and current in its input registers (0 V once the
contactors open, for the welding check).
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from station.app import Station
from station.chademo_link import FieldChademoLink
from station.clock import SystemClock
from station.config import parse_config
from station.errors import ConfigError
from station.sim.chademo_vehicle import ChademoVehicleSpec, SimChademoVehicle
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame
from tests.conftest import STATION_ID
from tests.test_link import booted, calls, variable
from tests.test_transactions_e2e import set_variables

REPO = Path(__file__).resolve().parents[1]
DC_MAP = REPO / "deploy" / "inverter-maps" / "example-dc-converter.toml"
PINS = {"lock": 5, "contactors": 6, "insulation_test": 13, "insulation_ok": 19, "estop": 26}
IMPORT = "Energy.Active.Import.Register"
# The example converter's registers (deploy/inverter-maps/example-dc-converter.toml).
CHARGE_LIMIT_W = 0x4002
GRID_V = 0x3002
DC_V = 0x3004
HOLDING, INPUT = 3, 4


def station_text(tmp_path: Path, csms_url: str, modbus_port: int, channel: str) -> str:
    gpio = "\n".join(f"{name} = {pin}" for name, pin in PINS.items())
    return (
        textwrap.dedent(
            f"""
        [station]
        id = "{STATION_ID}"
        [csms]
        url = "{csms_url}"
        retry_backoff_wait_minimum_s = 0
        retry_backoff_random_range_s = 0
        message_timeout_s = 5
        boot_retry_interval_s = 1
        [storage]
        database = "station.db"
        [[evse]]
        id = 1
        connector = "chademo"
        vehicle = "hardware"
        max_discharge_power_w = 0
        [evse.chademo]
        can_interface = "virtual"
        can_channel = "{channel}"
        local_token = "FIELD-1"
        [evse.chademo.gpio]
        root = "{tmp_path / "gpio"}"
        """
        )
        + gpio
        + textwrap.dedent(
            f"""
        [[evse]]
        id = 2
        connector = "ccs"
        [inverter]
        link = "hardware"
        host = "127.0.0.1"
        port = {modbus_port}
        register_map = "{DC_MAP}"
        poll_interval_s = 0.05
        timeout_s = 0.5
        heartbeat_interval_s = 0.5
        [grid]
        nominal_voltage_v = 230
        nominal_frequency_hz = 60
        enter_service_delay_s = 0.2
        enter_service_ramp_s = 0
        """
        )
    )


# --- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    """What is around the field station: GPIO lines, the DC converter, the vehicle."""

    root: Path
    server: ModbusTcpServer
    vehicle: SimChademoVehicle
    insulation_good: bool = True
    #: Every change of a GPIO value file seen, in order: (pin name, new value).
    changes: list[tuple[str, str]] = field(default_factory=list)
    dc: tuple[float, float] = (0.0, 0.0)
    charge_limit_w: int = 0

    def path(self, name: str) -> Path:
        return self.root / f"gpio{PINS[name]}" / "value"

    def read(self, name: str) -> str:
        return self.path(name).read_text().strip()

    def write(self, name: str, value: str) -> None:
        self.path(name).write_text(value + "\n")

    def create(self) -> None:
        for name in PINS:
            self.path(name).parent.mkdir(parents=True)
            self.write(name, "0")
        self.write("estop", "1")  # active low: the loop is closed, not pressed

    def press_estop(self, pressed: bool) -> None:
        self.write("estop", "0" if pressed else "1")

    async def run(self) -> None:
        last: dict[str, str] = {}
        while True:
            values = {name: self.read(name) for name in PINS}
            # The insulation monitor answers its test relay (good insulation: 1).
            ok = "1" if values["insulation_test"] == "1" and self.insulation_good else "0"
            if ok != values["insulation_ok"]:
                self.write("insulation_ok", ok)
                values["insulation_ok"] = ok
            for name, value in values.items():
                if last.get(name) != value:
                    self.changes.append((name, value))
            last = values
            # The converter: the charge limit into the battery while the path is closed.
            (limit_w,) = await self.server.async_getValues(1, HOLDING, CHARGE_LIMIT_W, 1)
            self.charge_limit_w = int(limit_w)
            closed = values["contactors"] == "1" and self.vehicle.contactors_closed
            voltage_v = self.vehicle.battery_voltage_v if closed else 0.0
            current_a = limit_w / voltage_v if closed and voltage_v > 0 else 0.0
            self.dc = (voltage_v, current_a)
            # dc_current_a counts discharge as positive (export_positive): charging is negative.
            words = [round(voltage_v * 10), -round(current_a * 10) & 0xFFFF]
            await self.server.async_setValues(1, INPUT, DC_V, words)
            await asyncio.sleep(0.02)

    def first(self, name: str, value: str) -> int:
        """Index of the first change of ``name`` to ``value`` (-1: never)."""
        return next((i for i, c in enumerate(self.changes) if c == (name, value)), -1)


@dataclass
class Field:
    csms: Csms
    station: Station
    world: World
    vehicle: SimChademoVehicle
    endpoint: Path

    @property
    def link(self) -> FieldChademoLink:
        link = self.station.chademo[1]
        assert isinstance(link, FieldChademoLink)
        return link

    async def sim(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await sim_request(self.endpoint, {"cmd": cmd, **args})

    async def evse(self) -> dict[str, Any]:
        status = await self.sim("status")
        assert status["ok"] is True, status
        (item,) = [e for e in status["evses"] if e["evse"] == 1]
        return dict(item)

    async def until(
        self, what: Callable[[dict[str, Any]], bool], timeout_s: float = 10
    ) -> dict[str, Any]:
        item: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout_s):
                while not what(item := await self.evse()):
                    await asyncio.sleep(0.03)
        except TimeoutError:
            raise AssertionError(f"EVSE 1 never got there: {item}") from None
        return item


async def modbus_server() -> ModbusTcpServer:
    bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
    holding = SimData(address=0x4000, values=[0] * 3, datatype=DataType.REGISTERS)
    # AC power 0, grid 230.0 V, 60.00 Hz, DC 0 V / 0 A, energy registers 0.
    inputs = SimData(
        address=0x3000, values=[0, 0, 2300, 6000, 0, 0, 0, 0, 0, 0], datatype=DataType.REGISTERS
    )
    device = SimDevice(id=1, simdata=(bits, list(bits), [holding], [inputs]))
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    return server


Open = Callable[..., Awaitable[Field]]


@pytest.fixture
async def open_field(tmp_path: Path) -> AsyncIterator[Open]:
    cleanup: list[Callable[[], Awaitable[None]]] = []

    async def start(insulation_good: bool = True) -> Field:
        channel = f"field-{uuid.uuid4().hex}"
        server = await modbus_server()
        cleanup.append(server.shutdown)
        port = int(server.transport.sockets[0].getsockname()[1])
        vehicle = SimChademoVehicle(SystemClock(), interface="virtual", channel=channel)
        vehicle.start()
        cleanup.append(vehicle.close)
        world = World(tmp_path / "gpio", server, vehicle, insulation_good=insulation_good)
        world.create()
        world_task = asyncio.ensure_future(world.run())

        async def stop_world() -> None:
            world_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await world_task

        cleanup.append(stop_world)
        csms = await Csms(subprotocols=("ocpp2.0.1",)).start()
        cleanup.append(csms.stop)
        text = station_text(tmp_path, csms.url, port, channel)
        config = parse_config(text, source="field.toml", base_dir=tmp_path)
        station = Station(config, clock=SystemClock())
        stop = asyncio.Event()
        task = asyncio.ensure_future(station.run(stop))

        async def stop_station() -> None:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)

        cleanup.append(stop_station)
        await booted(csms, connectors=2)
        assert station.control is not None
        endpoint = station.control.endpoint.endpoint_file
        async with asyncio.timeout(5):
            while not endpoint.exists():
                await asyncio.sleep(0.02)
        return Field(csms, station, world, vehicle, endpoint)

    yield start
    for step in reversed(cleanup):
        await step()


# --- what the CSMS received ---------------------------------------------------------------------


def tx_event(event_type: str, transaction_id: str | None = None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        payload = frame.payload
        info = payload.get("transactionInfo", {})
        return bool(
            payload.get("eventType") == event_type
            and payload.get("evse", {}).get("id") == 1
            and (transaction_id is None or info.get("transactionId") == transaction_id)
        )

    return match


async def event(
    bench: Field, event_type: str, transaction_id: str | None = None, *, since: int = 0
) -> dict[str, Any]:
    (frame,) = await calls(
        bench.csms,
        "TransactionEvent",
        where=tx_event(event_type, transaction_id),
        since=since,
        timeout_s=15,
    )
    return frame.payload


def imports(bench: Field, transaction_id: str) -> list[float]:
    return [
        float(sv["value"])
        for f in bench.csms.received("TransactionEvent", STATION_ID)
        if f.payload["transactionInfo"]["transactionId"] == transaction_id
        for mv in f.payload.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == IMPORT
    ]


def charging(item: dict[str, Any]) -> bool:
    return bool(item["chademo"]["state"] == "Charging" and item["measured_power_w"] > 1000)


# --- the tests ----------------------------------------------------------------------------------


async def test_a_full_charge_then_an_emergency_stop_on_field_hardware(open_field: Open) -> None:
    bench = await open_field()
    world, vehicle = bench.world, bench.vehicle
    await set_variables(bench.csms, variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"))
    # Nothing is plugged in: the outputs are safe, the DC measurement comes from the inverter.
    item = await bench.until(lambda e: e["chademo"]["dc_measurement_fresh"] is True)
    assert item["chademo"]["vehicle_link"] == "hardware" and item["plugged"] is False
    assert [world.read(n) for n in ("lock", "contactors", "insulation_test")] == ["0"] * 3

    # 1. A full charge: 80 % of 0.1 kWh to a 90 % target, about 10 Wh.
    vehicle.plug(
        ChademoVehicleSpec(capacity_wh=100.0, soc_pct=80.0, target_soc_pct=90.0, v2h=False)
    )
    started = await event(bench, "Started")
    transaction_id = started["transactionInfo"]["transactionId"]
    assert started["idToken"] == {"idToken": "FIELD-1", "type": "Local"}

    def settled(e: dict[str, Any]) -> bool:
        setpoint_a = e["chademo"]["setpoint_current_a"]
        return charging(e) and setpoint_a > 40 and abs(world.dc[1] - setpoint_a) < 1.0

    item = await bench.until(settled)
    assert world.read("contactors") == "1" and world.read("lock") == "1"
    # The converter runs what the session allows: the session's current at the DC voltage,
    # which is less than the power command (20 kW over the 410 V target = 48 A; at ~385 V the
    # session's 48 A are ~18.6 kW).
    voltage_v, current_a = world.dc
    assert 300 < voltage_v < 410 and current_a > 0
    setpoint_a = item["chademo"]["setpoint_current_a"]
    assert setpoint_a <= 50.0  # the station's rating
    assert item["power_command_w"] == 20_000.0
    assert world.charge_limit_w <= setpoint_a * voltage_v * 1.01 < item["power_command_w"] - 500
    # The contactors closed only after the insulation test started and the monitor said 1,
    # and after the connector locked.
    lock, test, ok, close = (
        world.first("lock", "1"),
        world.first("insulation_test", "1"),
        world.first("insulation_ok", "1"),
        world.first("contactors", "1"),
    )
    assert -1 < lock < test < ok < close, world.changes

    # The vehicle reaches its target and stops asking: stop sequence, welding check, unlock.
    await bench.until(lambda e: e["chademo"]["state"] == "Unlocked", timeout_s=15)
    assert world.read("contactors") == "0" and world.read("lock") == "0"
    assert world.dc == (0.0, 0.0)
    # (Within a few cycles of the stop: the request, the set-point write, the converter.)
    assert vehicle.core.battery.soc_pct == pytest.approx(90.0, abs=2.5)
    vehicle.unplug()
    ended = await event(bench, "Ended", transaction_id)
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    registers = imports(bench, transaction_id)
    assert registers[0] == 0.0 and registers == sorted(registers)
    assert len(set(registers)) >= 3  # it rose through the session (periodic samples)
    assert registers[-1] == pytest.approx(10.0, abs=2.5)
    await bench.until(lambda e: e["chademo"]["state"] == "Idle" and e["transaction_id"] is None)
    assert world.charge_limit_w == 0  # the converter is told 0 W once the session is over

    # 2. The emergency stop while charging: the session faults, the contactors open at once.
    since = len(bench.csms.frames)
    vehicle.plug(ChademoVehicleSpec(capacity_wh=10_000.0, soc_pct=30.0, v2h=False))
    started = await event(bench, "Started", since=since)
    second = started["transactionInfo"]["transactionId"]
    assert second != transaction_id
    await bench.until(charging)
    world.press_estop(True)
    ended = await event(bench, "Ended", second)
    assert ended["triggerReason"] == "AbnormalCondition"
    assert ended["transactionInfo"]["stoppedReason"] == "EmergencyStop"
    item = await bench.evse()
    assert item["chademo"]["state"] == "Fault" and item["chademo"]["stop_reason"] == "EmergencyStop"
    assert item["chademo"]["estop"] is True and item["connector_status"] == "Faulted"
    assert world.read("contactors") == "0"
    assert item["chademo"]["setpoint_current_a"] == 0.0
    await bench.until(lambda e: e["chademo"]["locked"] is False)  # unlocked once 0 V measured
    assert world.read("lock") == "0"
    # The car leaves with the button still pressed: still Faulted; released: Available again.
    vehicle.unplug()
    await asyncio.sleep(0.5)
    assert (await bench.evse())["chademo"]["state"] == "Fault"
    world.press_estop(False)
    item = await bench.until(lambda e: e["chademo"]["state"] == "Idle")
    await bench.until(lambda e: e["connector_status"] == "Available")


async def test_an_insulation_failure_never_closes_the_contactors(open_field: Open) -> None:
    bench = await open_field(insulation_good=False)
    bench.vehicle.plug(ChademoVehicleSpec(capacity_wh=1000.0, soc_pct=50.0, v2h=False))
    started = await event(bench, "Started")
    ended = await event(bench, "Ended", started["transactionInfo"]["transactionId"])
    assert ended["transactionInfo"]["stoppedReason"] == "GroundFault"
    item = await bench.evse()
    assert item["chademo"]["stop_reason"] == "InsulationFailure"
    assert bench.world.first("insulation_test", "1") > -1
    assert bench.world.first("contactors", "1") == -1, bench.world.changes
    assert bench.world.charge_limit_w == 0


async def test_simulated_vehicle_commands_are_refused_for_a_hardware_evse(
    open_field: Open,
) -> None:
    bench = await open_field()
    for command in (
        {"cmd": "plug", "evse": 1},
        {"cmd": "ev_fault", "evse": 1, "kind": "overvoltage"},
        {"cmd": "insulation", "evse": 1, "result": "fail"},
    ):
        reply = await bench.sim(**command)
        assert reply["ok"] is False, (command, reply)
        assert "EVSE 1 has a hardware vehicle" in reply["error"], reply
    # status and the (software) emergency stop still work.
    assert (await bench.evse())["chademo"]["vehicle_link"] == "hardware"
    assert (await bench.sim("estop", evse=1)) == {"ok": True}
    item = await bench.until(lambda e: e["chademo"]["state"] == "Fault")
    assert item["connector_status"] == "Faulted" and item["chademo"]["estop"] is False
    assert (await bench.sim("estop_release", evse=1)) == {"ok": True}
    await bench.until(lambda e: e["chademo"]["state"] == "Idle")


def test_a_hardware_vehicle_without_its_gpio_or_dc_measurement_is_refused(tmp_path: Path) -> None:
    text = station_text(tmp_path, "ws://127.0.0.1:9/ocpp", 502, "x")
    parse_config(text, source="field.toml")  # the complete one is fine
    head, rest = text.split("[evse.chademo.gpio]")
    no_gpio = head + rest[rest.index("[[evse]]") :]
    for bad, key, problem in (
        (no_gpio, "evse[0].chademo.gpio", 'is required with vehicle = "hardware"'),
        (text.replace('link = "hardware"', 'link = "none"'), "evse[0].vehicle", "[inverter]"),
        (text.replace(f'register_map = "{DC_MAP}"\n', ""), "inverter.register_map", "714"),
        (text.replace("estop = 26", "estop = 6"), "evse[0].chademo.gpio.estop", "contactors"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(bad, source="field.toml")
        message = str(caught.value)
        assert message.startswith(f"field.toml: {key}: "), message
        assert problem in message and "\n" not in message
