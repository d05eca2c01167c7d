"""Replay throughput of the durable TransactionEvent queue after a reconnect (issue 3).

How it is measured:

- One process, one asyncio event loop. A real :class:`station.app.Station` (database, OCPP
  message log in a temporary folder, two EVSEs) whose CSMS URL points at a loopback port where
  nothing listens yet: it is **offline**.
- ``--n`` (10,000) TransactionEvents of one transaction (Started, Updated with meter values ...,
  Ended; seqNo 0..n-1, ``offline: true``) are queued through the service's own path:
  :meth:`CsmsPort.encode` for the wire payload, then :meth:`TransactionRepository.record` (the
  call ``TransactionService`` makes), committed in batches of 500 (``synchronous=FULL``), before
  the station runs, as after a restart with a full queue. The station then runs offline for
  0.2 s (failing to connect); nothing of it is replaced.
- Then the local CSMS (:class:`station.sim.csms.Csms`, the ``ocpp`` library, schema validation on)
  starts on that port. The clock starts at the first frame the station sends on the new
  connection (its BootNotification) and stops when the CSMS sends the CALLRESULT of the last
  TransactionEvent. That includes registration and the StatusNotifications, and one CALL at a time
  (OCPP-J): every event is a full round trip plus the station's durable acknowledgement.
- Afterwards: the station's queue must be empty, and the CSMS must have received exactly n
  TransactionEvents, in order, with gap-free seqNo 0..n-1, none twice.

- For comparison the same payloads are then sent to a fresh CSMS by a raw WebSocket client that
  does nothing else (``csms_floor``): the CSMS's own cost per event (the ``ocpp`` library's schema
  validation and key conversion) bounds the figure, and the difference is the station's cost.

- Last, the same queue is replayed to a lean CSMS (a raw WebSocket server that answers every CALL
  at once with a valid CALLRESULT, no validation): the station's own replay rate, which is the
  figure printed last. Against the ``ocpp``-library CSMS the CSMS itself is the bottleneck.

The goal (issue 3) is at least 1,000 events/s. The last line printed is
``replay_events_per_s=<figure>`` (against the lean CSMS).

    python -m benchmarks.replay [--n 10000] [--subprotocol ocpp2.1] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import platform
import pstats
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import websockets

from benchmarks._common import STATION_ID, config_text
from station.app import Station
from station.config import parse_config
from station.ocpp.tx_convert import transaction_event_payload
from station.sim.csms import Csms, Frame
from station.store import PendingMessage
from station.transactions import (
    ChargingState,
    EventType,
    IdToken,
    IdTokenType,
    Location,
    Measurand,
    MeterValue,
    ReadingContext,
    SampledValue,
    StoppedReason,
    TransactionEventOut,
    TriggerReason,
)
from station.transactions.service import TRANSACTION_EVENT

BATCH = 500
FLOOR_N = 2000
TIMEOUT_S = 10.0
TRANSACTION_ID = "replay-benchmark-0001"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class BenchmarkError(Exception):
    """The station did not replay its queue as it must."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _values(seq_no: int, context: ReadingContext) -> tuple[MeterValue, ...]:
    at = T0 + timedelta(seconds=seq_no)
    energy_wh = seq_no * 5.5
    return (
        MeterValue(
            at,
            (
                SampledValue(
                    energy_wh,
                    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
                    context,
                    "Wh",
                    Location.OUTLET,
                ),
                SampledValue(
                    0.0, Measurand.ENERGY_ACTIVE_EXPORT_REGISTER, context, "Wh", Location.OUTLET
                ),
                SampledValue(20000.0, Measurand.POWER_ACTIVE_IMPORT, context, "W", Location.OUTLET),
            ),
        ),
    )


