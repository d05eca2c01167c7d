"""The crash test (issue 3): SIGKILL a ``station run`` process at random points of running sessions.

A real ``station run`` subprocess with ``[[evse]] sim_autostart = true`` (its simulated
vehicle plugs in and presents a token as soon as the CSMS accepts the station) charges against
the test's CSMS over a WebSocket on 127.0.0.1. The test kills it with SIGKILL at random moments,
restarts it on the same SQLite file, and finally stops it with SIGTERM. Then it checks what the
CSMS received: per transaction, seqNo gap-free from 0 in order, every transaction of a killed run
ended (PowerLoss), energy registers never backwards, and nothing left in the station's queue. A
message the CSMS answered just before the kill, but whose acknowledgement the station had not yet
committed, is sent again after the restart: such a repeat must be byte-identical to the first
copy (the CSMS recognises it by transactionId and seqNo), and the test logs how many there were.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

from station.sim.csms import Csms
from station.store import OutboundQueue, TransactionRepository, open_database

STATION = [sys.executable, "-m", "station.cli"]
STATION_ID = "CS-CRASH"
KILLS = 6


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [station]
            id = "{STATION_ID}"
            [csms]
            url = "{url}"
            retry_backoff_wait_minimum_s = 0
            retry_backoff_random_range_s = 0
            message_timeout_s = 5
            [storage]
            database = "data/station.db"
            [[evse]]
            id = 1
            connector = "chademo"
            sim_autostart = true
            """
        )
    )
    return path


async def start(path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *STATION,
        "run",
        "--config",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def energy(payload: dict[str, Any]) -> list[float]:
    return [
        float(sv["value"])
        for mv in payload.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == "Energy.Active.Import.Register"
    ]


async def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("STATION_CRASH_SEED", "20261121")))
    async with Csms(subprotocols=("ocpp2.0.1",)) as csms:
        path = write_config(tmp_path, csms.url)
        for run in range(KILLS):
            boots = len(csms.received("BootNotification"))
            process = await start(path)
            try:
                async with asyncio.timeout(20):
                    while len(csms.received("BootNotification")) <= boots:
                        await csms.wait_action("BootNotification", STATION_ID)
                if run == 0:
                    await csms.wait_connected(STATION_ID)
                    # Persisted: periodic samples every second from the next transaction on.
                    item = {
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                        "attributeValue": "1",
                    }
                    await csms.call(STATION_ID, "SetVariables", {"setVariableData": [item]})
                await asyncio.sleep(rng.uniform(0.05, 2.5))
            finally:
                process.kill()  # SIGKILL: no clean-up of any kind
                await process.wait()
        # The last run: recover, deliver, start a new session, then stop cleanly.
        started = len([f for f in csms.received("TransactionEvent") if _is(f.payload, "Started")])
        process = await start(path)
        try:
            async with asyncio.timeout(20):
                while (
                    len([f for f in csms.received("TransactionEvent") if _is(f.payload, "Started")])
                    <= started
                ):
                    await csms.wait_action("TransactionEvent", STATION_ID)
            await asyncio.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
        assert process.returncode == 0
        received = [f.payload for f in csms.received("TransactionEvent", STATION_ID)]

    by_tx: dict[str, list[dict[str, Any]]] = {}
    for payload in received:
        by_tx.setdefault(payload["transactionInfo"]["transactionId"], []).append(payload)
    duplicates = 0
    for transaction_id, events in by_tx.items():
        unique: list[dict[str, Any]] = []
        for payload in events:
            if unique and payload["seqNo"] <= unique[-1]["seqNo"]:
                # A repeat after a kill: the same message, never a different one.
                assert payload == next(u for u in unique if u["seqNo"] == payload["seqNo"])
                duplicates += 1
                continue
            unique.append(payload)
        assert [e["seqNo"] for e in unique] == list(range(len(unique))), transaction_id
        assert unique[0]["eventType"] == "Started"
        values = [v for e in unique for v in energy(e)]
        assert values == sorted(values), (transaction_id, values)
    assert duplicates <= KILLS  # at most one re-send per kill (each ack committed before the next)
    transactions = list(by_tx.values())
    assert len(transactions) >= 2
    for events in transactions[:-1]:  # each killed run's session was ended after the restart
        ended = [e for e in events if e["eventType"] == "Ended"]
        assert len({e["seqNo"] for e in ended}) == 1, events
        assert ended[0]["transactionInfo"]["stoppedReason"] == "PowerLoss"
    db = open_database(tmp_path / "data" / "station.db")
    try:
        assert len(OutboundQueue(db)) == 0  # everything committed was delivered
        open_now = TransactionRepository(db).open_transactions()
        last_id = transactions[-1][0]["transactionInfo"]["transactionId"]
        assert [t.transaction_id for t in open_now] == [last_id]
    finally:
        db.close()
    logging.getLogger(__name__).info(
        "crash test: %d kills, %d transactions, %d repeats", KILLS, len(transactions), duplicates
    )


def _is(payload: dict[str, Any], event_type: str) -> bool:
    return payload.get("eventType") == event_type
