"""CHAdeMO end to end: the EVSE inside a running station, driven from outside (issues 5 and 7).

A real :class:`~station.app.Station` runs in this event loop against the sim CSMS over a WebSocket
on 127.0.0.1 (both subprotocols). Each ``[[evse]]`` with an ``[evse.chademo]`` table runs the
CHAdeMO session on its own python-can ``virtual`` channel with the simulated CHAdeMO vehicle on
the same channel and the simulated hardware (lock, insulation monitor, contactors, DC output,
emergency stop). The world is driven only through the control protocol (``station sim``): plug,
token, unplug, ``ev_fault``, ``estop``/``estop_release``, ``insulation``; each test checks both what
the CSMS receives and what ``status`` (and the simulated hardware) says.

Several CHAdeMO EVSEs in one station run the stop and fault paths side by side, so that the whole
file stays within a few tens of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.chademo_link import ChademoLink
from station.clock import SystemClock
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls, request, variable
from tests.test_transactions_e2e import set_variables
from tests.test_v2g_e2e import discharge_profile

TOKEN = "04A1B2C3"
IMPORT = "Energy.Active.Import.Register"
EXPORT = "Energy.Active.Export.Register"


def evse_tables(
    chademo: Sequence[int], ccs: Sequence[int] = (), *, keys: Callable[[int], str] = lambda n: ""
) -> str:
    """``[[evse]]`` tables: CHAdeMO ones (each followed by its ``[evse.chademo]``), then CCS."""
    text = ""
    for n in chademo:
        text += f'[[evse]]\nid = {n}\nconnector = "chademo"\n[evse.chademo]\n{keys(n)}\n'
    for n in ccs:
        text += f'[[evse]]\nid = {n}\nconnector = "ccs"\n'
    return text


@dataclass
class Bench:
    csms: Csms
    station: Station
    endpoint: Path
    version: str
    config_file: Path

    async def sim(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await sim_request(self.endpoint, {"cmd": cmd, **args})

    async def ok(self, cmd: str, **args: Any) -> None:
        response = await self.sim(cmd, **args)
        assert response == {"ok": True}, (cmd, args, response)

    async def evse(self, evse_id: int) -> dict[str, Any]:
        status = await self.sim("status")
        assert status["ok"] is True, status
        (item,) = [e for e in status["evses"] if e["evse"] == evse_id]
        return dict(item)

    async def until(
        self, evse_id: int, what: Callable[[dict[str, Any]], bool], timeout_s: float = 5
    ) -> dict[str, Any]:
        """Poll ``status`` until ``what(evse)`` holds; the last status on timeout (an error)."""
        item: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout_s):
                while not what(item := await self.evse(evse_id)):
                    await asyncio.sleep(0.03)
        except TimeoutError:
            raise AssertionError(f"EVSE {evse_id} never got there: {item}") from None
        return item

    def link(self, evse_id: int) -> ChademoLink:
        return self.station.chademo[evse_id]


Open = Callable[..., Awaitable[Bench]]


@pytest.fixture
async def open_bench(tmp_path: Path) -> AsyncIterator[Open]:
    """Start a station with the given ``[[evse]]`` tables against a CSMS of one version."""
    running: list[tuple[Csms, asyncio.Event, asyncio.Task[Any]]] = []

    async def start(version: str, tables: str, **csms_args: Any) -> Bench:
        csms = await Csms(subprotocols=(f"ocpp{version}",), **csms_args).start()
        config = station_config(tmp_path, csms.url, evses=0, extra=tables)
        config_file = tmp_path / "station.toml"
        config_file.write_text(
            f'[station]\nid = "{STATION_ID}"\n[csms]\nurl = "{csms.url}"\n'
            '[storage]\ndatabase = "station.db"\n' + tables
        )
        station = Station(config, clock=SystemClock())
        stop = asyncio.Event()
        task = asyncio.ensure_future(station.run(stop))
        running.append((csms, stop, task))
        await booted(csms, connectors=len(config.evse))
        assert station.control is not None
        endpoint = station.control.endpoint.endpoint_file
        async with asyncio.timeout(5):
            while not endpoint.exists():
                await asyncio.sleep(0.02)
        return Bench(csms, station, endpoint, version, config_file)

    yield start
    for csms, stop, task in running:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await csms.stop()


# --- what the CSMS received ----------------------------------------------------------------------


def tx_event(
    event_type: str,
    *,
    evse_id: int | None = None,
    transaction_id: str | None = None,
    charging_state: str | None = None,
) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        payload = frame.payload
        if payload.get("eventType") != event_type:
            return False
        if evse_id is not None and payload.get("evse", {}).get("id") != evse_id:
            return False
        info = payload.get("transactionInfo", {})
        if charging_state is not None and info.get("chargingState") != charging_state:
            return False
        return transaction_id is None or info.get("transactionId") == transaction_id

    return match


async def event(
    bench: Bench, event_type: str, *, timeout_s: float = 5, since: int = 0, **which: Any
) -> dict[str, Any]:
    (frame,) = await calls(
        bench.csms,
        "TransactionEvent",
        where=tx_event(event_type, **which),
        since=since,
        timeout_s=timeout_s,
    )
    return frame.payload


def events_of(bench: Bench, transaction_id: str) -> list[dict[str, Any]]:
    return [
        f.payload
        for f in bench.csms.received("TransactionEvent", STATION_ID)
        if f.payload["transactionInfo"]["transactionId"] == transaction_id
    ]


def register(payload: dict[str, Any], measurand: str) -> list[float]:
    return [
        float(sv["value"])
        for mv in payload.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == measurand
    ]


def charging_states(bench: Bench, transaction_id: str) -> list[str]:
    return [
        e["transactionInfo"]["chargingState"]
        for e in events_of(bench, transaction_id)
        if "chargingState" in e["transactionInfo"]
    ]


# --- what the station does -----------------------------------------------------------------------


def charging(item: dict[str, Any]) -> bool:
    return bool(item["chademo"]["state"] == "Charging" and item["measured_power_w"] > 0)


def idle(item: dict[str, Any]) -> bool:
    return bool(
        item["chademo"]["state"] == "Idle"
        and item["transaction_id"] is None
        and item["connector_status"] == "Available"
        and not item["plugged"]
    )


def assert_safe(bench: Bench, evse_id: int, item: dict[str, Any]) -> None:
    """Contactors open and the output at 0, in the status and in the simulated hardware."""
    assert item["chademo"]["contactors_closed"] is False, item
    assert item["chademo"]["setpoint_current_a"] == 0.0, item
    assert item["measured_power_w"] == 0.0, item
    hardware = bench.link(evse_id).hardware
    assert hardware.contactors_closed is False
    assert (hardware.voltage_v, hardware.current_a) == (0.0, 0.0)


async def start_charging(bench: Bench, evse_id: int, **plug: Any) -> str:
    """Plug (control protocol) and a token: the Started transaction's id, once energy flows."""
    since = len(bench.csms.frames)
    await bench.ok("plug", evse=evse_id, **{"soc_pct": 50.0, "capacity_kwh": 1.0, **plug})
    await bench.ok("token", evse=evse_id, id=TOKEN)
    started = await event(bench, "Started", evse_id=evse_id, since=since)
    await bench.until(evse_id, charging)
    return str(started["transactionInfo"]["transactionId"])