def event(seq_no: int, n: int) -> TransactionEventOut:
    """The seq_no-th event of a transaction of n events, as the machine would emit it."""
    common = {
        "timestamp": T0 + timedelta(seconds=seq_no),
        "seq_no": seq_no,
        "transaction_id": TRANSACTION_ID,
        "evse_id": 1,
        "connector_id": 1,
        "offline": True,
    }
    if seq_no == 0:
        return TransactionEventOut(
            event_type=EventType.STARTED,
            trigger_reason=TriggerReason.AUTHORIZED,
            charging_state=ChargingState.CHARGING,
            id_token=IdToken("04A1B2C3", IdTokenType.ISO14443),
            meter_values=_values(seq_no, ReadingContext.TRANSACTION_BEGIN),
            **common,  # type: ignore[arg-type]
        )
    if seq_no == n - 1:
        return TransactionEventOut(
            event_type=EventType.ENDED,
            trigger_reason=TriggerReason.EV_COMMUNICATION_LOST,
            stopped_reason=StoppedReason.EV_DISCONNECTED,
            charging_state=ChargingState.IDLE,
            meter_values=_values(seq_no, ReadingContext.TRANSACTION_END),
            **common,  # type: ignore[arg-type]
        )
    return TransactionEventOut(
        event_type=EventType.UPDATED,
        trigger_reason=TriggerReason.METER_VALUE_PERIODIC,
        meter_values=_values(seq_no, ReadingContext.SAMPLE_PERIODIC),
        **common,  # type: ignore[arg-type]
    )


def fill_queue(station: Station, n: int) -> float:
    """Queue n events through the service's encode + record path; returns the seconds it took."""
    service = station.transactions
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        pending = [
            PendingMessage(TRANSACTION_EVENT, service.csms.encode(event(k, n)), TRANSACTION_ID)
            for k in range(first, min(first + BATCH, n))
        ]
        # open_transaction None: the transaction is over (its Ended is queued), nothing to recover.
        service.transactions.record(1, None, pending, now=T0)
    return time.perf_counter() - started


@dataclass
class Timing:
    first_frame: float = 0.0
    first_event: float = 0.0
    last_result: float = 0.0
    last_id: str | None = None


async def measure(n: int, subprotocol: str, directory: Path) -> tuple[Timing, float, str]:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ocpp"
    text = config_text(url, directory / "station.db", log_level="WARNING")
    station = Station(parse_config(text, source="<benchmark>", base_dir=directory))
    # Queued before the station runs: its delivery task finds them at start, as after a restart.
    fill_s = fill_queue(station, n)
    if len(station.transactions.queue) != n:
        raise BenchmarkError(f"queued {len(station.transactions.queue)}, expected {n}")
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    timing = Timing()
    done = asyncio.Event()

    def on_frame(frame: Frame) -> None:
        now = time.perf_counter()
        if frame.station_id != STATION_ID:
            return
        if frame.direction == "in" and not timing.first_frame:
            timing.first_frame = now
        if frame.direction == "in" and frame.action == "TransactionEvent":
            if not timing.first_event:
                timing.first_event = now
            if frame.payload.get("seqNo") == n - 1:
                timing.last_id = str(frame.message[1])
        elif (
            frame.direction == "out"
            and frame.message_type == 3
            and timing.last_id is not None
            and frame.message[1] == timing.last_id
        ):
            timing.last_result = now
            done.set()

    csms = Csms(port=port, subprotocols=(subprotocol,), on_frame=on_frame)
    try:
        await asyncio.sleep(0.2)  # the station is up and has failed to connect at least once
        if station.transactions.csms.online or station.transactions.delivered:
            raise BenchmarkError("the station is online before the CSMS exists")
        await csms.start()
        await asyncio.wait_for(done.wait(), max(60.0, n / 50))
        async with asyncio.timeout(TIMEOUT_S):
            while len(station.transactions.queue):
                await asyncio.sleep(0.01)
        version = station.link.version or "?"
        check(csms, n)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)
        await csms.stop()
    return timing, fill_s, version


