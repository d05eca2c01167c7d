"""DER control end to end (OCPP 2.1 R01-R05): a real station against the real CSMS.

The CSMS (:class:`station.sim.csms.Csms`, built on the ``ocpp`` library) sends raw camelCase
payloads over a WebSocket on 127.0.0.1; the station runs in this event loop with a real SQLite file
in ``tmp_path``. Checked on the wire: SetDERControl answers (Accepted with supersededIds, Rejected
with a reason code, NotSupported for what a station without an inverter cannot carry out: all but
LimitMaxDischarge and Gradients), GetDERControl followed by ReportDERControl (``tbc`` splitting),
ClearDERControl,
NotifyDERStartStop from the timer, NotifyDERAlarm, persistence over a restart, that OCPP 2.0.1 does
not know the actions, and that LimitMaxDischarge lowers a running V2X discharge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.clock import format_ocpp_time
from station.config import Config
from station.der import DerControlType, GridEventFault
from station.sim.csms import Csms
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, call_error, calls, request


@dataclass
class Bench:
    csms: Csms
    config: Config
    station: Station
    stop: asyncio.Event
    task: asyncio.Task[Any]

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)

    async def restart(self) -> None:
        await self.shutdown()
        since = len(self.csms.frames)
        self.station, self.stop, self.task = _start(self.config)
        await calls(self.csms, "BootNotification", since=since)
        await calls(self.csms, "StatusNotification", 2, since=since)  # registered again


def _start(config: Config) -> tuple[Station, asyncio.Event, asyncio.Task[Any]]:
    station = Station(config)
    stop = asyncio.Event()
    return station, stop, asyncio.ensure_future(station.run(stop))


async def _bench(subprotocol: str, tmp_path: Path) -> AsyncIterator[Bench]:
    csms = await Csms(subprotocols=(subprotocol,)).start()
    config = station_config(tmp_path, csms.url)
    station, stop, task = _start(config)
    bench = Bench(csms, config, station, stop, task)
    try:
        await booted(csms)
        yield bench
    finally:
        bench.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bench.task, 10)
        await csms.stop()


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async for item in _bench("ocpp2.1", tmp_path):
        yield item


@pytest.fixture
async def bench201(tmp_path: Path) -> AsyncIterator[Bench]:
    async for item in _bench("ocpp2.0.1", tmp_path):
        yield item


# Without an inverter the station carries out LimitMaxDischarge and Gradients only
# (station.der.grid.CONTROLS_WITHOUT_INVERTER); the others are NotSupported.


def fixed_pf_absorb(control_id: str, *, priority: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "isDefault": True,
        "controlId": control_id,
        "controlType": "FixedPFAbsorb",
        "fixedPFAbsorb": {"priority": priority, "displacement": 0.95, "excitation": True},
        **extra,
    }


def gradients(control_id: str, *, priority: int = 1) -> dict[str, Any]:
    return {
        "isDefault": True,
        "controlId": control_id,
        "controlType": "Gradients",
        "gradient": {"priority": priority, "gradient": 10, "softGradient": 30},
    }


def limit_max_discharge(control_id: str, pct: float, *, priority: int = 0) -> dict[str, Any]:
    return {
        "isDefault": True,
        "controlId": control_id,
        "controlType": "LimitMaxDischarge",
        "limitMaxDischarge": {"priority": priority, "pctMaxDischargePower": pct},
    }


FREQ_DROOP_NO_INVERTER = {
    "isDefault": True,
    "controlId": "bad-7",
    "controlType": "FreqDroop",
    "freqDroop": {
        "priority": 0,
        "overFreq": 60.036,
        "underFreq": 59.964,
        "overDroop": 0.05,
        "underDroop": 0.05,
        "responseTime": 5,
    },
}


async def set_control(bench: Bench, payload: dict[str, Any]) -> dict[str, Any]:
    return await request(bench.csms, "SetDERControl", payload)


async def reports(bench: Bench, payload: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    """GetDERControl must be Accepted; the ReportDERControl payloads that follow it."""
    since = len(bench.csms.frames)
    assert await request(bench.csms, "GetDERControl", payload) == {"status": "Accepted"}
    frames = await calls(bench.csms, "ReportDERControl", count, since=since)
    return [f.payload for f in frames]


# --- R01/R02: set, get, clear ------------------------------------------------------------------


async def test_set_get_clear_over_the_wire(bench: Bench) -> None:
    assert await set_control(bench, limit_max_discharge("pf-1", 50, priority=1)) == {
        "status": "Accepted"
    }
    (report,) = await reports(bench, {"requestId": 7, "controlType": "LimitMaxDischarge"})
    assert report == {
        "requestId": 7,
        "limitMaxDischarge": [
            {
                "id": "pf-1",
                "isDefault": True,
                "isSuperseded": False,
                "limitMaxDischarge": {"priority": 1, "pctMaxDischargePower": 50},
            }
        ],
    }
    # isDefault false selects the scheduled controls: there are none.
    assert await request(bench.csms, "GetDERControl", {"requestId": 8, "isDefault": False}) == {
        "status": "NotFound"
    }
    clear = {"isDefault": True, "controlId": "pf-1"}
    assert await request(bench.csms, "ClearDERControl", clear) == {"status": "Accepted"}
    assert await request(bench.csms, "ClearDERControl", clear) == {"status": "NotFound"}
    assert await request(bench.csms, "GetDERControl", {"requestId": 9}) == {"status": "NotFound"}


async def test_bad_requests_are_refused_and_change_nothing(bench: Bench) -> None:
    mismatched = limit_max_discharge("bad-1", 50)
    mismatched["gradient"] = gradients("x")["gradient"]
    reply = await set_control(bench, mismatched)
    assert reply["status"] == "Rejected"
    assert reply["statusInfo"]["reasonCode"] == "UnsupportedParam"
    missing = {"isDefault": True, "controlId": "bad-2", "controlType": "LimitMaxDischarge"}
    reply = await set_control(bench, missing)
    assert (reply["status"], reply["statusInfo"]["reasonCode"]) == ("Rejected", "MissingParam")
    scheduled_default = limit_max_discharge("bad-3", 50)
    scheduled_default["limitMaxDischarge"]["startTime"] = format_ocpp_time(datetime.now(UTC))
    scheduled_default["limitMaxDischarge"]["duration"] = 60
    reply = await set_control(bench, scheduled_default)
    assert reply["statusInfo"]["reasonCode"] == "InvalidSchedule"
    out_of_range = limit_max_discharge("bad-4", 150)
    reply = await set_control(bench, out_of_range)
    assert reply["statusInfo"]["reasonCode"] == "ValueOutOfRange"
    # What the station cannot carry out (here: no inverter, so no grid functions either).
    for payload in (fixed_pf_absorb("bad-6"), {**FREQ_DROOP_NO_INVERTER}):
        reply = await set_control(bench, payload)
        assert (reply["status"], reply["statusInfo"]["reasonCode"]) == (
            "NotSupported",
            "UnsupportedRequest",
        )
    unsupported = {
        "isDefault": True,
        "controlId": "bad-5",
        "controlType": "PowerMonitoringMustTrip",
        "curve": {"priority": 0, "yUnit": "PctMaxW", "curveData": [{"x": 0, "y": 100}]},
    }
    assert (await set_control(bench, unsupported))["status"] == "NotSupported"
    assert await request(bench.csms, "GetDERControl", {"requestId": 1}) == {"status": "NotFound"}


async def test_a_higher_priority_control_supersedes_and_the_same_id_replaces(bench: Bench) -> None:
    reply = await set_control(bench, limit_max_discharge("vv-low", 50, priority=5))
    assert reply == {"status": "Accepted"}
    reply = await set_control(bench, limit_max_discharge("vv-high", 20, priority=1))
    assert reply == {"status": "Accepted", "supersededIds": ["vv-low"]}
    (report,) = await reports(bench, {"requestId": 2, "controlType": "LimitMaxDischarge"})
    flags = {c["id"]: c["isSuperseded"] for c in report["limitMaxDischarge"]}
    assert flags == {"vv-low": True, "vv-high": False}
    assert bench.station.der.limit_max_discharge_w(10_000.0) == 2000.0
    # Same controlId: replaced (now the lowest priority, so it supersedes nothing).
    reply = await set_control(bench, limit_max_discharge("vv-high", 20, priority=9))
    assert reply == {"status": "Accepted"}
    active = bench.station.der.active()[DerControlType.LIMIT_MAX_DISCHARGE]
    assert active.control_id == "vv-low"
    assert len(bench.station.der.controls) == 2


async def test_a_large_report_is_split_with_tbc(bench: Bench) -> None:
    for n in range(30):
        assert (await set_control(bench, gradients(f"pf-{n:02d}", priority=n)))[
            "status"
        ] == "Accepted"
    first, second = await reports(bench, {"requestId": 3}, count=2)
    assert first["tbc"] is True and "tbc" not in second
    ids = [c["id"] for part in (first, second) for c in part["gradient"]]
    assert sorted(ids) == [f"pf-{n:02d}" for n in range(30)]
    assert len(first["gradient"]) == 24
    assert first["gradient"][0]["gradient"] == {"priority": 0, "gradient": 10, "softGradient": 30}


async def test_controls_survive_a_restart(bench: Bench) -> None:
    assert await set_control(bench, gradients("vv-1", priority=3)) == {"status": "Accepted"}
    assert await set_control(bench, limit_max_discharge("lmd-1", 40)) == {"status": "Accepted"}
    await bench.restart()
    (report,) = await reports(bench, {"requestId": 4})
    assert [c["id"] for c in report["gradient"]] == ["vv-1"]
    assert report["limitMaxDischarge"] == [
        {
            "id": "lmd-1",
            "isDefault": True,
            "isSuperseded": False,
            "limitMaxDischarge": {"priority": 0, "pctMaxDischargePower": 40},
        }
    ]
    assert bench.station.der.limit_max_discharge_w(10_000.0) == 4000.0


# --- R05: scheduled controls start and stop; alarms ----------------------------------------------


async def test_a_scheduled_control_notifies_its_start_and_end(bench: Bench) -> None:
    assert await set_control(bench, limit_max_discharge("default-pf", 80)) == {"status": "Accepted"}
    start = datetime.now(UTC) + timedelta(seconds=1.0)
    payload = {
        "isDefault": False,
        "controlId": "sched-1",
        "controlType": "LimitMaxDischarge",
        "limitMaxDischarge": {
            "priority": 0,
            "pctMaxDischargePower": 10,
            "startTime": format_ocpp_time(start),
            "duration": 0.5,
        },
    }
    since = len(bench.csms.frames)
    assert await set_control(bench, payload) == {"status": "Accepted"}
    assert bench.station.der.active()[DerControlType.LIMIT_MAX_DISCHARGE].control_id == "default-pf"
    started, ended = await calls(bench.csms, "NotifyDERStartStop", 2, since=since, timeout_s=5)
    assert started.payload["controlId"] == "sched-1" and started.payload["started"] is True
    assert started.payload["supersededIds"] == ["default-pf"]
    assert ended.payload["controlId"] == "sched-1" and ended.payload["started"] is False
    assert "sched-1" not in bench.station.der.controls  # its time is over: removed
    assert bench.station.der.active()[DerControlType.LIMIT_MAX_DISCHARGE].control_id == "default-pf"


async def test_an_alarm_reaches_the_csms(bench: Bench) -> None:
    since = len(bench.csms.frames)
    bench.station.der.alarm(DerControlType.HV_MUST_TRIP, GridEventFault.OVER_VOLTAGE)
    bench.station.der.alarm(
        DerControlType.HV_MUST_TRIP, GridEventFault.OVER_VOLTAGE, alarm_ended=True
    )
    began, ended = await calls(bench.csms, "NotifyDERAlarm", 2, since=since)
    assert began.payload["controlType"] == "HVMustTrip"
    assert began.payload["gridEventFault"] == "OverVoltage"
    assert "alarmEnded" not in began.payload
    assert ended.payload["alarmEnded"] is True
    assert began.payload["timestamp"].endswith("Z")


async def test_ocpp201_does_not_know_der_control(bench201: Bench) -> None:
    assert await call_error(bench201.csms, "SetDERControl", fixed_pf_absorb("x")) == (
        "NotImplemented"
    )
    assert len(bench201.station.der.controls) == 0


# --- LimitMaxDischarge reaches the energy manager ------------------------------------------------


async def test_limit_max_discharge_lowers_a_running_discharge(bench: Bench) -> None:
    station = bench.station
    vehicle = station.sim_vehicles[1]
    vehicle.plug(v2x=True, max_discharge_w=8000.0)
    vehicle.present("04A1B2C3")
    view = station.smart_charging.transactions
    async with asyncio.timeout(5):
        while not view.energy_allowed(1):
            await asyncio.sleep(0.01)
    transaction_id = view.active_transactions()[1].transaction_id
    period = {
        "startPeriod": 0,
        "limit": 0,
        "dischargeLimit": -6000,
        "setpoint": -4000,
        "operationMode": "CentralSetpoint",
    }
    profile = {
        "id": 31,
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
    assert station.power_port.last[1].power_w == -4000.0

    # 25 % of the 10 kW rated discharge power: at most 2.5 kW out of the vehicle.
    assert await set_control(bench, limit_max_discharge("lmd", 25)) == {"status": "Accepted"}
    assert station.power_port.last[1].power_w == -2500.0
    # 0 % means no discharge, never a change of direction.
    assert await set_control(bench, limit_max_discharge("lmd", 0)) == {"status": "Accepted"}
    assert station.power_port.last[1].power_w == 0.0
    clear = {"isDefault": True, "controlType": "LimitMaxDischarge"}
    assert await request(bench.csms, "ClearDERControl", clear) == {"status": "Accepted"}
    assert station.power_port.last[1].power_w == -4000.0
    assert STATION_ID in bench.csms.stations
