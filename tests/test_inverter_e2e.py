"""The inverter end to end: a real station, the simulated SunSpec inverter, the real CSMS.

A station with one EVSE and ``[inverter] link = "simulated"`` runs in this event loop; its
inverter is :class:`station.sim.inverter.SimInverter`, a real pymodbus server on 127.0.0.1 that the
station reads and writes over Modbus TCP, and the CSMS is :class:`station.sim.csms.Csms` over a
real WebSocket on 127.0.0.1 (both subprotocols where the messages differ). The world is driven
from outside only: the vehicle, the grid and the inverter's faults through the control protocol
(``station sim``: ``plug``, ``token``, ``grid``, ``inverter_fault``), the charging profiles and
DER controls by the CSMS. What is checked is what the peers see: the 704 ``WSet`` register the
station wrote (decoded with its scale factor: SunSpec counts export as positive, so charging the
vehicle is a negative ``WSet``), the simulated device's own state, and the OCPP messages.

The grid is 400 V / 50 Hz; the IEEE 1547-2018 Category II defaults keep their offsets from the
nominal frequency (OF2 52 Hz, OF1 51.2 Hz, UF1 48.5 Hz, UF2 46.5 Hz; OV2 1.2 pu = 480 V, UV2
0.45 pu = 180 V, each with a 0.16 s clearing time). The enter-service delay is 1 s and there is
no enter-service ramp, so the tests run in seconds of real time.

The reversion fail-safe runs the station as a separate process (``station run --config FILE``)
against a simulated inverter that lives in this process, so it survives the SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.clock import SystemClock
from station.config import load_config
from station.inverter.supervisor import InverterSupervisor
from station.sim.control import endpoint_for
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame
from station.sim.inverter import SimInverter, SimInverterSpec
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls, request, variable
from tests.test_transactions_e2e import set_variables, wait_event
from tests.test_v2g_e2e import EXPORT, IMPORT, TOKEN, discharge_profile, register

GRID = """
[grid]
nominal_voltage_v = 400
nominal_frequency_hz = 50
enter_service_delay_s = 1
enter_service_ramp_s = 0
"""

INVERTER = """
[inverter]
link = "simulated"
poll_interval_s = 0.02
timeout_s = 0.3
settle_timeout_s = 2
fault_retry_s = 1
sim_time_constant_s = 0.05
"""

ENTER_SERVICE_DELAY_S = 1.0


def wset_w(sim: SimInverter) -> float:
    """The 704 ``WSet`` the station wrote, decoded with ``WSet_SF`` (SunSpec sign: + export)."""
    raw, sf = sim.get(704, "WSet"), sim.get(704, "WSet_SF")
    assert isinstance(raw, int) and isinstance(sf, int), (raw, sf)
    return float(raw) * 10.0**sf


def written_w(sim: SimInverter) -> float:
    """What the device is commanded to now: ``WSet`` while ``WSetEna`` is on, else 0 W."""
    return wset_w(sim) if sim.get(704, "WSetEna") == 1 else 0.0


async def until(predicate: Callable[[], bool], timeout_s: float = 5, what: str = "") -> None:
    """Poll a real peer's state until ``predicate`` holds."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what or predicate}") from None


@dataclass
class Bench:
    csms: Csms
    station: Station
    clock: SystemClock
    endpoint: Path
    version: str

    @property
    def supervisor(self) -> InverterSupervisor:
        assert self.station.inverter is not None
        return self.station.inverter.supervisor

    @property
    def sim(self) -> SimInverter:
        assert self.station.inverter is not None and self.station.inverter.sim is not None
        return self.station.inverter.sim

    async def control(self, cmd: str, **args: Any) -> dict[str, Any]:
        response = await sim_request(self.endpoint, {"cmd": cmd, **args})
        assert response["ok"] is True, response
        return response

    async def status(self) -> dict[str, Any]:
        return await self.control("status")

    def command(self) -> tuple[float, str] | None:
        """The energy manager's newest command for EVSE 1: (power_w, reason)."""
        command = self.station.sim_vehicles.last.get(1)
        return None if command is None else (command.power_w, command.reason.value)

    def power_w(self) -> float | None:
        command = self.command()
        return None if command is None else command[0]

    def grid(self) -> str | None:
        verdict = self.supervisor.verdict
        return None if verdict is None else verdict.status.value

    async def in_service(self, timeout_s: float = 5) -> None:
        await until(lambda: self.grid() == "InService", timeout_s, "grid in service")


