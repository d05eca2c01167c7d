"""The store against real SQLite files: schema, pragmas, persistence across restarts, crashes."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

import station
from station.errors import StoreError
from station.store import (
    AvailabilityRepository,
    Database,
    OutboundQueue,
    VariableKey,
    VariableRepository,
    current_revision,
    head_revision,
    open_database,
    upgrade,
)
from station.store.db import SCHEMA_HEAD
from station.store.models import Base

REPO_ROOT = Path(station.__file__).resolve().parent.parent
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return 0.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "station.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path)
    yield database
    database.close()


def _schema(path: Path) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        return [tuple(row) for row in rows]
    finally:
        conn.close()


# --- schema and migrations ------------------------------------------------------------------


def test_upgrade_from_empty_creates_schema_at_head(db_path: Path) -> None:
    assert not db_path.parent.exists()

    revision = upgrade(db_path)

    assert revision == head_revision() == SCHEMA_HEAD
    assert current_revision(db_path) == head_revision()
    tables = {name for kind, name, _ in _schema(db_path) if kind == "table"}
    assert {"alembic_version", "device_variables", "availability", "outbound_messages"} <= tables


def test_upgrade_is_idempotent(db_path: Path) -> None:
    upgrade(db_path)
    before = _schema(db_path)

    assert upgrade(db_path) == head_revision()
    with open_database(db_path):
        pass

    assert _schema(db_path) == before
    assert current_revision(db_path) == head_revision()


def test_current_revision_of_a_missing_file_is_none_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"

    assert current_revision(path) is None
    assert not path.exists()


def test_open_without_upgrade_leaves_the_schema_alone(db_path: Path) -> None:
    with open_database(db_path, upgrade=False):
        pass

    assert db_path.exists()
    assert current_revision(db_path) is None


def test_upgrade_works_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert upgrade("relative.db") == head_revision()
    assert (elsewhere / "relative.db").exists()


def test_models_match_the_migrated_schema(db_path: Path) -> None:
    upgrade(db_path)
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert diff == []


def test_outbound_ids_are_never_reused(db: Database) -> None:
    # AUTOINCREMENT is invisible to autogenerate, so check it separately.
    queue = OutboundQueue(db)
    first = queue.push("A", {}, now=T0)
    queue.ack(first.id)

    second = queue.push("B", {}, now=T0)

    assert second.id > first.id


def test_acknowledgements_remove_exactly_the_acknowledged_messages(db_path: Path) -> None:
    """One id (the replay's path, a raw DELETE on a pooled connection) and several (one
    transaction); ids already gone are skipped; and after close nothing is written."""
    db = open_database(db_path)
    queue = OutboundQueue(db)
    ids = [queue.push("A", {"n": n}, now=T0).id for n in range(6)]
    assert queue.ack_many(ids[:3]) == 3
    assert queue.ack_many([ids[3]]) == 1
    assert queue.ack_many([ids[3]]) == 0
    assert queue.ack_many([]) == 0
    with pytest.raises(KeyError):
        queue.ack(999)
    assert [m.payload["n"] for m in queue.peek(10)] == [4, 5]
    db.close()
    with open_database(db_path) as again:  # committed: a new process sees the same
        assert [m.payload["n"] for m in OutboundQueue(again).peek(10)] == [4, 5]
    with pytest.raises(StoreError, match="closed"):
        queue.ack(ids[4])


def test_opening_does_not_reconfigure_logging(db_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    existing = logging.getLogger("station.some_module")

    with open_database(db_path):
        pass

    assert root.handlers == handlers
    assert root.level == level
    assert not existing.disabled


def test_alembic_by_hand_uses_alembic_ini(tmp_path: Path) -> None:
    path = tmp_path / "by-hand.db"

    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={path}", "upgrade", "head"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert current_revision(path) == head_revision()


# --- connection settings --------------------------------------------------------------------


def test_every_connection_has_wal_full_sync_and_foreign_keys(db: Database) -> None:
    # Two sessions at once hold two different pooled connections.
    with db.session() as first, first.begin(), db.session() as second, second.begin():
        for s in (first, second):
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert s.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_in_memory_database_shares_one_connection() -> None:
    with open_database(":memory:") as db:
        queue = OutboundQueue(db)
        queue.push("Heartbeat", {}, now=T0)

        assert len(queue) == 1
        assert str(db.path) == ":memory:"


def test_session_after_close_is_an_error(db_path: Path) -> None:
    db = open_database(db_path)
    db.close()
    db.close()

    with pytest.raises(StoreError, match="closed"):
        db.session()


# --- errors ---------------------------------------------------------------------------------


def test_opening_a_directory_names_the_path(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()

    with pytest.raises(StoreError) as info:
        open_database(directory)

    message = str(info.value)
    assert str(directory) in message
    assert "\n" not in message


def test_opening_a_file_that_is_not_sqlite_names_the_path(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just text. " * 200)

    with pytest.raises(StoreError) as info:
        open_database(garbage)
    with pytest.raises(StoreError):
        current_revision(garbage)

    message = str(info.value)
    assert str(garbage) in message
    assert "not a database" in message
    assert "\n" not in message


def test_a_database_from_newer_firmware_is_refused(db_path: Path) -> None:
    upgrade(db_path)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()

    with pytest.raises(StoreError, match="9999") as info:
        open_database(db_path)

    assert str(db_path) in str(info.value)


# --- device variables -----------------------------------------------------------------------


def test_variables_upsert_and_survive_a_restart(db_path: Path) -> None:
    plain = VariableKey("OCPPCommCtrlr", "HeartbeatInterval")
    full = VariableKey(
        "Connector",
        "Available",
        attribute="Target",
        component_instance="left",
        evse_id=2,
        connector_id=1,
        variable_instance="main",
    )
    with open_database(db_path) as db:
        variables = VariableRepository(db, clock=FixedClock(T0))
        variables.save(plain, "300")
        variables.save(full, "true")
        variables.save(plain, "60")  # replaces, no duplicate

    with open_database(db_path) as db:
        loaded = VariableRepository(db).load_all()

    assert loaded == {plain: "60", full: "true"}


def test_variable_keys_with_and_without_instance_are_distinct(db: Database) -> None:
    variables = VariableRepository(db)
    keys = {
        VariableKey("EVSE", "Power"): "1",
        VariableKey("EVSE", "Power", evse_id=1): "2",
        VariableKey("EVSE", "Power", evse_id=1, connector_id=1): "3",
        VariableKey("EVSE", "Power", component_instance="x"): "4",
        VariableKey("EVSE", "Power", variable_instance="x"): "5",
        VariableKey("EVSE", "Power", attribute="MaxSet"): "6",
    }

    variables.save_many(keys)

    assert variables.load_all() == keys


def test_save_many_is_all_or_nothing(db: Database) -> None:
    variables = VariableRepository(db)
    variables.save(VariableKey("A", "x"), "old")

    with pytest.raises(ValueError, match="2500"):
        variables.save_many({VariableKey("A", "x"): "new", VariableKey("A", "y"): "v" * 2501})

    assert variables.load_all() == {VariableKey("A", "x"): "old"}


def test_variable_values_keep_unicode_and_full_length(db: Database) -> None:
    variables = VariableRepository(db)
    key = VariableKey("DisplayMessageCtrlr", "Text")
    prefix = "Grüße, 充电站 ⚡"
    value = prefix + "x" * (2500 - len(prefix))

    variables.save(key, value)

    assert variables.load_all()[key] == value


@pytest.mark.parametrize(
    "kwargs",
    [
        {"component": "", "variable": "v"},
        {"component": "c" * 51, "variable": "v"},
        {"component": "c", "variable": "v", "attribute": "Bogus"},
        {"component": "c", "variable": "v", "component_instance": ""},
        {"component": "c", "variable": "v", "evse_id": 0},
        {"component": "c", "variable": "v", "evse_id": 1, "connector_id": 0},
        {"component": "c", "variable": "v", "connector_id": 1},
    ],
)
def test_variable_key_rejects_ambiguous_or_invalid_keys(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VariableKey(**kwargs)  # type: ignore[arg-type]


# --- availability ---------------------------------------------------------------------------


def test_availability_survives_a_restart(db_path: Path) -> None:
    with open_database(db_path) as db:
        availability = AvailabilityRepository(db, clock=FixedClock(T0))
        availability.set(0, 0, True)
        availability.set(1, 0, False)
        availability.set(1, 1, False)
        availability.set(1, 1, True)

    with open_database(db_path) as db:
        loaded = AvailabilityRepository(db).load_all()

    assert loaded == {(0, 0): True, (1, 0): False, (1, 1): True}


@pytest.mark.parametrize(("evse_id", "connector_id"), [(-1, 0), (1, -1), (0, 1)])
def test_availability_rejects_parts_that_do_not_exist(
    db: Database, evse_id: int, connector_id: int
) -> None:
    with pytest.raises(ValueError):
        AvailabilityRepository(db).set(evse_id, connector_id, True)


def test_updated_at_is_stored_as_utc(db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    AvailabilityRepository(db, clock=FixedClock(T0.astimezone(plus_two))).set(0, 0, False)
    VariableRepository(db, clock=FixedClock(T0.astimezone(plus_two))).save(
        VariableKey("A", "b"), "c"
    )

    with db.session() as s, s.begin():
        stored = [
            s.execute(text("SELECT updated_at FROM availability")).scalar(),
            s.execute(text("SELECT updated_at FROM device_variables")).scalar(),
        ]

    assert stored == ["2025-03-01 12:00:00.123456"] * 2


# --- outbound queue -------------------------------------------------------------------------


def test_queue_keeps_order_across_a_restart(db_path: Path) -> None:
    with open_database(db_path) as db:
        queue = OutboundQueue(db)
        pushed = [
            queue.push("TransactionEvent", {"seqNo": n}, transaction_id="tx-1", now=T0)
            for n in range(5)
        ]

    with open_database(db_path) as db:
        queue = OutboundQueue(db)
        assert len(queue) == 5
        assert queue.peek() == pushed[:1]
        assert queue.peek(limit=100) == pushed
        assert [m.payload["seqNo"] for m in queue.peek(3)] == [0, 1, 2]


def test_ack_removes_only_that_message(db: Database) -> None:
    queue = OutboundQueue(db)
    first = queue.push("A", {"n": 1}, now=T0)
    second = queue.push("B", {"n": 2}, now=T0)

    queue.ack(first.id)

    assert len(queue) == 1
    assert queue.peek(10) == [second]
    with pytest.raises(KeyError):
        queue.ack(first.id)


def test_mark_attempt_records_attempts_retry_time_and_error(db_path: Path) -> None:
    retry_at = T0 + timedelta(seconds=30)
    with open_database(db_path) as db:
        queue = OutboundQueue(db)
        message = queue.push("MeterValues", {"evseId": 1}, now=T0)
        queue.mark_attempt(message.id, now=T0, next_attempt_at=T0, error="timeout")
        queue.mark_attempt(message.id, now=T0, next_attempt_at=retry_at, error="CALLERROR")

    with open_database(db_path) as db:
        (stored,) = OutboundQueue(db).peek()

    assert stored.attempts == 2
    assert stored.next_attempt_at == retry_at
    assert stored.last_error == "CALLERROR"
    with open_database(db_path) as db, pytest.raises(KeyError):
        OutboundQueue(db).mark_attempt(9999, now=T0, next_attempt_at=None, error=None)


def test_queue_payload_round_trips_unicode_and_nesting(db_path: Path) -> None:
    payload = {
        "eventType": "Started",
        "idToken": {"idToken": "ÄÖÜ-ß-日本-🚗", "type": "Local"},
        "meterValue": [{"sampledValue": [{"value": 1.5}, {"value": -7200}]}],
        "offline": True,
        "nothing": None,
    }
    with open_database(db_path) as db:
        pushed = OutboundQueue(db).push("TransactionEvent", payload, now=T0)

    with open_database(db_path) as db:
        (loaded,) = OutboundQueue(db).peek()
        with db.session() as s, s.begin():
            raw = s.execute(text("SELECT payload FROM outbound_messages")).scalar()

    assert loaded == pushed
    assert loaded.payload == payload
    assert json.loads(str(raw)) == payload
    assert "日本" in str(raw)  # stored as readable UTF-8, not \\u escapes


def test_queue_datetimes_come_out_aware_utc(db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    queue = OutboundQueue(db)

    pushed = queue.push("A", {}, now=T0.astimezone(plus_two))
    queue.mark_attempt(
        pushed.id,
        now=T0,
        next_attempt_at=(T0 + timedelta(minutes=1)).astimezone(plus_two),
        error=None,
    )
    (loaded,) = queue.peek()

    assert pushed.created_at == loaded.created_at == T0
    assert loaded.created_at.tzinfo is UTC
    assert loaded.next_attempt_at is not None
    assert loaded.next_attempt_at.tzinfo is UTC
    assert loaded.next_attempt_at == T0 + timedelta(minutes=1)


def test_queue_rejects_naive_datetimes_and_bad_arguments(db: Database) -> None:
    queue = OutboundQueue(db)
    with pytest.raises(ValueError, match="naive"):
        queue.push("A", {}, now=datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        queue.push("", {}, now=T0)
    with pytest.raises(ValueError):
        queue.push("A", {}, transaction_id="t" * 37, now=T0)
    with pytest.raises(ValueError):
        queue.push("A", {"x": float("nan")}, now=T0)
    with pytest.raises(ValueError):
        queue.peek(0)
    message = queue.push("A", {}, now=T0)
    with pytest.raises(ValueError, match="naive"):
        queue.mark_attempt(message.id, now=T0, next_attempt_at=datetime(2025, 1, 1), error=None)

    assert len(queue) == 1


_PUSH_THEN_WAIT = """
import sys, time
from datetime import UTC, datetime
from station.store import OutboundQueue, open_database