async def unplug_to_idle(bench: Bench, evse_id: int) -> dict[str, Any]:
    await bench.ok("unplug", evse=evse_id)
    item = await bench.until(evse_id, idle)
    assert_safe(bench, evse_id, item)
    return item


def order_of(commands: list[str], *prefixes: str) -> list[int]:
    """Index of the first command starting with each prefix (-1: none)."""
    return [
        next((i for i, c in enumerate(commands) if c.startswith(prefix)), -1) for prefix in prefixes
    ]


# --- 1. a full charge ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_full_charge_to_the_vehicle_target(open_bench: Open, version: str) -> None:
    bench = await open_bench(version, evse_tables([1], [2]))
    await set_variables(bench.csms, variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"))
    hardware = bench.link(1).hardware
    # 90 % of 0.1 kWh: 10 Wh to full, about 2 s at the ~17 kW the session allows.
    await bench.ok("plug", evse=1, soc_pct=90.0, capacity_kwh=0.1, v2x=True)
    (needs,) = await calls(bench.csms, "NotifyEVChargingNeeds")
    charging_needs = needs.payload["chargingNeeds"]
    assert needs.payload["evseId"] == 1
    if version == "2.1":
        assert charging_needs["requestedEnergyTransfer"] == "DC_BPT"
        assert charging_needs["availableEnergyTransfer"] == ["DC", "DC_BPT"]
    else:
        assert charging_needs["requestedEnergyTransfer"] == "DC"
    dc = charging_needs["dcChargingParameters"]
    assert dc["evEnergyCapacity"] == 100 and dc["stateOfCharge"] == 90
    assert dc["evMaxVoltage"] == 410
    plugged = await bench.evse(1)
    assert plugged["chademo"]["state"] == "ParameterCheck"  # waiting for the authorization
    assert plugged["chademo"]["contactors_closed"] is False and "close" not in hardware.commands
    assert plugged["connector_status"] == "Occupied"

    await bench.ok("token", evse=1, id=TOKEN)
    (authorize,) = await calls(bench.csms, "Authorize")
    assert authorize.payload["idToken"] == {"idToken": TOKEN, "type": "ISO14443"}
    started = await event(bench, "Started", evse_id=1)
    transaction_id = started["transactionInfo"]["transactionId"]
    assert register(started, IMPORT) == [0.0]
    item = await bench.until(1, charging)
    chademo = item["chademo"]
    assert chademo["contactors_closed"] is True and chademo["locked"] is True
    assert chademo["vehicle"] == "Energy"
    assert item["transaction_id"] == transaction_id and item["session"] == "CHARGING"
    # The current never exceeds min(vehicle request, command / V, station rating 50 A).
    assert 0 < chademo["setpoint_current_a"] <= min(50.0, chademo["vehicle_request_a"])
    assert item["measured_power_w"] <= item["power_command_w"]
    # Lock, then a passed insulation test of this session, then (only then) the contactors.
    lock, test, close = order_of(hardware.commands, "lock", "insulation_test", "close")
    assert -1 < lock < test < close, hardware.commands
    assert hardware.result() is not None and hardware.result() == (
        int(hardware.commands[test].split()[1]),
        True,
    )

    # The vehicle reaches its target SoC and stops asking: the EV suspends, nothing faults.
    suspended = await bench.until(1, lambda e: e["session"] == "SUSPENDED", timeout_s=10)
    assert suspended["soc_pct"] == pytest.approx(100.0)
    assert suspended["chademo"]["stop_reason"] == "VehicleStopRequest"
    await bench.until(1, lambda e: e["chademo"]["state"] == "Unlocked")
    await event(bench, "Updated", transaction_id=transaction_id, charging_state="SuspendedEV")
    assert charging_states(bench, transaction_id)[-2:] == ["Charging", "SuspendedEV"]

    ended_item = await unplug_to_idle(bench, 1)
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    # The import register grows through the session: 0 at the start, the periodic samples in
    # between, about the 10 Wh the battery took at the end.
    periodic = [
        register(e, IMPORT)[0]
        for e in events_of(bench, transaction_id)
        if e.get("triggerReason") == "MeterValuePeriodic"
    ]
    (final_wh,) = register(ended, IMPORT)
    assert periodic and periodic == sorted(periodic) and 0 < periodic[0] < final_wh
    # The DC meter integrates V x I per 100 ms cycle: within a few cycles of full power.
    assert final_wh == pytest.approx(10.0, abs=1.5)
    assert register(ended, EXPORT) == [0.0]
    assert ended_item["energy_import_wh"] == pytest.approx(final_wh, abs=0.01)


# --- 2. V2H --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_v2h_discharge_follows_a_negative_command(open_bench: Open, version: str) -> None:
    bench = await open_bench(version, evse_tables([1], [2]))
    await set_variables(bench.csms, variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"))
    transaction_id = await start_charging(
        bench, 1, soc_pct=60.0, capacity_kwh=1.0, v2x=True, max_discharge_w=8000.0
    )
    reply = await request(
        bench.csms,
        "SetChargingProfile",
        {"evseId": 1, "chargingProfile": discharge_profile(version, transaction_id)},
    )
    assert reply == {"status": "Accepted"}
    item = await bench.until(1, lambda e: e["measured_power_w"] < 0)
    assert item["power_command_w"] == -4000.0
    assert item["chademo"]["state"] == "Discharging"
    # Never more than the command: |I| <= 4000 W / V (the session's basis voltage >= measured).
    assert -4000.0 <= item["measured_power_w"] < -3000.0
    assert item["chademo"]["measured_current_a"] < 0
    hardware = bench.link(1).hardware
    assert hardware.contactors_closed and hardware.current_a < 0
    soc_before, import_before = item["soc_pct"], item["energy_import_wh"]

    # The export register grows in the periodic TransactionEvents; import stands still.
    since = len(bench.csms.frames)
    first, second = [
        register(f.payload, EXPORT)[0]
        for f in await calls(
            bench.csms,
            "TransactionEvent",
            2,
            where=lambda f: f.payload.get("triggerReason") == "MeterValuePeriodic",
            since=since,
        )
    ]
    assert 0 < first < second
    later = await bench.evse(1)
    assert later["soc_pct"] < soc_before
    assert later["energy_import_wh"] == pytest.approx(import_before, abs=0.05)
    assert later["energy_export_wh"] >= second

    await bench.ok("unplug", evse=1)
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert register(ended, EXPORT)[0] >= second
    assert_safe(bench, 1, await bench.until(1, idle))


async def test_a_vehicle_without_v2h_never_discharges(open_bench: Open) -> None:
    bench = await open_bench("2.1", evse_tables([1], [2]))
    transaction_id = await start_charging(bench, 1, v2x=False, max_discharge_w=8000.0)
    (needs,) = await calls(bench.csms, "NotifyEVChargingNeeds")
    assert needs.payload["chargingNeeds"]["requestedEnergyTransfer"] == "DC"
    assert needs.payload["chargingNeeds"]["availableEnergyTransfer"] == ["DC"]
    reply = await request(
        bench.csms,
        "SetChargingProfile",
        {"evseId": 1, "chargingProfile": discharge_profile("2.1", transaction_id)},
    )
    assert reply == {"status": "Accepted"}
    item = await bench.until(1, lambda e: e["power_command_w"] == 0.0)
    await asyncio.sleep(0.5)  # five CAN cycles at the new command
    item = await bench.evse(1)
    assert item["measured_power_w"] == 0.0 and item["energy_export_wh"] == 0.0
    assert item["chademo"]["state"] != "Discharging"
    assert bench.link(1).limits().discharge_allowed is False
    outputs = [c for c in bench.link(1).hardware.commands if c.startswith("output")]
    assert outputs and all(float(c.split()[2]) >= 0 for c in outputs), outputs
    await bench.ok("unplug", evse=1)
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert register(ended, EXPORT) == [0.0]


# --- 3. every stop and fault path ----------------------------------------------------------------

# ev_fault kind -> (the session's stop reason, the stoppedReason the CSMS must get)
VEHICLE_FAULTS = {
    "overvoltage": ("VehicleFault", "StoppedByEV"),
    "under-voltage": ("VehicleFault", "StoppedByEV"),
    "current_deviation": ("VehicleFault", "StoppedByEV"),
    "high-temperature": ("VehicleFault", "StoppedByEV"),
    "voltage-deviation": ("VehicleFault", "StoppedByEV"),
    "system-fault": ("VehicleFault", "StoppedByEV"),
    "shift-lever": ("ShiftLever", "StoppedByEV"),
    "incompatible-voltage": ("BatteryIncompatible", "Other"),
    "silence": ("VehicleTimeout", "EVDisconnected"),
}


async def vehicle_fault_path(bench: Bench, evse_id: int, kind: str) -> None:
    reason, stopped_reason = VEHICLE_FAULTS[kind]
    transaction_id = await start_charging(bench, evse_id)
    await bench.ok("ev_fault", evse=evse_id, kind=kind)
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert ended["triggerReason"] == "AbnormalCondition", (kind, ended)
    assert ended["transactionInfo"]["stoppedReason"] == stopped_reason, (kind, ended)
    item = await bench.until(
        evse_id,
        lambda e: e["chademo"]["state"] in ("Unlocked", "Idle") and not e["chademo"]["locked"],
    )
    assert_safe(bench, evse_id, item)
    assert item["transaction_id"] is None
    if kind != "silence":  # a silent vehicle is gone: the session is already back to Idle
        assert item["chademo"]["stop_reason"] == reason, (kind, item)
    await unplug_to_idle(bench, evse_id)


async def vehicle_stop_path(bench: Bench, evse_id: int) -> None:
    """A stop request from the car suspends (SuspendedEV); the transaction ends at unplug."""
    transaction_id = await start_charging(bench, evse_id)
    await bench.ok("ev_fault", evse=evse_id, kind="stop-request")
    item = await bench.until(evse_id, lambda e: e["chademo"]["state"] == "Unlocked")
    assert_safe(bench, evse_id, item)
    assert item["chademo"]["stop_reason"] == "VehicleStopRequest"
    assert item["transaction_id"] == transaction_id and item["session"] == "SUSPENDED"
    await event(bench, "Updated", transaction_id=transaction_id, charging_state="SuspendedEV")
    await unplug_to_idle(bench, evse_id)
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def emergency_stop_path(bench: Bench, evse_id: int) -> None:
    """Estop while charging: Ended(EmergencyStop), safe at once, latched until released."""
    transaction_id = await start_charging(bench, evse_id)
    await bench.ok("estop", evse=evse_id)
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert ended["triggerReason"] == "AbnormalCondition"
    assert ended["transactionInfo"]["stoppedReason"] == "EmergencyStop"
    item = await bench.evse(evse_id)
    assert item["chademo"]["state"] == "Fault" and item["chademo"]["estop"] is True
    assert item["connector_status"] == "Faulted"  # G01: latched until the session is reset
    assert_safe(bench, evse_id, item)
    # The car leaves while the button is still pressed: the EVSE stays out of service.
    await bench.ok("unplug", evse=evse_id)
    item = await bench.until(evse_id, lambda e: not e["plugged"])
    await asyncio.sleep(0.3)
    item = await bench.evse(evse_id)
    assert item["chademo"]["state"] == "Fault" and item["connector_status"] == "Faulted"
    await bench.ok("estop_release", evse=evse_id)
    await bench.until(evse_id, idle)
    assert (await bench.evse(evse_id))["connector_status"] == "Available"
    # A new session starts and charges.
    again = await start_charging(bench, evse_id)
    assert again != transaction_id
    await unplug_to_idle(bench, evse_id)
    await event(bench, "Ended", transaction_id=again)


async def insulation_failure_path(bench: Bench, evse_id: int) -> None:
    """``insulation fail`` before the token: no contactor ever closes; Ended(GroundFault)."""
    hardware = bench.link(evse_id).hardware
    await bench.ok("insulation", evse=evse_id, result="fail")
    assert (await bench.evse(evse_id))["chademo"]["next_insulation"] == "fail"
    first = len(hardware.commands)
    since = len(bench.csms.frames)
    await bench.ok("plug", evse=evse_id)
    await bench.ok("token", evse=evse_id, id=TOKEN)
    started = await event(bench, "Started", evse_id=evse_id, since=since)
    transaction_id = started["transactionInfo"]["transactionId"]
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert ended["transactionInfo"]["stoppedReason"] == "GroundFault"
    assert "Charging" not in charging_states(bench, transaction_id)
    item = await bench.until(evse_id, lambda e: not e["chademo"]["locked"])
    assert item["chademo"]["state"] == "Fault"
    assert item["chademo"]["stop_reason"] == "InsulationFailure"
    assert_safe(bench, evse_id, item)
    assert any(c.startswith("insulation_test") for c in hardware.commands[first:])
    assert "close" not in hardware.commands[first:], hardware.commands[first:]
    assert register(ended, IMPORT) == [0.0]
    # The car leaves: back to state 0; the failure was for one test only.
    await unplug_to_idle(bench, evse_id)
    again = await start_charging(bench, evse_id)
    await unplug_to_idle(bench, evse_id)
    await event(bench, "Ended", transaction_id=again)


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_every_stop_and_fault_path(
    open_bench: Open, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    kinds = list(VEHICLE_FAULTS)
    ids = list(range(1, len(kinds) + 4))
    bench = await open_bench(version, evse_tables(ids))
    paths = [vehicle_fault_path(bench, n, kind) for n, kind in zip(ids, kinds, strict=False)]
    paths.append(vehicle_stop_path(bench, ids[-3]))
    paths.append(emergency_stop_path(bench, ids[-2]))
    paths.append(insulation_failure_path(bench, ids[-1]))
    async with asyncio.TaskGroup() as group:  # the first failure cancels the others
        for path in paths:
            group.create_task(path)
    status = await bench.sim("status")
    for item in status["evses"]:
        assert idle(item), item
    # Entering FAULT is one stop, logged (and reported to the transactions) once.
    for evse_id, reason in [(ids[-2], "EmergencyStop"), (ids[-1], "InsulationFailure")]:
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith(f"EVSE {evse_id}: CHAdeMO session stopped: {reason}")
        ]
        assert len(lines) == 1, lines


# --- 4. a local token ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_local_token_starts_the_session_on_plug_in(open_bench: Open, version: str) -> None:
    tokens = {1: "FLEET-7", 2: "STRANGER"}
    tables = evse_tables([1, 2], keys=lambda n: f'local_token = "{tokens[n]}"')
    bench = await open_bench(version, tables, accepted_tokens={"FLEET-7"})
    await bench.ok("plug", evse=1)
    started = await event(bench, "Started", evse_id=1)
    assert started["idToken"] == {"idToken": "FLEET-7", "type": "Local"}
    item = await bench.until(1, charging)
    assert item["transaction_id"] == started["transactionInfo"]["transactionId"]

    # The CSMS does not know the other EVSE's token: plugged in, nothing starts, nothing closes.
    await bench.ok("plug", evse=2)
    await calls(
        bench.csms,
        "Authorize",
        where=lambda f: f.payload["idToken"]["idToken"] == "STRANGER",
    )
    await asyncio.sleep(0.5)
    item = await bench.evse(2)
    assert item["transaction_id"] is None and item["chademo"]["state"] == "ParameterCheck"
    assert "close" not in bench.link(2).hardware.commands
    assert not [
        e
        for e in bench.csms.received("TransactionEvent")
        if e.payload.get("evse", {}).get("id") == 2
    ]
    await asyncio.gather(unplug_to_idle(bench, 1), unplug_to_idle(bench, 2))


# --- 5. the control protocol (issue 7) -----------------------------------------------------------


def snapshot(bench: Bench, item: dict[str, Any]) -> tuple[Any, ...]:
    hardware = bench.link(1).hardware
    chademo = dict(item["chademo"])
    return (
        item["plugged"],
        item["transaction_id"],
        item["connector_status"],
        chademo,
        hardware.estop,
        hardware.next_insulation_pass,
        len(hardware.commands),
    )


async def test_bad_requests_get_a_clear_error_and_change_nothing(open_bench: Open) -> None:
    bench = await open_bench("2.0.1", evse_tables([1], [2]))
    before = snapshot(bench, await bench.evse(1))
    for payload, error in [
        ({"cmd": "warp_drive"}, "unknown command 'warp_drive'"),
        ({"cmd": "ev_fault", "kind": "overvoltage"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "ev_fault", "evse": 2, "kind": "overvoltage"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "ev_fault", "evse": 9, "kind": "overvoltage"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "ev_fault", "evse": "1", "kind": "overvoltage"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "ev_fault", "evse": True, "kind": "overvoltage"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "ev_fault", "evse": 1}, '"kind" must be a string'),
        ({"cmd": "ev_fault", "evse": 1, "kind": "overvoltage"}, "no vehicle is plugged in"),
        ({"cmd": "ev_fault", "evse": 1, "kind": "x", "when": 3}, "unknown argument(s) ['when']"),
        ({"cmd": "estop"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "estop", "evse": 2}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "estop", "evse": 1, "hard": True}, "unknown argument(s) ['hard']"),
        ({"cmd": "estop_release", "evse": 0}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "insulation", "evse": 1, "result": "maybe"}, '"result" must be "pass" or "fail"'),
        ({"cmd": "insulation", "evse": 1}, '"result" must be "pass" or "fail"'),
        ({"cmd": "insulation", "evse": 1, "result": False}, '"result" must be "pass" or "fail"'),
        ({"cmd": "insulation", "evse": 2, "result": "fail"}, "CHAdeMO EVSEs [1]"),
        ({"cmd": "plug", "evse": 1, "soc_pct": 150}, "soc_pct"),
        ({"cmd": "grid", "frequency_hz": 48.0}, "unknown command 'grid'"),  # no inverter here
        ({"cmd": "inverter_fault", "kind": "no-answer"}, "unknown command 'inverter_fault'"),
    ]:
        response = await bench.sim(**payload)  # type: ignore[arg-type]
        assert response["ok"] is False and error in response["error"], (payload, response)
    assert snapshot(bench, await bench.evse(1)) == before

    # With a vehicle plugged in: an unknown kind names the kinds; nothing is injected.
    await bench.ok("plug", evse=1)
    await bench.until(1, lambda e: e["chademo"]["state"] == "ParameterCheck")
    response = await bench.sim("ev_fault", evse=1, kind="meltdown")
    assert response["ok"] is False
    assert "stop-request" in response["error"] and "incompatible-voltage" in response["error"]
    await asyncio.sleep(0.3)  # three CAN cycles: the vehicle still says nothing wrong
    item = await bench.evse(1)
    assert item["chademo"]["faults"] == [] and item["chademo"]["state"] == "ParameterCheck"
    # Hyphens, underscores and case all name the same fault; "clear" clears it.
    await bench.ok("ev_fault", evse=1, kind="High_Temperature")
    assert (await bench.evse(1))["chademo"]["faults"] == ["high_temperature"]
    item = await bench.until(1, lambda e: e["chademo"]["stop_reason"] == "VehicleFault")
    assert item["transaction_id"] is None and "close" not in bench.link(1).hardware.commands
    await bench.ok("ev_fault", evse=1, kind="clear")
    assert (await bench.evse(1))["chademo"]["faults"] == []
    await unplug_to_idle(bench, 1)