async def _bench(subprotocol: str, tmp_path: Path, extra: str = "") -> AsyncIterator[Bench]:
    csms = await Csms(subprotocols=(subprotocol,)).start()
    clock = SystemClock()
    config = station_config(tmp_path, csms.url, evses=1, extra=INVERTER + GRID + extra)
    station = Station(config, clock=clock)
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    try:
        await booted(csms, connectors=1)
        assert station.control is not None
        endpoint = station.control.endpoint.endpoint_file
        await until(endpoint.exists, 5, "control endpoint")
        bench = Bench(csms, station, clock, endpoint, subprotocol.removeprefix("ocpp"))
        await bench.in_service()
        yield bench
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await csms.stop()


@pytest.fixture(params=["ocpp2.0.1", "ocpp2.1"])
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    async for item in _bench(str(request.param), tmp_path):
        yield item


async def start_session(bench: Bench, **plug: Any) -> str:
    """Plug a V2X vehicle and present a token: the id of the Started transaction."""
    args = {"soc_pct": 60.0, "capacity_kwh": 40.0, "v2x": True, "max_discharge_w": 8000.0}
    await bench.control("plug", evse=1, **(args | plug))
    await bench.control("token", evse=1, id=TOKEN)
    (started,) = await wait_event(bench.csms, "Started")
    return str(started["transactionInfo"]["transactionId"])


async def discharge(bench: Bench, transaction_id: str) -> None:
    reply = await request(
        bench.csms,
        "SetChargingProfile",
        {"evseId": 1, "chargingProfile": discharge_profile(bench.version, transaction_id)},
    )
    assert reply == {"status": "Accepted"}


async def discharging(bench: Bench, transaction_id: str) -> None:
    """Start a 4 kW discharge and wait until the inverter is commanded to inject 4 kW."""
    await discharge(bench, transaction_id)
    await until(lambda: written_w(bench.sim) == 4000.0, 3, "WSet +4000 W")


async def limit_charging(bench: Bench, limit_w: float) -> None:
    """A TxDefaultProfile that caps charging at ``limit_w`` (both protocol versions)."""
    period = {"startPeriod": 0, "limit": limit_w}
    profile = {
        "id": 51,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
        ],
    }
    reply = await request(
        bench.csms, "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
    )
    assert reply == {"status": "Accepted"}


# --- 1. set-points and their sign at the register level ----------------------------------------


async def test_charge_and_discharge_set_points_at_the_register_level(bench: Bench) -> None:
    sim = bench.sim
    assert written_w(sim) == 0.0  # nothing before a session
    transaction_id = await start_session(bench)
    # Charging at the EVSE rating: the inverter absorbs 20 kW from the grid (WSet negative).
    assert bench.power_w() == 20000.0
    await until(lambda: wset_w(sim) == -20000.0, 3, "WSet -20000 W")
    assert sim.get(704, "WSetEna") == 1 and sim.get(704, "WSetMod") == 1  # watts, enabled
    await until(lambda: sim.measured_w == pytest.approx(-20000.0, abs=100), 3, "absorbing")
    status = await bench.status()
    assert status["inverter"]["setpoint_w"] == 20000.0  # station sign: into the vehicle
    assert status["inverter"]["device"]["target_w"] == -20000.0  # SunSpec sign: absorbing
    await until(
        lambda: (bench.supervisor.status()["measured_power_w"] or 0) > 19900,
        3,
        "measured charging power",
    )

    await discharging(bench, transaction_id)
    assert bench.command() == (-4000.0, "Setpoint")
    assert sim.status()["target_w"] == 4000.0  # injecting into the grid
    await until(lambda: sim.measured_w == pytest.approx(4000.0, abs=50), 3, "injecting")
    await until(
        lambda: (
            bench.station.status()["inverter"]["measured_power_w"] == pytest.approx(-4000.0, abs=50)
        ),
        3,
        "station measures a discharge",
    )
    inverter = (await bench.status())["inverter"]
    assert inverter["measured_power_w"] < 0
    assert inverter["setpoint_w"] == -4000.0
    assert inverter["grid"] == "InService" and inverter["fault"] is None

    await bench.control("unplug", evse=1)
    await wait_event(bench.csms, "Ended")
    await until(lambda: written_w(sim) == 0.0, 3, "0 W after the session")


