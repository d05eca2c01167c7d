"""Helpers shared by the benchmarks: station configs, the station subprocess, statistics.

Everything here talks over loopback (127.0.0.1) only. Percentiles are nearest-rank on the sorted
samples (p90 of 10 samples is the 9th smallest), so every reported figure is a value that was
actually measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import statistics
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "STATION_ID",
    "StationProcess",
    "Stats",
    "bytecode_note",
    "config_text",
    "percentile",
    "read_proc_status",
    "station_command",
    "station_env",
    "write_config",
]

STATION_ID = "BENCH-001"


def config_text(
    csms_url: str,
    database: Path | str,
    *,
    station_id: str = STATION_ID,
    evses: int = 2,
    log_level: str = "INFO",
) -> str:
    """A station config (TOML) like the tests use: two EVSEs, fast back-off, the given CSMS."""
    evse_tables = "\n".join(
        f'[[evse]]\nid = {n}\nconnector = "{"chademo" if n % 2 else "ccs"}"\n'
        for n in range(1, evses + 1)
    )
    text = textwrap.dedent(
        f"""
        [station]
        id = "{station_id}"
        serial_number = "SN-{station_id}"
        log_level = "{log_level}"
        [csms]
        url = "{csms_url}"
        retry_backoff_wait_minimum_s = 0
        retry_backoff_random_range_s = 0
        message_timeout_s = 5
        boot_retry_interval_s = 1
        [storage]
        database = "{database}"
        """
    )
    return text + evse_tables


def write_config(directory: Path, csms_url: str, *, station_id: str = STATION_ID) -> Path:
    """Write ``station.toml`` into ``directory`` with its database ``station.db`` beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "station.toml"
    path.write_text(
        config_text(csms_url, directory / "station.db", station_id=station_id), encoding="utf-8"
    )
    return path


def station_command(config: Path) -> list[str]:
    """The command that starts the station: the installed console script, as in the field.

    Falls back to ``python -m station.cli`` when the console script is not next to the
    interpreter (e.g. a system Python with the source tree on ``sys.path``).
    """
    script = Path(sys.executable).parent / "station"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "run", "--config", str(config)]
    return [sys.executable, "-m", "station.cli", "run", "--config", str(config)]


def station_env(pycache_prefix: Path | None = None) -> dict[str, str]:
    """The environment for the station process.

    With ``pycache_prefix``, bytecode is written to and read from that folder
    (``PYTHONPYCACHEPREFIX``) even when ``PYTHONDONTWRITEBYTECODE`` is set, as on an installed image
    whose ``.pyc`` files exist; nothing is written into the source tree.
    """
    env = dict(os.environ)
    if pycache_prefix is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache_prefix)
    return env


def bytecode_note(pycache: bool) -> str:
    """One line saying how the station's modules get their bytecode in this measurement."""
    if pycache:
        return "bytecode: cached (PYTHONPYCACHEPREFIX in a temp folder, primed by an untimed run)"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return (
            "bytecode: as this environment has it; PYTHONDONTWRITEBYTECODE is set, so modules "
            "without a .pyc (the station's own) are compiled at every start (--pycache: cached)"
        )
    return "bytecode: as this environment has it (.pyc written and reused normally)"


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of one series of measurements (same unit as the samples)."""

    n: int
    min: float
    median: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(
            n=len(samples),
            min=min(samples),
            median=statistics.median(samples),
            p90=percentile(samples, 90),
            p99=percentile(samples, 99),
            max=max(samples),
        )

    def scaled(self, factor: float) -> Stats:
        return Stats(
            self.n,
            self.min * factor,
            self.median * factor,
            self.p90 * factor,
            self.p99 * factor,
            self.max * factor,
        )

    def line(self, unit: str, *, p99: bool = False, digits: int = 3) -> str:
        parts = [
            f"n={self.n}",
            f"min={self.min:.{digits}f}",
            f"median={self.median:.{digits}f}",
            f"p90={self.p90:.{digits}f}",
        ]
        if p99:
            parts.append(f"p99={self.p99:.{digits}f}")
        parts.append(f"max={self.max:.{digits}f}")
        return " ".join(parts) + f" {unit}"


def read_proc_status(pid: int) -> dict[str, int]:
    """The numeric fields of ``/proc/<pid>/status``: sizes in kB (VmRSS, VmHWM, ...), Threads."""
    fields: dict[str, int] = {}
    text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if (len(parts) == 2 and parts[1] == "kB") or (len(parts) == 1 and parts[0].isdigit()):
            fields[name] = int(parts[0])
    return fields


class StationProcess:
    """``station run --config FILE`` as a real subprocess; output goes to ``log_path``.

    ``spawned_at`` is ``time.perf_counter()`` taken just before the process is created.
    """

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = env
        self.spawned_at = 0.0
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> StationProcess:
        self._log = self.log_path.open("ab")
        command = station_command(self.config)
        self.spawned_at = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=self.env,
        )
        return self

    async def terminate(self, timeout_s: float = 15) -> tuple[int, float]:
        """SIGTERM, then wait; returns (exit code, seconds from SIGTERM to exit).

        A station that does not exit within ``timeout_s`` is killed (exit code then negative).
        """
        assert self.process is not None
        started = time.perf_counter()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        elapsed = time.perf_counter() - started
        self._close_log()
        return code, elapsed

    async def kill(self) -> None:
        """Make sure the process is gone (used on error paths)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
