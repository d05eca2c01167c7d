"""Dynamic charging profiles (OCPP 2.1 K28/K29), pure: new period values and when to pull them.

Owns what UpdateDynamicSchedule (the CSMS pushes) and PullDynamicScheduleUpdate (the station
asks, every ``dynUpdateInterval``) do to a Dynamic profile: the values of its one period are
replaced and ``dynUpdateTime`` becomes the time of the update, which restarts the validity of
the values (``duration`` after ``dynUpdateTime``, see ``composite.py``). It must not do I/O or
read a clock: ``now`` is an argument, and the shell keeps the profiles and sends the messages.

Decision: the update *replaces* the period's limit, discharge limit, set-point and reactive
set-point (and their per-phase forms) with what ``ChargingScheduleUpdateType`` carries; a field
absent from the update is absent afterwards. The period's start, operation mode, phases and
V2X curves are not part of the update and stay as set by SetChargingProfile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

from station.smartcharging.model import (
    ChargingProfile,
    ChargingProfileKind,
    SmartChargingValueError,
)
from station.smartcharging.validation import ReasonCode, Rejection

__all__ = ["ScheduleUpdate", "apply_schedule_update", "next_pull", "pulls_due"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleUpdate:
    """ChargingScheduleUpdateType: new values for a Dynamic profile's period (its rate unit).

    Raises:
        SmartChargingValueError: a value that is not a finite number.
    """

    limit: float | None = None
    limit_l2: float | None = None
    limit_l3: float | None = None
    discharge_limit: float | None = None
    discharge_limit_l2: float | None = None
    discharge_limit_l3: float | None = None
    setpoint: float | None = None
    setpoint_l2: float | None = None
    setpoint_l3: float | None = None
    setpoint_reactive: float | None = None
    setpoint_reactive_l2: float | None = None
    setpoint_reactive_l3: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not math.isfinite(value):
                raise SmartChargingValueError(f"{f.name} must be finite, got {value!r}")


def apply_schedule_update(
    profile: ChargingProfile | None, update: ScheduleUpdate, now: datetime
) -> ChargingProfile | Rejection:
    """The profile with ``update`` applied at ``now``, or why it cannot be.

    Args:
        profile: the installed profile the CSMS named (None: no such profile).
        update: the new values.
        now: the time of the update: the profile's new ``dyn_update_time``.

    Returns:
        The updated profile, or a :class:`Rejection` (UpdateDynamicSchedule ``Rejected``):
        no such profile, not a Dynamic one, or a discharge limit above 0.
    """
    if profile is None:
        return Rejection(ReasonCode.INVALID_PROFILE, "no charging profile with this id")
    if profile.kind != ChargingProfileKind.DYNAMIC:
        return Rejection(
            ReasonCode.INVALID_PROFILE, f"charging profile {profile.id} is not a Dynamic profile"
        )
    for name in ("discharge_limit", "discharge_limit_l2", "discharge_limit_l3"):
        value = getattr(update, name)
        if value is not None and value > 0:
            return Rejection(ReasonCode.INVALID_VALUE, f"{name} must be <= 0")
    schedule = profile.schedule
    period = replace(
        schedule.periods[0],
        limit=update.limit,
        limit_l2=update.limit_l2,
        limit_l3=update.limit_l3,
        discharge_limit=update.discharge_limit,
        discharge_limit_l2=update.discharge_limit_l2,
        discharge_limit_l3=update.discharge_limit_l3,
        setpoint=update.setpoint,
        setpoint_l2=update.setpoint_l2,
        setpoint_l3=update.setpoint_l3,
        setpoint_reactive=update.setpoint_reactive,
        setpoint_reactive_l2=update.setpoint_reactive_l2,
        setpoint_reactive_l3=update.setpoint_reactive_l3,
    )
    schedules = (replace(schedule, periods=(period, *schedule.periods[1:])), *profile.schedules[1:])
    return replace(profile, schedules=schedules, dyn_update_time=now)


def next_pull(profile: ChargingProfile, last_pull: datetime | None) -> datetime | None:
    """When the station next asks for this profile's values (PullDynamicScheduleUpdate).

    ``dynUpdateInterval`` after the later of the last update (``dyn_update_time``, else when the
    profile was received) and the last pull request; None for a profile that is not Dynamic or
    has no interval.
    """
    interval_s = profile.dyn_update_interval_s
    if profile.kind != ChargingProfileKind.DYNAMIC or not interval_s or interval_s <= 0:
        return None
    anchors = [t for t in (profile.dyn_update_time, profile.received_at, last_pull) if t]
    if not anchors:
        return None
    return max(anchors) + timedelta(seconds=interval_s)


def pulls_due(
    profiles: Iterable[ChargingProfile], last_pulls: Mapping[int, datetime], now: datetime
) -> tuple[tuple[int, ...], datetime | None]:
    """The Dynamic profiles whose pull is due at ``now``, and the next due time after that.

    Returns:
        (ids due now, in id order; the earliest later due time, None when there is none).
    """
    due: list[int] = []
    later: datetime | None = None
    for profile in profiles:
        at = next_pull(profile, last_pulls.get(profile.id))
        if at is None:
            continue
        if at <= now:
            due.append(profile.id)
            at = now + timedelta(seconds=profile.dyn_update_interval_s or 0)
        if later is None or at < later:
            later = at
    return tuple(sorted(due)), later
