"""Start-to-BootNotification time of ``station run`` as a real process.

How it is measured:

- A local CSMS (:class:`station.sim.csms.Csms`, the ``ocpp`` library) listens on 127.0.0.1 in this
  process; a fresh one per run.
- ``station run --config <tmp>/station.toml`` (the installed console script, see
  :func:`benchmarks._common.station_command`) is spawned with ``asyncio.create_subprocess_exec``.
  The clock (``time.perf_counter``) starts just before the spawn and stops when the CSMS records
  the station's BootNotification CALL frame (its ``on_frame`` hook, called as the frame is read).
  The WebSocket-open time (the CSMS accepted the connection) is recorded on the way.
- **cold**: a fresh temporary directory per run, so the SQLite database is created and the Alembic
  migrations run from empty. **warm**: one directory whose database is already at head (primed by an
  untimed first run, which also warms the OS file cache and ``.pyc`` files). Cold and warm runs
  alternate so drift affects both alike.
- After the BootNotification the benchmark waits for the StatusNotifications (the station is then
  idle), sends SIGTERM and times SIGTERM → process exit; every station must exit with status 0.
- Bytecode: by default the station runs in this environment as it is (if
  ``PYTHONDONTWRITEBYTECODE`` is set, the station's own modules are compiled at every start);
  ``--pycache`` gives it a temporary ``PYTHONPYCACHEPREFIX`` instead, as an installed image with
  ``.pyc`` files would have (the prime run fills it).
- For context it also times ``python -c pass`` (interpreter start to exit) and, inside a fresh
  process, ``import station.cli, station.app`` (the station's imports before it can connect).

Figures: min / median / p90 (nearest rank) in seconds. Goal: cold median ≤ 1 s.
The last line printed is ``boot_to_bootnotification_median_s=<cold median>``.

    python -m benchmarks.boot [--runs 10] [--budget-s 45] [--pycache] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import (
    STATION_ID,
    StationProcess,
    Stats,
    bytecode_note,
    station_command,
    station_env,
    write_config,
)
from station.sim.csms import Csms, Frame

GOAL_S = 1.0
BOOT_TIMEOUT_S = 20.0


class BenchmarkError(Exception):
    """A run did not complete (no boot, or the station exited)."""


@dataclass(frozen=True, slots=True)
class Run:
    """One measured start of the station."""

    kind: str  # "cold" or "warm"
    connected_s: float  # spawn → WebSocket accepted by the CSMS
    boot_s: float  # spawn → BootNotification frame at the CSMS
    shutdown_s: float  # SIGTERM → exit
    exit_code: int


async def one_run(
    directory: Path, kind: str, label: str, env: dict[str, str], evses: int = 2
) -> Run:
    """Start the station once against a fresh CSMS, time its boot, stop it with SIGTERM."""
    marks: dict[str, float] = {}

    def on_frame(frame: Frame) -> None:
        if frame.direction == "in" and frame.action and frame.action not in marks:
            marks[frame.action] = time.perf_counter()

    async with Csms(on_frame=on_frame) as csms:
        config = write_config(directory, csms.url)
        station = StationProcess(config, directory / f"station-{label}.log", env)

        def connected(_: object) -> None:
            marks.setdefault("connected", time.perf_counter())

        try:
            await station.start()
            assert station.process is not None
            connect_task = asyncio.ensure_future(
                csms.wait_connected(STATION_ID, timeout_s=BOOT_TIMEOUT_S)
            )
            connect_task.add_done_callback(connected)
            boot_task = asyncio.ensure_future(
                csms.wait_action(
                    "BootNotification", STATION_ID, timeout_s=BOOT_TIMEOUT_S, include_past=True
                )
            )
            exit_task = asyncio.ensure_future(station.process.wait())
            await asyncio.wait(
                {boot_task, exit_task}, timeout=BOOT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            if not boot_task.done() or boot_task.exception() is not None:
                connect_task.cancel()
                boot_task.cancel()
                exit_task.cancel()
                await station.kill()
                raise BenchmarkError(
                    f"{label}: no BootNotification (exit code {station.process.returncode})\n"
                    + station.log_tail()
                )
            exit_task.cancel()
            await connect_task
            # Idle = booted and all StatusNotifications sent.
            while len(csms.received("StatusNotification", STATION_ID)) < evses:
                await csms.wait_action("StatusNotification", STATION_ID, timeout_s=BOOT_TIMEOUT_S)
            await asyncio.sleep(0.1)
            code, shutdown_s = await station.terminate()
        except BaseException:
            await station.kill()
            raise
        if code != 0:
            raise BenchmarkError(
                f"{label}: station exited {code} after SIGTERM\n{station.log_tail()}"
            )
    return Run(
        kind=kind,
        connected_s=marks["connected"] - station.spawned_at,
        boot_s=marks["BootNotification"] - station.spawned_at,
        shutdown_s=shutdown_s,
        exit_code=code,
    )


def time_command(command: list[str], repeat: int, env: dict[str, str]) -> float:
    """Median wall time of running ``command`` to completion ``repeat`` times (seconds)."""
    samples: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


_TIME_IMPORTS = (
    "import time; t = time.perf_counter(); import station.cli, station.app; "
    "print(time.perf_counter() - t)"
)


def time_imports(repeat: int, env: dict[str, str]) -> float:
    """Median time to import ``station.cli`` and ``station.app``, timed inside a fresh process."""
    samples: list[float] = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _TIME_IMPORTS],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


async def measure(
    runs: int, budget_s: float, root: Path, env: dict[str, str]
) -> tuple[list[Run], bool]:
    """The prime run, then ``runs`` cold/warm pairs; stops early when over ``budget_s``."""
    started = time.perf_counter()
    warm_dir = root / "warm"
    await one_run(warm_dir, "warm", "prime", env)
    results: list[Run] = []
    cut_short = False
    for i in range(runs):
        if time.perf_counter() - started > budget_s:
            cut_short = True
            break
        results.append(await one_run(root / f"cold-{i}", "cold", f"cold-{i}", env))
        results.append(await one_run(warm_dir, "warm", f"warm-{i}", env))
    return results, cut_short


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.boot", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="cold and warm runs each (10)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=45.0,
        help="start no new run after this many seconds of runs (45)",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the interpreter/import baseline"
    )
    parser.add_argument(
        "--pycache",
        action="store_true",
        help="give the station cached bytecode (temp PYTHONPYCACHEPREFIX), as an installed image",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print("boot: spawn of `station run` → BootNotification frame at the CSMS (loopback)")
    print(f"  command: {' '.join(station_command(Path('<tmp>/station.toml')))}")
    print(
        f"  python {platform.python_version()}, {os.cpu_count()} CPUs, "
        "CSMS = station.sim.csms.Csms on 127.0.0.1 in this process, one per run"
    )
    print(f"  {bytecode_note(args.pycache)}")
    with tempfile.TemporaryDirectory(prefix="station-bench-boot-") as tmp:
        root = Path(tmp)
        env = station_env(root / "pycache" if args.pycache else None)
        if not args.no_baseline:
            time_imports(1, env)  # warm the file cache (and fill the bytecode cache, --pycache)
            bare = time_command([sys.executable, "-c", "pass"], 5, env)
            imports = time_imports(3, env)
            print(
                f"  baseline (medians): `python -c pass` {bare:.3f} s (start to exit); "
                f"`import station.cli, station.app` {imports:.3f} s (timed inside the process)"
            )
        try:
            results, cut_short = asyncio.run(measure(args.runs, args.budget_s, root, env))
        except BenchmarkError as exc:
            print(f"boot: FAILED: {exc}", file=sys.stderr)
            return 1

    cold = [r for r in results if r.kind == "cold"]
    warm = [r for r in results if r.kind == "warm"]
    if cut_short:
        print(f"  note: time budget reached; {len(cold)} of {args.runs} run pairs done")
    for name, series, what in (
        ("cold", cold, "fresh database: create + Alembic upgrade from empty"),
        ("warm", warm, "existing database at head"),
    ):
        boot = Stats.of([r.boot_s for r in series])
        connect = statistics.median(r.connected_s for r in series)
        print(f"{name} ({what}):")
        print(f"  spawn → BootNotification: {boot.line('s')}")
        print(
            f"  median split: spawn → WebSocket open {connect:.3f} s, "
            f"open → BootNotification {boot.median - connect:.3f} s"
        )
    shutdown = Stats.of([r.shutdown_s for r in results])
    print(f"shutdown (SIGTERM → exit, all {len(results)} exited 0): {shutdown.line('s')}")
    cold_median = statistics.median(r.boot_s for r in cold)
    verdict = "met" if cold_median <= GOAL_S else "NOT met"
    print(f"goal: cold median ≤ {GOAL_S:.1f} s — {verdict} ({cold_median:.3f} s)")
    print(f"boot_to_bootnotification_median_s={cold_median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
