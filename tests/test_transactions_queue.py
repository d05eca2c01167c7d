"""The bound of the offline TransactionEvent queue (issue 3, "The offline queue").

When the queue reaches ``[storage] queue_max_messages``, the oldest meter-value-only Updated
events are dropped first; Started, Ended and every state-changing event stay, the remaining
events keep their seqNo (so the CSMS sees the gap), a WARNING line says what was dropped and the
CSMS gets a MemoryExhaustion SecurityEventNotification. Store tests use a real SQLite file; the
end-to-end test a real station against the sim CSMS over a WebSocket on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from station.sim.csms import Csms
from station.store import OutboundQueue, PendingMessage, TransactionRepository, open_database
from station.transactions import MeterSample, SampleKind
from tests.conftest import station_config
from tests.test_link import booted, calls
from tests.test_transactions_e2e import (
    TOKEN,
    Bench,
    drained,
    energy_values,
    tx_events,
    wait_event,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def payload(seq_no: int, event_type: str, trigger: str, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": extra.pop("tx", "TX-1")}
    if "state" in extra:
        info["chargingState"] = extra.pop("state")
    return {
        "eventType": event_type,
        "timestamp": "2025-01-01T00:00:00Z",
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
        **extra,
    }


def queue_of(repo: TransactionRepository, payloads: list[dict[str, Any]]) -> None:
    repo.record(
        1,
        None,
        [
            PendingMessage("TransactionEvent", p, p["transactionInfo"]["transactionId"])
            for p in payloads
        ],
        now=T0,
    )


def waiting(queue: OutboundQueue) -> list[tuple[str, int, str]]:
    return [
        (m.payload["transactionInfo"]["transactionId"], m.payload["seqNo"], m.payload["eventType"])
        for m in queue.peek(10_000)
    ]


def test_the_oldest_meter_samples_go_first_and_nothing_else(tmp_path: Path) -> None:
    db = open_database(tmp_path / "station.db")
    repo, queue = TransactionRepository(db), OutboundQueue(db)
    events = [payload(0, "Started", "Authorized", idToken={"idToken": "A", "type": "Central"})]
    events += [payload(k, "Updated", "MeterValuePeriodic") for k in range(1, 6)]
    events.append(payload(6, "Updated", "ChargingStateChanged", state="SuspendedEV"))
    events.append(payload(7, "Updated", "MeterValueClock"))
    events.append(payload(8, "Updated", "MeterValuePeriodic", state="Charging"))  # state change
    events += [payload(k, "Updated", "MeterValuePeriodic") for k in range(9, 12)]
    events.append(payload(12, "Ended", "EVCommunicationLost"))
    queue_of(repo, events)
    assert len(queue) == 13

    assert repo.thin(13) is None  # within the bound: nothing happens
    thinning = repo.thin(10, headroom=2)  # 13 → 8: five to drop, oldest first

    assert thinning is not None
    assert thinning.dropped == {"TX-1": (1, 2, 3, 4, 5)}
    assert thinning.count == 5
    assert (thinning.queued, thinning.limit) == (8, 10)
    assert [s for _, s, _ in waiting(queue)] == [0, 6, 7, 8, 9, 10, 11, 12]  # seqNo unchanged

    thinning = repo.thin(5)  # 8 → 5: the clock sample, then periodic 9 and 10; 8 changes state
    assert thinning is not None and thinning.dropped == {"TX-1": (7, 9, 10)}
    assert [s for _, s, _ in waiting(queue)] == [0, 6, 8, 11, 12]


def test_a_queue_of_events_that_must_stay_stays_over_its_bound(tmp_path: Path) -> None:
    db = open_database(tmp_path / "station.db")
    repo, queue = TransactionRepository(db), OutboundQueue(db)
    queue_of(
        repo,
        [payload(0, "Started", "Authorized", tx=f"TX-{n}") for n in range(4)]
        + [payload(1, "Ended", "StopAuthorized", tx=f"TX-{n}") for n in range(4)],
    )
    before = waiting(queue)

    thinning = repo.thin(3)

    assert thinning is not None
    assert (thinning.count, thinning.dropped, thinning.queued) == (0, {}, 8)
    assert waiting(queue) == before


def test_the_oldest_samples_of_every_transaction_go_first(tmp_path: Path) -> None:
    db = open_database(tmp_path / "station.db")
    repo, queue = TransactionRepository(db), OutboundQueue(db)
    queue_of(repo, [payload(k, "Updated", "MeterValuePeriodic", tx="TX-A") for k in range(3)])
    queue_of(repo, [payload(k, "Updated", "MeterValuePeriodic", tx="TX-B") for k in range(3)])

    thinning = repo.thin(2)

    assert thinning is not None
    assert thinning.dropped == {"TX-A": (0, 1, 2), "TX-B": (0,)}
    assert waiting(queue) == [("TX-B", 1, "Updated"), ("TX-B", 2, "Updated")]


@pytest.mark.parametrize(("limit", "headroom"), [(0, 0), (10, -1), (10, 10)])
def test_a_bad_bound_is_refused(tmp_path: Path, limit: int, headroom: int) -> None:
    repo = TransactionRepository(open_database(tmp_path / "station.db"))
    with pytest.raises(ValueError, match="limit"):
        repo.thin(limit, headroom=headroom)


async def test_a_full_offline_queue_is_thinned_and_replayed_with_gaps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Offline, a session produces more events than the bound: the oldest periodic samples are
    dropped, Started/Ended and the rest are replayed in order with their own seqNo, and the CSMS
    hears about it (MemoryExhaustion)."""
    csms = await Csms(subprotocols=("ocpp2.0.1",)).start()
    config = station_config(tmp_path, csms.url)
    b = Bench(csms, replace(config, storage=replace(config.storage, queue_max_messages=100)))
    try:
        await _thin_offline_session(b, caplog)
    finally:
        await b.shutdown()
        await csms.stop()


