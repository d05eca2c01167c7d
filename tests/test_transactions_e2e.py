"""End to end: charging sessions of a real station against a real CSMS, with a real SQLite file.

The station (:class:`station.app.Station`, run in this event loop) talks to
:class:`station.sim.csms.Csms` (built on the ``ocpp`` library) over a WebSocket on 127.0.0.1; its
simulated vehicles (``Station.sim_vehicles``) are plugged, present tokens and draw power. The
tests look at what the CSMS received: TransactionEvents in order, seqNo gap-free per transaction,
the offline flag, energy registers that never go backwards, nothing lost and nothing duplicated
(issue 3). Requirement ids are OCPP 2.0.1 Part 2 (E transactions, F remote control, C
authorization).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from station.app import Station
from station.config import Config
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame
from tests.conftest import STATION_ID, assert_one_call_in_flight, station_config
from tests.test_link import booted, calls, request, variable

TOKEN = "04A1B2C3"
ENERGY_IMPORT = "Energy.Active.Import.Register"


@dataclass
class Bench:
    """A CSMS and one station (restartable on the same database)."""

    csms: Csms
    config: Config
    station: Station | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[Any] | None = None

    def start(self) -> Station:
        self.stop = asyncio.Event()
        self.station = Station(self.config)
        self.task = asyncio.ensure_future(self.station.run(self.stop))
        return self.station

    async def shutdown(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
            self.task = None


Start = Callable[..., Awaitable[Bench]]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Start]:
    benches: list[Bench] = []
    servers: list[Csms] = []

    async def start(subprotocols: tuple[str, ...] = ("ocpp2.0.1",), **csms: Any) -> Bench:
        server = await Csms(subprotocols=subprotocols, **csms).start()
        servers.append(server)
        bench = Bench(server, station_config(tmp_path, server.url))
        benches.append(bench)
        bench.start()
        await booted(server)
        return bench

    yield start
    for bench in benches:
        with contextlib.suppress(Exception):
            await bench.shutdown()
    for server in servers:
        await server.stop()


# --- helpers ----------------------------------------------------------------------------------


async def set_variables(csms: Csms, *items: dict[str, Any]) -> None:
    payload = await request(csms, "SetVariables", {"setVariableData": list(items)})
    statuses = [r["attributeStatus"] for r in payload["setVariableResult"]]
    assert statuses == ["Accepted"] * len(items), payload


def tx_events(csms: Csms) -> list[dict[str, Any]]:
    return [f.payload for f in csms.received("TransactionEvent", STATION_ID)]


def is_event(event_type: str, trigger: str | None = None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        payload = frame.payload
        return payload.get("eventType") == event_type and (
            trigger is None or payload.get("triggerReason") == trigger
        )

    return match


async def wait_event(
    csms: Csms, event_type: str, trigger: str | None = None, *, count: int = 1, timeout_s: float = 5
) -> list[dict[str, Any]]:
    frames = await calls(
        csms, "TransactionEvent", count, where=is_event(event_type, trigger), timeout_s=timeout_s
    )
    return [f.payload for f in frames]


async def drained(station: Station, timeout_s: float = 5) -> None:
    """Wait until the station's queue is empty (every event acknowledged)."""
    async with asyncio.timeout(timeout_s):
        while len(station.transactions.queue):
            await asyncio.sleep(0.01)


def energy_values(events: list[dict[str, Any]]) -> list[float]:
    return [
        float(sv["value"])
        for event in events
        for mv in event.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == ENERGY_IMPORT
    ]


