"""The crash test as a figure (issue 3): SIGKILL ``station run`` at random points, count losses.

How it is measured:

- A local CSMS (:class:`station.sim.csms.Csms`, the ``ocpp`` library, schema validation on) listens
  on 127.0.0.1 in this process. ``station run`` (the installed console script, see
  :func:`benchmarks._common.station_command`) runs as a real subprocess with one EVSE whose
  simulated vehicle plugs in and presents a token as soon as the station is online
  (``[[evse]] sim_autostart = true``), so every run that gets online starts a charging session.
  Bytecode is cached in a temporary ``PYTHONPYCACHEPREFIX`` (as on an installed image).
- The first run is allowed to register; the CSMS sets ``TxUpdatedInterval = 1`` (a meter sample
  every second, persisted). Then ``--kills`` times: SIGKILL (no clean-up of any kind) at a moment
  drawn uniformly from 0.3-2.5 s after the start (after the SetVariables on the first run), and a
  restart on the same SQLite file. So kills land while the station starts and opens its
  database, while it registers, while it recovers and replays the sessions of earlier runs, and
  while it charges.
- After each kill, with the station dead, the benchmark reads the store (the queue of messages
  the CSMS must receive, and the open transactions) to know what the next run owes the CSMS.
- After the last kill, a clean run: it recovers, delivers, starts a new session, and 0.5 s later
  gets SIGTERM; it must exit with status 0. Then the queue must be empty.

Figures, from the TransactionEvents the CSMS received:

- kills survived: kills after which the station booted again, the session open at the kill was
  Ended with stoppedReason PowerLoss, and every message queued at the kill reached the CSMS
  unaltered.
- events lost: seqNo gaps (each transaction from 0), sessions open at a kill without an Ended
  (PowerLoss), messages queued at a kill that never arrived, messages left in the queue at the
  end, and transactions the store knew that the CSMS never heard of (the categories can overlap;
  each is 0 when nothing is lost).
- events repeated: the same seqNo of a transaction received again. The station commits each CSMS
  acknowledgement before it sends the next message, so only the message in flight at a kill can
  be sent twice: at most one repeat per kill, and it must be identical (JSON text, key order
  included). A copy that differs counts as altered.
- events delivered: distinct TransactionEvents (transaction, seqNo) received.

With ``--resume-s S`` the station runs with ``[transactions] resumption_timeout_s = S`` (OCPP 2.1
ResumptionTimeout): a session open at a kill, whose simulated vehicle is still plugged in when
the station comes back within S seconds, is resumed rather than ended, so one transaction spans
many kills. Then a session open at a kill counts as recovered when it was resumed (an event with
Interruption.End readings) or Ended for any reason, and "resumed" counts the resumptions.

Goal (issue 3): 0 lost, repeats ≤ kills (one per restart at most), 0 altered. The last line
printed is ``crash_lost_events=<n>``; the exit status is 1 when the goal is not met or the
measurement failed.

    python -m benchmarks.crash [--kills 20] [--seed N] [--subprotocol ocpp2.0.1] [--resume-s 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import STATION_ID, StationProcess, config_text, station_env
from station.sim.csms import Csms, Frame
from station.store import OutboundQueue, TransactionRepository, open_database

KILL_AFTER_S = (0.3, 2.5)
BOOT_TIMEOUT_S = 30.0
FINAL_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 20.0
TRANSACTION_EVENT = "TransactionEvent"
ENERGY = "Energy.Active.Import.Register"
EVSE_TABLE = '[[evse]]\nid = 1\nconnector = "chademo"\nsim_autostart = true\n'


class BenchmarkError(Exception):
    """The scenario could not be run to its end (a station that never came up, a bad exit)."""


@dataclass(frozen=True, slots=True)
class Queued:
    """One message in the station's queue when it was killed."""

    action: str
    transaction_id: str | None
    seq_no: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Kill:
    """What the store held right after one SIGKILL, and where the kill landed."""

    index: int
    after_s: float
    phase: str
    frame_index: int  # len(csms.frames) at the kill: what came later came from later runs
    open_ids: tuple[str, ...]
    queued: tuple[Queued, ...]


@dataclass
class Run:
    kills: list[Kill] = field(default_factory=list)
    final_exit: int = 0
    final_stop_s: float = 0.0
    final_queue: int = 0
    final_open_ids: tuple[str, ...] = ()
    frames: list[Frame] = field(default_factory=list)
    seconds: float = 0.0