class LeanCsms:
    """A CSMS that costs next to nothing: every CALL answered at once with a valid CALLRESULT,
    no schema validation, no key conversion. With it the replay figure is the station's own
    (``--csms lean``); the ``ocpp``-library CSMS bounds the figure by its own cost per event."""

    def __init__(self, port: int, subprotocol: str, n: int) -> None:
        self.port = port
        self.subprotocol = subprotocol
        self.n = n
        self.timing = Timing()
        self.done = asyncio.Event()
        self.events: list[dict[str, Any]] = []
        self._server: Any = None

    async def start(self) -> None:
        self._server = await websockets.serve(
            self._session,
            "127.0.0.1",
            self.port,
            subprotocols=[websockets.Subprotocol(self.subprotocol)],
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, ws: Any) -> None:
        timing = self.timing
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                now = time.perf_counter()
                message = json.loads(raw)
                if message[0] != 2:
                    continue
                if not timing.first_frame:
                    timing.first_frame = now
                _, unique_id, action, payload = message
                result: dict[str, Any] = {}
                stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                if action == "BootNotification":
                    result = {"currentTime": stamp, "interval": 300, "status": "Accepted"}
                elif action == "Heartbeat":
                    result = {"currentTime": stamp}
                elif action == TRANSACTION_EVENT:
                    if not timing.first_event:
                        timing.first_event = now
                    self.events.append(payload)
                await ws.send(json.dumps([3, unique_id, result]))
                if action == TRANSACTION_EVENT and payload.get("seqNo") == self.n - 1:
                    timing.last_result = time.perf_counter()
                    self.done.set()


async def measure_lean(n: int, subprotocol: str, directory: Path) -> tuple[Timing, float, str]:
    """As :func:`measure`, against :class:`LeanCsms`: the station's own replay rate."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ocpp"
    text = config_text(url, directory / "station.db", log_level="WARNING")
    station = Station(parse_config(text, source="<benchmark>", base_dir=directory))
    fill_s = fill_queue(station, n)
    stop = asyncio.Event()
    task = asyncio.ensure_future(station.run(stop))
    csms = LeanCsms(port, subprotocol, n)
    try:
        await asyncio.sleep(0.2)
        if station.transactions.csms.online or station.transactions.delivered:
            raise BenchmarkError("the station is online before the CSMS exists")
        await csms.start()
        await asyncio.wait_for(csms.done.wait(), max(60.0, n / 50))
        async with asyncio.timeout(TIMEOUT_S):
            while len(station.transactions.queue):
                await asyncio.sleep(0.01)
        version = station.link.version or "?"
        seq = [e["seqNo"] for e in csms.events]
        if seq != list(range(n)):
            raise BenchmarkError(f"lean CSMS: received {len(seq)} events, order/seqNo broken")
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)
        await csms.stop()
    return csms.timing, fill_s, version


async def csms_floor(n: int, subprotocol: str) -> float:
    """Events/s of a client that costs nothing against the same CSMS: the same n payloads,
    pre-encoded, sent one CALL at a time over a raw WebSocket. The station cannot replay
    faster than this; the difference per event is the station's own cost."""
    port = free_port()
    frames = [
        json.dumps([2, str(k), TRANSACTION_EVENT, transaction_event_payload(event(k, n))])
        for k in range(n)
    ]
    async with (
        Csms(port=port, subprotocols=(subprotocol,)),
        websockets.connect(
            f"ws://127.0.0.1:{port}/ocpp/FLOOR-001",
            subprotocols=[websockets.Subprotocol(subprotocol)],
        ) as ws,
    ):
        started = time.perf_counter()
        for frame in frames:
            await ws.send(frame)
            reply = json.loads(await ws.recv())
            if reply[0] != 3:
                raise BenchmarkError(f"the CSMS refused a raw TransactionEvent: {reply!r}")
        return n / (time.perf_counter() - started)