def assert_well_formed(events: list[dict[str, Any]]) -> None:
    """One transaction, Started first, Ended last, seqNo gap-free, energy never backwards."""
    ids = {e["transactionInfo"]["transactionId"] for e in events}
    assert len(ids) == 1, ids
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert events[0]["eventType"] == "Started"
    assert events[-1]["eventType"] == "Ended"
    assert all(e["eventType"] == "Updated" for e in events[1:-1])
    energy = energy_values(events)
    assert energy == sorted(energy), energy


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", ["ocpp2.0.1", "ocpp2.1"])
async def test_full_session(bench: Start, subprotocol: str) -> None:
    """Plug, token, Started, Updated (periodic), unplug, Ended; with statuses (E01-E03, J02)."""
    b = await bench((subprotocol,), accepted_tokens={TOKEN})
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(csms, variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"))
    vehicle = station.sim_vehicles[1]

    vehicle.plug()
    occupied = (await calls(csms, "StatusNotification", since=len(csms.frames) - 1))[0]
    assert occupied.payload["connectorStatus"] == "Occupied"
    assert occupied.payload["evseId"] == 1
    vehicle.present(TOKEN)

    (authorize,) = await calls(csms, "Authorize")
    assert authorize.payload["idToken"] == {"idToken": TOKEN, "type": "ISO14443"}
    (started,) = await wait_event(csms, "Started")
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"] == {"idToken": TOKEN, "type": "ISO14443"}
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert not started.get("offline")  # the v2.1 dataclass sends its default, false
    await wait_event(csms, "Updated", "ChargingStateChanged")
    await wait_event(csms, "Updated", "MeterValuePeriodic", count=2)
    transaction_id = started["transactionInfo"]["transactionId"]

    # While the transaction runs the status says ongoing (E14). (Reset OnIdle during a session:
    # tests/test_reset_on_idle.py.)
    status = await request(csms, "GetTransactionStatus", {"transactionId": transaction_id})
    assert status["ongoingIndicator"] is True
    unlock = await request(csms, "UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert unlock["status"] == "OngoingAuthorizedTransaction"

    before_unplug = len(csms.frames)
    vehicle.unplug()
    (ended,) = await wait_event(csms, "Ended")
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert ended["triggerReason"] == "EVCommunicationLost"
    end_values = [sv for mv in ended["meterValue"] for sv in mv["sampledValue"]]
    assert {sv["context"] for sv in end_values} == {"Transaction.End"}
    available = await calls(
        csms,
        "StatusNotification",
        where=lambda f: f.payload.get("connectorStatus") == "Available",
        since=before_unplug,
    )
    assert available[0].payload["evseId"] == 1

    await drained(station)
    events = tx_events(csms)
    assert_well_formed(events)
    energy = energy_values(events)
    assert energy[-1] > energy[0]  # 20 kW for over two seconds
    status = await request(csms, "GetTransactionStatus", {"transactionId": transaction_id})
    assert status == {"ongoingIndicator": False, "messagesInQueue": False}
    assert_one_call_in_flight(csms.frames)


async def test_remote_start_and_stop(bench: Start) -> None:
    """F01 RequestStartTransaction (remoteStartId reported), F03 RequestStopTransaction."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None
    station.sim_vehicles[2].plug()
    start = {"idToken": {"idToken": "REMOTE-1", "type": "Central"}, "remoteStartId": 42}
    assert (await request(csms, "RequestStartTransaction", start))["status"] == "Accepted"
    # A second one for the same EVSE while the first is running: Rejected.
    again = {**start, "evseId": 2, "remoteStartId": 43}
    (started,) = await wait_event(csms, "Started")
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 42
    assert started["evse"]["id"] == 2
    assert (await request(csms, "RequestStartTransaction", again))["status"] == "Rejected"

    unknown = await request(csms, "RequestStopTransaction", {"transactionId": "no-such-tx"})
    assert unknown["status"] == "Rejected"
    transaction_id = started["transactionInfo"]["transactionId"]
    stop = await request(csms, "RequestStopTransaction", {"transactionId": transaction_id})
    assert stop["status"] == "Accepted"
    (ended,) = await wait_event(csms, "Ended")
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    station.sim_vehicles[2].unplug()
    await drained(station)
    assert_well_formed(tx_events(csms))


async def test_unknown_token_starts_nothing(bench: Start) -> None:
    """C01: a token the CSMS does not accept gives no transaction."""
    b = await bench(accepted_tokens={TOKEN})
    csms, station = b.csms, b.station
    assert station is not None
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present("BADC0FFEE")
    (authorize,) = await calls(csms, "Authorize")
    vehicle.present(TOKEN)  # the accepted one, as a marker: its Started comes after
    await wait_event(csms, "Started")
    events = tx_events(csms)
    assert events[0]["idToken"]["idToken"] == TOKEN
    assert authorize.payload["idToken"]["idToken"] == "BADC0FFEE"


async def test_session_while_offline_is_replayed_in_order(bench: Start, tmp_path: Path) -> None:
    """Events generated while the CSMS is down carry offline: true and are sent, in order and
    once each, when it is back (E04, issue 3 "The offline queue")."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Updated", "ChargingStateChanged")
    await drained(station)
    online_events = tx_events(csms)

    port = csms.port
    await csms.stop()
    async with asyncio.timeout(5):
        while station.transactions.csms.online:
            await asyncio.sleep(0.01)
    vehicle.stop_charging()  # Updated: SuspendedEV
    vehicle.unplug()  # Ended
    assert len(station.transactions.queue) == 2
    station.sim_vehicles[2].plug()
    assert len(station.transactions.queue) == 2  # plugging alone starts no transaction

    back = await Csms(subprotocols=("ocpp2.0.1",), port=port).start()
    try:
        replayed = [f.payload for f in await calls(back, "TransactionEvent", 2, timeout_s=10)]
        await drained(station)
    finally:
        await back.stop()
    assert [e["eventType"] for e in replayed] == ["Updated", "Ended"]
    assert all(e.get("offline") is True for e in replayed)
    assert replayed[0]["transactionInfo"]["chargingState"] == "SuspendedEV"
    events = online_events + replayed
    assert_well_formed(events)
    assert len(tx_events(back)) == 2  # nothing sent twice


async def test_callerror_is_retried(bench: Start) -> None:
    """A CALLERROR on TransactionEvent is retried per MessageAttempts/MessageAttemptInterval,
    and nothing behind it overtakes it (E13)."""
    b = await bench(transaction_event_errors=2)
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(
        csms,
        variable("OCPPCommCtrlr", "MessageAttemptInterval", instance="TransactionEvent", value="0"),
    )
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Updated", "ChargingStateChanged")
    vehicle.unplug()
    await wait_event(csms, "Ended")
    await drained(station)
    frames = csms.received("TransactionEvent")
    sent = [(f.payload["eventType"], f.payload["seqNo"]) for f in frames]
    assert sent[:3] == [("Started", 0)] * 3  # refused twice, then accepted
    assert frames[0].payload == frames[2].payload  # the same message, byte for byte
    delivered = [f.payload for f in frames[2:]]
    assert_well_formed(delivered)


async def test_attempts_exhausted_drop_the_message(bench: Start) -> None:
    """After MessageAttempts the message is dropped (with a log line) and the queue moves on."""
    b = await bench(transaction_event_errors=2)
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(
        csms,
        variable("OCPPCommCtrlr", "MessageAttemptInterval", instance="TransactionEvent", value="0"),
        variable("OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent", value="2"),
    )
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Updated", "ChargingStateChanged")
    await drained(station)
    sent = [(f.payload["eventType"], f.payload["seqNo"]) for f in csms.received("TransactionEvent")]
    assert sent[:2] == [("Started", 0), ("Started", 0)]
    assert sent[2][1] == 1


async def test_restart_with_open_transaction_ends_it_power_loss(bench: Start) -> None:
    """An open transaction found in the store at start is ended: stoppedReason PowerLoss, with
    the last known meter values, the next seqNo, and nothing sent twice (issue 3)."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Updated", "ChargingStateChanged")
    await drained(station)
    await b.shutdown()
    before = tx_events(csms)

    b.start()
    (ended,) = await wait_event(csms, "Ended", timeout_s=10)
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert ended["triggerReason"] == "AbnormalCondition"
    events = tx_events(csms)
    assert events[: len(before)] == before
    assert_well_formed(events)
    end_energy = energy_values([ended])
    assert end_energy and end_energy[0] >= max(energy_values(before))
    assert b.station is not None
    await drained(b.station)
    assert b.station.transactions.transactions.open_transactions() == []


async def test_sim_control_drives_a_session(bench: Start) -> None:
    """``station sim`` commands: plug, token, unplug; status shows the transaction."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None and station.control is not None
    endpoint = station.control.endpoint.endpoint_file
    async with asyncio.timeout(5):
        while not endpoint.exists():
            await asyncio.sleep(0.02)
    assert (await sim_request(endpoint, {"cmd": "plug", "evse": 2}))["ok"] is True
    bad = await sim_request(endpoint, {"cmd": "plug", "evse": 9})
    assert bad["ok"] is False and "evse" in bad["error"]
    await sim_request(endpoint, {"cmd": "token", "evse": 2, "id": TOKEN})
    (started,) = await wait_event(csms, "Started")
    status = await sim_request(endpoint, {"cmd": "status"})
    evse2 = status["evses"][1]
    assert evse2["transaction_id"] == started["transactionInfo"]["transactionId"]
    assert evse2["connector_status"] == "Occupied"
    await sim_request(endpoint, {"cmd": "unplug", "evse": 2})
    await wait_event(csms, "Ended")
