"""Dynamic profiles, offline validity, vehicle needs and allowed energy transfer, end to end.

A real station against the real CSMS over a WebSocket on 127.0.0.1:

* OCPP 2.1 K28/K29: UpdateDynamicSchedule sets a Dynamic profile's values (the command follows);
  the station sends PullDynamicScheduleUpdate every ``dynUpdateInterval`` and applies the answer.
  Over 2.0.1 the action does not exist (NotImplemented).
* OCPP 2.1 maxOfflineDuration / invalidAfterOfflineDuration: the CSMS goes away; a profile stops
  counting that long after, one with invalidAfterOfflineDuration is gone for good when the CSMS
  is back.
* K15-K17 / Q: a vehicle plugging in at the ccs EVSE reports its needs (NotifyEVChargingNeeds,
  with v2xChargingParameters over 2.1; DC without them over 2.0.1); NotifyAllowedEnergyTransfer
  without a bidirectional mode stops a discharge; NotifyEVChargingSchedule goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.sim.csms import Csms
from station.smartcharging import (
    ChargingNeedsStatus,
    ChargingSchedule,
    RateUnit,
    SchedulePeriod,
)
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls, request

TOKEN = "04A1B2C3"


@dataclass
class Bench:
    csms: Csms
    station: Station
    version: str
    tmp_path: Path

    def power_w(self, evse_id: int) -> float:
        return self.station.power_port.last[evse_id].power_w

    async def until(self, evse_id: int, power_w: float, timeout_s: float = 5) -> None:
        async with asyncio.timeout(timeout_s):
            while self.power_w(evse_id) != power_w:
                await asyncio.sleep(0.01)

    async def charging(self, evse_id: int, *, v2x: bool = True) -> str:
        vehicle = self.station.sim_vehicles[evse_id]
        vehicle.plug(v2x=v2x, max_discharge_w=8000.0)
        vehicle.present(TOKEN)
        view = self.station.smart_charging.transactions
        async with asyncio.timeout(5):
            while not view.energy_allowed(evse_id) or evse_id not in view.active_transactions():
                await asyncio.sleep(0.01)
        return view.active_transactions()[evse_id].transaction_id


async def start(subprotocol: str, tmp_path: Path, port: int = 0) -> tuple[Csms, Station, Any]:
    csms = await Csms(subprotocols=(subprotocol,), port=port).start()
    station = Station(station_config(tmp_path, csms.url))
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    await booted(csms)
    return csms, station, (stop, task)


@pytest.fixture(params=["ocpp2.0.1", "ocpp2.1"])
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    subprotocol = str(request.param)
    csms, station, (stop, task) = await start(subprotocol, tmp_path)
    the_bench = Bench(csms, station, subprotocol.removeprefix("ocpp"), tmp_path)
    try:
        yield the_bench
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await the_bench.csms.stop()


def profile(profile_id: int, period: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stackLevel": extra.pop("stackLevel", 0),
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": extra.pop("kind", "Relative"),
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, **period}],
                **extra.pop("schedule", {}),
            }
        ],
        **extra,
    }


async def set_profile(bench: Bench, charging_profile: dict[str, Any]) -> dict[str, Any]:
    return await request(
        bench.csms, "SetChargingProfile", {"evseId": 1, "chargingProfile": charging_profile}
    )


# --- K28/K29 dynamic profiles (2.1) ------------------------------------------------------------


async def test_dynamic_profile_update_and_pull(bench: Bench) -> None:
    await bench.charging(1)
    dynamic = profile(
        31, {"limit": 10000}, kind="Dynamic", dynUpdateInterval=1, schedule={"duration": 600}
    )
    if bench.version == "2.0.1":
        # The action does not exist in 2.0.1 (Part 4: NotImplemented).
        frame = await bench.csms.call(
            STATION_ID,
            "UpdateDynamicSchedule",
            {"chargingProfileId": 31, "scheduleUpdate": {"limit": 1}},
        )
        assert frame.message_type == 4 and frame.message[2] == "NotImplemented"
        return
    bench.csms.dynamic_schedule_updates[31] = {"limit": 4000}
    since = len(bench.csms.frames)
    assert (await set_profile(bench, dynamic)) == {"status": "Accepted"}
    assert bench.power_w(1) == 10000.0

    # The CSMS pushes new values: the command follows before the answer goes out.
    reply = await request(
        bench.csms,
        "UpdateDynamicSchedule",
        {"chargingProfileId": 31, "scheduleUpdate": {"limit": 7000}},
    )
    assert reply == {"status": "Accepted"}
    assert bench.power_w(1) == 7000.0
    unknown = await request(
        bench.csms,
        "UpdateDynamicSchedule",
        {"chargingProfileId": 99, "scheduleUpdate": {"limit": 1}},
    )
    assert unknown["status"] == "Rejected"
    assert unknown["statusInfo"]["reasonCode"] == "InvalidProfile"
    not_dynamic = await set_profile(bench, profile(32, {"limit": 15000}, stackLevel=1))
    assert not_dynamic == {"status": "Accepted"}
    reply = await request(
        bench.csms,
        "UpdateDynamicSchedule",
        {"chargingProfileId": 32, "scheduleUpdate": {"limit": 1}},
    )
    assert reply["status"] == "Rejected"
    await request(bench.csms, "ClearChargingProfile", {"chargingProfileId": 32})

    # dynUpdateInterval (1 s) after the last update, the station pulls; the answer applies.
    (pull,) = await calls(bench.csms, "PullDynamicScheduleUpdate", since=since, timeout_s=5)
    assert pull.payload == {"chargingProfileId": 31}
    await bench.until(1, 4000.0)
    (reported,) = [
        p for p in bench.station.smart_charging.profiles if p.id == 31
    ]  # the values and dynUpdateTime are kept (and persisted)
    assert reported.schedule.periods[0].limit == 4000.0
    assert reported.dyn_update_time is not None


async def test_dynamic_update_per_phase_fields_on_the_wire(bench: Bench) -> None:
    """The v21 ``_L2``/``_L3`` names (which the ocpp library converts wrongly) arrive intact."""
    if bench.version == "2.0.1":
        return
    transaction_id = await bench.charging(1)
    dynamic = profile(
        33,
        {"limit": 10000, "operationMode": "CentralSetpoint", "setpoint": 3000},
        kind="Dynamic",
        schedule={"duration": 600},
        transactionId=transaction_id,
    )
    dynamic["chargingProfilePurpose"] = "TxProfile"  # per-phase values: TxProfile only (K01.FR.144)
    assert (await set_profile(bench, dynamic)) == {"status": "Accepted"}
    update = {
        "limit": 3000,
        "limit_L2": 3000,
        "limit_L3": 3000,
        "dischargeLimit": -100,
        "dischargeLimit_L2": -100,
        "dischargeLimit_L3": -200,
        "setpoint": 1000,
        "setpoint_L2": 500,
        "setpoint_L3": 250,
    }
    reply = await request(
        bench.csms,
        "UpdateDynamicSchedule",
        {"chargingProfileId": 33, "scheduleUpdate": update},
    )
    assert reply == {"status": "Accepted"}
    installed = bench.station.smart_charging.profiles.get(33)
    assert installed is not None
    (period,) = installed.schedule.periods
    assert (period.limit_l2, period.discharge_limit_l3, period.setpoint_l3) == (
        3000.0,
        -200.0,
        250.0,
    )
    # ... and go back out under the same names (ReportChargingProfiles).
    await request(bench.csms, "GetChargingProfiles", {"requestId": 4, "chargingProfile": {}})
    (report,) = await calls(bench.csms, "ReportChargingProfiles")
    (reported,) = report.payload["chargingProfile"][0]["chargingSchedule"][0][
        "chargingSchedulePeriod"
    ]
    assert {k: reported[k] for k in update} == update


# --- 2.1 maxOfflineDuration ----------------------------------------------------------------------


async def test_profiles_lapse_while_the_csms_is_unreachable(bench: Bench) -> None:
    if bench.version == "2.0.1":
        return
    await bench.charging(1)
    # 2 s: instants count in whole seconds, so a profile lapses between 1 and 2 s offline.
    keeps = profile(41, {"limit": 5000}, maxOfflineDuration=2)
    lapses = profile(
        42, {"limit": 4000}, stackLevel=1, maxOfflineDuration=2, invalidAfterOfflineDuration=True
    )
    assert (await set_profile(bench, keeps)) == {"status": "Accepted"}
    assert (await set_profile(bench, lapses)) == {"status": "Accepted"}
    assert bench.power_w(1) == 4000.0
    sc = bench.station.smart_charging

    port = bench.csms.port
    await bench.csms.stop()
    async with asyncio.timeout(5):
        while sc.offline_since is None:
            await asyncio.sleep(0.01)
    assert bench.power_w(1) == 4000.0  # within maxOfflineDuration: still in force
    # maxOfflineDuration after the link went down both stop counting; 42 is gone for good.
    await bench.until(1, 20000.0)
    assert 42 not in sc.profiles and 41 in sc.profiles

    bench.csms = await Csms(subprotocols=("ocpp2.1",), port=port).start()
    async with asyncio.timeout(10):
        while sc.offline_since is not None:
            await asyncio.sleep(0.01)
    assert bench.power_w(1) == 5000.0  # back online: 41 counts again
    reply = await request(
        bench.csms, "GetChargingProfiles", {"requestId": 3, "chargingProfile": {}}
    )
    assert reply == {"status": "Accepted"}
    (report,) = await calls(bench.csms, "ReportChargingProfiles")
    assert [p["id"] for p in report.payload["chargingProfile"]] == [41]
    assert report.payload["chargingProfile"][0]["maxOfflineDuration"] == 2


# --- K15-K17 / Q: needs, allowed energy transfer, EV schedule ----------------------------------


async def test_vehicle_needs_are_notified_at_plug_in(bench: Bench) -> None:
    since = len(bench.csms.frames)
    bench.station.sim_vehicles[1].plug(v2x=True)  # chademo: no ISO 15118 needs
    bench.station.sim_vehicles[2].plug(v2x=True, soc_pct=40, max_discharge_w=8000.0)
    (needs,) = await calls(bench.csms, "NotifyEVChargingNeeds", since=since)
    assert needs.payload["evseId"] == 2
    charging_needs = needs.payload["chargingNeeds"]
    dc = charging_needs["dcChargingParameters"]
    assert (dc["evMaxVoltage"], dc["evMaxCurrent"], dc["stateOfCharge"]) == (400, 50, 40)
    if bench.version == "2.1":
        assert charging_needs["requestedEnergyTransfer"] == "DC_BPT"
        assert charging_needs["availableEnergyTransfer"] == ["DC", "DC_BPT"]
        v2x = charging_needs["v2xChargingParameters"]
        assert (v2x["maxChargePower"], v2x["maxDischargePower"], v2x["targetSoC"]) == (
            20000,
            8000,
            100,
        )
        assert needs.payload["timestamp"].endswith("Z")
    else:
        assert charging_needs["requestedEnergyTransfer"] == "DC"  # 2.0.1 has no DC_BPT
        assert "v2xChargingParameters" not in charging_needs
    sc = bench.station.smart_charging
    async with asyncio.timeout(5):
        while 2 not in sc.needs_status:
            await asyncio.sleep(0.01)
    assert sc.needs_status[2] is ChargingNeedsStatus.ACCEPTED
    assert 1 not in sc.needs

    # NotifyEVChargingSchedule: what the vehicle chose goes to the CSMS.
    schedule = ChargingSchedule(
        id=3,
        rate_unit=RateUnit.W,
        periods=(SchedulePeriod(start_period_s=0, limit=11000.0),),
    )
    now = bench.station.clock.now()
    sc.ev_charging_schedule(2, now, schedule)
    (chosen,) = await calls(bench.csms, "NotifyEVChargingSchedule", since=since)
    assert chosen.payload["evseId"] == 2
    assert chosen.payload["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 11000}
    ]


async def test_needs_status_from_the_csms_is_kept(tmp_path: Path) -> None:
    csms, station, (stop, task) = await start("ocpp2.1", tmp_path)
    try:
        csms.ev_charging_needs_status = "NoChargingProfile"
        station.sim_vehicles[2].plug()
        (needs,) = await calls(csms, "NotifyEVChargingNeeds")
        assert needs.payload["chargingNeeds"]["requestedEnergyTransfer"] == "DC"
        async with asyncio.timeout(5):
            while 2 not in station.smart_charging.needs_status:
                await asyncio.sleep(0.01)
        assert station.smart_charging.needs_status[2] is ChargingNeedsStatus.NO_CHARGING_PROFILE
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await csms.stop()


async def test_allowed_energy_transfer_gates_discharge(bench: Bench) -> None:
    transaction_id = await bench.charging(2)
    if bench.version == "2.0.1":
        frame = await bench.csms.call(
            STATION_ID,
            "NotifyAllowedEnergyTransfer",
            {"transactionId": transaction_id, "allowedEnergyTransfer": ["DC"]},
        )
        assert frame.message_type == 4 and frame.message[2] == "NotImplemented"
        return
    discharge = {
        "id": 51,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "transactionId": transaction_id,
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "limit": 0,
                        "dischargeLimit": -6000,
                        "setpoint": -4000,
                        "operationMode": "CentralSetpoint",
                    }
                ],
            }
        ],
    }
    reply = await request(
        bench.csms, "SetChargingProfile", {"evseId": 2, "chargingProfile": discharge}
    )
    assert reply == {"status": "Accepted"}
    assert bench.power_w(2) == -4000.0

    async def allow(modes: list[str], tx: str = transaction_id) -> dict[str, Any]:
        return await request(
            bench.csms,
            "NotifyAllowedEnergyTransfer",
            {"transactionId": tx, "allowedEnergyTransfer": modes},
        )

    assert await allow(["DC"]) == {"status": "Accepted"}
    assert bench.power_w(2) == 0.0  # the CSMS allows no discharge: none happens
    assert bench.station.sim_vehicles[2].meter.power_w == 0.0
    assert await allow(["DC", "DC_BPT"]) == {"status": "Accepted"}
    assert bench.power_w(2) == -4000.0
    unknown = await allow(["DC"], "no-such-transaction")
    assert unknown["status"] == "Rejected"
    assert unknown["statusInfo"]["reasonCode"] == "TxNotFound"
    assert bench.power_w(2) == -4000.0


async def test_needs_are_not_sent_while_offline(bench: Bench) -> None:
    """Nothing is queued: the needs describe the present and are reported at the next plug-in."""
    await bench.csms.stop()
    sc = bench.station.smart_charging
    async with asyncio.timeout(5):
        while sc.offline_since is None:
            await asyncio.sleep(0.01)
    bench.station.sim_vehicles[2].plug()
    assert 2 in sc.needs and 2 not in sc.needs_status
    assert bench.csms.received("NotifyEVChargingNeeds") == []
