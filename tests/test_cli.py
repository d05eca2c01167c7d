"""The ``station`` command end to end, as a user runs it: real processes, real files, loopback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from station.sim.csms import Csms

STATION = [sys.executable, "-m", "station.cli"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STATION, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def write_config(tmp_path: Path, url: str = "ws://127.0.0.1:9/ocpp", extra: str = "") -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [station]
            id = "CS-CLI"
            [csms]
            url = "{url}"
            retry_backoff_wait_minimum_s = 0
            retry_backoff_random_range_s = 0
            [storage]
            database = "data/station.db"
            [[evse]]
            id = 1
            connector = "chademo"
            """
        )
        + extra
    )
    return path


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["demo"],
        ["csms"],
        ["db"],
        ["db", "upgrade"],
        ["db", "current"],
        ["certs"],
        ["certs", "dev"],
    ],
)
def test_help_works_for_every_command(args: list[str]) -> None:
    result = run_cli(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: station" in result.stdout


def test_bad_config_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra="[[evse]]\nid = 2\nconnector = 'ccs'\nmax_current_a = -1\n")
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"station: config error: {path}: evse[1].max_current_a: must be greater than 0"
    ]


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    before = run_cli("db", "current", "--config", str(path))
    assert before.returncode == 0, before.stderr
    assert "empty" in before.stdout
    upgraded = run_cli("db", "upgrade", "--config", str(path))
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "station.db").is_file()
    after = run_cli("db", "current", "--config", str(path))
    assert "up to date" in after.stdout


def test_db_error_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "station.db").write_bytes(b"this is not a database" * 100)
    result = run_cli("db", "upgrade", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("station: database error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_certs_dev(tmp_path: Path) -> None:
    result = run_cli("certs", "dev", "--out", str(tmp_path / "pki"), "--station-id", "CS-CLI")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pki" / "csms-root-ca.pem").is_file()
    assert (tmp_path / "pki" / "station-client.key").stat().st_mode & 0o777 == 0o600


async def test_run_boots_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with Csms() as csms:
        path = write_config(tmp_path, url=csms.url)
        process = await asyncio.create_subprocess_exec(
            *STATION,
            "run",
            "--config",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await csms.wait_action("BootNotification", "CS-CLI", timeout_s=20)
            await csms.wait_action("StatusNotification", "CS-CLI", include_past=True)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                _, stderr = await asyncio.wait_for(process.communicate(), 20)
            except TimeoutError:
                process.kill()  # never leave a station behind
                await process.wait()
                raise
        assert process.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    log = tmp_path / "data" / "station.ocpp.jsonl"
    assert '"BootNotification"' in log.read_text()


@pytest.mark.parametrize("ocpp", ["2.1", "2.0.1"])
def test_demo_runs_for_a_duration_and_shows_both_directions(tmp_path: Path, ocpp: str) -> None:
    result = subprocess.run(
        [*STATION, "demo", "--duration", "28", "--dir", str(tmp_path), "--ocpp", ocpp],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "BootNotification" in out
    assert "NotifyReport" in out  # the tour asked for a report and it arrived
    # The power command followed the profile: first charging, then discharging, through the
    # CHAdeMO session (whole amperes: the DC power is a little below the command).
    assert "EVSE 1 (Charging): command +11000 W" in out
    assert "EVSE 1 (Discharging): command -5000 W" in out
    assert ", DC -4" in out  # measured at the DC output, out of the vehicle
    assert "inverter set-point -5000 W" in out  # the inverter follows the command
    # The grid excursion: the station trips (0 W), then enters service again and discharges.
    assert "(GridTrip), DC +0 W" in out
    trip = out.index("grid OutOfService")
    assert "grid InService" in out[trip:]
    alarm = "NotifyDERAlarm" if ocpp == "2.1" else "NotifyEvent"
    assert f'"{alarm}"' in out
    assert '"eventType":"Ended"' in out
    assert "summary:" in out
    assert "Traceback" not in result.stderr
    assert (tmp_path / "station.db").is_file()
