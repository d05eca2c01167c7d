"""Resident memory (RSS) of an idle, connected ``station run`` process.

How it is measured:

- A local CSMS (:class:`station.sim.csms.Csms`) listens on 127.0.0.1 in this process.
- ``station run --config <tmp>/station.toml`` (the installed console script; two EVSEs) is
  spawned as a real subprocess, twice on the same folder: the first start creates and migrates
  the database, the second (the figure: what a station in the field does at every boot) finds it
  current. Once the CSMS has the BootNotification and both
  StatusNotifications, the station is left idle for ``--idle-s`` seconds (default 5); VmRSS is
  sampled every second and at the end VmRSS, VmHWM (peak), RssAnon, RssFile are read from
  ``/proc/<pid>/status``. Then SIGTERM; the station must exit 0.
- Bytecode: as in ``benchmarks.boot`` (``--pycache`` for cached ``.pyc``, as an installed image).
- Units: MiB (the kernel's kB are KiB; 1 MiB = 1024 kB). Goal: VmRSS ≤ 64 MiB.
- Import breakdown (always when over the goal, or with ``--breakdown``): a second station is run
  under ``python -X importtime`` until booted and idle, which lists every module it loaded
  (imports done while running included) in the order each import finished. A fresh interpreter
  then imports the same modules with every loader wrapped, so that each module's own VmRSS
  growth and import time (nested imports subtracted) are measured while imports nest as usual;
  a third interpreter does the same with ``tracemalloc`` on for the Python-heap growth. Costs are
  summed per top-level package (per subpackage for ``station``).
  RSS steps include shared libraries mapped by C extensions (RssFile), which tracemalloc cannot see.

The last line printed is ``idle_rss_mb=<VmRSS in MiB>``.

    python -m benchmarks.rss [--idle-s 5] [--breakdown] [--top 12] [--pycache]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._common import (
    STATION_ID,
    StationProcess,
    bytecode_note,
    read_proc_status,
    station_command,
    station_env,
    write_config,
)
from station.sim.csms import Csms

GOAL_MB = 64.0
TIMEOUT_S = 20.0
EVSES = 2

# Runs `station run` like the console script does (under -X importtime for the load order).
_RUN_STATION = "import sys; from station.cli import main; sys.exit(main(sys.argv[1:]))"

# Imports the modules listed in argv[1] with every loader's create_module/exec_module wrapped, so
# each module's *own* cost (nested imports subtracted) is measured while imports nest naturally.
# Prints "name<TAB>rss_kb<TAB>traced_bytes<TAB>ns" per module, plus @start and @end totals.
_IMPORT_COSTS = """\
import sys, time
use_tracemalloc = sys.argv[2] == "tracemalloc"
if use_tracemalloc:
    import tracemalloc
    tracemalloc.start()
def rss_kb():
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
def traced():
    return tracemalloc.get_traced_memory()[0] if use_tracemalloc else 0
costs = {}
stack = []
def measured(name, method):
    def run(*args):
        frame = [rss_kb(), traced(), time.perf_counter_ns(), 0, 0, 0]
        stack.append(frame)
        try:
            return method(*args)
        finally:
            stack.pop()
            total = (rss_kb() - frame[0], traced() - frame[1], time.perf_counter_ns() - frame[2])
            own = costs.setdefault(name, [0, 0, 0])
            for i in range(3):
                own[i] += total[i] - frame[3 + i]
                if stack:
                    stack[-1][3 + i] += total[i]
    return run
class Measure:
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or isinstance(loader, type):
            return spec
        for attr in ("create_module", "exec_module"):
            method = getattr(loader, attr, None)
            if method is not None:
                setattr(loader, attr, measured(name, method))
        return spec
with open(sys.argv[1], encoding="utf-8") as f:
    names = f.read().split()
print("@start\t%d\t%d\t0" % (rss_kb(), traced()))
sys.meta_path.insert(0, Measure())
import importlib
for name in names:
    if name not in sys.modules and name != "__main__":
        try:
            importlib.import_module(name)
        except Exception:
            pass
sys.meta_path.pop(0)
for name, (r, m, t) in costs.items():
    print("%s\t%d\t%d\t%d" % (name, r, m, t))
