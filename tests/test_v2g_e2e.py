"""V2G end to end: transactions -> energy manager -> the simulated vehicle and meter, and back.

A real station runs in this event loop against the real CSMS over a WebSocket on 127.0.0.1 (both
subprotocols). The simulated world is driven only from outside, through the control protocol
(``station sim``): a V2X vehicle is plugged in and a token presented, the CSMS starts a discharge
(OCPP 2.1 Q: CentralSetpoint with a setpoint and dischargeLimit; OCPP 2.0.1: a negative limit),
and the vehicle follows the PowerCommand: ``status`` shows -4000 W commanded and measured, the
export register grows and the SoC falls, and the TransactionEvents carry
Energy.Active.Export.Register. A vehicle that does not allow V2X never discharges.

"A little simulated time" is a jump of the station's wall clock (``SystemClock.set_now``, as a
CSMS clock sync does); the meter integrates over the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.clock import SystemClock
from station.sim.control import request as sim_request
from station.sim.csms import Csms
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls, request, variable
from tests.test_transactions_e2e import set_variables, wait_event

TOKEN = "04A1B2C3"
EXPORT = "Energy.Active.Export.Register"
IMPORT = "Energy.Active.Import.Register"


@dataclass
class Bench:
    csms: Csms
    station: Station
    clock: SystemClock
    endpoint: Path
    version: str

    async def sim(self, cmd: str, **args: Any) -> dict[str, Any]:
        response = await sim_request(self.endpoint, {"cmd": cmd, **args})
        return response

    async def evse(self, evse_id: int) -> dict[str, Any]:
        status = await self.sim("status")
        assert status["ok"] is True, status
        (item,) = [e for e in status["evses"] if e["evse"] == evse_id]
        return dict(item)

    def jump(self, minutes: float) -> None:
        """A little simulated time: the station's wall clock moves on."""
        self.clock.set_now(self.clock.now() + timedelta(minutes=minutes))


@pytest.fixture(params=["ocpp2.0.1", "ocpp2.1"])
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    subprotocol = str(request.param)
    csms = await Csms(subprotocols=(subprotocol,)).start()
    clock = SystemClock()
    station = Station(station_config(tmp_path, csms.url), clock=clock)
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    try:
        await booted(csms)
        assert station.control is not None
        endpoint = station.control.endpoint.endpoint_file
        async with asyncio.timeout(5):
            while not endpoint.exists():
                await asyncio.sleep(0.02)
        yield Bench(csms, station, clock, endpoint, subprotocol.removeprefix("ocpp"))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await csms.stop()


