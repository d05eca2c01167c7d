"""End to end: the CSMS answers a transaction's Started event with an idTokenInfo that is not
Accepted (TxCtrlr.StopTxOnInvalidId, MaxEnergyOnInvalidId; E05 "Start Transaction - Id not
Accepted").

A real station runs in this event loop against the sim CSMS over a WebSocket on 127.0.0.1, with a
real SQLite file. The token is Accepted in the station's Local Authorization List (LocalPreAuthorize
true, or offline), so the transaction starts without asking; the CSMS accepts no token, so its
TransactionEventResponse to the Started event says Invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from station.sim.csms import Csms
from tests.conftest import station_config
from tests.test_link import booted, variable
from tests.test_local_auth_e2e import entry, send_list
from tests.test_transactions_e2e import Bench, drained, set_variables, tx_events, wait_event

TOKEN = "04A1B2C3"

Start = Callable[..., Awaitable[Bench]]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Start]:
    benches: list[Bench] = []
    servers: list[Csms] = []

    async def start(**csms: Any) -> Bench:
        server = await Csms(subprotocols=("ocpp2.0.1",), **csms).start()
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


async def listed_token(b: Bench, *settings: dict[str, Any]) -> None:
    """The token Accepted in the local list, used without asking (C12/D01)."""
    await set_variables(b.csms, variable("AuthCtrlr", "LocalPreAuthorize", value="true"), *settings)
    assert await send_list(b.csms, 1, "Full", entry(TOKEN)) == "Accepted"


async def until(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def commanded_w(b: Bench, evse_id: int = 1) -> float:
    assert b.station is not None
    rate_w = b.station.smart_charging.charging_rate_w(evse_id)
    assert rate_w is not None
    return rate_w


async def test_stop_tx_on_invalid_id_true_ends_the_transaction(bench: Start) -> None:
    """StopTxOnInvalidId true (the default): Ended, triggerReason Deauthorized, stoppedReason
    DeAuthorized, the energy stops and the contactors open."""
    b = await bench(accepted_tokens=set())
    station = b.station
    assert station is not None
    await listed_token(b)
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    (started,) = await wait_event(b.csms, "Started")
    assert started["idToken"]["idToken"] == TOKEN
    (ended,) = await wait_event(b.csms, "Ended")
    assert ended["triggerReason"] == "Deauthorized"
    assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    await until(lambda: commanded_w(b) == 0.0)
    assert not station.transactions.machines[1].power_path_closed
    assert station.transactions.machines[1].transaction_id is None
    await drained(station)
    seq = [e["seqNo"] for e in tx_events(b.csms)]
    assert seq == list(range(len(seq)))


async def test_stop_tx_on_invalid_id_false_suspends_the_energy(bench: Start) -> None:
    """StopTxOnInvalidId false without MaxEnergyOnInvalidId: the transaction goes on, the
    energy stops at once (Updated, chargingState SuspendedEVSE), and the session still ends
    normally when the EV leaves."""
    b = await bench(accepted_tokens=set())
    station = b.station
    assert station is not None
    await listed_token(b, variable("TxCtrlr", "StopTxOnInvalidId", value="false"))
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    (started,) = await wait_event(b.csms, "Started")
    transaction_id = started["transactionInfo"]["transactionId"]
    await until(
        lambda: any(
            e.get("transactionInfo", {}).get("chargingState") == "SuspendedEVSE"
            for e in tx_events(b.csms)
        )
    )
    (suspended,) = [
        e for e in tx_events(b.csms) if e["transactionInfo"].get("chargingState") == "SuspendedEVSE"
    ]
    assert suspended["eventType"] == "Updated"
    assert suspended["triggerReason"] == "ChargingStateChanged"
    assert suspended["transactionInfo"]["transactionId"] == transaction_id
    await until(lambda: commanded_w(b) == 0.0)
    assert not station.transactions.machines[1].power_path_closed
    assert station.transactions.machines[1].transaction_id == transaction_id
    assert not [e for e in tx_events(b.csms) if e["eventType"] == "Ended"]

    # The meter stands still from now on.
    reading = vehicle.read_meter(station.clock.now())
    await asyncio.sleep(0.3)
    assert vehicle.read_meter(station.clock.now()).energy_import_wh == reading.energy_import_wh

    vehicle.unplug()
    (ended,) = await wait_event(b.csms, "Ended")
    assert ended["transactionInfo"]["transactionId"] == transaction_id
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_started_offline_then_invalid_on_reconnect(bench: Start) -> None:
    """C15 then E05: a transaction started offline on a listed token; when the queued Started
    event is delivered and answered Invalid, the transaction is ended (Deauthorized)."""
    b = await bench()
    station = b.station
    assert station is not None
    assert await send_list(b.csms, 1, "Full", entry(TOKEN)) == "Accepted"
    port = b.csms.port
    await b.csms.stop()
    await until(lambda: not station.transactions.csms.online)
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await until(lambda: station.transactions.machines[1].transaction_id is not None)
    transaction_id = station.transactions.machines[1].transaction_id

    back = await Csms(subprotocols=("ocpp2.0.1",), port=port, accepted_tokens=set()).start()
    try:
        (started,) = await wait_event(back, "Started", timeout_s=10)
        (ended,) = await wait_event(back, "Ended", timeout_s=10)
        await drained(station)
    finally:
        await back.stop()
    assert started["offline"] is True
    assert started["transactionInfo"]["transactionId"] == transaction_id
    assert ended["transactionInfo"]["transactionId"] == transaction_id
    assert ended["triggerReason"] == "Deauthorized"
    assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    assert commanded_w(b) == 0.0