def text_of(payload: Any) -> str:
    """A payload as compact JSON text in its own key order (as the store writes it)."""
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def energy(payload: dict[str, Any]) -> list[float]:
    return [
        float(sv["value"])
        for mv in payload.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand") == ENERGY
    ]


def phase_of(frames: Sequence[Frame]) -> str:
    """Where a run was when it was killed, from what the CSMS had received from it."""
    actions = {f.action for f in frames if f.direction == "in" and f.station_id == STATION_ID}
    if "BootNotification" not in actions:
        return "starting"
    if TRANSACTION_EVENT not in actions:
        return "registered"
    return "sending"


def read_store(database: Path) -> tuple[tuple[str, ...], tuple[Queued, ...]]:
    """The open transactions and the queued messages of a stopped station."""
    db = open_database(database, upgrade=False)
    try:
        open_ids = tuple(t.transaction_id for t in TransactionRepository(db).open_transactions())
        queue = OutboundQueue(db)
        messages = queue.peek(max(1, len(queue)))
    finally:
        db.close()
    queued = tuple(
        Queued(
            m.action,
            m.transaction_id,
            m.payload.get("seqNo") if m.action == TRANSACTION_EVENT else None,
            text_of(m.payload),
        )
        for m in messages
    )
    return open_ids, queued


async def measure(
    kills: int, rng: random.Random, directory: Path, subprotocol: str, resume_s: int = 0
) -> tuple[Run, StationProcess]:
    database = directory / "station.db"
    config = directory / "station.toml"
    log_path = directory / "station.log"
    env = station_env(directory / "pycache")
    run = Run()
    started = time.perf_counter()
    async with Csms(subprotocols=(subprotocol,)) as csms:
        config.write_text(
            config_text(csms.url, database, evses=0)
            + EVSE_TABLE
            + (f"[transactions]\nresumption_timeout_s = {resume_s}\n" if resume_s else ""),
            encoding="utf-8",
        )
        for index in range(kills):
            first_frame = len(csms.frames)
            station = StationProcess(config, log_path, env)
            await station.start()
            try:
                if index == 0:
                    await csms.wait_action(
                        "BootNotification", STATION_ID, timeout_s=BOOT_TIMEOUT_S, include_past=True
                    )
                    await csms.wait_connected(STATION_ID, timeout_s=BOOT_TIMEOUT_S)
                    item = {
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                        "attributeValue": "1",
                    }
                    await csms.call(STATION_ID, "SetVariables", {"setVariableData": [item]})
                after_s = rng.uniform(*KILL_AFTER_S)
                await asyncio.sleep(after_s)
                if station.process is not None and station.process.returncode is not None:
                    raise BenchmarkError(
                        f"the station exited by itself ({station.process.returncode}) "
                        "before it was killed"
                    )
            finally:
                await station.kill()  # SIGKILL
            open_ids, queued = read_store(database)
            run.kills.append(
                Kill(
                    index,
                    after_s,
                    phase_of(csms.frames[first_frame:]),
                    len(csms.frames),
                    open_ids,
                    queued,
                )
            )

        # The clean run: recover, deliver, start a new session (or, resuming, carry the open
        # one on: its first sample after the resume), then SIGTERM.
        seen = {
            f.payload["transactionInfo"]["transactionId"] for f in csms.received(TRANSACTION_EVENT)
        }
        final_from = len(csms.frames)
        station = StationProcess(config, log_path, env)
        await station.start()

        def goes_on(frame: Frame) -> bool:
            if frame.direction != "in" or frame.action != TRANSACTION_EVENT:
                return False
            if frame.payload.get("eventType") == "Started":
                return frame.payload["transactionInfo"]["transactionId"] not in seen
            return bool(resume_s) and frame.payload.get("triggerReason") == "MeterValuePeriodic"

        try:
            if not any(goes_on(f) for f in csms.frames[final_from:]):
                await csms.wait_for(goes_on, timeout_s=FINAL_TIMEOUT_S)
            await asyncio.sleep(0.5)
            run.final_exit, run.final_stop_s = await station.terminate(STOP_TIMEOUT_S)
        finally:
            await station.kill()
        run.frames = list(csms.frames)
    run.seconds = time.perf_counter() - started
    db = open_database(database, upgrade=False)
    try:
        run.final_queue = len(OutboundQueue(db))
        run.final_open_ids = tuple(
            t.transaction_id for t in TransactionRepository(db).open_transactions()
        )
    finally:
        db.close()
    return run, station


