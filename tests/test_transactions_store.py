"""The reservations' store (H01-H04 survive a restart), on a real SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from station.errors import StoreError
from station.store import ReservationRepository, open_database
from station.transactions import IdToken, IdTokenType
from station.transactions.reservations import Reservation

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
HOLDER = IdToken("04A1B2C3", IdTokenType.ISO14443)
FLEET = IdToken("FLEET-7", IdTokenType.CENTRAL)


def test_reservations_round_trip_through_a_reopened_file(tmp_path: Path) -> None:
    held = [
        Reservation(1, HOLDER, T0 + timedelta(minutes=5), evse_id=2),
        Reservation(7, HOLDER, T0, group_id_token=FLEET, connector_type="cCCS2"),
    ]
    ReservationRepository(open_database(tmp_path / "station.db")).replace_all(held)

    again = ReservationRepository(open_database(tmp_path / "station.db"))
    assert again.load() == held
    again.replace_all(held[1:])
    assert again.load() == held[1:]
    again.replace_all([])
    assert again.load() == []


def test_a_naive_expiry_changes_nothing(tmp_path: Path) -> None:
    repo = ReservationRepository(open_database(tmp_path / "station.db"))
    kept = [Reservation(1, HOLDER, T0, evse_id=1)]
    repo.replace_all(kept)
    with pytest.raises(ValueError, match="naive"):
        repo.replace_all([Reservation(2, HOLDER, datetime(2025, 1, 1), evse_id=1)])
    assert repo.load() == kept


def test_a_corrupt_row_is_a_store_error(tmp_path: Path) -> None:
    db = open_database(tmp_path / "station.db")
    repo = ReservationRepository(db)
    repo.replace_all([Reservation(1, HOLDER, T0, evse_id=1)])
    with contextlib.closing(sqlite3.connect(tmp_path / "station.db")) as conn, conn:
        conn.execute("UPDATE reservations SET id_token_type = 'Bogus'")
    with pytest.raises(StoreError, match="reservation 1 is corrupt"):
        repo.load()
