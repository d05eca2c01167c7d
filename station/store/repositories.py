"""Repositories: what the rest of the station reads from and writes to the database.

This module owns the translation between domain values and table rows, and nothing else. The
repositories take and return the frozen dataclasses defined here, never ORM rows, and
timezone-aware UTC datetimes (stored as naive UTC; converted here, at the boundary). Each method is
one transaction, committed before it returns. Database errors come out as
:class:`~station.errors.StoreError`; a bad argument (a naive datetime, an over-long value) is a
``ValueError`` and an unknown message id a ``KeyError``, since those are the caller's bugs.

- :class:`VariableRepository`: device-model values that survive a restart.
- :class:`AvailabilityRepository`: operative/inoperative per station, EVSE and connector (OCPP
  2.0.1 G03: a ChangeAvailability survives a reboot).
- :class:`OutboundQueue`: the durable queue of messages the CSMS must receive (DESIGN.md, "Store":
  nothing the CSMS must receive is held only in memory).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from station.clock import Clock, SystemClock
from station.errors import StoreError
from station.store.db import Database, describe_error
from station.store.models import Availability, DeviceVariable, OutboundMessage

__all__ = [
    "ATTRIBUTE_TYPES",
    "AvailabilityRepository",
    "OutboundQueue",
    "QueuedMessage",
    "VariableKey",
    "VariableRepository",
]

ATTRIBUTE_TYPES: frozenset[str] = frozenset({"Actual", "Target", "MinSet", "MaxSet"})
"""OCPP 2.0.1 AttributeEnumType."""

_IDENTIFIER_MAX = 50  # OCPP 2.0.1 ComponentType.name / VariableType.name / instance: string[50]
_VALUE_MAX = 2500  # OCPP 2.0.1 VariableAttributeType.value: string[2500]
_ACTION_MAX = 64
_TRANSACTION_ID_MAX = 36  # OCPP 2.0.1 TransactionType.transactionId: identifierString[36]
_IDS_PER_STATEMENT = 500  # below SQLite's default limit of bound parameters (999)
_DELETE_ONE = delete(OutboundMessage).where(OutboundMessage.id == bindparam("message_id"))
"""One acknowledged message: ``DELETE FROM outbound_messages WHERE id = ?`` (compiled once)."""


# --- domain values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariableKey:
    """Names one attribute of one device-model variable (OCPP 2.0.1 Part 1, device model).

    ``None`` means "not given" for the instances, the EVSE and the connector. EVSE and connector
    ids count from 1 (OCPP 2.0.1 EVSEType), and a connector needs an EVSE.

    Raises:
        ValueError: an empty name or instance, a name longer than 50 characters, an unknown
            attribute type, an EVSE or connector id below 1, or a connector without an EVSE.
    """

    component: str
    variable: str
    attribute: str = "Actual"
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None

    def __post_init__(self) -> None:
        for name in ("component", "variable", "component_instance", "variable_instance"):
            text = getattr(self, name)
            if text is None and name.endswith("_instance"):
                continue
            if not text or len(text) > _IDENTIFIER_MAX:
                raise ValueError(f"{name} must be 1 to {_IDENTIFIER_MAX} characters: {text!r}")
        if self.attribute not in ATTRIBUTE_TYPES:
            raise ValueError(
                f"attribute must be one of {sorted(ATTRIBUTE_TYPES)}: {self.attribute!r}"
            )
        for name in ("evse_id", "connector_id"):
            number = getattr(self, name)
            if number is not None and number < 1:
                raise ValueError(f"{name} must be at least 1 or None: {number}")
        if self.connector_id is not None and self.evse_id is None:
            raise ValueError("connector_id needs an evse_id")


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message waiting in the outbound queue. ``id`` is its place in the delivery order."""

    id: int
    action: str
    payload: dict[str, Any]
    transaction_id: str | None
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = None


# --- repositories ---------------------------------------------------------------------------


