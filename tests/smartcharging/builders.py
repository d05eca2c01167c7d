"""Builders for smart-charging test data: defaults for everything a test does not care about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from station.smartcharging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    OcppVersion,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    SmartChargingLimits,
)

# A Monday, so that Weekly recurrences line up with calendar weeks in the tables.
T0 = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY

Purpose = ChargingProfilePurpose
Kind = ChargingProfileKind


def at(seconds: int) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def period(start_s: int = 0, limit: float | None = None, **fields: Any) -> SchedulePeriod:
    return SchedulePeriod(start_period_s=start_s, limit=limit, **fields)


def schedule(
    *periods: SchedulePeriod | tuple[int, float],
    unit: RateUnit = RateUnit.A,
    start: datetime | None = None,
    duration_s: int | None = None,
    schedule_id: int = 1,
    **fields: Any,
) -> ChargingSchedule:
    """A schedule; ``(start_s, limit)`` pairs are shorthand for ChargingOnly periods."""
    built = tuple(p if isinstance(p, SchedulePeriod) else period(p[0], p[1]) for p in periods)
    return ChargingSchedule(
        id=schedule_id,
        rate_unit=unit,
        periods=built or (period(0, 16.0),),
        start_schedule=start,
        duration_s=duration_s,
        **fields,
    )


def profile(
    profile_id: int = 1,
    purpose: ChargingProfilePurpose = Purpose.TX_DEFAULT_PROFILE,
    *,
    stack: int = 0,
    evse: int = 1,
    kind: ChargingProfileKind | None = None,
    schedules: tuple[ChargingSchedule, ...] | ChargingSchedule | None = None,
    recurrency: RecurrencyKind | None = None,
    **fields: Any,
) -> ChargingProfile:
    """A profile; Absolute from ``T0`` with 16 A unless told otherwise."""
    if schedules is None:
        schedules = schedule(start=None if kind == Kind.RELATIVE else T0)
    if isinstance(schedules, ChargingSchedule):
        schedules = (schedules,)
    if kind is None:
        kind = Kind.ABSOLUTE
    if kind == Kind.RECURRING and recurrency is None:
        recurrency = RecurrencyKind.DAILY
    return ChargingProfile(
        id=profile_id,
        stack_level=stack,
        purpose=purpose,
        kind=kind,
        schedules=schedules,
        evse_id=evse,
        recurrency=recurrency,
        **fields,
    )


def limits(version: OcppVersion = OcppVersion.V2_1, **fields: Any) -> SmartChargingLimits:
    values: dict[str, Any] = {
        "version": version,
        "entries_max": 10,
        "periods_per_schedule_max": 24,
        "stack_level_max": 8,
    }
    values.update(fields)
    return SmartChargingLimits(**values)
