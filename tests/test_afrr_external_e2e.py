"""CentralFrequency (AFRRSignal) and the external set-point / limits port, end to end.

A real station runs in this event loop against the real CSMS over a WebSocket on 127.0.0.1. The
CSMS installs a V2X profile over ``ocpp2.1`` and sends AFRRSignal; the site controller (the
external system of operationMode ExternalSetpoint / ExternalLimits) is driven only from outside,
through the control protocol (``station sim external`` / ``external-clear``). The power command
the station pushes to its EVSEs follows: the v2xSignalWattCurve around v2xBaseline, the
external set-point within the schedule's limits, the external limits as caps. Over
``ocpp2.0.1`` AFRRSignal is no action of the version: NotImplemented.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.clock import format_ocpp_time
from station.power import Reason
from station.sim.control import request as sim_request
from station.sim.csms import Csms
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, call_error, request

TOKEN = "04A1B2C3"
PAST = datetime.now(UTC) - timedelta(hours=1)
CURVE = [
    {"signal": -100, "power": -5000},
    {"signal": 0, "power": 0},
    {"signal": 100, "power": 5000},
]


@dataclass
class Bench:
    csms: Csms
    station: Station
    endpoint: Path
    version: str
    sent_signals: int = 0

    async def sim(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await sim_request(self.endpoint, {"cmd": cmd, **args})

    def command(self, evse_id: int = 1) -> tuple[float, str]:
        last = self.station.power_port.last[evse_id]
        return last.power_w, str(last.reason)

    async def until_power(self, evse_id: int, power_w: float) -> None:
        async with asyncio.timeout(5):
            while self.command(evse_id)[0] != power_w:
                await asyncio.sleep(0.01)

    async def afrr(self, signal: int, at: datetime | None = None) -> dict[str, Any]:
        """AFRRSignal; by default with a timestamp just past, later than the one before (the
        station's clock, synchronised at boot, may lag the test's by a millisecond: a signal
        stamped "now" could still wait for its time)."""
        self.sent_signals += 1
        when = PAST + timedelta(seconds=self.sent_signals) if at is None else at
        return await request(
            self.csms, "AFRRSignal", {"timestamp": format_ocpp_time(when), "signal": signal}
        )


@contextlib.asynccontextmanager
async def running(tmp_path: Path, subprotocol: str) -> AsyncIterator[Bench]:
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


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with running(tmp_path, "ocpp2.1") as started:
        yield started


async def charging(bench: Bench, evse_id: int = 1) -> None:
    """A V2X vehicle plugged in and authorised: charging at the EVSE's rating."""
    plugged = await bench.sim("plug", evse=evse_id, v2x=True, max_discharge_w=8000.0)
    assert plugged["ok"] is True, plugged
    assert (await bench.sim("token", evse=evse_id, id=TOKEN))["ok"] is True
    await bench.until_power(evse_id, 20000.0)


async def set_profile(bench: Bench, period: dict[str, Any], evse_id: int = 1) -> None:
    """A TxDefaultProfile in W with one period: limit 10 kW, dischargeLimit -6 kW, ``period``."""
    profile = {
        "id": 31,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 10000, "dischargeLimit": -6000, **period}
                ],
            }
        ],
    }
    reply = await request(
        bench.csms, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": profile}
    )
    assert reply == {"status": "Accepted"}


CENTRAL_FREQUENCY = {
    "operationMode": "CentralFrequency",
    "setpoint": 0,
    "v2xBaseline": 1000,
    "v2xSignalWattCurve": CURVE,
}


# --- AFRRSignal ----------------------------------------------------------------------------------


async def test_afrr_signal_moves_the_command_along_the_curve(bench: Bench) -> None:
    await charging(bench)
    await set_profile(bench, CENTRAL_FREQUENCY)
    assert bench.command() == (1000.0, Reason.AFRR_SIGNAL)  # no signal yet: the baseline

    assert await bench.afrr(50) == {"status": "Accepted"}
    assert bench.command() == (3500.0, Reason.AFRR_SIGNAL)  # 1000 + 2500, before the answer
    assert await bench.afrr(-100) == {"status": "Accepted"}
    assert bench.command() == (-4000.0, Reason.AFRR_SIGNAL)  # 1000 - 5000: a discharge
    assert await bench.afrr(500) == {"status": "Accepted"}
    assert bench.command() == (6000.0, Reason.AFRR_SIGNAL)  # flat beyond the curve
    status = await bench.sim("status")
    (evse,) = [e for e in status["evses"] if e["evse"] == 1]
    assert evse["power_command_w"] == 6000.0

    # A signal for later waits for its timestamp; the station's timer applies it.
    at = datetime.now(UTC) + timedelta(seconds=0.3)
    assert await bench.afrr(-50, at) == {"status": "Accepted"}
    assert bench.command() == (6000.0, Reason.AFRR_SIGNAL)
    await bench.until_power(1, -1500.0)  # 1000 - 2500
    assert datetime.now(UTC) >= at - timedelta(milliseconds=1)


async def test_afrr_signal_without_a_curve_is_rejected(bench: Bench) -> None:
    await charging(bench)
    reply = await bench.afrr(50)
    assert reply["status"] == "Rejected"
    assert reply["statusInfo"]["reasonCode"] == "NoSignalWattCurve"
    # A CentralSetpoint period has no curve either; the command stays the setpoint.
    await set_profile(bench, {"operationMode": "CentralSetpoint", "setpoint": -2000})
    reply = await bench.afrr(50)
    assert reply["statusInfo"]["reasonCode"] == "NoSignalWattCurve"
    assert bench.command() == (-2000.0, Reason.SETPOINT)