class VariableRepository:
    """Persisted device-model values, keyed by :class:`VariableKey`."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock: Clock = clock if clock is not None else SystemClock()

    def load_all(self) -> dict[VariableKey, str]:
        """Every stored value.

        Raises:
            StoreError: the database could not be read.
        """
        with _transaction(self._db, "cannot load device variables") as s:
            rows = s.scalars(select(DeviceVariable)).all()
            return {_variable_key(row): row.value for row in rows}

    def save(self, key: VariableKey, value: str) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        Raises:
            ValueError: ``value`` is longer than 2500 characters.
            StoreError: the database could not be written.
        """
        self.save_many({key: value})

    def save_many(self, items: Mapping[VariableKey, str]) -> None:
        """Store several values in one transaction: all of them are saved, or none.

        Raises:
            ValueError: a value is longer than 2500 characters.
            StoreError: the database could not be written.
        """
        if not items:
            return
        updated_at = _to_db(self._clock.now())
        rows = [_variable_row(key, value, updated_at) for key, value in items.items()]
        stmt = sqlite_insert(DeviceVariable)
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                DeviceVariable.component,
                DeviceVariable.component_instance,
                DeviceVariable.evse_id,
                DeviceVariable.connector_id,
                DeviceVariable.variable,
                DeviceVariable.variable_instance,
                DeviceVariable.attribute,
            ],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        with _transaction(self._db, "cannot save device variables") as s:
            s.execute(stmt, rows)


class AvailabilityRepository:
    """Operative/inoperative state, keyed by ``(evse_id, connector_id)``.

    ``(0, 0)`` is the whole station, ``(n, 0)`` the whole EVSE ``n``, ``(n, m)`` connector ``m``
    of EVSE ``n``.
    """

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock: Clock = clock if clock is not None else SystemClock()

    def load_all(self) -> dict[tuple[int, int], bool]:
        """Every stored state; a key that is absent has never been changed.

        Raises:
            StoreError: the database could not be read.
        """
        with _transaction(self._db, "cannot load availability") as s:
            rows = s.scalars(select(Availability)).all()
            return {(row.evse_id, row.connector_id): row.operative for row in rows}

    def set(self, evse_id: int, connector_id: int, operative: bool) -> None:
        """Store the state of the station, an EVSE or a connector.

        Raises:
            ValueError: a negative id, or a connector of EVSE 0.
            StoreError: the database could not be written.
        """
        if evse_id < 0 or connector_id < 0 or (evse_id == 0 and connector_id != 0):
            raise ValueError(f"no such station part: evse {evse_id}, connector {connector_id}")
        updated_at = _to_db(self._clock.now())
        stmt = sqlite_insert(Availability).values(
            evse_id=evse_id, connector_id=connector_id, operative=operative, updated_at=updated_at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[Availability.evse_id, Availability.connector_id],
            set_={"operative": stmt.excluded.operative, "updated_at": stmt.excluded.updated_at},
        )
        with _transaction(self._db, "cannot save availability") as s:
            s.execute(stmt)


