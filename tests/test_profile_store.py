"""Charging profiles in a real SQLite file: they survive a restart exactly (issue 4, K01)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from station.errors import StoreError
from station.smartcharging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    OperationMode,
    RateUnit,
    SchedulePeriod,
)
from station.store import ProfileRepository, current_revision, open_database, upgrade
from station.store.db import SCHEMA_HEAD

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return T0

    def monotonic(self) -> float:
        return 0.0


def make_profile(
    profile_id: int,
    *,
    purpose: ChargingProfilePurpose = ChargingProfilePurpose.TX_DEFAULT_PROFILE,
    transaction_id: str | None = None,
    limit: float = 11000.0,
    received_at: datetime | None = T0,
) -> ChargingProfile:
    return ChargingProfile(
        id=profile_id,
        stack_level=1,
        purpose=purpose,
        kind=ChargingProfileKind.ABSOLUTE,
        schedules=(
            ChargingSchedule(
                id=1,
                rate_unit=RateUnit.W,
                start_schedule=T0,
                duration_s=3600,
                periods=(
                    SchedulePeriod(start_period_s=0, limit=limit),
                    SchedulePeriod(
                        start_period_s=600,
                        limit=0.0,
                        discharge_limit=-6000.0,
                        setpoint=-4000.0,
                        operation_mode=OperationMode.CENTRAL_SETPOINT,
                    ),
                ),
            ),
        ),
        evse_id=1,
        valid_to=T0 + timedelta(days=1),
        transaction_id=transaction_id,
        received_at=received_at,
    )


def test_profiles_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    tx_profile = make_profile(3, purpose=ChargingProfilePurpose.TX_PROFILE, transaction_id="tx-1")
    with open_database(path) as db:
        repo = ProfileRepository(db)
        repo.save([make_profile(2), tx_profile, make_profile(-5)])
        repo.save([make_profile(2, limit=7000.0)])  # replaced by id (K01.FR.05)
        repo.delete([-5, 99])  # an id that is not stored is ignored
    with open_database(path) as db:
        loaded = ProfileRepository(db).load_all()
    assert loaded == [make_profile(2, limit=7000.0), tx_profile]

    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT id, evse_id, purpose, stack_level, transaction_id, received_at"
            " FROM charging_profiles ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [
        (2, 1, "TxDefaultProfile", 1, None, "2026-03-01 12:00:00.123456"),
        (3, 1, "TxProfile", 1, "tx-1", "2026-03-01 12:00:00.123456"),
    ]


def test_a_profile_without_received_at_gets_the_clock(tmp_path: Path) -> None:
    with open_database(tmp_path / "station.db") as db:
        repo = ProfileRepository(db, clock=FixedClock())
        repo.save([make_profile(1, received_at=None)])
        (loaded,) = repo.load_all()
    assert loaded.received_at == T0


def test_an_over_long_transaction_id_is_refused(tmp_path: Path) -> None:
    with open_database(tmp_path / "station.db") as db:
        repo = ProfileRepository(db)
        too_long = make_profile(
            1, purpose=ChargingProfilePurpose.TX_PROFILE, transaction_id="x" * 37
        )
        with pytest.raises(ValueError, match="36"):
            repo.save([make_profile(2), too_long])
        assert repo.load_all() == []  # all or nothing


def test_a_corrupt_row_is_a_store_error_naming_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    with open_database(path) as db:
        ProfileRepository(db).save([make_profile(4)])
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE charging_profiles SET profile = '{\"id\": 4}'")
    conn.close()
    with open_database(path) as db, pytest.raises(StoreError, match="charging profile 4"):
        ProfileRepository(db).load_all()


def test_upgrade_from_0002_adds_the_table(tmp_path: Path) -> None:
    from alembic import command

    from station.store.db import _alembic_config

    path = tmp_path / "station.db"
    command.upgrade(_alembic_config(path), "0002")
    assert current_revision(path) == "0002"
    assert upgrade(path) == SCHEMA_HEAD
    with open_database(path) as db:
        assert ProfileRepository(db).load_all() == []
    command.downgrade(_alembic_config(path), "0002")
    assert current_revision(path) == "0002"
