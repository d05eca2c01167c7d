"""Power command to inverter set-point, written and read back, Modbus TCP on loopback (issue 6).

How it is measured:

- One process, one asyncio event loop: the simulated SunSpec inverter
  (:class:`station.sim.inverter.SimInverter`, models 1, 701, 702, 704, 715, a real pymodbus TCP
  server on 127.0.0.1) and the station's :class:`station.inverter.SunSpecInverter` on a
  :class:`station.inverter.ModbusLink` (pymodbus async client) connected to it.
- After discovery, ``--warmup`` (50) untimed and then ``--n`` (1000) timed calls of
  ``await inverter.apply_setpoint(power_w)`` are made one after another, timed with
  ``time.perf_counter_ns`` around the call. Each call is what the station does for a new power
  command: convert the sign and scale (704 ``WSet``), one Write Multiple Registers request
  (WSetEna, WSetMod, WSet), one Read Holding Registers request for the read-back, and the
  comparison. The set-point alternates between charging and discharging values so every call
  writes something new. The measured power's convergence is supervised separately (not timed).
- Both peers share one CPU thread, so a call includes the server's work. Figures: median / p90 /
  p99 (nearest rank) in milliseconds. Goal: p99 ≤ 5 ms on loopback; the design's reference for a
  Modbus write + read-back is about 0.5 ms.

The last line printed is ``inverter_setpoint_p99_ms=<p99>``.

    python -m benchmarks.inverter_setpoint [--n 1000] [--warmup 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import time
from collections.abc import Sequence

from benchmarks._common import Stats
from station.clock import SystemClock
from station.inverter import (
    InverterError,
    InverterOptions,
    ModbusLink,
    ModbusSettings,
    ModbusTcp,
    SunSpecInverter,
)
from station.sim.inverter import SimInverter, SimInverterSpec

TOTAL_TIMEOUT_S = 60.0
GOAL_P99_MS = 5.0


async def measure(n: int, warmup: int) -> list[float]:
    """Seconds per ``apply_setpoint`` call, ``n`` of them after ``warmup`` untimed ones."""
    clock = SystemClock()
    sim = SimInverter(SimInverterSpec(), clock=clock)
    await sim.start()
    link = ModbusLink(ModbusSettings(ModbusTcp("127.0.0.1", sim.port), timeout_s=1.0), clock=clock)
    # long reversion: nothing but the timed calls touches the device during the run
    options = InverterOptions(verify_power=False, heartbeat_interval_s=30, reversion_timeout_s=60)
    inverter = await SunSpecInverter.open(link, clock=clock, options=options)
    samples: list[float] = []
    try:
        for i in range(warmup + n):
            power_w = (1000.0 + 7.0 * (i % 500)) * (1 if i % 2 else -1)
            started = time.perf_counter_ns()
            await inverter.apply_setpoint(power_w)
            elapsed = time.perf_counter_ns() - started
            if i >= warmup:
                samples.append(elapsed / 1e9)
    finally:
        await inverter.close()
        await sim.stop()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inverter_setpoint", description=__doc__
    )
    parser.add_argument("--n", type=int, default=1000, help="timed set-points (default 1000)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed set-points first")
    args = parser.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be >= 1 and --warmup >= 0")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    print("inverter_setpoint: power command → SunSpec 704 set-point written and read back")
    print(
        f"  python {platform.python_version()}; Modbus TCP on 127.0.0.1, simulated inverter in "
        f"the same event loop; {args.warmup} untimed + {args.n} timed set-points, one at a time"
    )
    started = time.perf_counter()
    try:
        samples = asyncio.run(asyncio.wait_for(measure(args.n, args.warmup), TOTAL_TIMEOUT_S))
    except (InverterError, TimeoutError) as exc:
        print(f"inverter_setpoint: FAILED: {exc!r}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    ms = Stats.of(samples).scaled(1000)
    print(f"  whole run {elapsed:.1f} s")
    print(f"set-point write + read-back: {ms.line('ms', p99=True)}")
    verdict = "meets" if ms.p99 <= GOAL_P99_MS else "misses"
    print(f"  goal p99 ≤ {GOAL_P99_MS:g} ms: {verdict}")
    print(f"inverter_setpoint_p99_ms={ms.p99:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
