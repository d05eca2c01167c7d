"""The transactions' persistence: open transactions and their queued messages, atomically.

Owns one rule of issue 3 ("The offline queue"): a TransactionEvent and the open-transaction
state it leaves behind are committed in **one** SQLite transaction, so that after a crash the
store never holds an event without the transaction it belongs to, nor a transaction whose
events were lost. Messages go into the same ``outbound_messages`` table as
:class:`~station.store.repositories.OutboundQueue` (which delivers and acknowledges them).

Takes and returns the transaction core's domain values (:class:`OpenTransaction`,
:class:`MeterReading`), never ORM rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update

from station.errors import StoreError
from station.store.db import Database
from station.store.models import OpenTransactionRow, OutboundMessage
from station.store.repositories import _from_db, _to_db, _transaction
from station.transactions.model import (
    IdToken,
    IdTokenType,
    Measurand,
    MeterReading,
    OpenTransaction,
)

__all__ = ["THINNABLE_TRIGGERS", "PendingMessage", "QueueThinning", "TransactionRepository"]

THINNABLE_TRIGGERS: tuple[str, ...] = ("MeterValuePeriodic", "MeterValueClock")
"""The triggerReasons of the TransactionEvents a full queue may thin: Updated events that carry
meter samples only (no chargingState, no idToken). Started and Ended are never thinned."""

# The oldest thinnable TransactionEvents first. JSON1 is built into the SQLite Python ships.
_THINNABLE = text(
    "SELECT id, transaction_id, json_extract(payload, '$.seqNo') FROM outbound_messages"
    " WHERE action = 'TransactionEvent'"
    " AND json_extract(payload, '$.eventType') = 'Updated'"
    " AND json_extract(payload, '$.triggerReason') IN ('MeterValuePeriodic', 'MeterValueClock')"
    " AND json_extract(payload, '$.transactionInfo.chargingState') IS NULL"
    " AND json_extract(payload, '$.idToken') IS NULL"
    " ORDER BY id LIMIT :limit"
)

_READING_FIELDS = (
    "energy_import_wh",
    "energy_export_wh",
    "power_w",
    "current_a",
    "voltage_v",
    "soc_pct",
    "frequency_hz",
    "power_offered_w",
    "current_offered_a",
)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A message to queue with a transaction change: the action and its wire payload."""

    action: str
    payload: dict[str, Any]
    transaction_id: str | None


@dataclass(frozen=True, slots=True)
class QueueThinning:
    """What one thinning of the full queue dropped (for the log line and the notification).

    ``dropped`` maps each transaction id to the seqNo of the events dropped from it; the seqNo
    of the events that stay are not changed, so the CSMS sees the gap. ``queued`` is how many
    messages wait afterwards; ``limit`` the bound. ``dropped`` is empty when nothing could be
    thinned (only Started, Ended and state-changing events wait): the queue then stays above
    its bound rather than lose one of those.
    """

    dropped: dict[str, tuple[int, ...]]
    queued: int
    limit: int

    @property
    def count(self) -> int:
        """How many messages were dropped."""
        return sum(len(seq_nos) for seq_nos in self.dropped.values())


