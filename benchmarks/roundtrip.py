"""OCPP CALL round trip over loopback, station → CSMS and CSMS → station.

How it is measured:

- One process, one asyncio event loop: the local CSMS (:class:`station.sim.csms.Csms`, the
  ``ocpp`` library) on 127.0.0.1 and a real :class:`station.app.Station` (database and OCPP message
  log in a temporary folder, two EVSEs) connected to it over a real WebSocket.
- Once the station is Accepted and has sent its StatusNotifications, ``--warmup`` (20) untimed and
  then ``--n`` (500) timed CALLs are made one after another:

  - station → CSMS: ``await station.link.call(session.calls.Heartbeat())``, timed on the station
    (``time.perf_counter_ns`` around the call): build and validate the request, log it, send, the
    CSMS parses, validates and answers, the station matches, validates and converts the response;
  - CSMS → station: ``await csms.call(id, "GetVariables", ...)`` reading
    OCPPCommCtrlr.HeartbeatInterval, timed on the CSMS until it has the station's CALLRESULT.

- Both ends share one CPU thread, so a round trip includes the work of both peers. Figures:
  median / p90 / p99 (nearest rank) in milliseconds. The design's reference figure on a 2-core
  machine is a median of about 0.8 ms.

The last line printed is ``roundtrip_station_to_csms_median_ms=<median>``.

    python -m benchmarks.roundtrip [--n 500] [--warmup 20] [--subprotocol ocpp2.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import STATION_ID, Stats, config_text
from station.app import Station
from station.config import parse_config
from station.sim.csms import Csms

TIMEOUT_S = 10.0
TOTAL_TIMEOUT_S = 50.0
EVSES = 2
GET_HEARTBEAT_INTERVAL: dict[str, Any] = {
    "getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    ]
}


class BenchmarkError(Exception):
    """The station did not come up, or a CALL failed."""


async def _start(csms: Csms, directory: Path) -> tuple[Station, asyncio.Event, asyncio.Task[Any]]:
    text = config_text(csms.url, directory / "station.db", log_level="WARNING")
    config = parse_config(text, source="<benchmark>", base_dir=directory)
    station = Station(config)
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    accepted = asyncio.ensure_future(station.link.accepted.wait())
    await asyncio.wait({accepted, task}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if not accepted.done():
        accepted.cancel()
        stop.set()
        raise BenchmarkError("the station was not accepted by the CSMS")
    while len(csms.received("StatusNotification", STATION_ID)) < EVSES:
        await csms.wait_action("StatusNotification", STATION_ID, timeout_s=TIMEOUT_S)
    return station, stop, task


async def station_to_csms(station: Station, count: int) -> list[float]:
    """Seconds per Heartbeat CALL, as the station sees it."""
    session = station.link.session
    if session is None:
        raise BenchmarkError("no session")
    samples: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        response = await station.link.call(session.calls.Heartbeat())
        samples.append((time.perf_counter_ns() - started) / 1e9)
        if not getattr(response, "current_time", None):
            raise BenchmarkError(f"unexpected Heartbeat response {response!r}")
    return samples


async def csms_to_station(csms: Csms, count: int) -> list[float]:
    """Seconds per GetVariables CALL, as the CSMS sees it."""
    samples: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        frame = await csms.call(STATION_ID, "GetVariables", GET_HEARTBEAT_INTERVAL)
        samples.append((time.perf_counter_ns() - started) / 1e9)
        if frame.message_type != 3:
            raise BenchmarkError(f"GetVariables answered with {frame.raw}")
    return samples


async def measure(
    n: int, warmup: int, subprotocol: str, directory: Path
) -> tuple[list[float], list[float], str]:
    async with Csms(subprotocols=(subprotocol,)) as csms:
        station, stop, task = await _start(csms, directory)
        try:
            version = station.link.version or "?"
            await station_to_csms(station, warmup)
            up = await station_to_csms(station, n)
            await csms_to_station(csms, warmup)
            down = await csms_to_station(csms, n)
        finally:
            stop.set()
            await asyncio.wait_for(task, TIMEOUT_S)
    return up, down, version


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.roundtrip", description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="timed CALLs per direction (500)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed CALLs first (20)")
    parser.add_argument(
        "--subprotocol",
        choices=["ocpp2.1", "ocpp2.0.1"],
        default="ocpp2.1",
        help="the one the CSMS offers (default ocpp2.1, what station and CSMS agree on)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 20_000 or args.warmup < 0:
        parser.error("--n must be 1..20000 and --warmup ≥ 0")
    logging.basicConfig(level=logging.WARNING)

    print("roundtrip: OCPP CALL round trips on 127.0.0.1, station and CSMS in one event loop")
    print(
        f"  python {platform.python_version()}; {args.warmup} untimed + {args.n} timed CALLs "
        "per direction, one at a time"
    )
    with tempfile.TemporaryDirectory(prefix="station-bench-roundtrip-") as tmp:
        started = time.perf_counter()
        try:
            up, down, version = asyncio.run(
                asyncio.wait_for(
                    measure(args.n, args.warmup, args.subprotocol, Path(tmp)), TOTAL_TIMEOUT_S
                )
            )
        except (BenchmarkError, TimeoutError) as exc:
            print(f"roundtrip: FAILED: {exc!r}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - started
    up_ms = Stats.of(up).scaled(1000)
    down_ms = Stats.of(down).scaled(1000)
    print(f"  OCPP {version}; whole run {elapsed:.1f} s")
    print(f"station → CSMS (Heartbeat, timed by the station):   {up_ms.line('ms', p99=True)}")
    print(f"CSMS → station (GetVariables, timed by the CSMS):   {down_ms.line('ms', p99=True)}")
    print(
        f"  throughput one at a time: {1000 / up_ms.median:.0f} CALLs/s up, "
        f"{1000 / down_ms.median:.0f} CALLs/s down (1 / median)"
    )
    print(f"roundtrip_station_to_csms_median_ms={up_ms.median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