@dataclass
class Figures:
    delivered: int = 0
    frames: int = 0
    transactions: int = 0
    repeats: int = 0
    max_repeats_per_restart: int = 0
    altered: int = 0
    gaps: int = 0
    not_ended: int = 0
    queued_not_received: int = 0
    left_in_queue: int = 0
    never_heard: int = 0
    energy_backwards: int = 0
    survived: int = 0
    resumed: int = 0
    phases: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        return (
            self.gaps
            + self.not_ended
            + self.queued_not_received
            + self.left_in_queue
            + self.never_heard
        )


def resumed_event(payload: dict[str, Any]) -> bool:
    """The event that resumes a transaction (TxResumed; ChargingStateChanged on 2.0.1): the
    one whose readings are taken at the end of an interruption."""
    return any(
        sv.get("context") == "Interruption.End"
        for mv in payload.get("meterValue", [])
        for sv in mv["sampledValue"]
    )


def analyse(run: Run, *, resume: bool = False) -> Figures:
    fig = Figures()
    events = [
        (i, f)
        for i, f in enumerate(run.frames)
        if f.direction == "in" and f.station_id == STATION_ID and f.action == TRANSACTION_EVENT
    ]
    fig.frames = len(events)
    copies: dict[tuple[str, int], list[tuple[int, Frame]]] = {}
    by_tx: dict[str, dict[int, dict[str, Any]]] = {}
    for i, frame in events:
        payload = frame.message[3]
        tx = str(payload["transactionInfo"]["transactionId"])
        seq_no = int(payload["seqNo"])
        copies.setdefault((tx, seq_no), []).append((i, frame))
        by_tx.setdefault(tx, {}).setdefault(seq_no, payload)
    fig.delivered = len(copies)
    fig.transactions = len(by_tx)
    received_text = {key: text_of(c[0][1].message[3]) for key, c in copies.items()}

    per_connection: Counter[int] = Counter()
    for frames in copies.values():
        first = text_of(frames[0][1].message[3])
        for _, frame in frames[1:]:
            if text_of(frame.message[3]) == first:
                fig.repeats += 1
                per_connection[frame.connection] += 1
            else:
                fig.altered += 1
    fig.max_repeats_per_restart = max(per_connection.values(), default=0)

    for seqs in by_tx.values():
        fig.gaps += max(seqs) + 1 - len(seqs)
        ordered = [seqs[k] for k in sorted(seqs)]
        values = [v for payload in ordered for v in energy(payload)]
        fig.energy_backwards += sum(1 for a, b in itertools.pairwise(values) if b < a)

    def ended_power_loss(tx: str) -> bool:
        return any(
            p.get("eventType") == "Ended"
            and (resume or p["transactionInfo"].get("stoppedReason") == "PowerLoss")
            for p in by_tx.get(tx, {}).values()
        )

    def resumed(tx: str) -> bool:
        return any(resumed_event(p) for p in by_tx.get(tx, {}).values())

    fig.resumed = sum(resumed_event(p) for seqs in by_tx.values() for p in seqs.values())

    killed_open = {tx for kill in run.kills for tx in kill.open_ids}
    store_known = killed_open | set(run.final_open_ids)
    queued_keys: set[tuple[str, int]] = set()
    for kill in run.kills:
        for message in kill.queued:
            if message.transaction_id is not None:
                store_known.add(message.transaction_id)
            if message.transaction_id is not None and message.seq_no is not None:
                key = (message.transaction_id, message.seq_no)
                queued_keys.add(key)
                if key in received_text and received_text[key] != message.text:
                    fig.altered += 1
    fig.queued_not_received = len(queued_keys - copies.keys())
    fig.never_heard = len(store_known - by_tx.keys())
    # Every session a kill interrupted, and every other one but the final run's, must be Ended.
    must_end = (killed_open | by_tx.keys()) - set(run.final_open_ids)
    if resume:  # a session resumed by the last run is still open at its SIGTERM
        must_end -= {tx for tx in must_end if resumed(tx) and tx in run.final_open_ids}
    fig.not_ended = sum(1 for tx in must_end if not ended_power_loss(tx))
    fig.left_in_queue = run.final_queue

    booted_at = [
        i
        for i, f in enumerate(run.frames)
        if f.direction == "in" and f.station_id == STATION_ID and f.action == "BootNotification"
    ]
    for kill in run.kills:
        fig.phases[kill.phase] += 1
        booted = any(i >= kill.frame_index for i in booted_at)
        recovered = all(
            ended_power_loss(tx) or (resume and (resumed(tx) or tx in run.final_open_ids))
            for tx in kill.open_ids
        )
        delivered = all(
            (m.transaction_id, m.seq_no) in copies
            and received_text[(m.transaction_id, m.seq_no)] == m.text
            for m in kill.queued
            if m.transaction_id is not None and m.seq_no is not None
        )
        fig.survived += booted and recovered and delivered
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash", description=__doc__)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (20)")
    parser.add_argument("--seed", type=int, help="seed of the kill moments (default: random)")
    parser.add_argument(
        "--subprotocol",
        choices=["ocpp2.1", "ocpp2.0.1"],
        default="ocpp2.0.1",
        help="the one the CSMS offers (default ocpp2.0.1)",
    )
    parser.add_argument(
        "--resume-s",
        type=int,
        default=0,
        help="[transactions] resumption_timeout_s: resume sessions after a kill (default 0: "
        "end them with PowerLoss)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.kills <= 1000:
        parser.error("--kills must be 1..1000")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    logging.basicConfig(level=logging.WARNING)

    low, high = KILL_AFTER_S
    print("crash: SIGKILL `station run` at random points, restart on the same SQLite file")
    print(
        f"  python {platform.python_version()}; kills={args.kills}, seed={seed}, "
        f"each {low}-{high} s (uniform) after the start; {args.subprotocol}; "
        f"resumption_timeout_s={args.resume_s}; "
        "station and CSMS on 127.0.0.1"
    )
    print(
        "  one EVSE, its simulated vehicle starts a session whenever the station is online; "
        "after the last kill a clean run until a new (or resumed) session goes on, then SIGTERM"
    )
    with tempfile.TemporaryDirectory(prefix="station-bench-crash-") as tmp:
        station: StationProcess | None = None
        try:
            run, station = asyncio.run(
                measure(args.kills, random.Random(seed), Path(tmp), args.subprotocol, args.resume_s)
            )
        except (BenchmarkError, TimeoutError, OSError) as exc:
            log = Path(tmp) / "station.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            print(f"crash: FAILED: {exc!r}", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)
            return 1
        if run.final_exit != 0:
            print(f"crash: FAILED: the clean run exited with {run.final_exit}", file=sys.stderr)
            print(station.log_tail(), file=sys.stderr)
            return 1
    fig = analyse(run, resume=args.resume_s > 0)
    met = fig.lost == 0 and fig.altered == 0 and fig.repeats <= args.kills
    met = met and fig.max_repeats_per_restart <= 1 and fig.energy_backwards == 0
    print(
        f"  kills landed: {fig.phases['starting']} while starting (before BootNotification), "
        f"{fig.phases['registered']} registered (no TransactionEvent yet), "
        f"{fig.phases['sending']} while TransactionEvents flowed (recovery, replay, charging)"
    )
    print(
        f"  read after each kill, summed: {sum(len(k.open_ids) for k in run.kills)} open "
        f"sessions and {sum(len(k.queued) for k in run.kills)} queued messages in the store"
    )
    print(
        f"  {fig.transactions} transactions; clean run: SIGTERM → exit 0 in "
        f"{run.final_stop_s:.2f} s; {run.seconds:.0f} s in all"
    )
    print(
        f"  kills survived: {fig.survived}/{args.kills} (booted again, the session open at the "
        + ("kill resumed or Ended" if args.resume_s else "kill Ended with PowerLoss")
        + ", every message queued at the kill delivered unaltered)"
    )
    if args.resume_s:
        print(f"  sessions resumed after a kill: {fig.resumed}")
    print(f"  events delivered: {fig.delivered} distinct TransactionEvents ({fig.frames} frames)")
    print(
        f"  events repeated: {fig.repeats} (same seqNo again, identical; at most "
        f"{fig.max_repeats_per_restart} on one connection; limit ≤ kills = {args.kills})"
    )
    print(f"  events altered: {fig.altered} (same seqNo, different content)")
    print(
        f"  events lost: {fig.lost} = seqNo gaps {fig.gaps} + sessions not Ended (PowerLoss) "
        f"{fig.not_ended} + queued at a kill, never received {fig.queued_not_received} + left "
        f"in the queue {fig.left_in_queue} + transactions the CSMS never heard of "
        f"{fig.never_heard}"
    )
    print(f"  energy register readings going backwards: {fig.energy_backwards}")
    print(
        "  verdict: goal "
        + ("met" if met else "NOT met")
        + " (lost 0, repeats ≤ kills and ≤ 1 per restart, altered 0)"
    )
    print(f"crash_lost_events={fig.lost}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
