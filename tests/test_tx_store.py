"""The transactions' persistence and wire payloads, without a network.

- :class:`TransactionRepository`: an open transaction and the events that report it are committed
  together, or not at all (real SQLite file in ``tmp_path``: atomicity is the point).
- :func:`transaction_event_payload`: the queued wire payload is valid TransactionEventRequest
  JSON for both OCPP 2.0.1 and 2.1, whatever optional fields it carries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from station.errors import StoreError
from station.ocpp import rpc
from station.ocpp.tx_convert import transaction_event_payload
from station.store import (
    OutboundQueue,
    PendingMessage,
    TransactionRepository,
    open_database,
)
from station.transactions import (
    ChargingState,
    EventType,
    IdToken,
    IdTokenType,
    Measurand,
    MeterReading,
    OpenTransaction,
    ReadingContext,
    StoppedReason,
    TransactionEventOut,
    TriggerReason,
    meter_value,
    recover,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
READING = MeterReading(
    timestamp=T0,
    energy_import_wh=1234.5,
    energy_export_wh=67.25,
    power_w=-7000.0,
    current_a=-17.5,
    voltage_v=400.0,
    soc_pct=55.0,
)


def open_tx(transaction_id: str = "TX-1", evse_id: int = 1, seq: int = 3) -> OpenTransaction:
    return OpenTransaction(
        transaction_id=transaction_id,
        evse_id=evse_id,
        connector_id=1,
        started_at=T0,
        next_seq_no=seq,
        last_reading=READING,
        ended_measurands=(
            Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
            Measurand.ENERGY_ACTIVE_EXPORT_REGISTER,
        ),
    )


def test_open_transaction_keeps_its_tokens_and_keep_alive(tmp_path: Path) -> None:
    """What resuming a transaction after a restart needs: the session's tokens, and when the
    station was last known to run it (each record, then each keep-alive)."""
    token = IdToken("04A1B2C3", IdTokenType.ISO14443)
    group = IdToken("FLEET-7", IdTokenType.CENTRAL)
    tx = replace(open_tx(), id_token=token, group_id_token=group)
    with open_database(tmp_path / "s.db") as db:
        repo = TransactionRepository(db)
        repo.record(1, tx, [message()], now=T0)
        later = T0 + timedelta(seconds=10)
        assert repo.keep_alive(later) == 1
        assert repo.open_transactions() == [replace(tx, alive_at=later)]
        repo.record(1, None, [message(seq=1)], now=later)
        assert repo.keep_alive(later) == 0
    with open_database(tmp_path / "s.db") as db:  # and after a restart
        assert TransactionRepository(db).open_transactions() == []


def message(transaction_id: str = "TX-1", seq: int = 0) -> PendingMessage:
    return PendingMessage("TransactionEvent", {"seqNo": seq}, transaction_id)


def test_open_transaction_round_trips_with_its_reading(tmp_path: Path) -> None:
    with open_database(tmp_path / "s.db") as db:
        repo = TransactionRepository(db)
        ids = repo.record(1, open_tx(), [message(seq=0), message(seq=1)], now=T0)
        assert ids == sorted(ids) and len(ids) == 2
        assert repo.open_transactions() == [replace(open_tx(), alive_at=T0)]
        assert repo.queued_for("TX-1") == 2
        assert [m.payload["seqNo"] for m in OutboundQueue(db).peek(5)] == [0, 1]
        # Ending it: the transaction goes, the Ended message comes, in one commit.
        repo.record(1, None, [message(seq=3)], now=T0)
        assert repo.open_transactions() == []
        assert repo.queued_for("TX-1") == 3


def test_a_failed_record_writes_nothing(tmp_path: Path) -> None:
    with open_database(tmp_path / "s.db") as db:
        repo = TransactionRepository(db)
        repo.record(1, open_tx("TX-1"), [message("TX-1")], now=T0)
        # The same transaction id on another EVSE violates the unique key: all or nothing.
        with pytest.raises(StoreError):
            repo.record(2, open_tx("TX-1", evse_id=2), [message("TX-1", 1)], now=T0)
        assert len(OutboundQueue(db)) == 1
        assert [t.evse_id for t in repo.open_transactions()] == [1]


def test_recovered_transaction_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with open_database(path) as db:
        TransactionRepository(db).record(1, open_tx(seq=7), [], now=T0)
    with open_database(path) as db:
        (found,) = TransactionRepository(db).open_transactions()
    ended = recover(found, T0 + timedelta(hours=1))
    assert ended.seq_no == 7
    assert ended.stopped_reason is StoppedReason.POWER_LOSS
    (value,) = ended.meter_values
    assert [v.value for v in value.sampled_values] == [1234.5, 67.25]


FULL = TransactionEventOut(
    event_type=EventType.UPDATED,
    timestamp=T0,
    trigger_reason=TriggerReason.REMOTE_START,
    seq_no=4,
    transaction_id="TX-1",
    evse_id=2,
    connector_id=1,
    charging_state=ChargingState.CHARGING,
    stopped_reason=StoppedReason.REMOTE,
    id_token=IdToken("04A1B2C3", IdTokenType.ISO14443),
    remote_start_id=42,
    number_of_phases_used=3,
    meter_values=tuple(
        v
        for v in (
            meter_value(READING, list(Measurand), ReadingContext.SAMPLE_PERIODIC),
            meter_value(READING, [Measurand.SOC], ReadingContext.TRANSACTION_END),
        )
        if v is not None
    ),
    offline=True,
)


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
@pytest.mark.parametrize(
    "event",
    [
        FULL,
        replace(FULL, event_type=EventType.STARTED, meter_values=(), offline=False),
        replace(FULL, id_token=None, remote_start_id=None, charging_state=None),
    ],
)
def test_payload_is_schema_valid(version: str, event: TransactionEventOut) -> None:
    payload = transaction_event_payload(event)
    rpc.check_payload(rpc.MessageType.CALL, "TransactionEvent", payload, version)
    assert payload["seqNo"] == event.seq_no
    assert payload["timestamp"] == "2025-03-01T12:00:00.000Z"
    assert ("offline" in payload) is event.offline


def test_export_is_reported_separately() -> None:
    payload = transaction_event_payload(FULL)
    values = {sv["measurand"]: sv["value"] for sv in payload["meterValue"][0]["sampledValue"]}
    assert values["Energy.Active.Export.Register"] == 67.25
    assert values["Power.Active.Export"] == 7000.0
    assert values["Power.Active.Import"] == 0.0