async def test_station_sim_cli_drives_the_chademo_world(open_bench: Open) -> None:
    """``station sim ev-fault/estop/estop-release/insulation`` in a subprocess."""
    bench = await open_bench("2.1", evse_tables([1], [2]))

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "station.cli", "sim", *args, "--config", str(bench.config_file)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.returncode, done.stdout

    async def cli(*args: str) -> tuple[int, dict[str, Any]]:
        code, out = await asyncio.to_thread(run, *args)
        return code, json.loads(out)

    transaction_id = await start_charging(bench, 1)
    code, out = await cli("ev-fault", "1", "meltdown")
    assert code == 1 and out["ok"] is False and "stop-request" in out["error"], out
    assert (await bench.evse(1))["chademo"]["state"] == "Charging"
    assert await cli("ev-fault", "1", "overvoltage") == (0, {"ok": True})
    ended = await event(bench, "Ended", transaction_id=transaction_id)
    assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
    await bench.until(1, lambda e: not e["chademo"]["locked"])
    await unplug_to_idle(bench, 1)

    code, out = await cli("estop", "9")
    assert code == 1 and out["ok"] is False and "CHAdeMO EVSEs [1]" in out["error"]
    assert await cli("estop", "1") == (0, {"ok": True})
    assert (await bench.evse(1))["chademo"]["estop"] is True
    assert await cli("estop-release", "1") == (0, {"ok": True})
    assert (await bench.evse(1))["chademo"]["estop"] is False
    assert await cli("insulation", "1", "fail") == (0, {"ok": True})
    assert (await bench.evse(1))["chademo"]["next_insulation"] == "fail"
    code, text = await asyncio.to_thread(run, "insulation", "1", "maybe")
    assert code == 2 and text == ""  # argparse refuses it before anything is sent
    assert (await bench.evse(1))["chademo"]["next_insulation"] == "fail"
    assert await cli("insulation", "1", "pass") == (0, {"ok": True})
    assert (await bench.evse(1))["chademo"]["next_insulation"] == "pass"
