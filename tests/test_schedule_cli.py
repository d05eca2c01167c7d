"""``station schedule`` end to end: profiles in a migrated database, the CLI as a subprocess."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from station.smartcharging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    OperationMode,
    RateUnit,
    SchedulePeriod,
)
from station.store import open_database
from station.store.profiles import ProfileRepository

STATION = [sys.executable, "-m", "station.cli"]
START = datetime(2025, 6, 1, 7, 0, tzinfo=UTC)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STATION, *args], capture_output=True, text=True, timeout=60, check=False
    )


def station_with_profiles(tmp_path: Path) -> Path:
    """Two DC EVSEs (20 kW / 50 A = 400 V nominal); profiles stored as the station stores them."""
    config = tmp_path / "station.toml"
    config.write_text(
        textwrap.dedent(
            """
            [station]
            id = "CS-SCHED"
            [csms]
            url = "ws://127.0.0.1:9/ocpp"
            [storage]
            database = "data/station.db"
            [[evse]]
            id = 1
            connector = "chademo"
            [[evse]]
            id = 2
            connector = "ccs"
            """
        )
    )
    db = open_database(tmp_path / "data" / "station.db")
    try:
        ProfileRepository(db).save(
            [
                ChargingProfile(
                    id=10,
                    stack_level=0,
                    purpose=ChargingProfilePurpose.TX_DEFAULT_PROFILE,
                    kind=ChargingProfileKind.ABSOLUTE,
                    evse_id=1,
                    received_at=START - timedelta(days=1),
                    schedules=(
                        ChargingSchedule(
                            id=1,
                            rate_unit=RateUnit.W,
                            start_schedule=START,
                            duration_s=7200,
                            periods=(
                                SchedulePeriod(start_period_s=0, limit=11_000.0),
                                SchedulePeriod(
                                    start_period_s=1800,
                                    limit=8000.0,
                                    discharge_limit=-6000.0,
                                    setpoint=-5000.0,
                                    operation_mode=OperationMode.CENTRAL_SETPOINT,
                                ),
                                SchedulePeriod(start_period_s=3600, limit=0.0),
                            ),
                        ),
                    ),
                ),
                ChargingProfile(
                    id=20,
                    stack_level=0,
                    purpose=ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE,
                    kind=ChargingProfileKind.ABSOLUTE,
                    evse_id=0,
                    received_at=START - timedelta(days=1),
                    schedules=(
                        ChargingSchedule(
                            id=2,
                            rate_unit=RateUnit.A,
                            start_schedule=START,
                            periods=(SchedulePeriod(start_period_s=0, limit=25.0),),
                        ),
                    ),
                ),
            ]
        )
    finally:
        db.close()
    return config


def test_prints_the_schedule_of_one_evse(tmp_path: Path) -> None:
    config = station_with_profiles(tmp_path)
    result = run_cli(
        "schedule", "--config", str(config), "--evse", "1", "--duration", "10800",
        "--start", "2025-06-01T07:00:00Z",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "EVSE 1: composite schedule from 2025-06-01T07:00:00Z for 10800 s, in W",
        "start (UTC)           duration_s       limit_W   discharge_W    setpoint_W  mode",
        "2025-06-01T07:00:00Z        1800       10000.0           0.0             -  ChargingOnly",
        "2025-06-01T07:30:00Z        1800        8000.0       -6000.0       -5000.0  "
        "CentralSetpoint",
        "2025-06-01T08:00:00Z        3600           0.0           0.0             -  ChargingOnly",
        "2025-06-01T09:00:00Z        3600       10000.0           0.0             -  ChargingOnly",
    ]


def test_all_evses_by_default_in_amperes(tmp_path: Path) -> None:
    config = station_with_profiles(tmp_path)
    result = run_cli(
        "schedule", "--config", str(config), "--unit", "A", "--duration", "600",
        "--start", "2025-06-01T10:00:00Z",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "EVSE 1: composite schedule from 2025-06-01T10:00:00Z for 600 s, in A",
        "start (UTC)           duration_s       limit_A   discharge_A    setpoint_A  mode",
        "2025-06-01T10:00:00Z         600          25.0           0.0             -  ChargingOnly",
        "",
        "EVSE 2: composite schedule from 2025-06-01T10:00:00Z for 600 s, in A",
        "start (UTC)           duration_s       limit_A   discharge_A    setpoint_A  mode",
        "2025-06-01T10:00:00Z         600          25.0           0.0             -  ChargingOnly",
    ]


def test_unknown_evse_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = station_with_profiles(tmp_path)
    result = run_cli("schedule", "--config", str(config), "--evse", "7")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["station: unknown EVSE 7 (configured: 1, 2)"]
    assert result.stdout == ""


def test_no_database_yet_is_one_line(tmp_path: Path) -> None:
    config = station_with_profiles(tmp_path)
    (tmp_path / "data" / "station.db").unlink()
    result = run_cli("schedule", "--config", str(config))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "no database at" in result.stderr
    assert not (tmp_path / "data" / "station.db").exists()  # read-only: nothing created


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is not None, reason="matplotlib is installed"
)
def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path) -> None:
    config = station_with_profiles(tmp_path)
    png = tmp_path / "schedule.png"
    result = run_cli("schedule", "--config", str(config), "--plot", str(png))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "station: --plot needs matplotlib: pip install station[plot]"
    ]
    assert not png.exists()


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib (extra 'plot') missing"
)
def test_plot_draws_a_png(tmp_path: Path) -> None:
    config = station_with_profiles(tmp_path)
    png = tmp_path / "schedule.png"
    result = run_cli(
        "schedule", "--config", str(config), "--start", "2025-06-01T07:00:00Z", "--plot", str(png)
    )
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