db = open_database(sys.argv[1])
message = OutboundQueue(db).push(
    "TransactionEvent",
    {"eventType": "Ended", "seqNo": 7, "note": "Grüße"},
    transaction_id="tx-crash",
    now=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
)
sys.stdout.write(f"{message.id}\\n")
sys.stdout.flush()
time.sleep(60)
"""


def test_a_pushed_message_survives_sigkill(db_path: Path) -> None:
    upgrade(db_path)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _PUSH_THEN_WAIT, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # push() has returned
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=30)
    assert line.strip().isdigit(), stderr
    assert child.returncode == -signal.SIGKILL
    # The write is in the WAL, not yet checkpointed: reopening has to recover it.
    assert Path(f"{db_path}-wal").exists()

    with open_database(db_path) as db:
        (message,) = OutboundQueue(db).peek(10)

    assert message.id == int(line)
    assert message.action == "TransactionEvent"
    assert message.transaction_id == "tx-crash"
    assert message.payload == {"eventType": "Ended", "seqNo": 7, "note": "Grüße"}
    assert message.created_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_schema_head_constant_matches_the_migrations() -> None:
    from station.store.db import SCHEMA_HEAD

    assert head_revision() == SCHEMA_HEAD


def test_a_current_database_opens_without_importing_alembic(tmp_path: Path) -> None:
    path = tmp_path / "current.db"
    upgrade(path)
    code = (
        "import sys; from station.store import open_database; "
        f"open_database({str(path)!r}).close(); "
        "print(any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