class TransactionRepository:
    """Open transactions per EVSE, written together with the messages that report them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        evse_id: int,
        open_transaction: OpenTransaction | None,
        messages: Sequence[PendingMessage],
        *,
        now: datetime,
    ) -> list[int]:
        """Queue ``messages`` and set (or, with None, clear) EVSE ``evse_id``'s open
        transaction, in one committed SQLite transaction.

        Returns:
            The queue ids of the messages, in order.

        Raises:
            ValueError: a naive ``now``, or a payload that is not JSON.
            StoreError: the database could not be written (nothing was written).
        """
        created_at = _to_db(now)
        rows = [
            OutboundMessage(
                action=m.action,
                payload=json.dumps(
                    m.payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")
                ),
                transaction_id=m.transaction_id,
                created_at=created_at,
                attempts=0,
                next_attempt_at=None,
                last_error=None,
            )
            for m in messages
        ]
        with _transaction(self._db, "cannot record a transaction event") as s:
            s.add_all(rows)
            existing = s.get(OpenTransactionRow, evse_id)
            if open_transaction is None:
                if existing is not None:
                    s.delete(existing)
            else:
                values = _row_values(open_transaction)
                values["alive_at"] = created_at
                if existing is None:
                    s.add(OpenTransactionRow(evse_id=evse_id, **values))
                else:
                    for name, value in values.items():
                        setattr(existing, name, value)
            s.flush()
            return [row.id for row in rows]

    def open_transactions(self) -> list[OpenTransaction]:
        """Every open transaction in the store, by EVSE id.

        Raises:
            StoreError: the database could not be read, or a row is corrupt.
        """
        query = select(OpenTransactionRow).order_by(OpenTransactionRow.evse_id)
        with _transaction(self._db, "cannot load open transactions") as s:
            return [_open_transaction(row) for row in s.scalars(query)]

    def keep_alive(self, now: datetime) -> int:
        """Record that the station still runs every open transaction at ``now`` (the start of
        an interruption is then known to within the keep-alive interval).

        Returns:
            How many open transactions were touched.

        Raises:
            ValueError: a naive ``now``.
            StoreError: the database could not be written.
        """
        alive_at = _to_db(now)
        with _transaction(self._db, "cannot record the keep-alive") as s:
            result = s.execute(update(OpenTransactionRow).values(alive_at=alive_at))
            return int(getattr(result, "rowcount", 0) or 0)

    def clear(self, evse_id: int) -> None:
        """Forget EVSE ``evse_id``'s open transaction (without queueing anything)."""
        with _transaction(self._db, "cannot clear an open transaction") as s:
            s.execute(delete(OpenTransactionRow).where(OpenTransactionRow.evse_id == evse_id))

    def thin(self, limit: int, *, headroom: int = 0) -> QueueThinning | None:
        """Keep the outbound queue within ``limit`` messages (issue 3: "the oldest meter samples
        of an ongoing transaction are thinned first, never Started/Ended").

        When more than ``limit`` messages wait, the oldest thinnable TransactionEvents
        (:data:`THINNABLE_TRIGGERS`) are deleted, in one committed transaction, until
        ``limit - headroom`` wait (the headroom spares a thinning per new message).

        Args:
            limit: the bound, at least 1.
            headroom: how far below the bound to thin, 0 to less than ``limit``.

        Returns:
            None when the queue is within its bound, else what was dropped.

        Raises:
            ValueError: a limit below 1 or a headroom outside 0 to limit - 1.
            StoreError: the database could not be read or written (nothing was dropped).
        """
        if limit < 1 or not 0 <= headroom < limit:
            raise ValueError(
                f"limit must be at least 1 and headroom 0 to limit - 1: {limit}, {headroom}"
            )
        table = OutboundMessage.__table__
        with _transaction(self._db, "cannot thin the queue") as s:
            # ids only grow, so max - min + 1 bounds the count without scanning the table.
            low, high = s.execute(select(func.min(table.c.id), func.max(table.c.id))).one()
            if low is None or high - low + 1 <= limit:
                return None
            queued = s.scalar(select(func.count()).select_from(table)) or 0
            if queued <= limit:
                return None
            rows = s.execute(_THINNABLE, {"limit": queued - (limit - headroom)}).all()
            dropped: dict[str, list[int]] = {}
            for _, transaction_id, seq_no in rows:
                dropped.setdefault(str(transaction_id), []).append(int(seq_no))
            ids = [row[0] for row in rows]
            for first in range(0, len(ids), 500):
                s.execute(
                    delete(OutboundMessage).where(OutboundMessage.id.in_(ids[first : first + 500]))
                )
            return QueueThinning(
                {tx: tuple(seq_nos) for tx, seq_nos in dropped.items()}, queued - len(ids), limit
            )

    def queued_for(self, transaction_id: str) -> int:
        """How many messages of ``transaction_id`` wait in the outbound queue."""
        query = select(OutboundMessage.id).where(OutboundMessage.transaction_id == transaction_id)
        with _transaction(self._db, "cannot read the queue") as s:
            return len(s.scalars(query).all())


def _row_values(tx: OpenTransaction) -> dict[str, Any]:
    reading = tx.last_reading
    return {
        "transaction_id": tx.transaction_id,
        "connector_id": tx.connector_id,
        "started_at": _to_db(tx.started_at),
        "next_seq_no": tx.next_seq_no,
        "last_reading": None if reading is None else json.dumps(_reading_json(reading)),
        "ended_measurands": ",".join(m.value for m in tx.ended_measurands),
        "id_token": None if tx.id_token is None else tx.id_token.id_token,
        "id_token_type": None if tx.id_token is None else tx.id_token.type.value,
        "group_id_token": None if tx.group_id_token is None else tx.group_id_token.id_token,
        "group_id_token_type": None if tx.group_id_token is None else tx.group_id_token.type.value,
    }


def _token(value: str | None, kind: str | None) -> IdToken | None:
    if value is None or kind is None:
        return None
    return IdToken(value, IdTokenType(kind))


def _reading_json(reading: MeterReading) -> dict[str, Any]:
    data: dict[str, Any] = {"timestamp": reading.timestamp.isoformat()}
    for name in _READING_FIELDS:
        value = getattr(reading, name)
        if value is not None:
            data[name] = value
    return data  # signed meter data is not kept: recovery reports plain values


def _open_transaction(row: OpenTransactionRow) -> OpenTransaction:
    try:
        reading = None
        if row.last_reading is not None:
            data = json.loads(row.last_reading)
            reading = MeterReading(timestamp=datetime.fromisoformat(data.pop("timestamp")), **data)
        measurands = tuple(Measurand(m) for m in row.ended_measurands.split(",") if m)
        id_token = _token(row.id_token, row.id_token_type)
        group_id_token = _token(row.group_id_token, row.group_id_token_type)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"open transaction of EVSE {row.evse_id} is corrupt: {exc}") from exc
    return OpenTransaction(
        transaction_id=row.transaction_id,
        evse_id=row.evse_id,
        connector_id=row.connector_id,
        started_at=_from_db(row.started_at),
        next_seq_no=row.next_seq_no,
        last_reading=reading,
        ended_measurands=measurands,
        id_token=id_token,
        group_id_token=group_id_token,
        alive_at=None if row.alive_at is None else _from_db(row.alive_at),
    )