class OutboundQueue:
    """The durable, ordered queue of messages the CSMS must receive.

    At-least-once: a message stays until :meth:`ack`, so after a crash between sending and
    acknowledging it is sent again. Delivery order is ``id`` order.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._delete_one_sql: str | None = None

    def push(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        transaction_id: str | None = None,
        now: datetime,
    ) -> QueuedMessage:
        """Append a message. It is committed (on disk, ``synchronous=FULL``) when this returns.

        Raises:
            ValueError: an empty or over-long action or transaction id, a payload that is not
                JSON (including NaN and infinity), or a naive ``now``.
            TypeError: the payload holds a value JSON cannot represent.
            StoreError: the database could not be written.
        """
        if not action or len(action) > _ACTION_MAX:
            raise ValueError(f"action must be 1 to {_ACTION_MAX} characters: {action!r}")
        if transaction_id is not None and not 0 < len(transaction_id) <= _TRANSACTION_ID_MAX:
            raise ValueError(
                f"transaction_id must be 1 to {_TRANSACTION_ID_MAX} characters: {transaction_id!r}"
            )
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        created_at = _to_db(now)
        row = OutboundMessage(
            action=action,
            payload=text,
            transaction_id=transaction_id,
            created_at=created_at,
            attempts=0,
            next_attempt_at=None,
            last_error=None,
        )
        with _transaction(self._db, "cannot queue a message") as s:
            s.add(row)
            s.flush()
            message = _queued_message(row)
        return message

    def peek(self, limit: int = 1) -> list[QueuedMessage]:
        """Up to ``limit`` messages, oldest first, without removing them.

        Raises:
            ValueError: ``limit`` is below 1.
            StoreError: the database could not be read.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1: {limit}")
        # Core rows, not ORM objects: the delivery task reads the queue's head in batches.
        table = OutboundMessage.__table__
        query = select(table).order_by(table.c.id).limit(limit)
        with _transaction(self._db, "cannot read the queue") as s:
            return [_queued_message(row) for row in s.execute(query)]

    def mark_attempt(
        self,
        id: int,
        *,
        now: datetime,
        next_attempt_at: datetime | None,
        error: str | None,
    ) -> None:
        """Record a failed delivery attempt: one more attempt, when to retry, and why it failed.

        Args:
            id: the message.
            now: when the attempt was made (aware UTC; checked, not stored: the table has no
                column for it).
            next_attempt_at: do not send again before this; ``None`` for "whenever".
            error: why the attempt failed, or ``None``.

        Raises:
            KeyError: no message has this id (it was acknowledged already).
            ValueError: a naive datetime.
            StoreError: the database could not be written.
        """
        _to_db(now)
        retry_at = None if next_attempt_at is None else _to_db(next_attempt_at)
        with _transaction(self._db, "cannot update the queue") as s:
            row = s.get(OutboundMessage, id)
            if row is None:
                raise KeyError(id)
            row.attempts += 1
            row.next_attempt_at = retry_at
            row.last_error = error

    def ack(self, id: int) -> None:
        """Remove a delivered message.

        Raises:
            KeyError: no message has this id.
            StoreError: the database could not be written.
        """
        if self.ack_many((id,)) != 1:
            raise KeyError(id)

    def ack_many(self, ids: Sequence[int]) -> int:
        """Remove delivered messages, all in one committed transaction (one ``DELETE`` by
        primary key, one fsync), so a delivery task can acknowledge a run of CALLRESULTs at
        once. Ids that are gone already are skipped.

        Returns:
            How many messages were removed.

        Raises:
            StoreError: the database could not be written (nothing was removed).
        """
        if not ids:
            return 0
        # Not an ORM session: the delivery task commits one of these per replayed message
        # (ACK_BATCH = 1), and an ORM session with its bulk-delete synchronisation costs more
        # than the fsync itself (issue 3, benchmarks/replay.py). db.session() is only asked for
        # its engine; it raises StoreError once the database is closed.
        engine = self._db.session().get_bind()
        assert isinstance(engine, Engine)  # Database binds its sessions to its engine
        if len(ids) == 1:
            return self._delete_one(engine, ids[0])
        removed = 0
        try:
            with engine.begin() as conn:
                for first in range(0, len(ids), _IDS_PER_STATEMENT):
                    chunk = list(ids[first : first + _IDS_PER_STATEMENT])
                    result = conn.execute(
                        delete(OutboundMessage).where(OutboundMessage.id.in_(chunk))
                    )
                    removed += int(result.rowcount or 0)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot update the queue in database {self._db.path}: {describe_error(exc)}"
            ) from exc
        return removed

    def _delete_one(self, engine: Engine, message_id: int) -> int:
        """Delete one message in its own committed transaction; returns 0 or 1.

        The replay's hot path: :data:`_DELETE_ONE`, compiled once for the engine's dialect, on a
        pooled DBAPI connection in an explicit ``BEGIN``/``COMMIT`` (the driver's own
        transaction control is off, see ``db.py``). That is one statement and one fsync, without
        SQLAlchemy's ``Connection``/``Transaction`` layer, which costs about half as much again
        as the fsync. The pool hands the connection back rolled back, also after a failure.

        Raises:
            StoreError: the database could not be written (nothing was removed).
        """
        if self._delete_one_sql is None:
            self._delete_one_sql = str(_DELETE_ONE.compile(dialect=engine.dialect))
        try:
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute("BEGIN")
                    cursor.execute(self._delete_one_sql, (message_id,))
                    removed = int(cursor.rowcount or 0)
                    cursor.execute("COMMIT")
                finally:
                    cursor.close()
            finally:
                raw.close()
        except (sqlite3.Error, SQLAlchemyError) as exc:
            raise StoreError(
                f"cannot update the queue in database {self._db.path}: {describe_error(exc)}"
            ) from exc
        return removed

    def __len__(self) -> int:
        """How many messages wait.

        Raises:
            StoreError: the database could not be read.
        """
        query = select(func.count()).select_from(OutboundMessage)
        with _transaction(self._db, "cannot read the queue") as s:
            return s.scalar(query) or 0


