"""Smart charging end to end: a real station against the real CSMS, on both subprotocols.

The CSMS (:class:`station.sim.csms.Csms`, built on the ``ocpp`` library) sends raw camelCase
payloads over a WebSocket on 127.0.0.1; the station runs in this event loop with its real
smart-charging service and energy manager. The test plugs a simulated vehicle that allows
discharge in and presents a token (a real transaction), and reads the last :class:`PowerCommand`
per EVSE that the simulated vehicles received. Requirement ids: OCPP 2.0.1 / 2.1 Part 2, block K
(smart charging) and Q (V2X).
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
from station.power import Reason
from station.sim.csms import Csms
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp2.1")


@dataclass
class Bench:
    csms: Csms
    station: Station
    version: str

    @property
    def v21(self) -> bool:
        return self.version == "2.1"

    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        reply = await self.csms.call(STATION_ID, action, payload, timeout_s=5)
        assert reply.message_type == 3, reply.raw
        return reply.payload

    def power_w(self, evse_id: int) -> float:
        return self.station.power_port.last[evse_id].power_w


@pytest.fixture(params=SUBPROTOCOLS)
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    subprotocol = str(request.param)
    csms = await Csms(subprotocols=(subprotocol,)).start()
    station = Station(station_config(tmp_path, csms.url))
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    try:
        await booted(csms)
        yield Bench(csms, station, subprotocol.removeprefix("ocpp"))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await csms.stop()


def now() -> datetime:
    return datetime.now(UTC)


def profile(
    profile_id: int,
    purpose: str,
    periods: list[dict[str, Any]],
    *,
    unit: str = "W",
    stack_level: int = 0,
    kind: str = "Relative",
    start: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "id": 1,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods,
    }
    if kind == "Absolute":
        start = start or now() - timedelta(minutes=1)
        schedule["startSchedule"] = format_ocpp_time(start)
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
        **extra,
    }


STATION_MAX = profile(
    1, "ChargingStationMaxProfile", [{"startPeriod": 0, "limit": 15000}], kind="Absolute"
)
TX_DEFAULT = profile(
    2,
    "TxDefaultProfile",
    [{"startPeriod": 0, "limit": 11000}, {"startPeriod": 600, "limit": 18000}],
)


async def set_profile(bench: Bench, evse_id: int, charging_profile: dict[str, Any]) -> None:
    reply = await bench.request(
        "SetChargingProfile", {"evseId": evse_id, "chargingProfile": charging_profile}
    )
    assert reply == {"status": "Accepted"}


async def with_transaction(bench: Bench, evse_id: int = 1, *, v2x: bool = True) -> str:
    """Plug a vehicle in (bidirectional by default), present a token: the transaction's id once
    energy may flow."""
    vehicle = bench.station.sim_vehicles[evse_id]
    vehicle.plug(v2x=v2x, max_discharge_w=8000.0)
    vehicle.present("04A1B2C3")
    view = bench.station.smart_charging.transactions
    async with asyncio.timeout(5):
        while not view.energy_allowed(evse_id):
            await asyncio.sleep(0.01)
    return view.active_transactions()[evse_id].transaction_id


def limits(schedule: dict[str, Any]) -> list[tuple[int, float]]:
    return [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]]


# --- K08: composite schedule = the minimum over the stack -------------------------------------


async def test_composite_schedule_is_the_minimum(bench: Bench) -> None:
    await set_profile(bench, 0, STATION_MAX)
    await set_profile(bench, 1, TX_DEFAULT)

    reply = await bench.request(
        "GetCompositeSchedule", {"duration": 1200, "evseId": 1, "chargingRateUnit": "W"}
    )
    assert reply["status"] == "Accepted"
    schedule = reply["schedule"]
    assert (schedule["evseId"], schedule["duration"], schedule["chargingRateUnit"]) == (
        1,
        1200,
        "W",
    )
    assert schedule["scheduleStart"].endswith("Z")
    # TxDefault 11 kW, then 18 kW capped by the station maximum of 15 kW.
    assert limits(schedule) == [(0, 11000), (600, 15000)]
    if bench.v21:
        assert {p["operationMode"] for p in schedule["chargingSchedulePeriod"]} == {"ChargingOnly"}

    # A: the DC EVSE's nominal voltage is where its ratings meet (20 kW / 50 A = 400 V).
    reply = await bench.request(
        "GetCompositeSchedule", {"duration": 1200, "evseId": 1, "chargingRateUnit": "A"}
    )
    assert limits(reply["schedule"]) == [(0, 27.5), (600, 37.5)]

    # EVSE 0, the grid connection: the station maximum only.
    reply = await bench.request("GetCompositeSchedule", {"duration": 0, "evseId": 0})
    assert limits(reply["schedule"]) == [(0, 15000)]

    reply = await bench.request("GetCompositeSchedule", {"duration": 60, "evseId": 3})
    assert reply["status"] == "Rejected"
    assert reply["statusInfo"]["reasonCode"] == "UnknownEvse"


# --- Q: discharge over 2.1 (setpoint) and over 2.0.1 (negative limit) --------------------------


async def test_discharge_profile_commands_negative_power(bench: Bench) -> None:
    await with_transaction(bench)
    # No profile: ChargingOnly up to the ratings; never below zero.
    assert bench.power_w(1) == 20000.0
    assert bench.power_w(2) == 0.0  # no vehicle, no transaction
    if bench.v21:
        period = {
            "startPeriod": 0,
            "limit": 0,
            "dischargeLimit": -6000,
            "setpoint": -4000,
            "operationMode": "CentralSetpoint",
        }
    else:
        period = {"startPeriod": 0, "limit": -4000}  # the 2.0.1 convention
    await set_profile(bench, 1, profile(5, "TxDefaultProfile", [period]))

    # The command is in place before the response goes out.
    command = bench.station.power_port.last[1]
    assert command.power_w == -4000.0
    assert command.reason is Reason.SETPOINT

    reply = await bench.request("GetCompositeSchedule", {"duration": 60, "evseId": 1})
    (composite,) = reply["schedule"]["chargingSchedulePeriod"]
    if bench.v21:
        assert composite == {
            "startPeriod": 0,
            "limit": 0,
            "dischargeLimit": -6000,
            "setpoint": -4000,
            "operationMode": "CentralSetpoint",
        }
    else:
        assert composite == {"startPeriod": 0, "limit": -4000}

    # A vehicle that does not allow discharge gets 0 W, not a discharge.
    bench.station.sim_vehicles[1].unplug()
    assert bench.power_w(1) == 0.0
    await with_transaction(bench, v2x=False)
    assert bench.power_w(1) == 0.0
    assert bench.station.sim_vehicles[1].meter.power_w == 0.0

    reply = await bench.request("ClearChargingProfile", {"chargingProfileId": 5})
    assert reply == {"status": "Accepted"}
    assert bench.power_w(1) == 20000.0
    reply = await bench.request("GetChargingProfiles", {"requestId": 1, "chargingProfile": {}})
    assert reply == {"status": "NoProfiles"}
    reply = await bench.request("ClearChargingProfile", {"chargingProfileId": 5})
    assert reply == {"status": "Unknown"}


async def test_period_boundary_changes_the_command_without_polling(bench: Bench) -> None:
    await with_transaction(bench)
    periods = [{"startPeriod": 0, "limit": 5000}, {"startPeriod": 1, "limit": 7000}]
    await set_profile(
        bench, 1, profile(6, "TxDefaultProfile", periods, kind="Absolute", start=now())
    )
    assert bench.power_w(1) == 5000.0
    async with asyncio.timeout(5):
        while bench.power_w(1) != 7000.0:
            await asyncio.sleep(0.05)


# --- K09: GetChargingProfiles -> ReportChargingProfiles ----------------------------------------


async def test_get_charging_profiles_reports_in_parts(bench: Bench) -> None:
    await set_profile(bench, 0, STATION_MAX)
    await set_profile(bench, 1, TX_DEFAULT)
    since = len(bench.csms.frames)
    reply = await bench.request("GetChargingProfiles", {"requestId": 42, "chargingProfile": {}})
    assert reply == {"status": "Accepted"}
    reports = await calls(bench.csms, "ReportChargingProfiles", 2, since=since)
    first, second = (r.payload for r in reports)
    assert (first["requestId"], first["evseId"], first["tbc"]) == (42, 0, True)
    assert (second["requestId"], second["evseId"], second.get("tbc", False)) == (42, 1, False)
    assert first["chargingLimitSource"] == "CSO"
    reported = second["chargingProfile"][0]
    assert reported == TX_DEFAULT  # reported as received

    reply = await bench.request(
        "GetChargingProfiles",
        {"requestId": 43, "evseId": 1, "chargingProfile": {"chargingProfilePurpose": "TxProfile"}},
    )
    assert reply == {"status": "NoProfiles"}


@pytest.mark.parametrize("bench", ["ocpp2.0.1"], indirect=True)
async def test_negative_limit_is_reported_as_received_201(bench: Bench) -> None:
    legacy = profile(7, "TxDefaultProfile", [{"startPeriod": 0, "limit": -3000}])
    await set_profile(bench, 1, legacy)
    since = len(bench.csms.frames)
    await bench.request("GetChargingProfiles", {"requestId": 7, "chargingProfile": {}})
    (report,) = await calls(bench.csms, "ReportChargingProfiles", 1, since=since)
    assert report.payload["chargingProfile"] == [legacy]


# --- K01: rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evse_id", "charging_profile", "reason_code"),
    [
        pytest.param(
            1,
            profile(9, "TxDefaultProfile", [{"startPeriod": 60, "limit": 1000}]),
            "InvalidSchedule",
            id="first-period-not-0",
        ),
        pytest.param(
            1,
            profile(9, "TxProfile", [{"startPeriod": 0, "limit": 1000}], transactionId="nope"),
            "TxNotFound",
            id="no-transaction",
        ),
        pytest.param(
            1,
            profile(9, "TxDefaultProfile", [{"startPeriod": 0, "limit": 1000}], stackLevel=11),
            "InvalidStackLevel",
            id="stack-level-above-ProfileStackLevel",
        ),
    ],
)
async def test_invalid_profile_is_rejected_and_not_installed(
    bench: Bench, evse_id: int, charging_profile: dict[str, Any], reason_code: str
) -> None:
    reply = await bench.request(
        "SetChargingProfile", {"evseId": evse_id, "chargingProfile": charging_profile}
    )
    assert reply["status"] == "Rejected"
    assert reply["statusInfo"]["reasonCode"] == reason_code
    assert reply["statusInfo"]["additionalInfo"]
    reply = await bench.request("GetChargingProfiles", {"requestId": 2, "chargingProfile": {}})
    assert reply == {"status": "NoProfiles"}
    assert len(bench.station.smart_charging.profiles) == 0


# --- v21 per-phase fields: the key conversion on the wire --------------------------------------


@pytest.mark.parametrize("bench", ["ocpp2.1"], indirect=True)
async def test_per_phase_fields_cross_the_wire_v21(bench: Bench) -> None:
    transaction_id = await with_transaction(bench)
    period = {
        "startPeriod": 0,
        "limit": 20,
        "limit_L2": 18,
        "limit_L3": 16,
        "dischargeLimit": -10,
        "dischargeLimit_L2": -9,
        "dischargeLimit_L3": -8,
        "setpoint": -5,
        "setpoint_L2": -4,
        "setpoint_L3": -3,
        "operationMode": "CentralSetpoint",
    }
    tx_profile = profile(11, "TxProfile", [period], unit="A", transactionId=transaction_id)
    await set_profile(bench, 1, tx_profile)
    installed = bench.station.smart_charging.profiles.get(11)
    assert installed is not None
    stored = installed.schedule.periods[0]
    assert (stored.limit_l2, stored.limit_l3, stored.setpoint_l3) == (18.0, 16.0, -3.0)

    since = len(bench.csms.frames)
    await bench.request("GetChargingProfiles", {"requestId": 9, "chargingProfile": {}})
    (report,) = await calls(bench.csms, "ReportChargingProfiles", 1, since=since)
    assert report.payload["chargingProfile"] == [tx_profile]
    assert '"limit_L2":18' in report.raw.replace(" ", "")

    reply = await bench.request(
        "GetCompositeSchedule", {"duration": 60, "evseId": 1, "chargingRateUnit": "A"}
    )
    (composite,) = reply["schedule"]["chargingSchedulePeriod"]
    assert composite["limit_L2"] == 18 and composite["setpoint_L3"] == -3
    # DC: the per-phase values add up for the EVSE: (-5 - 4 - 3) A * 400 V.
    assert bench.power_w(1) == -4800.0