# --- 2. grid excursions ------------------------------------------------------------------------


async def _alarms(bench: Bench, since: int, count: int) -> list[dict[str, Any]]:
    """The grid alarms since ``since``: NotifyDERAlarm (2.1) or NotifyEvent ElectricalFeed."""
    if bench.version == "2.1":
        frames = await calls(bench.csms, "NotifyDERAlarm", count, since=since)
        return [f.payload for f in frames]
    frames = await calls(
        bench.csms,
        "NotifyEvent",
        count,
        since=since,
        where=lambda f: f.payload["eventData"][0]["component"]["name"] == "ElectricalFeed",
    )
    return [f.payload["eventData"][0] for f in frames]


def _fault_of(bench: Bench, alarm: dict[str, Any]) -> tuple[str, bool]:
    """(grid fault, ended) of one alarm message, whichever protocol carried it."""
    if bench.version == "2.1":
        return alarm["gridEventFault"], bool(alarm.get("alarmEnded", False))
    assert alarm["variable"] == {"name": "Problem"}
    assert alarm["trigger"] == "Alerting"
    ended = bool(alarm["cleared"])
    assert alarm["actualValue"] == ("false" if ended else "true")
    return alarm["techCode"], ended


TRIPS = [
    # (grid command, the fault, the 2.1 must-trip control)
    ({"frequency_hz": 46.0}, "UnderFrequency", "LFMustTrip"),
    ({"frequency_hz": 53.0}, "OverFrequency", "HFMustTrip"),
    ({"voltage_v": 150.0}, "UnderVoltage", "LVMustTrip"),
    ({"voltage_v": 500.0}, "OverVoltage", "HVMustTrip"),
]


async def test_grid_excursions_of_each_kind_stop_discharge_and_enter_service_again(
    bench: Bench,
) -> None:
    sim = bench.sim
    transaction_id = await start_session(bench)
    await discharging(bench, transaction_id)
    for step, fault, control in TRIPS:
        since = len(bench.csms.frames)
        await bench.control("grid", **step)
        # Discharge stops at once; 0.16 s later the trip point ceases to energize both ways.
        await until(lambda: written_w(sim) == 0.0, 1, f"0 W on {fault}")
        await until(lambda: bench.command() == (0.0, "GridTrip"), 2, f"GridTrip on {fault}")
        assert bench.grid() == "OutOfService"
        (began,) = await _alarms(bench, since, 1)
        assert _fault_of(bench, began) == (fault, False)
        if bench.version == "2.1":
            assert began["controlType"] == control
        status = await bench.status()
        assert status["inverter"]["discharge_allowed"] is False
        assert status["evses"][0]["power_command_w"] == 0.0

        # Back to normal: the alarm ends, but service resumes only after the delay.
        since = len(bench.csms.frames)
        restored_at = asyncio.get_running_loop().time()
        await bench.control("grid", frequency_hz=50.0, voltage_v=400.0)
        (ended,) = await _alarms(bench, since, 1)
        assert _fault_of(bench, ended) == (fault, True)
        await asyncio.sleep(ENTER_SERVICE_DELAY_S / 2)
        assert bench.command() == (0.0, "GridTrip")
        assert written_w(sim) == 0.0
        await until(lambda: written_w(sim) == 4000.0, 3, f"discharge again after {fault}")
        waited_s = asyncio.get_running_loop().time() - restored_at
        assert waited_s >= ENTER_SERVICE_DELAY_S
        assert bench.command() == (-4000.0, "Setpoint")