print("@end\t%d\t%d\t0" % (rss_kb(), traced()))
"""


class BenchmarkError(Exception):
    """The station did not boot or did not stop cleanly."""


@dataclass
class Idle:
    """What /proc said about the idle station."""

    status_kb: dict[str, int]
    samples_kb: list[int]
    boot_s: float
    shutdown_s: float


@dataclass
class Package:
    """Import cost attributed to one top-level package."""

    name: str
    rss_kb: int = 0
    traced_b: int = 0
    time_ns: int = 0
    modules: int = 0
    stdlib: bool = False


@dataclass
class Breakdown:
    """Import costs by package and subpackage, and who pulled each package in."""

    start_rss_kb: int
    end_rss_kb: int
    traced_total_b: int
    packages: list[Package] = field(default_factory=list)
    subpackages: list[Package] = field(default_factory=list)
    importers: dict[str, list[str]] = field(default_factory=dict)


async def _boot(csms: Csms, station: StationProcess) -> None:
    """Wait for BootNotification and the StatusNotifications, or fail if the station exits."""
    assert station.process is not None
    exit_task = asyncio.ensure_future(station.process.wait())

    async def booted() -> None:
        await csms.wait_action(
            "BootNotification", STATION_ID, timeout_s=TIMEOUT_S, include_past=True
        )
        while len(csms.received("StatusNotification", STATION_ID)) < EVSES:
            await csms.wait_action("StatusNotification", STATION_ID, timeout_s=TIMEOUT_S)

    boot_task = asyncio.ensure_future(booted())
    await asyncio.wait(
        {boot_task, exit_task}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    exit_task.cancel()
    if not boot_task.done() or boot_task.exception() is not None:
        boot_task.cancel()
        await station.kill()
        raise BenchmarkError(
            f"station did not boot (exit code {station.process.returncode})\n{station.log_tail()}"
        )


async def measure_idle(directory: Path, idle_s: float, env: dict[str, str]) -> Idle:
    """Run the real `station run`, let it idle, read /proc/<pid>/status, stop it."""
    async with Csms() as csms:
        config = write_config(directory, csms.url)
        station = StationProcess(config, directory / "station.log", env)
        try:
            await station.start()
            await _boot(csms, station)
            boot_s = time.perf_counter() - station.spawned_at
            samples: list[int] = []
            deadline = time.perf_counter() + idle_s
            while (left := deadline - time.perf_counter()) > 0:
                await asyncio.sleep(min(1.0, left))
                samples.append(read_proc_status(station.pid).get("VmRSS", 0))
            status = read_proc_status(station.pid)
            code, shutdown_s = await station.terminate()
        except BaseException:
            await station.kill()
            raise
        if code != 0:
            raise BenchmarkError(f"station exited {code} after SIGTERM\n{station.log_tail()}")
    return Idle(status, samples, boot_s, shutdown_s)


async def record_modules(directory: Path, env: dict[str, str]) -> list[tuple[str, int]]:
    """Every module a real `station run` loads until it is booted and idle: (name, depth).

    The station runs under ``python -X importtime``, which reports each import as it finishes
    (children before their importer), indented by nesting depth.
    """
    async with Csms() as csms:
        config = write_config(directory, csms.url)
        log_path = directory / "station-importtime.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-X",
                "importtime",
                "-c",
                _RUN_STATION,
                "run",
                "--config",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
            )
            try:
                await csms.wait_action("BootNotification", STATION_ID, timeout_s=TIMEOUT_S)
                while len(csms.received("StatusNotification", STATION_ID)) < EVSES:
                    await csms.wait_action("StatusNotification", STATION_ID, timeout_s=TIMEOUT_S)
                await asyncio.sleep(1.0)
                process.terminate()
                code = await asyncio.wait_for(process.wait(), TIMEOUT_S)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    if code != 0:
        raise BenchmarkError(f"module-recording run exited {code}")
    modules: list[tuple[str, int]] = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        # "import time:       712 |      44308 |     alembic.ddl.base"
        if line.startswith("import time:") and line.count("|") == 2:
            field_ = line.rsplit("|", 1)[1]
            name = field_.strip()
            if name and name != "imported package":
                modules.append((name, len(field_) - len(field_.lstrip())))
    return modules


def _package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "station" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _subpackage_of(module: str) -> str:
    return ".".join(module.split(".")[: 2 if not module.startswith("station.") else 3])


def importers(modules: list[tuple[str, int]]) -> dict[str, list[str]]:
    """Package → the other packages whose import pulled it in (from the importtime tree)."""
    found: dict[str, list[str]] = {}
    for i, (name, depth) in enumerate(modules):
        parent = next((n for n, d in modules[i + 1 :] if d < depth), None)
        if parent is None:
            continue
        child_pkg, parent_pkg = _package_of(name), _package_of(parent)
        if child_pkg != parent_pkg and parent_pkg not in found.setdefault(child_pkg, []):
            found[child_pkg].append(parent_pkg)
    return found


def _import_costs(
    names_path: Path, mode: str, env: dict[str, str]
) -> list[tuple[str, int, int, int]]:
    output = subprocess.run(
        [sys.executable, "-c", _IMPORT_COSTS, str(names_path), mode],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    ).stdout
    rows: list[tuple[str, int, int, int]] = []
    for line in output.splitlines():
        name, rss_kb, traced_b, time_ns = line.split("\t")
        rows.append((name, int(rss_kb), int(traced_b), int(time_ns)))
    return rows


def _group(
    rss_rows: list[tuple[str, int, int, int]],
    traced: dict[str, int],
    key_of: Callable[[str], str],
) -> list[Package]:
    groups: dict[str, Package] = {}
    for name, rss_kb, _, time_ns in rss_rows:
        if name.startswith("@"):
            continue
        key = key_of(name)
        package = groups.setdefault(
            key, Package(key, stdlib=key.split(".")[0] in sys.stdlib_module_names)
        )
        package.rss_kb += rss_kb
        package.traced_b += traced.get(name, 0)
        package.time_ns += time_ns
        package.modules += 1
    return sorted(groups.values(), key=lambda p: p.rss_kb, reverse=True)


def import_breakdown(
    modules: list[tuple[str, int]], directory: Path, env: dict[str, str]
) -> Breakdown:
    names_path = directory / "modules-order.txt"
    names_path.write_text("\n".join(name for name, _ in modules), encoding="utf-8")
    rss_rows = _import_costs(names_path, "rss", env)
    traced_rows = _import_costs(names_path, "tracemalloc", env)
    totals = {name: rss_kb for name, rss_kb, _, _ in rss_rows if name.startswith("@")}
    traced = {name: traced_b for name, _, traced_b, _ in traced_rows}
    return Breakdown(
        start_rss_kb=totals.get("@start", 0),
        end_rss_kb=totals.get("@end", 0),
        traced_total_b=traced.get("@end", 0),
        packages=_group(rss_rows, traced, _package_of),
        subpackages=_group(rss_rows, traced, _subpackage_of),
        importers=importers(modules),
    )


def _mb(kb: float) -> float:
    return kb / 1024


def _row(label: str, group: Sequence[Package], note: str = "") -> str:
    rss_kb = sum(p.rss_kb for p in group)
    traced_b = sum(p.traced_b for p in group)
    time_ns = sum(p.time_ns for p in group)
    count = sum(p.modules for p in group)
    return (
        f"  {label:<30} {_mb(rss_kb):>7.1f} {traced_b / 2**20:>8.1f} {time_ns / 1e6:>7.0f} "
        f"{count:>5}  {note}"
    ).rstrip()


def print_breakdown(breakdown: Breakdown, idle_kb: int, top: int) -> None:
    print(
        "import breakdown: own cost of each module a running `station run` loads "
        "(nested imports subtracted)"
    )
    running = _mb(idle_kb - breakdown.end_rss_kb)
    print(
        f"  fresh interpreter {_mb(breakdown.start_rss_kb):.1f} MiB → all those imports "
        f"{_mb(breakdown.end_rss_kb):.1f} MiB; the idle station has {_mb(idle_kb):.1f} MiB, so "
        f"running (connection, database, schemas, heap growth) adds {running:.1f} MiB"
    )
    header = f"  {'package':<30} {'RSS MiB':>7} {'py-heap':>8} {'ms':>7} {'mods':>5}  pulled in by"
    print(header)
    for package in breakdown.packages[:top]:
        label = package.name + (" (stdlib)" if package.stdlib else "")
        pulled = ", ".join(breakdown.importers.get(package.name, [])[:3])
        print(_row(label, [package], pulled))
    rest = breakdown.packages[top:]
    if rest:
        print(_row(f"({len(rest)} others)", rest))
    print(_row("stdlib, all", [p for p in breakdown.packages if p.stdlib]))
    print(_row("third-party + station, all", [p for p in breakdown.packages if not p.stdlib]))
    print(f"  largest subpackages ({'RSS MiB':>7} {'py-heap':>8} {'ms':>7} {'mods':>5}):")
    for package in breakdown.subpackages[:top]:
        print(_row(package.name, [package]))
    print(
        "  (py-heap: Python allocations seen by tracemalloc in a separate run; RSS also counts "
        "mapped shared libraries, allocator slack and the compiler's scratch memory)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rss", description=__doc__)
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle time before reading (5)")
    parser.add_argument("--breakdown", action="store_true", help="import breakdown even if met")
    parser.add_argument("--top", type=int, default=12, help="packages in the breakdown (12)")
    parser.add_argument(
        "--pycache",
        action="store_true",
        help="give the station cached bytecode (temp PYTHONPYCACHEPREFIX), as an installed image",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.idle_s <= 40:
        parser.error("--idle-s must be between 0 and 40")

    print("rss: resident memory of an idle, connected `station run` (loopback CSMS, 2 EVSEs)")
    print(f"  command: {' '.join(station_command(Path('<tmp>/station.toml')))}")
    print(f"  {bytecode_note(args.pycache)}")
    with tempfile.TemporaryDirectory(prefix="station-bench-rss-") as tmp:
        root = Path(tmp)
        env = station_env(root / "pycache" if args.pycache else None)
        try:
            # The first start creates and migrates the database (Alembic is imported); every
            # later start finds it current and never imports Alembic. The field case is the
            # later one, so that is the figure; the first start is reported beside it.
            first = asyncio.run(measure_idle(root / "idle", args.idle_s, env))
            idle = asyncio.run(measure_idle(root / "idle", args.idle_s, env))
        except BenchmarkError as exc:
            print(f"rss: FAILED: {exc}", file=sys.stderr)
            return 1
        status = idle.status_kb
        rss_kb = status.get("VmRSS", 0)
        samples = " ".join(f"{_mb(s):.1f}" for s in idle.samples_kb)
        print(
            f"  booted (BootNotification + {EVSES} StatusNotifications) {idle.boot_s:.2f} s after "
            f"spawn; idle {args.idle_s:g} s; VmRSS samples (MiB, 1/s): {samples}"
        )
        print(
            f"  /proc/<pid>/status: VmRSS {_mb(rss_kb):.1f} MiB, "
            f"VmHWM {_mb(status.get('VmHWM', 0)):.1f} MiB, "
            f"RssAnon {_mb(status.get('RssAnon', 0)):.1f} MiB, "
            f"RssFile {_mb(status.get('RssFile', 0)):.1f} MiB, "
            f"threads {status.get('Threads', '?')}"
        )
        print(f"  stopped: SIGTERM → exit 0 in {idle.shutdown_s:.2f} s")
        first_kb = first.status_kb.get("VmRSS", 0)
        print(
            f"  first start (new database, migrations run): VmRSS {_mb(first_kb):.1f} MiB; "
            f"the figure is the restart on the existing database"
        )
        over = _mb(rss_kb) > GOAL_MB
        if over or args.breakdown:
            try:
                modules = asyncio.run(record_modules(root / "modules", env))
                print_breakdown(import_breakdown(modules, root, env), rss_kb, args.top)
            except (BenchmarkError, subprocess.SubprocessError, TimeoutError) as exc:
                print(f"  import breakdown failed: {exc}")
    verdict = "NOT met" if over else "met"
    print(f"goal: idle VmRSS ≤ {GOAL_MB:.0f} MiB — {verdict} ({_mb(rss_kb):.1f} MiB)")
    print(f"idle_rss_mb={_mb(rss_kb):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
