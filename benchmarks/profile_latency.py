"""SetChargingProfile received → PowerCommand delivered to the power port, over loopback (issue 4).

How it is measured:

- One process, one asyncio event loop: the local CSMS (:class:`station.sim.csms.Csms`, the
  ``ocpp`` library) on 127.0.0.1 and a real :class:`station.app.Station` (database in a temporary
  folder, two EVSEs, simulated vehicles) connected to it over a real WebSocket.
- Through the control protocol (``station sim``, as ``tests/test_v2g_e2e.py`` does) a V2X vehicle
  is plugged in at EVSE 1 (60 % of 100 kWh, 10 kW discharge) and a token presented; the CSMS
  accepts it, so a transaction runs and power may flow in both directions.
- Each iteration the CSMS sends one SetChargingProfile for EVSE 1 (``--purpose``: a
  TxDefaultProfile, or a TxProfile for the running transaction; always profile id 21, so each
  replaces the one before) whose value differs from the previous one, cycling through
  +7,000 W, +9,000 W, -3,000 W, -5,000 W: over ``ocpp2.1`` the discharges are CentralSetpoint
  set-points (``limit`` 0, ``dischargeLimit`` -6,000 W), over ``ocpp2.0.1`` negative limits.
- Start: ``time.perf_counter_ns()`` in the CSMS's frame hook (``Csms.on_frame``), called when the
  CSMS records the outgoing CALL frame, just before it is written to the WebSocket.
  End: ``time.perf_counter_ns()`` in a wrapper put around the power port's ``apply`` (the
  simulated fleet, ``station.power_port``) from the benchmark side, taken when ``apply`` returns
  for the first command for EVSE 1 that differs from the last one (the fleet has recorded it in
  ``last``/``history`` and the vehicle follows it). The station code is not changed.
  In between: the frame crosses loopback, the station parses and schema-validates it, converts and
  validates the profile, commits it to SQLite (``synchronous=FULL``, on the temporary folder's
  file system) and re-evaluates the energy manager, which applies the new command.
- Every delivered command is checked to be the expected power; the CALLRESULT must be Accepted.
  ``--warmup`` (20) untimed profiles first, then ``--n`` (1,000) timed ones, one at a time.
- Figures in milliseconds, nearest-rank percentiles (every figure is a measured sample). Goal
  (issue 4): p99 ≤ 10 ms. Also shown: the full CALL round trip (until the CSMS has the CALLRESULT).

The last line printed is ``profile_to_command_p99_ms=<p99>``.

    python -m benchmarks.profile_latency [--n 1000] [--warmup 20] [--subprotocol ocpp2.1]
                                         [--purpose TxDefaultProfile]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import STATION_ID, config_text, percentile
from station.app import Station
from station.config import parse_config
from station.power import PowerCommand
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame

TIMEOUT_S = 10.0
TOTAL_TIMEOUT_S = 55.0
EVSES = 2
EVSE_ID = 1
PROFILE_ID = 21
GOAL_P99_MS = 10.0
TOKEN = "04A1B2C3"
#: The power each profile asks for, in turn (W, seen from the vehicle; negative: discharge).
CYCLE_W = (7000.0, 9000.0, -3000.0, -5000.0)
DISCHARGE_LIMIT_W = -6000.0


class BenchmarkError(Exception):
    """The station did not come up, a profile was refused or the command did not follow."""


def profile_payload(
    version: str, purpose: str, power_w: float, transaction_id: str
) -> dict[str, Any]:
    """The SetChargingProfile request for EVSE 1 that asks for ``power_w``."""
    period: dict[str, Any]
    if power_w >= 0:
        period = {"startPeriod": 0, "limit": power_w}
    elif version == "2.1":
        period = {
            "startPeriod": 0,
            "limit": 0,
            "dischargeLimit": DISCHARGE_LIMIT_W,
            "setpoint": power_w,
            "operationMode": "CentralSetpoint",
        }
    else:  # 2.0.1: a negative limit is a discharge limit
        period = {"startPeriod": 0, "limit": power_w}
    profile: dict[str, Any] = {
        "id": PROFILE_ID,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
        ],
    }
    if purpose == "TxProfile":
        profile["transactionId"] = transaction_id
    return {"evseId": EVSE_ID, "chargingProfile": profile}


class Probe:
    """One iteration's timestamps: CALL sent (CSMS hook), command applied (port wrapper)."""

    def __init__(self, station: Station, csms: Csms) -> None:
        self.sent_ns = 0
        self.delivered_ns = 0
        self.delivered: PowerCommand | None = None
        self._waiter: asyncio.Future[PowerCommand] | None = None
        port = station.power_port
        self._last = port.last.get(EVSE_ID)
        original = port.apply

        def observed(command: PowerCommand) -> None:
            original(command)
            if command.evse_id != EVSE_ID or command == self._last:
                return
            self.delivered_ns = time.perf_counter_ns()
            self._last = command
            self.delivered = command
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(command)

        # An instance attribute: the energy manager looks ``apply`` up at every call.
        port.apply = observed  # type: ignore[method-assign]
        csms.on_frame = self._on_frame

    def _on_frame(self, frame: Frame) -> None:
        if frame.direction == "out" and frame.action == "SetChargingProfile":
            self.sent_ns = time.perf_counter_ns()

    def arm(self) -> asyncio.Future[PowerCommand]:
        self.sent_ns = self.delivered_ns = 0
        self.delivered = None
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter


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