async def test_afrr_signal_with_a_naive_timestamp_is_a_format_violation(bench: Bench) -> None:
    await charging(bench)
    await set_profile(bench, CENTRAL_FREQUENCY)
    code = await call_error(
        bench.csms, "AFRRSignal", {"timestamp": "2025-01-06T10:00:00", "signal": 5}
    )
    assert code == "FormatViolation"
    assert bench.command() == (1000.0, Reason.AFRR_SIGNAL)


async def test_afrr_signal_over_201_is_not_implemented(tmp_path: Path) -> None:
    async with running(tmp_path, "ocpp2.0.1") as bench:
        code = await call_error(
            bench.csms,
            "AFRRSignal",
            {"timestamp": format_ocpp_time(datetime.now(UTC)), "signal": 5},
        )
        assert code == "NotImplemented"


# --- the external port ---------------------------------------------------------------------------


async def test_external_setpoint_follows_the_site_controller_within_limits(bench: Bench) -> None:
    await charging(bench)
    await set_profile(bench, {"operationMode": "ExternalSetpoint"})
    assert bench.command() == (0.0, Reason.AWAITING_INPUT)  # the site controller said nothing

    reply = await bench.sim("external", evse=1, setpoint_w=-3000)
    assert reply == {"ok": True, "evse": 1, "setpoint_w": -3000.0}
    assert bench.command() == (-3000.0, Reason.SETPOINT)  # applied before the answer
    assert (await bench.sim("external", evse=1, setpoint_w=4500.5))["ok"] is True
    assert bench.command() == (4500.5, Reason.SETPOINT)
    assert (await bench.sim("external", evse=0, setpoint_w=-9000))["ok"] is True
    assert bench.command() == (-6000.0, Reason.LIMITED_BY_SCHEDULE)  # dischargeLimit
    assert (await bench.sim("external", evse=1, setpoint_w=30000))["ok"] is True
    assert bench.command() == (10000.0, Reason.LIMITED_BY_SCHEDULE)  # limit

    assert await bench.sim("external_clear", evse=1) == {"ok": True}
    assert bench.command() == (0.0, Reason.AWAITING_INPUT)
    again = await bench.sim("external_clear", evse=1)
    assert again["ok"] is False and "no external" in again["error"]


async def test_external_limits_cap_the_command(bench: Bench) -> None:
    await charging(bench)
    await set_profile(bench, {"operationMode": "ExternalLimits"})
    assert bench.command() == (10000.0, Reason.LIMITED_BY_SCHEDULE)
    reply = await bench.sim("external", evse=1, limit_w=4000, discharge_limit_w=-1500)
    assert reply["ok"] is True, reply
    assert bench.command() == (4000.0, Reason.LIMITED_BY_EXTERNAL)
    assert bench.station.power_port.last[1].discharge_ceiling_w == 1500.0
    assert (await bench.sim("external", evse=1, limit_w=0))["ok"] is True
    assert bench.command() == (0.0, Reason.LIMITED_BY_EXTERNAL)  # 0: no power, no discharge
    assert (await bench.sim("external_clear", evse=0))["ok"] is True
    assert bench.command() == (10000.0, Reason.LIMITED_BY_SCHEDULE)


@pytest.mark.parametrize(
    "args",
    [
        {"evse": 1, "limit_w": -1},
        {"evse": 1, "discharge_limit_w": 500},
        {"evse": 1, "setpoint_w": "fast"},
        {"evse": 1, "setpoint_w": True},
        {"evse": 9, "setpoint_w": 1000},
        {"evse": -1, "setpoint_w": 1000},
        {"setpoint_w": 1000},
        {"evse": 1, "setpoint_w": 1000, "power_w": 5},
    ],
)
async def test_bad_external_args_change_nothing(bench: Bench, args: dict[str, Any]) -> None:
    await charging(bench)
    await set_profile(bench, {"operationMode": "ExternalSetpoint"})
    assert (await bench.sim("external", evse=1, setpoint_w=2500))["ok"] is True
    history = list(bench.station.power_port.history)
    reply = await bench.sim("external", **args)
    assert reply["ok"] is False and reply["error"], reply
    assert bench.command() == (2500.0, Reason.SETPOINT)
    assert bench.station.power_port.history == history
    assert bench.station.smart_charging.external_inputs(1).setpoint_w == 2500.0


async def test_external_command_line(bench: Bench, tmp_path: Path) -> None:
    """``station sim external`` / ``external-clear`` in a subprocess reach the running station."""
    await charging(bench)
    await set_profile(bench, {"operationMode": "ExternalSetpoint"})
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

    code, out = await asyncio.to_thread(run, "external", "1", "--setpoint-w", "-2500")
    assert (code, out) == (0, {"ok": True, "evse": 1, "setpoint_w": -2500.0})
    assert bench.command() == (-2500.0, Reason.SETPOINT)
    code, out = await asyncio.to_thread(run, "external", "1", "--limit-w", "-5")
    assert code == 1 and out["ok"] is False and "limit_w" in out["error"]
    assert bench.command() == (-2500.0, Reason.SETPOINT)
    code, out = await asyncio.to_thread(run, "external-clear", "1")
    assert (code, out) == (0, {"ok": True})
    assert bench.command() == (0.0, Reason.AWAITING_INPUT)
