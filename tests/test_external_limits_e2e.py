"""External charging limits end to end (K11-K13), on both subprotocols.

A real station runs in this event loop against the real CSMS over a WebSocket on 127.0.0.1. The
external control system (an EMS, a system operator) is driven only from outside, through the
control protocol (``station sim limit`` / ``limit-clear``): the limit caps the power command,
enters the composite schedule, is reported by GetChargingProfiles with its source, cannot be
cleared or replaced by the CSMS, and the CSMS hears NotifyChargingLimit (beyond
LimitChangeSignificance) and ClearedChargingLimit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame
from station.smartcharging import external_profile_id
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls, request

TOKEN = "04A1B2C3"


@dataclass
class Bench:
    csms: Csms
    station: Station
    endpoint: Path
    version: str

    async def sim(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await sim_request(self.endpoint, {"cmd": cmd, **args})

    def power_w(self, evse_id: int) -> float:
        return self.station.power_port.last[evse_id].power_w

    async def until_power(self, evse_id: int, power_w: float) -> None:
        async with asyncio.timeout(5):
            while self.power_w(evse_id) != power_w:
                await asyncio.sleep(0.01)


@pytest.fixture(params=["ocpp2.0.1", "ocpp2.1"])
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    subprotocol = str(request.param)
    csms = await Csms(subprotocols=(subprotocol,)).start()
    station = Station(station_config(tmp_path, csms.url))
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    try:
        await booted(csms)
        assert station.control is not None
        endpoint = station.control.endpoint.endpoint_file
        async with asyncio.timeout(5):
            while not endpoint.exists():
                await asyncio.sleep(0.02)
        yield Bench(csms, station, endpoint, subprotocol.removeprefix("ocpp"))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await csms.stop()


async def charging(bench: Bench, evse_id: int = 1) -> None:
    assert (await bench.sim("plug", evse=evse_id))["ok"] is True
    assert (await bench.sim("token", evse=evse_id, id=TOKEN))["ok"] is True
    await bench.until_power(evse_id, 20000.0)


def first_period(frame: Frame) -> dict[str, Any]:
    (schedule,) = frame.payload["chargingSchedule"]
    return dict(schedule["chargingSchedulePeriod"][0])


async def test_external_limit_set_notified_reported_and_cleared(bench: Bench) -> None:
    await charging(bench)
    csms = bench.csms

    since = len(csms.frames)
    reply = await bench.sim("limit", evse=1, power_w=6000, source="EMS")
    assert reply == {"ok": True, "profile_id": external_profile_id(1, "EMS"), "notified": True}
    assert bench.power_w(1) == 6000.0  # applied before the control protocol answers
    (notify,) = await calls(csms, "NotifyChargingLimit", since=since)
    assert notify.payload["evseId"] == 1
    assert notify.payload["chargingLimit"] == {
        "chargingLimitSource": "EMS",
        "isGridCritical": False,
    }
    assert first_period(notify)["limit"] == 6000
    assert notify.payload["chargingSchedule"][0]["chargingRateUnit"] == "W"

    # K08: the limit enters the composite schedule.
    composite = await request(
        csms, "GetCompositeSchedule", {"duration": 60, "evseId": 1, "chargingRateUnit": "W"}
    )
    assert composite["schedule"]["chargingSchedulePeriod"][0]["limit"] == 6000

    # K09: reported with its source and purpose.
    reply_get = await request(
        csms,
        "GetChargingProfiles",
        {"requestId": 7, "chargingProfile": {"chargingLimitSource": ["EMS"]}},
    )
    assert reply_get == {"status": "Accepted"}
    (report,) = await calls(csms, "ReportChargingProfiles", since=since)
    assert report.payload["chargingLimitSource"] == "EMS"
    assert report.payload["evseId"] == 1
    (reported,) = report.payload["chargingProfile"]
    assert reported["chargingProfilePurpose"] == "ChargingStationExternalConstraints"
    assert reported["id"] == external_profile_id(1, "EMS") < 0
    cso_only = await request(
        csms,
        "GetChargingProfiles",
        {"requestId": 8, "chargingProfile": {"chargingLimitSource": ["CSO"]}},
    )
    assert cso_only == {"status": "NoProfiles"}

    # K10 / K01.FR.22: the CSMS can neither clear nor set such a limit.
    cleared = await request(
        csms, "ClearChargingProfile", {"chargingProfileId": external_profile_id(1, "EMS")}
    )
    assert cleared == {"status": "Unknown"}
    assert (await request(csms, "ClearChargingProfile", {})) == {"status": "Unknown"}
    rejected = await request(
        csms,
        "SetChargingProfile",
        {
            "evseId": 0,
            "chargingProfile": {
                "id": 77,
                "stackLevel": 0,
                "chargingProfilePurpose": "ChargingStationExternalConstraints",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1000}],
                    }
                ],
            },
        },
    )
    assert rejected["status"] == "Rejected"
    assert bench.power_w(1) == 6000.0

    # A change within LimitChangeSignificance (1 %) applies without a notification.
    before = len(csms.received("NotifyChargingLimit"))
    assert (await bench.sim("limit", evse=1, power_w=6030))["notified"] is False
    assert bench.power_w(1) == 6030.0
    assert len(csms.received("NotifyChargingLimit")) == before

    # K13: released.
    since = len(csms.frames)
    assert (await bench.sim("limit_clear", evse=1, source="EMS")) == {"ok": True}
    await bench.until_power(1, 20000.0)
    (cleared_frame,) = await calls(csms, "ClearedChargingLimit", since=since)
    assert cleared_frame.payload == {"chargingLimitSource": "EMS", "evseId": 1}
    again = await bench.sim("limit_clear", evse=1)
    assert again["ok"] is False and "no limit" in again["error"]


async def test_station_wide_grid_limit_from_the_system_operator(bench: Bench) -> None:
    await charging(bench)
    since = len(bench.csms.frames)
    reply = await bench.sim("limit", evse=0, power_w=9000, source="SO", grid_critical=True)
    assert reply["ok"] is True
    assert bench.power_w(1) == 9000.0
    (notify,) = await calls(bench.csms, "NotifyChargingLimit", since=since)
    assert notify.payload["evseId"] == 0
    assert notify.payload["chargingLimit"] == {"chargingLimitSource": "SO", "isGridCritical": True}
    composite = await request(bench.csms, "GetCompositeSchedule", {"duration": 0, "evseId": 0})
    assert composite["schedule"]["chargingSchedulePeriod"][0]["limit"] == 9000
    # A limit of 0 is "no power", never a change of direction.
    await bench.sim("limit", evse=0, power_w=0, source="SO", grid_critical=True)
    assert bench.power_w(1) == 0.0
    await bench.sim("limit_clear", evse=0, source="SO")
    await bench.until_power(1, 20000.0)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"evse": 9, "power_w": 1000}, "no EVSE 9"),
        ({"evse": 1}, "power_w"),
        ({"evse": 1, "power_w": -5}, "power_w"),
        ({"evse": 1, "power_w": 5, "source": "Grid"}, "source"),
        ({"evse": 1, "power_w": 5, "discharge_limit_w": 10}, "discharge_limit_w"),
        ({"evse": 1, "power_w": 5, "colour": "red"}, "unknown argument"),
        ({"evse": True, "power_w": 5}, "evse"),
    ],
)
async def test_bad_limit_requests_change_nothing(
    bench: Bench, args: dict[str, Any], error: str
) -> None:
    reply = await bench.sim("limit", **args)
    assert reply["ok"] is False and error in reply["error"]
    assert len(bench.station.smart_charging.profiles) == 0
    assert bench.csms.received("NotifyChargingLimit", STATION_ID) == []


async def test_station_sim_limit_cli(bench: Bench, tmp_path: Path) -> None:
    """``station sim limit`` / ``limit-clear`` in a subprocess, against this running station."""
    if bench.version == "2.0.1":
        return  # the command line is the same for both subprotocols
    await charging(bench)
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

    code, out = await asyncio.to_thread(
        run, "limit", "1", "--power-w", "5000", "--source", "SO", "--grid-critical"
    )
    assert (code, out["ok"], out["notified"]) == (0, True, True)
    assert bench.power_w(1) == 5000.0
    (notify,) = await calls(bench.csms, "NotifyChargingLimit")
    assert notify.payload["chargingLimit"] == {"chargingLimitSource": "SO", "isGridCritical": True}
    code, out = await asyncio.to_thread(run, "limit", "1", "--power-w", "-1")
    assert code == 1 and "power_w" in out["error"]
    code, out = await asyncio.to_thread(run, "limit-clear", "1", "--source", "SO")
    assert (code, out) == (0, {"ok": True})
    await bench.until_power(1, 20000.0)
    code, out = await asyncio.to_thread(run, "limit-clear", "1", "--source", "SO")
    assert code == 1 and out["ok"] is False