def check(csms: Csms, n: int) -> None:
    """Exactly n TransactionEvents, in order, seqNo 0..n-1 gap-free, none twice."""
    events = [f.payload for f in csms.received("TransactionEvent", STATION_ID)]
    seq = [e["seqNo"] for e in events]
    if seq != list(range(n)):
        first_bad = next((i for i, s in enumerate(seq) if s != i), len(seq))
        raise BenchmarkError(
            f"received {len(seq)} events; order/seqNo broken at position {first_bad}"
        )
    if {e["transactionInfo"]["transactionId"] for e in events} != {TRANSACTION_ID}:
        raise BenchmarkError("events of an unexpected transaction")
    if not all(e.get("offline") is True for e in events):
        raise BenchmarkError("an event lost its offline flag")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="queued events (10000)")
    parser.add_argument(
        "--subprotocol",
        choices=["ocpp2.1", "ocpp2.0.1"],
        default="ocpp2.1",
        help="the one the CSMS offers (default ocpp2.1)",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run to this file")
    args = parser.parse_args(argv)
    if not 2 <= args.n <= 1_000_000:
        parser.error("--n must be 2..1000000")
    logging.basicConfig(level=logging.WARNING)

    print(
        "replay: queued TransactionEvents delivered after reconnect, station and CSMS on 127.0.0.1"
    )
    print(f"  python {platform.python_version()}; n={args.n}, one CALL in flight (OCPP-J)")
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="station-bench-replay-") as tmp:
        try:
            if profiler is not None:
                profiler.enable()
            timing, fill_s, version = asyncio.run(measure(args.n, args.subprotocol, Path(tmp)))
            if profiler is not None:
                profiler.disable()
            floor = asyncio.run(csms_floor(min(args.n, FLOOR_N), args.subprotocol))
            lean, _, _ = asyncio.run(measure_lean(args.n, args.subprotocol, Path(tmp) / "lean"))
        except (BenchmarkError, TimeoutError) as exc:
            print(f"replay: FAILED: {exc!r}", file=sys.stderr)
            return 1
        finally:
            if profiler is not None:
                profiler.disable()
    if profiler is not None:
        profiler.dump_stats(str(args.profile))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    elapsed = timing.last_result - timing.first_frame
    tx_elapsed = timing.last_result - timing.first_event
    rate = args.n / elapsed
    boot_ms = 1000 * (timing.first_event - timing.first_frame)
    print(
        f"  OCPP {version}; queue of {args.n} built offline in {fill_s:.2f} s (batches of {BATCH})"
    )
    print(
        f"  connect (first frame) → last CALLRESULT: {elapsed:.2f} s; "
        f"boot and statuses before the first event: {boot_ms:.0f} ms"
    )
    print(
        f"  first → last TransactionEvent: {tx_elapsed:.2f} s, "
        f"{1000 * tx_elapsed / args.n:.3f} ms per event"
    )
    print("  verified: queue empty, n events received in order, seqNo 0..n-1 gap-free, none twice")
    print(
        f"  the CSMS alone (raw WebSocket client, same payloads, one CALL in flight): "
        f"{floor:.0f} events/s, {1000 / floor:.3f} ms per event; the station adds "
        f"{1000 * tx_elapsed / args.n - 1000 / floor:.3f} ms per event"
    )
    lean_elapsed = lean.last_result - lean.first_frame
    lean_rate = args.n / lean_elapsed
    print(
        f"  against a lean CSMS (every CALL answered at once, no validation: the station's own "
        f"rate): connect → last CALLRESULT {lean_elapsed:.2f} s, {lean_rate:.0f} events/s "
        f"({1000 * lean_elapsed / args.n:.3f} ms per event); verified in order, gap-free"
    )
    print(
        f"  against the ocpp-library CSMS: {rate:.0f} events/s "
        f"(bounded by that CSMS: {floor:.0f}/s)"
    )
    print(f"replay_events_per_s={lean_rate:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