async def _sim(station: Station, cmd: str, **args: Any) -> None:
    assert station.control is not None
    response = await sim_request(station.control.endpoint.endpoint_file, {"cmd": cmd, **args})
    if response.get("ok") is not True:
        raise BenchmarkError(f"station sim {cmd}: {response}")


async def start_transaction(station: Station, csms: Csms) -> str:
    """Plug a V2X vehicle into EVSE 1 and present a token (control protocol): the tx id."""
    if station.control is None:
        raise BenchmarkError("the station has no simulation control endpoint")
    endpoint = station.control.endpoint.endpoint_file
    async with asyncio.timeout(TIMEOUT_S):
        while not endpoint.exists():
            await asyncio.sleep(0.02)
    await _sim(station, "plug", evse=EVSE_ID, soc_pct=60.0, capacity_kwh=100.0, v2x=True)
    await _sim(station, "token", evse=EVSE_ID, id=TOKEN)
    started = await csms.wait_for(
        lambda f: (
            f.direction == "in"
            and f.action == "TransactionEvent"
            and f.payload.get("eventType") == "Started"
        ),
        timeout_s=TIMEOUT_S,
        include_past=True,
    )
    transaction_id = str(started.payload["transactionInfo"]["transactionId"])
    async with asyncio.timeout(TIMEOUT_S):  # energy flows: the vehicle follows a charge command
        while (command := station.power_port.last.get(EVSE_ID)) is None or command.power_w <= 0:
            await asyncio.sleep(0.01)
    return transaction_id


async def send_profiles(
    csms: Csms, probe: Probe, payloads: Sequence[tuple[float, dict[str, Any]]]
) -> tuple[list[float], list[float]]:
    """Per profile: seconds to the new command, and seconds to the CALLRESULT."""
    to_command: list[float] = []
    to_reply: list[float] = []
    for expected_w, payload in payloads:
        waiter = probe.arm()
        reply = await csms.call(STATION_ID, "SetChargingProfile", payload, timeout_s=TIMEOUT_S)
        replied_ns = time.perf_counter_ns()
        if reply.message_type != 3 or reply.payload.get("status") != "Accepted":
            raise BenchmarkError(f"SetChargingProfile answered with {reply.raw}")
        try:
            command = await asyncio.wait_for(waiter, TIMEOUT_S)
        except TimeoutError:
            raise BenchmarkError(f"no new command for EVSE {EVSE_ID} after {payload}") from None
        if command.power_w != expected_w:
            raise BenchmarkError(f"expected {expected_w} W, the port got {command}")
        if not probe.sent_ns:
            raise BenchmarkError("the CSMS frame hook did not see the CALL")
        to_command.append((probe.delivered_ns - probe.sent_ns) / 1e9)
        to_reply.append((replied_ns - probe.sent_ns) / 1e9)
    return to_command, to_reply


