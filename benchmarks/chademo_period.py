"""CHAdeMO charger frame timing on python-can's ``virtual`` bus (issue 5).

How it is measured:

- A whole CHAdeMO EVSE (:class:`station.chademo.evse.ChademoEvse`: the session, the CAN adapter
  with python-can's thread-based cyclic tasks updated by ``modify_data``, simulated hardware) and
  the simulated vehicle (:class:`station.sim.chademo_vehicle.SimChademoVehicle`, 0x100/0x101/
  0x102/0x200/0x201 every 100 ms) share one ``virtual`` channel in one process, in a charging
  session; the EVSE's event loop also runs its 100 ms tick and receives 50 frames/s.
- A receiver (a third python-can bus on the channel, in its own thread, blocking ``recv``) stamps
  every 0x108 and 0x109 with ``time.perf_counter()`` when ``recv`` returns: "as seen by a
  receiver".
- Period figure: over ``--seconds`` (60) of charging, the deviation of each interval between two
  consecutive 0x109 from 100 ms, in ms (absolute value); p50 (median), p99 and max are reported.
- Command figure: every 0.37 s (so the change falls at every phase of the cycle) the loop calls
  ``ChademoEvse.set_power_command`` with a new power whose current at the session's 410 V power
  basis is a new whole number of amperes; the latency is the time until the receiver sees the
  first 0x108 whose b3 (available output current) carries it. Goal: ≤ 100 ms (the next cycle).
- ``--load N`` adds N small JSON encode/decode work items per second on the same event loop (a
  stand-in for OCPP message handling, not the OCPP stack; 0 = none).

Percentiles are nearest-rank (benchmarks/_common.py). The last two lines printed are
``command_to_frame_max_ms=<figure>`` and ``chademo_period_p99_dev_ms=<figure>``.

    python -m benchmarks.chademo_period [--seconds 60] [--load 100]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import sys
import threading
import time
import uuid
from collections.abc import Sequence

import can

from benchmarks._common import Stats, percentile
from station.chademo.evse import ChademoEvse
from station.chademo.hardware import SimHardware
from station.chademo.session import SessionConfig, SessionState
from station.clock import SystemClock
from station.sim.chademo_vehicle import ChademoVehicleSpec, SimChademoVehicle, SimDcPath

PERIOD_MS = 100.0
GOAL_P99_DEV_MS = 2.0
GOAL_COMMAND_MS = 100.0
CHANGE_EVERY_S = 0.37
TARGET_VOLTAGE_V = 410  # the simulated vehicle's 0x102 target voltage: the session's power basis


class Receiver:
    """A CAN node that stamps every 0x108 and 0x109 on arrival, in its own thread."""

    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.f109: list[float] = []  # perf_counter at each 0x109
        self.f108: list[tuple[float, int]] = []  # (perf_counter, available current byte b3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.bus.recv(0.05)
            if msg is None:
                continue
            if msg.arbitration_id == 0x109:
                self.f109.append(time.perf_counter())
            elif msg.arbitration_id == 0x108:
                self.f108.append((time.perf_counter(), msg.data[3]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.bus.shutdown()


async def _load(per_s: int) -> None:
    if per_s <= 0:
        return
    payload = {"action": "MeterValues", "evseId": 1, "meterValue": [{"sampledValue": [1.0] * 8}]}
    while True:
        for _ in range(per_s // 10 or 1):
            json.loads(json.dumps(payload))
        await asyncio.sleep(0.1)


async def measure(seconds: float, load_per_s: int) -> tuple[list[float], list[float]]:
    """Charge the simulated vehicle through the EVSE; return (deviations, latencies) in s."""
    channel = f"bench-chademo-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    hardware = SimHardware()
    vehicle = SimChademoVehicle(clock, interface="virtual", channel=channel)
    evse = ChademoEvse(
        1,
        hardware,
        SimDcPath(hardware, vehicle),
        clock,
        config=SessionConfig(max_voltage_v=500, max_current_a=125),
        can_channel=channel,
        auto_authorize=True,
    )
    receiver = Receiver(channel)
    changes: list[tuple[float, int]] = []
    load = loop.create_task(_load(load_per_s))
    try:
        vehicle.start()
        await evse.start()
        receiver.start()
        evse.set_power_command(TARGET_VOLTAGE_V * 10 + 1)
        vehicle.plug(ChademoVehicleSpec(capacity_wh=100_000, soc_pct=30))
        deadline = loop.time() + 10
        while evse.state is not SessionState.CHARGING:
            if loop.time() > deadline:
                raise RuntimeError(f"no charging session: {evse.status()}")
            await asyncio.sleep(0.05)
        receiver.f109.clear()
        current_a = 10
        end = loop.time() + seconds
        while loop.time() < end:
            await asyncio.sleep(CHANGE_EVERY_S)
            current_a = current_a % 100 + 10
            changes.append((time.perf_counter(), current_a))
            # 0x108 b3 (available current) = floor(command / 410 V): the new current.
            evse.set_power_command(TARGET_VOLTAGE_V * current_a + 1)
        await asyncio.sleep(0.25)
    finally:
        load.cancel()
        receiver.close()
        await evse.aclose()
        await vehicle.close()
    stamps = receiver.f109
    deviations = [abs((b - a) - PERIOD_MS / 1000) for a, b in itertools.pairwise(stamps)]
    latencies = []
    for changed_at, value in changes:
        first = next((t for t, v in receiver.f108 if v == value and t >= changed_at), None)
        if first is not None:
            latencies.append(first - changed_at)
    return deviations, latencies


def _line(samples_s: Sequence[float]) -> str:
    return Stats.of(samples_s).scaled(1000).line("ms", p99=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chademo_period", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="run time (default 60)")
    parser.add_argument("--load", type=int, default=0, help="stand-in work items/s on the loop")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600 or args.load < 0:
        parser.error("--seconds must be 1..3600 and --load ≥ 0")
    logging.basicConfig(level=logging.WARNING)
    print("chademo_period: the 100 ms charger frame period and command → frame latency")
    print(
        f"  python {platform.python_version()}, python-can {can.__version__}, {os.cpu_count()} "
        f"CPUs; virtual bus in one process; {args.seconds:g} s; loop load {args.load}/s"
    )
    deviations, latencies = asyncio.run(measure(args.seconds, args.load))
    if not deviations or not latencies:
        print("chademo_period: FAILED: no frames received", file=sys.stderr)
        return 1
    p99_dev_ms = percentile(deviations, 99) * 1000
    max_cmd_ms = max(latencies) * 1000
    print(f"period deviation from 100 ms (goal p99 ≤ {GOAL_P99_DEV_MS:g} ms): {_line(deviations)}")
    print(
        f"power command → first 0x108 with it (goal ≤ {GOAL_COMMAND_MS:g} ms): {_line(latencies)}"
    )
    print(
        f"goals: p99 deviation {'met' if p99_dev_ms <= GOAL_P99_DEV_MS else 'NOT met'} "
        f"({p99_dev_ms:.3f} ms); command → frame "
        f"{'met' if max_cmd_ms <= GOAL_COMMAND_MS else 'NOT met'} (max {max_cmd_ms:.3f} ms)"
    )
    print(f"command_to_frame_max_ms={max_cmd_ms:.3f}")
    print(f"chademo_period_p99_dev_ms={p99_dev_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
