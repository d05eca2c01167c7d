"""All benchmarks with small defaults, then a short table.

Runs ``benchmarks.boot --runs 3``, ``benchmarks.rss --idle-s 2``, ``benchmarks.roundtrip --n 200``,
``benchmarks.replay --n 1000``, ``benchmarks.composite --seconds 1``,
``benchmarks.profile_latency --n 200``, ``benchmarks.chademo_period --seconds 10``,
``benchmarks.inverter_setpoint --n 500``, ``benchmarks.grid_trip --n 50`` and
``benchmarks.crash --kills 8``, each in its own Python
process (so one does not warm or load the other), streams their output, reads the figure each prints
last (``name=value``) and prints a table with the goals. ``--full`` uses each benchmark's own
defaults instead (10 boots, 5 s idle, 500 CALLs, 10,000 queued events, 1,000 profiles; the replay
then takes about a minute). Everything runs on 127.0.0.1; with the small defaults each benchmark
stops by itself in well under a minute.

The last line printed holds all the figures.

    python -m benchmarks [--full]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

CHILD_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Bench:
    module: str
    quick_args: tuple[str, ...]
    goal: str
    meets: str  # "le:<number>" / "ge:<number>" = figure must be ≤ / ≥ number; "" = no goal


BENCHES = (
    Bench("boot", ("--runs", "3"), "≤ 1 s (cold median)", "le:1.0"),
    Bench("rss", ("--idle-s", "2"), "≤ 64 MiB", "le:64"),
    Bench("roundtrip", ("--n", "200"), "ref. ≈ 0.8 ms (DESIGN.md)", ""),
    Bench("replay", ("--n", "1000"), "≥ 1,000 events/s (issue 3)", "ge:1000"),
    Bench("composite", ("--seconds", "1"), "≥ 5,000/s (issue 4)", "ge:5000"),
    Bench("profile_latency", ("--n", "200"), "p99 ≤ 10 ms (issue 4)", "le:10"),
    Bench("chademo_period", ("--seconds", "10"), "p99 deviation ≤ 2 ms (issue 5)", "le:2"),
    Bench("inverter_setpoint", ("--n", "500"), "p99 ≤ 5 ms (issue 6)", "le:5"),
    Bench("grid_trip", ("--n", "50"), "p99 ≤ 50 ms at 20 ms poll (issue 6)", "le:50"),
    Bench("crash", ("--kills", "8"), "lost 0 (issue 3)", "le:0"),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    bench: Bench
    exit_code: int
    key: str
    value: float | None
    seconds: float


def run(bench: Bench, full: bool) -> Outcome:
    """Run one benchmark in a child process, echoing its output; parse its last line."""
    command = [sys.executable, "-m", f"benchmarks.{bench.module}"]
    if not full:
        command += list(bench.quick_args)
    print(f"\n$ {' '.join(['python', *command[1:]])}", flush=True)
    started = time.perf_counter()
    last = ""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            print(f"  | {line.rstrip()}", flush=True)
            if line.strip():
                last = line.strip()
        try:
            code = child.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
    key, sep, text = last.partition("=")
    value: float | None = None
    if sep:
        try:
            value = float(text)
        except ValueError:
            value = None
    return Outcome(bench, code, key if sep else "?", value, time.perf_counter() - started)


def verdict(outcome: Outcome) -> str:
    if outcome.exit_code != 0 or outcome.value is None:
        return f"FAILED (exit {outcome.exit_code})"
    kind, _, limit = outcome.bench.meets.partition(":")
    if kind == "le":
        return "met" if outcome.value <= float(limit) else "NOT met"
    if kind == "ge":
        return "met" if outcome.value >= float(limit) else "NOT met"
    return "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults")
    args = parser.parse_args(argv)

    outcomes = [run(bench, args.full) for bench in BENCHES]
    print("\nsummary:")
    print(f"  {'benchmark':<10} {'figure':<40} {'value':>8}  {'goal':<26} {'verdict':<10} time")
    for o in outcomes:
        value = "-" if o.value is None else f"{o.value:g}"
        print(
            f"  {o.bench.module:<10} {o.key:<40} {value:>8}  {o.bench.goal:<26} "
            f"{verdict(o):<10} {o.seconds:.0f} s"
        )
    print("benchmarks: " + " ".join(f"{o.key}={o.value}" for o in outcomes))
    return 0 if all(o.exit_code == 0 and o.value is not None for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
