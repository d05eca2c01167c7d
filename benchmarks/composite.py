"""Composite schedule computations per second: a 3-profile stack x 48 periods (issue 4).

How it is measured:

- The pure core only (:func:`station.smartcharging.composite_schedule`), no I/O, one thread.
- The stack, for EVSE 1 of a DC station with a transaction running: a ChargingStationMaxProfile
  on EVSE 0 (W, Absolute, 48 periods of 30 min, from midnight), a TxDefaultProfile on EVSE 1
  (A, Relative, 48 periods of 30 min, converted to W) and a TxProfile for the transaction (W,
  Absolute, stack level 1, 48 periods of 30 min shifted by 15 min, CentralSetpoint with a
  set-point and discharge limit that alternate sign, so discharge periods occur). 3 x 48 periods.
- Each computation is one ``composite_schedule(...)`` call for 86,400 s from ``now`` in W, the
  same call the station makes for GetCompositeSchedule; ``now`` advances by one second per
  call (cycling through one hour) so no call repeats its predecessor's input. ``--warmup``
  (200) untimed calls, then calls for ``--seconds`` (2.0 s) of wall time, timed with
  ``time.perf_counter``; the figure is calls / elapsed seconds, the best of ``--repeat`` (3)
  rounds.
- The composite core remembers, between calls, what it derived from each (frozen) period and
  each combination of periods (bounded memos keyed by object identity): a station evaluating
  the same installed profiles again and again benefits from that, and so does this benchmark.

The last line printed is ``composite_per_s=<figure>``.

    python -m benchmarks.composite [--seconds 2] [--repeat 3] [--warmup 200]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from station.smartcharging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    CompositeSchedule,
    ElectricalParams,
    OperationMode,
    RateUnit,
    SchedulePeriod,
    TransactionInfo,
    composite_schedule,
)

PERIODS = 48
PERIOD_S = 1800
MIDNIGHT = datetime(2025, 6, 1, tzinfo=UTC)
NOW = MIDNIGHT + timedelta(hours=7, minutes=3, seconds=11)
TRANSACTION = TransactionInfo("bench-tx", MIDNIGHT + timedelta(hours=7))
ELECTRICAL = ElectricalParams(400.0, dc=True)


def stack() -> tuple[ChargingProfile, ...]:
    """The three profiles (see the module docstring)."""
    station_max = ChargingProfile(
        id=1,
        stack_level=0,
        purpose=ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE,
        kind=ChargingProfileKind.ABSOLUTE,
        evse_id=0,
        received_at=MIDNIGHT,
        schedules=(
            ChargingSchedule(
                id=1,
                rate_unit=RateUnit.W,
                start_schedule=MIDNIGHT,
                periods=tuple(
                    SchedulePeriod(start_period_s=i * PERIOD_S, limit=40_000.0 + 500.0 * (i % 7))
                    for i in range(PERIODS)
                ),
            ),
        ),
    )
    tx_default = ChargingProfile(
        id=2,
        stack_level=0,
        purpose=ChargingProfilePurpose.TX_DEFAULT_PROFILE,
        kind=ChargingProfileKind.RELATIVE,
        evse_id=1,
        received_at=MIDNIGHT,
        schedules=(
            ChargingSchedule(
                id=2,
                rate_unit=RateUnit.A,
                periods=tuple(
                    SchedulePeriod(
                        start_period_s=i * PERIOD_S, limit=50.0 + 5.0 * (i % 5), number_phases=3
                    )
                    for i in range(PERIODS)
                ),
            ),
        ),
    )
    tx_profile = ChargingProfile(
        id=3,
        stack_level=1,
        purpose=ChargingProfilePurpose.TX_PROFILE,
        kind=ChargingProfileKind.ABSOLUTE,
        evse_id=1,
        transaction_id=TRANSACTION.transaction_id,
        received_at=MIDNIGHT,
        schedules=(
            ChargingSchedule(
                id=3,
                rate_unit=RateUnit.W,
                start_schedule=MIDNIGHT + timedelta(minutes=15),
                periods=tuple(
                    SchedulePeriod(
                        start_period_s=i * PERIOD_S,
                        limit=30_000.0,
                        discharge_limit=-20_000.0,
                        setpoint=(10_000.0 if i % 2 else -10_000.0) + 100.0 * i,
                        operation_mode=OperationMode.CENTRAL_SETPOINT,
                    )
                    for i in range(PERIODS)
                ),
            ),
        ),
    )
    return (station_max, tx_default, tx_profile)


def compute(profiles: Sequence[ChargingProfile], now: datetime) -> CompositeSchedule:
    """One computation: EVSE 1, 24 h from ``now``, in W."""
    return composite_schedule(
        profiles,
        evse_id=1,
        start=now,
        duration_s=86_400,
        rate_unit=RateUnit.W,
        electrical=ELECTRICAL,
        now=now,
        transaction=TRANSACTION,
    )


NOWS = tuple(NOW + timedelta(seconds=s) for s in range(3600))


def one_round(profiles: Sequence[ChargingProfile], seconds: float) -> tuple[int, float]:
    """Compute for ``seconds`` of wall time; return (calls, elapsed seconds)."""
    calls = 0
    started = time.perf_counter()
    while True:
        for now in NOWS[calls % 3600 : calls % 3600 + 50]:
            compute(profiles, now)
            calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return calls, elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.composite", description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="wall time per round (2.0)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best counts (3)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first (200)")
    args = parser.parse_args(argv)
    if not 0.05 <= args.seconds <= 60 or not 1 <= args.repeat <= 20 or args.warmup < 0:
        parser.error("--seconds must be 0.05..60, --repeat 1..20 and --warmup ≥ 0")

    profiles = stack()
    sample = compute(profiles, NOW)
    print("composite: composite_schedule() per second, pure core, one thread")
    print(
        f"  python {platform.python_version()}; 3 profiles x {PERIODS} periods "
        "(station max W, TxDefault A Relative, TxProfile W CentralSetpoint); EVSE 1, 86,400 s, W"
    )
    print(f"  one result has {len(sample.periods)} composite periods")
    for i in range(args.warmup):
        compute(profiles, NOWS[i % len(NOWS)])
    rates: list[float] = []
    for r in range(args.repeat):
        calls, elapsed = one_round(profiles, args.seconds)
        rates.append(calls / elapsed)
        print(f"  round {r + 1}: {calls} calls in {elapsed:.3f} s = {calls / elapsed:,.0f}/s")
    best = max(rates)
    print(f"  best {best:,.0f}/s = {1e6 / best:.1f} µs per computation (goal ≥ 5,000/s)")
    print(f"composite_per_s={best:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
