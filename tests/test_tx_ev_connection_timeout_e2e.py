"""End to end: TxCtrlr.EVConnectionTimeOut (E03 "Start transaction options - IdTokenFirst",
C01.FR.26): a token authorized with no cable plugged in within the timeout loses its
authorization; a transaction it started (TxStartPoint Authorized) ends with triggerReason
EVConnectTimeout and stoppedReason Timeout.

A real station runs in this event loop against the sim CSMS over a WebSocket on 127.0.0.1, with a
real SQLite file; the CSMS sets the variables with SetVariables.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from station.sim.csms import Csms
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, variable
from tests.test_transactions_e2e import Bench, Start, set_variables, tx_events, wait_event

TOKEN = "04A1B2C3"
TIMEOUT_S = 1


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Start]:
    benches: list[Bench] = []
    servers: list[Csms] = []

    async def start() -> Bench:
        server = await Csms(subprotocols=("ocpp2.0.1",)).start()
        servers.append(server)
        b = Bench(server, station_config(tmp_path, server.url))
        benches.append(b)
        b.start()
        await booted(server)
        return b

    yield start
    for b in benches:
        with contextlib.suppress(Exception):
            await b.shutdown()
    for server in servers:
        await server.stop()


async def timeout_set(csms: Csms, *more: dict[str, str]) -> None:
    await set_variables(
        csms, variable("TxCtrlr", "EVConnectionTimeOut", value=str(TIMEOUT_S)), *more
    )


def authorizes(csms: Csms) -> int:
    return len(csms.received("Authorize", STATION_ID))


async def test_transaction_started_at_authorization_ends_with_ev_connect_timeout(
    bench: Start,
) -> None:
    b = await bench()
    station = b.station
    assert station is not None
    await timeout_set(b.csms, variable("TxCtrlr", "TxStartPoint", value="Authorized"))
    vehicle = station.sim_vehicles[1]
    vehicle.present(TOKEN)  # no cable
    (started,) = await wait_event(b.csms, "Started")
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"]["idToken"] == TOKEN
    (ended,) = await wait_event(b.csms, "Ended", timeout_s=TIMEOUT_S + 5)
    assert ended["triggerReason"] == "EVConnectTimeout"
    assert ended["transactionInfo"]["stoppedReason"] == "Timeout"
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    waited_s = (_parse(ended["timestamp"]) - _parse(started["timestamp"])).total_seconds()
    assert TIMEOUT_S <= waited_s < TIMEOUT_S + 2.5
    machine = station.transactions.machines[1]
    assert machine.authorization is None
    assert machine.transaction_id is None

    # The authorization is gone: plugging in now starts nothing.
    vehicle.plug()
    await asyncio.sleep(0.3)
    assert [e["eventType"] for e in tx_events(b.csms)] == ["Started", "Ended"]
    assert station.smart_charging.charging_rate_w(1) == 0.0


async def test_authorization_without_transaction_is_cancelled(bench: Start) -> None:
    """TxStartPoint PowerPathClosed (the default): no transaction before the cable, so the
    timeout only cancels the authorization; the next plug-in needs a token again."""
    b = await bench()
    station = b.station
    assert station is not None
    await timeout_set(b.csms)
    vehicle = station.sim_vehicles[1]
    vehicle.present(TOKEN)
    machine = station.transactions.machines[1]
    async with asyncio.timeout(5):
        while machine.authorization is None:
            await asyncio.sleep(0.01)
    async with asyncio.timeout(TIMEOUT_S + 3):
        while machine.authorization is not None:
            await asyncio.sleep(0.05)
    vehicle.plug()
    await asyncio.sleep(0.3)
    assert tx_events(b.csms) == []
    assert station.smart_charging.charging_rate_w(1) == 0.0

    before = authorizes(b.csms)
    vehicle.present(TOKEN)
    (started,) = await wait_event(b.csms, "Started")
    assert authorizes(b.csms) == before + 1
    assert started["idToken"]["idToken"] == TOKEN


async def test_plugged_in_time_keeps_the_authorization(bench: Start) -> None:
    b = await bench()
    station = b.station
    assert station is not None
    await timeout_set(b.csms, variable("TxCtrlr", "TxStartPoint", value="Authorized"))
    vehicle = station.sim_vehicles[1]
    vehicle.present(TOKEN)
    await wait_event(b.csms, "Started")
    vehicle.plug()
    await wait_event(b.csms, "Updated", "CablePluggedIn")
    await asyncio.sleep(TIMEOUT_S + 0.5)
    assert not [e for e in tx_events(b.csms) if e["eventType"] == "Ended"]
    assert station.transactions.machines[1].transaction_id is not None


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