async def measure(
    n: int, warmup: int, subprotocol: str, purpose: str, directory: Path
) -> tuple[list[float], list[float], str, int]:
    async with Csms(subprotocols=(subprotocol,)) as csms:
        station, stop, task = await _start(csms, directory)
        try:
            version = station.link.version or "?"
            transaction_id = await start_transaction(station, csms)
            probe = Probe(station, csms)
            payloads = [
                (w, profile_payload(version, purpose, w, transaction_id))
                for w in (CYCLE_W[i % len(CYCLE_W)] for i in range(warmup + n))
            ]
            await send_profiles(csms, probe, payloads[:warmup])
            to_command, to_reply = await send_profiles(csms, probe, payloads[warmup:])
            discharges = sum(1 for w, _ in payloads[warmup:] if w < 0)
        finally:
            stop.set()
            await asyncio.wait_for(task, TIMEOUT_S)
    return to_command, to_reply, version, discharges


def _line(samples_s: Sequence[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    parts = [f"n={len(ms)}", f"min={min(ms):.3f}"]
    parts += [f"p{p}={percentile(ms, p):.3f}" for p in (50, 90, 99)]
    parts.append(f"max={max(ms):.3f}")
    return " ".join(parts) + " ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=1000, help="timed profiles (1000)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed profiles first (20)")
    parser.add_argument(
        "--subprotocol",
        choices=["ocpp2.1", "ocpp2.0.1"],
        default="ocpp2.1",
        help="the one the CSMS offers (default ocpp2.1: discharges as CentralSetpoint set-points)",
    )
    parser.add_argument(
        "--purpose",
        choices=["TxDefaultProfile", "TxProfile"],
        default="TxDefaultProfile",
        help="the profile purpose sent (default TxDefaultProfile)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 10_000 or args.warmup < 0:
        parser.error("--n must be 1..10000 and --warmup ≥ 0")
    logging.basicConfig(level=logging.WARNING)

    print(
        "profile_latency: SetChargingProfile CALL sent by the CSMS → new PowerCommand for EVSE 1 "
        "recorded by the power port"
    )
    print(
        f"  python {platform.python_version()}, {os.cpu_count()} CPUs; station and CSMS in one "
        "event loop on 127.0.0.1; V2X vehicle plugged, transaction running"
    )
    print(
        f"  {args.warmup} untimed + {args.n} timed {args.purpose}s (id {PROFILE_ID}, each "
        f"replaces the last), one at a time, cycling {', '.join(f'{w:+.0f}' for w in CYCLE_W)} W"
    )
    print(
        "  start: CSMS frame hook just before the CALL is written; end: wrapper around "
        "station.power_port.apply when the changed command has been recorded"
    )
    with tempfile.TemporaryDirectory(prefix="station-bench-profile-") as tmp:
        started = time.perf_counter()
        try:
            to_command, to_reply, version, discharges = asyncio.run(
                asyncio.wait_for(
                    measure(args.n, args.warmup, args.subprotocol, args.purpose, Path(tmp)),
                    TOTAL_TIMEOUT_S,
                )
            )
        except (BenchmarkError, TimeoutError) as exc:
            print(f"profile_latency: FAILED: {exc!r}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - started
    p99_ms = percentile(to_command, 99) * 1000
    print(
        f"  OCPP {version}; {discharges} of {args.n} timed profiles discharge; database under "
        f"{tempfile.gettempdir()}; whole run {elapsed:.1f} s"
    )
    print(f"profile → command (goal p99 ≤ {GOAL_P99_MS:g} ms):  {_line(to_command)}")
    print(f"profile → CALLRESULT at the CSMS:       {_line(to_reply)}")
    verdict = "met" if p99_ms <= GOAL_P99_MS else "NOT met"
    print(f"goal p99 ≤ {GOAL_P99_MS:g} ms: {verdict} (p99 {p99_ms:.3f} ms)")
    print(f"profile_to_command_p99_ms={p99_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