def discharge_profile(version: str, transaction_id: str) -> dict[str, Any]:
    """-4000 W: a 2.1 TxProfile with a CentralSetpoint, or a 2.0.1 TxDefaultProfile with a
    negative limit (the 2.0.1 convention for a discharge limit)."""
    if version == "2.1":
        period = {
            "startPeriod": 0,
            "limit": 0,
            "dischargeLimit": -6000,
            "setpoint": -4000,
            "operationMode": "CentralSetpoint",
        }
        purpose, extra = "TxProfile", {"transactionId": transaction_id}
    else:
        period = {"startPeriod": 0, "limit": -4000}
        purpose, extra = "TxDefaultProfile", {}
    schedule = {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
    return {
        "id": 21,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": [schedule],
        **extra,
    }


def register(event: dict[str, Any], measurand: str) -> list[float]:
    return [
        float(sv["value"])
        for mv in event.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == measurand
    ]


async def start_session(bench: Bench, **plug: Any) -> str:
    """Plug (control protocol), token: the id of the Started transaction."""
    assert (await bench.sim("plug", evse=1, **plug))["ok"] is True
    assert (await bench.sim("token", evse=1, id=TOKEN))["ok"] is True
    (started,) = await wait_event(bench.csms, "Started")
    transaction_id = str(started["transactionInfo"]["transactionId"])
    await wait_event(bench.csms, "Updated", "ChargingStateChanged")
    return transaction_id


async def discharge(bench: Bench, transaction_id: str) -> None:
    reply = await request(
        bench.csms,
        "SetChargingProfile",
        {"evseId": 1, "chargingProfile": discharge_profile(bench.version, transaction_id)},
    )
    assert reply == {"status": "Accepted"}


async def test_v2x_vehicle_discharges_and_the_meter_counts_export(bench: Bench) -> None:
    await set_variables(bench.csms, variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"))
    transaction_id = await start_session(
        bench, soc_pct=60.0, capacity_kwh=40.0, v2x=True, max_discharge_w=8000.0
    )
    charging = await bench.evse(1)
    assert charging["transaction_id"] == transaction_id
    assert charging["power_command_w"] == 20000.0  # no profile: the EVSE rating, charging
    assert charging["measured_power_w"] == 20000.0
    assert charging["v2x"] is True

    await discharge(bench, transaction_id)
    status = await bench.evse(1)
    assert status["power_command_w"] == -4000.0
    assert status["measured_power_w"] == -4000.0
    assert (status["operation_mode"], status["power_reason"]) == ("CentralSetpoint", "Setpoint")
    assert status["session"] == "CHARGING"
    export_before, soc_before = status["energy_export_wh"], status["soc_pct"]

    bench.jump(minutes=15)  # 4 kW for a quarter of an hour: 1 kWh out of a 40 kWh battery
    later = await bench.evse(1)
    assert later["energy_export_wh"] - export_before == pytest.approx(1000.0, abs=5.0)
    assert soc_before - later["soc_pct"] == pytest.approx(2.5, abs=0.02)
    assert later["energy_import_wh"] == status["energy_import_wh"]  # import never moves back

    # Periodic TransactionEvent Updated: the export register, and the SoC, as the meter says.
    since = len(bench.csms.frames)
    (updated,) = await calls(
        bench.csms,
        "TransactionEvent",
        where=lambda f: f.payload.get("triggerReason") == "MeterValuePeriodic",
        since=since,
    )
    assert register(updated.payload, EXPORT)[0] >= 1000.0

    assert (await bench.sim("unplug", evse=1))["ok"] is True
    (ended,) = await wait_event(bench.csms, "Ended")
    assert register(ended, EXPORT)[0] >= 1000.0
    final = await bench.evse(1)
    assert final["power_command_w"] == 0.0 and final["measured_power_w"] == 0.0
    assert final["transaction_id"] is None


async def test_a_vehicle_without_v2x_never_discharges(bench: Bench) -> None:
    transaction_id = await start_session(bench, soc_pct=60.0, v2x=False, max_discharge_w=8000.0)
    await discharge(bench, transaction_id)
    status = await bench.evse(1)
    assert status["power_command_w"] == 0.0  # the manager: no discharge without V2X
    assert status["measured_power_w"] == 0.0
    assert bench.station.sim_vehicles[1].limits().discharge_allowed is False
    bench.jump(minutes=15)
    later = await bench.evse(1)
    assert later["energy_export_wh"] == 0.0
    assert later["soc_pct"] == pytest.approx(status["soc_pct"])
    # Even a command the manager never sends is refused by the vehicle itself.
    assert all(c.power_w >= 0 for c in bench.station.power_port.history if c.evse_id == 1)
    assert (await bench.sim("unplug", evse=1))["ok"] is True
    (ended,) = await wait_event(bench.csms, "Ended")
    assert register(ended, EXPORT) == [0.0]


@pytest.mark.parametrize("bench", ["ocpp2.1"], indirect=True)
async def test_discharge_stops_at_the_minimum_soc_without_polling(bench: Bench) -> None:
    # 10.1 % of 1 kWh with a 10 % floor: 1 Wh to give, under a second at 4 kW.
    transaction_id = await start_session(
        bench, soc_pct=10.1, capacity_kwh=1.0, v2x=True, max_discharge_w=8000.0
    )
    await discharge(bench, transaction_id)
    assert (await bench.evse(1))["power_command_w"] == -4000.0
    async with asyncio.timeout(5):
        while (status := await bench.evse(1))["power_command_w"] != 0.0:
            await asyncio.sleep(0.05)
    assert status["soc_pct"] == pytest.approx(10.0)
    assert status["measured_power_w"] == 0.0
    # What it gave is the 1 Wh plus what it took while charging before the profile came.
    net_export_wh = status["energy_export_wh"] - status["energy_import_wh"]
    assert net_export_wh == pytest.approx(1.0, abs=0.01)
    suspended = await wait_event(bench.csms, "Updated", "ChargingStateChanged", count=2)
    assert suspended[-1]["transactionInfo"]["chargingState"] == "SuspendedEV"


@pytest.mark.parametrize("bench", ["ocpp2.0.1"], indirect=True)
async def test_bad_control_arguments_change_nothing(bench: Bench) -> None:
    for args, error in [
        ({"evse": 9}, '"evse"'),
        ({"evse": 1, "soc_pct": 150}, "soc_pct"),
        ({"evse": 1, "soc_pct": -1}, "soc_pct"),
        ({"evse": 1, "max_discharge_w": -5}, "max_discharge_power_w"),
        ({"evse": 1, "capacity_kwh": 0}, "capacity_kwh"),
        ({"evse": 1, "v2x": "yes"}, "v2x"),
        ({"evse": 1, "colour": "red"}, "unknown argument"),
    ]:
        response = await bench.sim("plug", **args)
        assert response["ok"] is False and error in response["error"], (args, response)
    assert (await bench.evse(1))["plugged"] is False
    response = await bench.sim("token", evse=1, id=TOKEN, type="Telepathy")
    assert response["ok"] is False and "ISO15693" in response["error"]
    for cmd in ("unplug", "ev_stop"):
        response = await bench.sim(cmd, evse=1)
        assert response["ok"] is False and "no vehicle" in response["error"]
    assert (await bench.sim("plug", evse=1))["ok"] is True
    again = await bench.sim("plug", evse=1, soc_pct=10)
    assert again["ok"] is False and "already" in again["error"]
    assert (await bench.evse(1))["soc_pct"] == 50.0


@pytest.mark.parametrize("bench", ["ocpp2.1"], indirect=True)
async def test_station_sim_cli_drives_a_session(bench: Bench, tmp_path: Path) -> None:
    """``station sim plug/token/status/unplug`` in a subprocess, against this running station."""
    path = tmp_path / "station.toml"
    path.write_text(
        f'[station]\nid = "{STATION_ID}"\n[csms]\nurl = "{bench.csms.url}"\n'
        '[storage]\ndatabase = "station.db"\n[[evse]]\nid = 1\nconnector = "chademo"\n'
    )

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "station.cli", "sim", *args, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.returncode, json.loads(done.stdout)

    code, out = await asyncio.to_thread(run, "plug", "1", "--soc", "150")
    assert code == 1 and out["ok"] is False and "soc_pct" in out["error"]
    code, out = await asyncio.to_thread(
        run,
        "plug",
        "1",
        "--soc",
        "70",
        "--capacity-kwh",
        "50",
        "--v2x",
        "--max-discharge-w",
        "5000",
    )
    assert (code, out) == (0, {"ok": True})
    code, out = await asyncio.to_thread(run, "token", "1", TOKEN, "--type", "ISO14443")
    assert code == 0
    (started,) = await wait_event(bench.csms, "Started")
    code, status = await asyncio.to_thread(run, "status")
    assert code == 0
    evse1 = status["evses"][0]
    assert evse1["transaction_id"] == started["transactionInfo"]["transactionId"]
    assert evse1["plugged"] is True and evse1["v2x"] is True
    assert evse1["soc_pct"] == pytest.approx(70.0, abs=0.1)
    assert status["csms"]["connected"] is True
    code, out = await asyncio.to_thread(run, "ev-stop", "1")
    assert code == 0
    code, out = await asyncio.to_thread(run, "unplug", "1")
    assert code == 0
    await wait_event(bench.csms, "Ended")
    code, out = await asyncio.to_thread(run, "unplug", "1")
    assert code == 1 and "no vehicle" in out["error"]
