"""External charging limits (K11-K14), pure: what an external system imposes, as a profile.

Owns how a limit set locally by an external control system (an EMS, a grid function, a system
operator, the operator on site) becomes a ChargingStationExternalConstraints profile that the
composite schedule already knows how to stack (on EVSE 0: the grid connection; on EVSE ``n``:
that EVSE), and when the CSMS must hear about a change (LimitChangeSignificance). It must not do
I/O, read a clock or import ``ocpp``: the shell (``service.py``) installs the profile, persists
it and sends NotifyChargingLimit / ClearedChargingLimit.

Decisions (the specification leaves the interface to the external system open, K11 "Prerequisites"):

* One limit per (EVSE, source): setting it again replaces it. Its profile id is negative and
  fixed per (EVSE, source) (:func:`external_profile_id`), "external constraints may use negative
  ids" (K11.FR.06 note), so it can never collide with a CSMS profile (those are > 0 unless
  MaxExternalConstraintsId reserves more).
* The limit is a power in W (the station's unit); an optional discharge limit (<= 0) bounds
  discharge the same way. A limit of 0 means no charging, never a change of direction.
* Significance (K11 step 4, K12 step 4): the first limit of a (EVSE, source) is always
  significant; a new one is when it differs from the last *notified* value by more than
  LimitChangeSignificance percent of that value (any change from 0 is significant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from station.smartcharging.model import (
    ChargingLimitSource,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    RateUnit,
    SchedulePeriod,
    SmartChargingValueError,
)

__all__ = [
    "ExternalLimit",
    "external_profile",
    "external_profile_id",
    "limit_of",
    "significant_change",
]

_SOURCES = tuple(ChargingLimitSource)
_IDS_PER_EVSE = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalLimit:
    """A limit an external system sets on the station (EVSE 0) or on one EVSE.

    Attributes:
        evse_id: 0 = the grid connection (the whole station), n = EVSE n.
        power_w: the most that may be charged, >= 0 (0: no charging).
        source: ChargingLimitSourceEnumType: EMS, Other, SO or CSO.
        discharge_limit_w: the most that may be discharged, <= 0; None = no discharge bound.
        is_grid_critical: NotifyChargingLimit ``isGridCritical``.

    Raises:
        SmartChargingValueError: a value out of range; the message names it.
    """

    evse_id: int
    power_w: float
    source: str = ChargingLimitSource.EMS
    discharge_limit_w: float | None = None
    is_grid_critical: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.evse_id, bool) or self.evse_id < 0:
            raise SmartChargingValueError(f"evse_id must be >= 0, got {self.evse_id!r}")
        if not (math.isfinite(self.power_w) and self.power_w >= 0):
            raise SmartChargingValueError(f"power_w must be a number >= 0, got {self.power_w!r}")
        limit = self.discharge_limit_w
        if limit is not None and not (math.isfinite(limit) and limit <= 0):
            raise SmartChargingValueError(
                f"discharge_limit_w must be a number <= 0 (discharge is negative), got {limit!r}"
            )
        if self.source not in _SOURCES:
            raise SmartChargingValueError(
                f"source must be one of {[str(s) for s in _SOURCES]}, got {self.source!r}"
            )


def external_profile_id(evse_id: int, source: str) -> int:
    """The fixed, negative profile id of the limit of ``source`` on ``evse_id``.

    Raises:
        SmartChargingValueError: ``source`` is not a ChargingLimitSource.
    """
    try:
        index = _SOURCES.index(ChargingLimitSource(source))
    except ValueError:
        raise SmartChargingValueError(f"unknown charging limit source {source!r}") from None
    return -(evse_id * _IDS_PER_EVSE + index + 1)


def external_profile(limit: ExternalLimit, now: datetime) -> ChargingProfile:
    """The ChargingStationExternalConstraints profile that carries ``limit`` from ``now`` on.

    An Absolute schedule in W starting ``now`` with one open-ended period; the profile is
    valid as soon as it is received and reports ``limit_source`` = the limit's source (K09).
    """
    period = SchedulePeriod(
        start_period_s=0, limit=limit.power_w, discharge_limit=limit.discharge_limit_w
    )
    return ChargingProfile(
        id=external_profile_id(limit.evse_id, limit.source),
        stack_level=0,
        purpose=ChargingProfilePurpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
        kind=ChargingProfileKind.ABSOLUTE,
        schedules=(
            ChargingSchedule(id=1, rate_unit=RateUnit.W, periods=(period,), start_schedule=now),
        ),
        evse_id=limit.evse_id,
        limit_source=limit.source,
        received_at=now,
    )


def limit_of(profile: ChargingProfile) -> float | None:
    """The charging limit (W) an external-limit profile made by :func:`external_profile` holds."""
    return profile.schedule.periods[0].limit


def significant_change(previous_w: float | None, new_w: float, significance_pct: float) -> bool:
    """Whether a new limit must be notified to the CSMS (K11/K12 step 4).

    Args:
        previous_w: the last limit notified for this (EVSE, source); None = none yet.
        new_w: the new limit.
        significance_pct: SmartChargingCtrlr.LimitChangeSignificance, in percent.

    Returns:
        True for the first limit, and when the change exceeds ``significance_pct`` of the
        previous value (from 0, any change).
    """
    if previous_w is None:
        return True
    if previous_w == 0:
        return new_w != 0
    return abs(new_w - previous_w) > abs(previous_w) * significance_pct / 100