async def test_a_ride_through_stops_discharge_at_once_but_not_charging(bench: Bench) -> None:
    sim = bench.sim
    transaction_id = await start_session(bench)
    await until(lambda: written_w(sim) == -20000.0, 3, "charging")
    # 48 Hz: beyond UF1 (48.5 Hz, 300 s clearing time), inside UF2 (46.5 Hz): ride through.
    since = len(bench.csms.frames)
    await bench.control("grid", frequency_hz=48.0)
    await until(lambda: bench.grid() == "RideThrough", 1, "ride-through")
    (began,) = await _alarms(bench, since, 1)
    assert _fault_of(bench, began) == ("UnderFrequency", False)
    await asyncio.sleep(0.3)  # several measurements: charging goes on
    assert written_w(sim) == -20000.0
    assert bench.power_w() == 20000.0

    # A discharge asked for during the ride-through is held at 0 W by the grid.
    await discharge(bench, transaction_id)
    await until(lambda: bench.command() == (0.0, "LimitedByGrid"), 2, "LimitedByGrid")
    await until(lambda: written_w(sim) == 0.0, 1, "0 W")
    await bench.control("grid", frequency_hz=50.0)
    # It never stopped energizing: discharge resumes without an enter-service delay.
    await until(lambda: written_w(sim) == 4000.0, 0.5, "discharge after the ride-through")
    assert bench.grid() == "InService"

    # Discharging: a voltage sag into ride-through (0.6 pu) stops discharge on the spot.
    await bench.control("grid", voltage_v=240.0)
    await until(lambda: written_w(sim) == 0.0, 0.5, "0 W on a voltage sag")
    assert bench.grid() == "RideThrough"
    assert bench.command() == (0.0, "LimitedByGrid")
    await bench.control("grid", voltage_v=400.0)
    await until(lambda: written_w(sim) == 4000.0, 0.5, "discharge after the sag")


# --- 3. freq-watt ------------------------------------------------------------------------------


@pytest.mark.parametrize("bench", ["ocpp2.1"], indirect=True)
async def test_local_frequency_follows_the_freq_watt_curve(bench: Bench) -> None:
    sim = bench.sim
    transaction_id = await start_session(bench)
    # Below 49.8 Hz the vehicle supports the grid with up to 5 kW, above 50.2 Hz it absorbs up
    # to 5 kW; a 1 kW charging baseline; linear in between.
    period = {
        "startPeriod": 0,
        "limit": 10000,
        "dischargeLimit": -8000,
        "operationMode": "LocalFrequency",
        "v2xBaseline": 1000,
        "v2xFreqWattCurve": [
            {"frequency": 49.8, "power": -5000},
            {"frequency": 50.0, "power": 0},
            {"frequency": 50.2, "power": 5000},
        ],
    }
    profile = {
        "id": 41,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "transactionId": transaction_id,
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
        ],
    }
    reply = await request(
        bench.csms, "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
    )
    assert reply == {"status": "Accepted"}
    await until(lambda: bench.command() == (1000.0, "FrequencyResponse"), 2, "baseline")
    await until(lambda: written_w(sim) == -1000.0, 1, "WSet -1000 W at 50 Hz")
    for frequency_hz, power_w in [
        (49.9, 1000.0 - 2500.0),  # half-way down: discharge 1.5 kW
        (49.7, 1000.0 - 5000.0),  # beyond the last point: flat
        (50.1, 1000.0 + 2500.0),
        (50.0, 1000.0),
    ]:
        await bench.control("grid", frequency_hz=frequency_hz)

        def follows(power_w: float = power_w) -> bool:
            command = bench.command()
            return (
                command is not None
                and command[1] == "FrequencyResponse"
                and command[0] == pytest.approx(power_w, abs=0.01)
                and written_w(sim) == pytest.approx(-power_w, abs=1.0)  # WSet in whole W
            )

        await until(follows, 1, f"{power_w} W at {frequency_hz} Hz")
        assert bench.grid() == "InService"


# --- 4. set-and-verify faults ------------------------------------------------------------------


FAULTS = [
    ("refuse-write", "Refused"),
    ("wrong-readback", "WrongReadBack"),
    ("no-answer", "NoAnswer"),
    ("not-following", "NotFollowing"),  # after settle_timeout_s (2 s)
]


async def _converter_event(bench: Bench, since: int, *, cleared: bool) -> dict[str, Any]:
    """The first NotifyEvent AcDcConverter Problem (raised or cleared) since ``since``."""

    def match(frame: Frame) -> bool:
        data = frame.payload["eventData"][0]
        return data["component"]["name"] == "AcDcConverter" and data["cleared"] is cleared

    (frame,) = await calls(bench.csms, "NotifyEvent", since=since, where=match, timeout_s=8)
    return dict(frame.payload["eventData"][0])