async def _thin_offline_session(b: Bench, caplog: pytest.LogCaptureFixture) -> None:
    station, csms = b.start(), b.csms
    await booted(csms)
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Updated", "ChargingStateChanged")
    await drained(station)
    online = tx_events(csms)

    port = csms.port
    await csms.stop()
    async with asyncio.timeout(5):
        while station.transactions.csms.online:
            await asyncio.sleep(0.01)
    caplog.set_level(logging.WARNING, logger="station.transactions.service")
    for _ in range(150):
        reading = vehicle.read_meter(station.clock.now())
        station.transactions.submit(1, MeterSample(SampleKind.PERIODIC, reading))
    vehicle.unplug()  # Ended
    queued = len(station.transactions.queue)
    assert queued <= 100
    warnings = [r.getMessage() for r in caplog.records if "outbound queue full" in r.message]
    assert warnings, caplog.text

    back = await Csms(subprotocols=("ocpp2.0.1",), port=port).start()
    try:
        replayed = [f.payload for f in await calls(back, "TransactionEvent", queued, timeout_s=20)]
        await drained(station)
        notice = await calls(back, "SecurityEventNotification", 1, timeout_s=10)
    finally:
        await back.stop()
    assert notice[0].payload["type"] == "MemoryExhaustion"
    assert len(tx_events(back)) == queued  # nothing twice
    assert replayed[-1]["eventType"] == "Ended"
    assert all(e["eventType"] == "Updated" for e in replayed[:-1])
    events = online + replayed
    seq = [e["seqNo"] for e in events]
    assert seq == sorted(set(seq)), "in order, none twice"
    assert seq[-1] == len(online) + 150  # Ended keeps its own seqNo: the gap shows the loss
    missing = set(range(seq[-1] + 1)) - set(seq)
    assert len(missing) == 151 - len(replayed)
    assert all(m >= len(online) for m in missing)  # only offline periodic samples were dropped
    energy = energy_values(events)
    assert energy == sorted(energy)
