"""``station schedule``: the composite schedule of the profiles a station's database holds.

Owns reading the installed profiles and open transactions from the database (read-only: nothing
is migrated or written, and SQLite WAL lets this run beside a running station), computing the
composite schedule per EVSE with the pure core, and rendering it as table lines or, with the
optional ``plot`` extra, as a PNG. It does not print (that is ``cli.py``) and does not know OCPP.

Signs follow DESIGN.md: positive = into the vehicle, negative = out of it; ``limit`` >= 0,
``discharge_limit`` <= 0, a negative ``setpoint`` commands a discharge. A ``-`` means that no
profile constrains the value (the station then applies the EVSE's rating).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from station.clock import SystemClock
from station.config import Config, EvseConfig
from station.errors import StationError, StoreError
from station.smartcharging import (
    CompositeSchedule,
    ElectricalParams,
    RateUnit,
    TransactionInfo,
    composite_schedule,
)
from station.smartcharging.service import dc_electrical
from station.store import open_database
from station.store.profiles import ProfileRepository
from station.store.transactions import TransactionRepository

__all__ = [
    "PlotUnavailableError",
    "UnknownEvseError",
    "composite_schedules",
    "format_table",
    "plot_schedules",
]

PLOT_HINT = "pip install station[plot]"


class UnknownEvseError(StationError):
    """``--evse`` names an EVSE the configuration does not have."""


class PlotUnavailableError(StationError):
    """``--plot`` was asked for but matplotlib is not installed."""


def electrical_params(evse: EvseConfig) -> ElectricalParams:
    """The EVSE's A <-> W parameters, exactly as the running station uses them."""
    return dc_electrical(evse.max_charge_power_w, evse.max_current_a)


def composite_schedules(
    config: Config,
    *,
    evse_id: int | None,
    duration_s: int,
    unit: str,
    start: datetime | None = None,
) -> list[CompositeSchedule]:
    """The composite schedule of each EVSE (or of ``evse_id``) from ``start`` (default now).

    TxProfiles count for the transaction the database holds open on their EVSE, which also
    anchors Relative profiles, as in the running station.

    Raises:
        UnknownEvseError: ``evse_id`` is not configured.
        StoreError: there is no database yet, or it cannot be read.
        StationError: ``duration_s`` is negative.
    """
    if duration_s < 0:
        raise StationError(f"--duration must be >= 0, got {duration_s}")
    evses = list(config.evse)
    if evse_id is not None:
        evses = [e for e in evses if e.id == evse_id]
        if not evses:
            known = ", ".join(str(e.id) for e in config.evse) or "none"
            raise UnknownEvseError(f"unknown EVSE {evse_id} (configured: {known})")
    path = Path(config.storage.database)
    if not path.is_file():
        raise StoreError(f"no database at {path} (has the station run?)")
    db = open_database(path, upgrade=False)
    try:
        profiles = ProfileRepository(db).load_all()
        transactions = {
            tx.evse_id: TransactionInfo(tx.transaction_id, tx.started_at)
            for tx in TransactionRepository(db).open_transactions()
        }
    finally:
        db.close()
    now = start if start is not None else SystemClock().now()
    rate_unit = RateUnit(unit)
    return [
        composite_schedule(
            profiles,
            evse_id=evse.id,
            start=now,
            duration_s=duration_s,
            rate_unit=rate_unit,
            electrical=electrical_params(evse),
            now=now,
            transaction=transactions.get(evse.id),
        )
        for evse in evses
    ]


def _number(base: float | None, l2: float | None, l3: float | None) -> str:
    if base is None:
        return "-"
    if l2 is None and l3 is None:
        return f"{base:.1f}"
    return "/".join("-" if v is None else f"{v:.1f}" for v in (base, l2, l3))


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_table(schedule: CompositeSchedule) -> list[str]:
    """The schedule as text lines: a title, a header and one row per composite period.

    Per-phase values (when a profile gave them) show as ``L1/L2/L3``.
    """
    unit = schedule.rate_unit.value
    lines = [
        f"EVSE {schedule.evse_id}: composite schedule from {_utc(schedule.schedule_start)} "
        f"for {schedule.duration_s} s, in {unit}",
        f"{'start (UTC)':<20}  {'duration_s':>10}  {'limit_' + unit:>12}  "
        f"{'discharge_' + unit:>12}  {'setpoint_' + unit:>12}  mode",
    ]
    periods = schedule.periods
    for i, period in enumerate(periods):
        end_s = periods[i + 1].start_period_s if i + 1 < len(periods) else schedule.duration_s
        value = period.value
        begins = schedule.schedule_start + timedelta(seconds=period.start_period_s)
        discharge = _number(
            value.discharge_limit, value.discharge_limit_l2, value.discharge_limit_l3
        )
        lines.append(
            f"{_utc(begins):<20}  {end_s - period.start_period_s:>10}  "
            f"{_number(value.limit, value.limit_l2, value.limit_l3):>12}  "
            f"{discharge:>12}  "
            f"{_number(value.setpoint, value.setpoint_l2, value.setpoint_l3):>12}  "
            f"{value.operation_mode.value}"
        )
    return lines


def plot_schedules(schedules: Sequence[CompositeSchedule], path: str | Path) -> None:
    """Draw the schedules as step lines into a PNG: charging above zero, discharging below.

    Raises:
        PlotUnavailableError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError(f"--plot needs matplotlib: {PLOT_HINT}") from None

    fig, axes = plt.subplots(
        len(schedules), 1, figsize=(10, 3 * max(len(schedules), 1)), squeeze=False
    )
    for ax, schedule in zip(axes[:, 0], schedules, strict=True):
        starts = [p.start_period_s / 3600 for p in schedule.periods]
        xs = [*starts, max(schedule.duration_s, 1) / 3600]

        def series(values: list[float | None]) -> list[float]:
            ys = [float("nan") if v is None else v for v in values]
            return [*ys, ys[-1]] if ys else ys

        values = [p.value for p in schedule.periods]
        ax.step(xs, series([v.limit for v in values]), where="post", label="limit")
        ax.step(
            xs, series([v.discharge_limit for v in values]), where="post", label="discharge limit"
        )
        ax.step(xs, series([v.setpoint for v in values]), where="post", label="setpoint")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"EVSE {schedule.evse_id} from {_utc(schedule.schedule_start)}")
        ax.set_xlabel("hours from start")
        ax.set_ylabel(f"{schedule.rate_unit.value} (+ charge, - discharge)")
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