@pytest.mark.parametrize("kind", [k for k, _ in FAULTS])
async def test_an_inverter_that_does_not_take_its_set_point_is_a_fault(
    bench: Bench, kind: str
) -> None:
    sim = bench.sim
    await start_session(bench)
    await until(lambda: written_w(sim) == -20000.0, 3, "charging")
    since = len(bench.csms.frames)
    await bench.control("inverter_fault", kind=kind)
    # A new power command makes the station write a new set-point: a 15 kW charging limit.
    await limit_charging(bench, 15000.0)
    # No answer is also no measurement: the grid counts as unknown and the station trips.
    reasons = ("LimitedByGrid", "GridTrip") if kind == "no-answer" else ("LimitedByGrid",)
    await until(lambda: bench.command() in [(0.0, r) for r in reasons], 5, "0 W on the fault")
    await until(lambda: bench.supervisor.status()["fault"] is not None, 5, "the fault declared")
    status = await bench.status()
    assert status["evses"][0]["power_command_w"] == 0.0
    assert status["inverter"]["fault"] is not None
    if kind != "no-answer":
        assert written_w(sim) == 0.0
    event = await _converter_event(bench, since, cleared=False)
    assert event["actualValue"] == "true" and event["variable"] == {"name": "Problem"}
    assert event["techCode"] == dict(FAULTS)[kind]
    await bench.control("inverter_fault", kind="clear")
    # fault_retry_s = 1: power resumes by itself.
    await until(lambda: written_w(sim) == -15000.0, 6, "charging again after the fault")
    assert bench.command() == (15000.0, "LimitedBySchedule")
    cleared = await _converter_event(bench, since, cleared=True)
    assert cleared["actualValue"] == "false"


# --- 5. the reversion fail-safe when the station process dies ----------------------------------