# --- conversions ----------------------------------------------------------------------------


def _to_db(when: datetime) -> datetime:
    """Aware datetime → naive UTC, as stored."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime; use timezone-aware UTC: {when!r}")
    return when.astimezone(UTC).replace(tzinfo=None)


def _from_db(when: datetime) -> datetime:
    """Stored naive UTC → aware UTC."""
    return when.replace(tzinfo=UTC)


def _variable_row(key: VariableKey, value: str, updated_at: datetime) -> dict[str, Any]:
    if len(value) > _VALUE_MAX:
        raise ValueError(f"value of {key} is longer than {_VALUE_MAX} characters")
    return {
        "component": key.component,
        "component_instance": key.component_instance or "",
        "evse_id": key.evse_id or 0,
        "connector_id": key.connector_id or 0,
        "variable": key.variable,
        "variable_instance": key.variable_instance or "",
        "attribute": key.attribute,
        "value": value,
        "updated_at": updated_at,
    }


def _variable_key(row: DeviceVariable) -> VariableKey:
    return VariableKey(
        component=row.component,
        variable=row.variable,
        attribute=row.attribute,
        component_instance=row.component_instance or None,
        evse_id=row.evse_id or None,
        connector_id=row.connector_id or None,
        variable_instance=row.variable_instance or None,
    )


def _queued_message(row: Any) -> QueuedMessage:
    """A QueuedMessage from an ``outbound_messages`` row (ORM object or Core row)."""
    try:
        payload = json.loads(row.payload)
    except ValueError as exc:
        raise StoreError(f"queued message {row.id}: payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise StoreError(f"queued message {row.id}: payload is not a JSON object")
    return QueuedMessage(
        id=row.id,
        action=row.action,
        payload=payload,
        transaction_id=row.transaction_id,
        created_at=_from_db(row.created_at),
        attempts=row.attempts,
        next_attempt_at=None if row.next_attempt_at is None else _from_db(row.next_attempt_at),
        last_error=row.last_error,
    )


@contextmanager
def _transaction(db: Database, what: str) -> Iterator[Session]:
    """A session in one transaction, committed on leaving the block.

    SQLAlchemy errors come out as a one-line :class:`StoreError` naming the database and ``what``
    failed; any other exception rolls back and propagates unchanged.
    """
    try:
        with db.session() as s, s.begin():
            yield s
    except SQLAlchemyError as exc:
        raise StoreError(f"{what} in database {db.path}: {describe_error(exc)}") from exc