def _hardware_config(tmp_path: Path, csms_url: str, inverter_port: int) -> Path:
    """``station run`` config: the inverter is "hardware" on 127.0.0.1 (the test's simulator)."""
    path = tmp_path / "station.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [station]
            id = "{STATION_ID}"
            [csms]
            url = "{csms_url}"
            retry_backoff_wait_minimum_s = 0
            retry_backoff_random_range_s = 0
            message_timeout_s = 5
            [storage]
            database = "station.db"
            [[evse]]
            id = 1
            connector = "chademo"
            [inverter]
            link = "hardware"
            host = "127.0.0.1"
            port = {inverter_port}
            poll_interval_s = 0.05
            heartbeat_interval_s = 0.5
            reversion_timeout_s = {REVERSION_TIMEOUT_S}
            """
        )
        + GRID,
        encoding="utf-8",
    )
    return path


REVERSION_TIMEOUT_S = 2


async def test_the_inverter_reverts_to_0_w_when_the_station_is_killed(tmp_path: Path) -> None:
    clock = SystemClock()
    # The inverter outlives the station: it runs here, the station in its own process.
    sim = SimInverter(SimInverterSpec(max_power_w=20000.0, voltage_v=400.0), clock=clock)
    async with Csms(subprotocols=("ocpp2.0.1",)) as csms, sim:
        path = _hardware_config(tmp_path, csms.url, sim.port)
        endpoint = endpoint_for(load_config(path)).endpoint_file
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "station.cli",
            "run",
            "--config",
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=tmp_path,
        )
        try:
            await booted(csms, connectors=1)
            await until(endpoint.exists, 10, "control endpoint")
            # The fail-safe is armed on the device: 0 W after 2 s without heartbeat.
            await until(lambda: sim.status()["reversion_s"] == REVERSION_TIMEOUT_S, 5, "armed")
            assert sim.get(704, "WSetRvrt") == 0  # it reverts to a set-point of 0 W
            for command in (
                {"cmd": "plug", "evse": 1},
                {"cmd": "token", "evse": 1, "id": TOKEN},
            ):
                assert (await sim_request(endpoint, command))["ok"] is True
            await wait_event(csms, "Started", timeout_s=10)
            await until(lambda: written_w(sim) == -20000.0, 5, "charging through the inverter")
            # The heartbeat keeps it there for longer than the reversion time.
            await asyncio.sleep(REVERSION_TIMEOUT_S + 1)
            assert sim.status()["target_w"] == -20000.0 and sim.reverted is False

            process.send_signal(signal.SIGKILL)
            await process.wait()
            killed_at = asyncio.get_running_loop().time()
            await until(lambda: sim.status()["target_w"] == 0.0, REVERSION_TIMEOUT_S + 1.5, "0 W")
            reverted_after_s = asyncio.get_running_loop().time() - killed_at
            assert sim.reverted is True
            # Not before the timeout (the last heartbeat was at most 0.5 s before the kill).
            assert reverted_after_s >= REVERSION_TIMEOUT_S - 0.5 - 0.1
            await until(lambda: abs(sim.measured_w) < 10, 2, "the measured power follows")
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


# --- 6. DER control over a real ocpp2.1 WebSocket ------------------------------------------------


@pytest.mark.parametrize("bench", ["ocpp2.1"], indirect=True)
async def test_limit_max_discharge_lowers_the_inverter_set_point(bench: Bench) -> None:
    sim = bench.sim
    transaction_id = await start_session(bench)
    await discharging(bench, transaction_id)
    control = {
        "isDefault": True,
        "controlId": "lmd-1",
        "controlType": "LimitMaxDischarge",
        "limitMaxDischarge": {"priority": 0, "pctMaxDischargePower": 25},
    }
    assert await request(bench.csms, "SetDERControl", control) == {"status": "Accepted"}
    # 25 % of the EVSE's 10 kW discharge rating: the inverter injects at most 2.5 kW.
    await until(lambda: written_w(bench.sim) == 2500.0, 2, "WSet +2500 W")
    assert bench.command() == (-2500.0, "LimitedByGrid")
    await until(lambda: sim.measured_w == pytest.approx(2500.0, abs=50), 3, "injecting 2.5 kW")
    clear = {"isDefault": True, "controlType": "LimitMaxDischarge"}
    assert await request(bench.csms, "ClearDERControl", clear) == {"status": "Accepted"}
    await until(lambda: written_w(bench.sim) == 4000.0, 2, "WSet +4000 W again")


# --- 7. the inverter is the meter ----------------------------------------------------------------


async def test_the_transaction_meter_is_the_inverters_energy_registers(bench: Bench) -> None:
    sim = bench.sim
    transaction_id = await start_session(bench)
    # One more watt-hour than asserted below: the reading at Ended may be one poll old.
    await until(lambda: sim.wh_absorbed >= 11, 5, "11 Wh absorbed")
    await discharging(bench, transaction_id)
    await until(lambda: sim.wh_injected >= 4, 5, "4 Wh injected")
    # The vehicle's own simulated meter integrates over the wall clock, the inverter over the
    # monotonic one: a wall-clock jump of an hour would add 4 kWh to the vehicle's meter only.
    bench.clock.set_now(bench.clock.now() + timedelta(hours=1))
    vehicle = (await bench.status())["evses"][0]
    assert vehicle["energy_export_wh"] > 3000

    await bench.control("unplug", evse=1)
    (ended,) = await wait_event(bench.csms, "Ended")
    device = sim.status()
    (imported,) = register(ended, IMPORT)
    (exported,) = register(ended, EXPORT)
    # TotWhAbs / TotWhInj are whole watt-hours; the reading is at most one poll old.
    assert int(device["wh_absorbed"]) - 1 <= imported <= device["wh_absorbed"]
    assert int(device["wh_injected"]) - 1 <= exported <= device["wh_injected"]
    assert imported >= 10 and exported >= 3


@pytest.mark.parametrize("bench", ["ocpp2.0.1"], indirect=True)
async def test_periodic_meter_values_come_from_the_inverter(bench: Bench) -> None:
    await set_variables(bench.csms, variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"))
    await start_session(bench)
    since = len(bench.csms.frames)
    (updated,) = await calls(
        bench.csms,
        "TransactionEvent",
        where=lambda f: f.payload.get("triggerReason") == "MeterValuePeriodic",
        since=since,
    )
    (imported,) = register(updated.payload, IMPORT)
    assert 0 < imported <= bench.sim.wh_absorbed
    assert imported == int(imported)  # the inverter's register counts whole Wh (TotWh_SF 0)
