"""The composite schedule (K08): installed profiles in, one signed schedule per EVSE out.

Owns how profiles stack and combine over time. It must not do I/O, read a clock, keep state or
import ``ocpp``: the shell passes the profiles, ``now``, the transaction and the electrical
parameters, and maps the result onto GetCompositeScheduleResponse or the energy manager.

How a value at one instant ``t`` is found, for EVSE ``e > 0``:

1. **Within a purpose the highest stackLevel wins** among the profiles that have a period at
   ``t`` (a profile outside its validFrom/validTo, or past its schedule's duration, has none, so
   the next lower stack level takes over). Purposes are stacked per scope:

   =====================================  ==============================================
   purpose                                profiles considered for EVSE ``e``
   =====================================  ==============================================
   TxProfile                              on ``e``, of the running transaction only
   TxDefaultProfile                       on ``e`` and on EVSE 0, in one stack (a tie in
                                          stackLevel, which K01.FR.52/53 forbid, goes
                                          to the EVSE's own profile)
   PriorityCharging (2.1)                 on ``e`` and EVSE 0, only while priority
                                          charging is active (K21)
   ChargingStationMaxProfile              on EVSE 0
   ChargingStationExternalConstraints     on EVSE 0 and on ``e``: two separate stacks,
                                          both apply
   LocalGeneration (2.1)                  on EVSE 0 and on ``e``, added to the external
                                          constraint of the same scope
   =====================================  ==============================================

2. **The transaction level**: PriorityCharging when active, else the TxProfile, else the
   TxDefaultProfile ("TxProfile overrules TxDefaultProfile", K02 remark). Its period gives the
   operation mode, the set-points and the V2X fields.
3. **Across purposes the minimum wins** (K08; SC.01 in the 2.0.1 errata K02 remark): ``limit``
   is the lowest of the transaction level, the station maximum and both external constraints;
   ``discharge_limit`` is the one closest to 0; ``number_phases`` the lowest (K01.FR.140).
4. **The operation mode** comes from the transaction level, ChargingOnly without one:
   ChargingOnly never discharges (``discharge_limit`` 0); Idle gives ``limit`` 0 and
   ``discharge_limit`` 0 with no set-point; set-points are clamped into
   ``[discharge_limit, limit]`` ("the overshoot ... must remain within these values", schema
   description of setpoint).

For EVSE 0 the schedule describes the grid connection: the ChargingStationMaxProfile and the
station-wide external constraints (and local generation) only, with mode ChargingOnly and no
forced discharge bound. A ``limit`` of ``None`` means no profile limits that instant: the shell
applies the ratings (GetCompositeSchedule needs a number there).

Decisions where the specification is silent (sources: the 2.0.1/2.1 JSON schema descriptions,
the OCPP 2.1 errata 2025-09 requirement texts, and EVerest libocpp's behaviour as a reference):

* Relative profiles start at the transaction's ``started_at``; without a transaction, at
  ``now`` (EVerest does the same). Relative external constraints start at ``received_at``.
* Without a transaction an EVSE's schedule still shows its TxDefaultProfile: what a transaction
  starting now would get. Whether power may flow at all is the energy manager's gate.
* Recurring profiles repeat every 24 h (Daily) or 7 * 24 h (Weekly) of UTC time counted from
  ``startSchedule``, in both directions: occurrence ``k`` starts at ``startSchedule + k*P`` for
  every integer ``k``; ``validFrom`` is how a CSMS delays the first one. An occurrence ends at
  the next one, or earlier at ``duration``. ``useLocalTime`` is not supported (rejected by
  validation unless enabled, and then read as UTC).
* Instants are truncated to whole seconds (``startPeriod`` is an integer on the wire).
* A Dynamic profile's single period applies from ``startSchedule`` (or always) until
  ``dyn_update_time + duration`` (K28.FR.13/15); without ``dyn_update_time``, ``received_at``.
* While offline since ``offline_since``, a profile with ``max_offline_duration_s`` stops
  counting ``max_offline_duration_s`` later (2.1 schema description of maxOfflineDuration).
* LocalGeneration "is providing extra capacity, instead of a limitation" (NotifyChargingLimit
  schema, isLocalGeneration): its limit is added to the external constraint of the same scope
  and imposes nothing on its own.
* A ChargingStationExternalConstraints period with ExternalSetpoint supplies the set-point when
  the transaction level's mode is ExternalSetpoint (Q06); ``prefer_external_setpoint``
  (SmartChargingCtrlr.SetpointPriority) decides when both carry one.
* A → W: ``W = A * V * numberPhases`` (K01.FR.50, with ``V`` the nominal line-to-neutral
  voltage, not a measured one, and numberPhases 3 when absent, K01.FR.49); per-phase values use
  one phase. On DC, ``W = A * V`` with ``V`` the EVSE's nominal DC voltage
  (:class:`ElectricalParams`). Every profile's value is converted with its own period's phases
  before the minimum is taken.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from station.smartcharging.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    FreqWattPoint,
    LimitAtSoc,
    OperationMode,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    SignalWattPoint,
    SmartChargingValueError,
    TransactionInfo,
    from_legacy_negative_limit,
)

__all__ = [
    "CompositePeriod",
    "CompositeSchedule",
    "ElectricalParams",
    "PeriodValue",
    "composite_schedule",
    "convert_rate",
    "limit_at",
    "next_change_after",
    "to_legacy_limit",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_NEVER = -(2**62)
_FOREVER = 2**62
_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S

_Purpose = ChargingProfilePurpose
_TX_LEVEL = frozenset(
    {_Purpose.TX_PROFILE, _Purpose.TX_DEFAULT_PROFILE, _Purpose.PRIORITY_CHARGING}
)


def _ts(value: datetime) -> int:
    """Whole seconds since the epoch, truncated (floor), exactly."""
    return (value - _EPOCH) // _SECOND


def _dt(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


# --- public value types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElectricalParams:
    """What converting between A and W needs for one EVSE (or the grid connection, EVSE 0).

    Attributes:
        nominal_voltage_v: AC: the nominal line-to-neutral voltage of the area (e.g. 230 V), "not
            the measured voltage" (K01.FR.50 note). DC: the EVSE's nominal DC voltage, the
            voltage at which its current and power ratings meet.
        phases: the numberPhases assumed when a period gives none: 3 per K01.FR.49 ("Regions
            with a single phase network should always provide numberPhases = 1").
        dc: True for a DC EVSE: ``W = A * V``, phases do not apply.
    """

    nominal_voltage_v: float
    phases: int = 3
    dc: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.nominal_voltage_v) and self.nominal_voltage_v > 0):
            raise SmartChargingValueError(
                f"nominal_voltage_v must be a positive number, got {self.nominal_voltage_v!r}"
            )
        if self.phases not in (1, 2, 3):
            raise SmartChargingValueError(f"phases must be 1, 2 or 3, got {self.phases!r}")


@dataclass(frozen=True, slots=True)
class PeriodValue:
    """What the composite schedule says for an interval, in the schedule's rate unit.

    ``None`` means no profile constrains that value. Signs follow DESIGN.md: ``limit`` >= 0,
    ``discharge_limit`` <= 0, ``setpoint`` negative = discharge. ``*_l2``/``*_l3`` are only
    reported when an applicable period had them (K08.FR.09); then the unsuffixed value is L1.
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
    number_phases: int | None = None
    phase_to_use: int | None = None
    operation_mode: OperationMode = OperationMode.CHARGING_ONLY
    evse_sleep: bool = False
    preconditioning_request: bool = False
    v2x_baseline: float | None = None
    v2x_freq_watt_curve: tuple[FreqWattPoint, ...] = ()
    v2x_signal_watt_curve: tuple[SignalWattPoint, ...] = ()
    min_charging_rate: float | None = None
    limit_at_soc: LimitAtSoc | None = None


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    """A composite period: ``value`` holds from ``start_period_s`` until the next period."""

    start_period_s: int
    value: PeriodValue


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    """CompositeScheduleType: ``periods`` over ``[schedule_start, schedule_start + duration_s)``.

    Adjacent periods always differ; the first starts at 0. With ``duration_s == 0`` there is one
    period, the value at ``schedule_start``.
    """

    evse_id: int
    schedule_start: datetime
    duration_s: int
    rate_unit: RateUnit
    periods: tuple[CompositePeriod, ...]


# --- unit conversion ---------------------------------------------------------------------------


def convert_rate(
    value: float,
    *,
    from_unit: RateUnit,
    to_unit: RateUnit,
    number_phases: int | None,
    per_phase: bool,
    electrical: ElectricalParams,
) -> float:
    """Convert a limit, set-point or rate between A and W (K01.FR.50).

    Args:
        value: the value in ``from_unit`` (signed values keep their sign).
        from_unit: its unit.
        to_unit: the unit wanted.
        number_phases: the period's numberPhases; ``None`` = ``electrical.phases``.
        per_phase: True when the value is for one phase (an ``_L2``/``_L3`` form, or the L1
            value beside them); False for the unsuffixed value alone (A per phase on all phases,
            W summed over all phases, per the schema description of limit).
        electrical: voltage and phase defaults.

    Returns:
        The value in ``to_unit``.
    """
    if from_unit == to_unit:
        return value
    if electrical.dc or per_phase:
        factor = electrical.nominal_voltage_v
    else:
        factor = electrical.nominal_voltage_v * (number_phases or electrical.phases)
    return value * factor if from_unit == RateUnit.A else value / factor


# --- per-profile segments ------------------------------------------------------------------------

# (start_s, end_s, schedule, period): ``period`` holds over [start_s, end_s).
_Segment = tuple[int, int, ChargingSchedule, SchedulePeriod]


def _select_schedule(profile: ChargingProfile, index: int) -> ChargingSchedule | None:
    if index < len(profile.schedules):
        return profile.schedules[index]
    if profile.purpose == _Purpose.TX_PROFILE or not profile.schedules:
        return None  # K15.FR.22: "the second with second (if existing)"
    return profile.schedules[0]


def _validity(
    profile: ChargingProfile, schedule: ChargingSchedule, offline_s: int | None
) -> tuple[int, int]:
    if profile.valid_from is not None:
        valid_from = _ts(profile.valid_from)
    elif profile.received_at is not None:
        valid_from = _ts(profile.received_at)  # "valid as soon as it is received"
    else:
        valid_from = _NEVER
    valid_to = _FOREVER if profile.valid_to is None else _ts(profile.valid_to)
    if offline_s is not None and profile.max_offline_duration_s is not None:
        valid_to = min(valid_to, offline_s + profile.max_offline_duration_s)
    if profile.kind == ChargingProfileKind.DYNAMIC and schedule.duration_s is not None:
        updated = profile.dyn_update_time or profile.received_at
        if updated is not None:  # K28.FR.13/15, K29.FR.07, Q06.FR.40
            valid_to = min(valid_to, _ts(updated) + schedule.duration_s)
    return valid_from, valid_to


def _segments(
    profile: ChargingProfile,
    *,
    schedule_index: int,
    relative_start_s: int,
    window_start_s: int,
    window_end_s: int,
    offline_s: int | None,
) -> list[_Segment]:
    """The periods of one profile over ``[window_start_s, window_end_s)``, in time order."""
    schedule = _select_schedule(profile, schedule_index)
    if schedule is None or not schedule.periods:
        return []
    valid_from, valid_to = _validity(profile, schedule, offline_s)
    lo = max(valid_from, window_start_s)
    hi = min(valid_to, window_end_s)
    if lo >= hi:
        return []

    recurrence_s: int | None = None
    duration_s = schedule.duration_s
    kind = profile.kind
    if kind == ChargingProfileKind.RECURRING and schedule.start_schedule is not None:
        recurrence_s = _WEEK_S if profile.recurrency == RecurrencyKind.WEEKLY else _DAY_S
        anchor = _ts(schedule.start_schedule)
        first = (lo - anchor) // recurrence_s
        last = (hi - 1 - anchor) // recurrence_s
        occurrences = [anchor + k * recurrence_s for k in range(first, last + 1)]
    elif kind == ChargingProfileKind.RELATIVE:
        occurrences = [relative_start_s]
    elif kind == ChargingProfileKind.DYNAMIC:
        duration_s = None  # a Dynamic duration is about staleness, handled in _validity
        start = schedule.start_schedule
        occurrences = [_NEVER if start is None else _ts(start)]
    else:  # Absolute, or a Recurring profile without startSchedule (never validated)
        start = schedule.start_schedule
        if start is not None:
            occurrences = [_ts(start)]
        else:
            occurrences = [valid_from if valid_from != _NEVER else relative_start_s]

    periods = _legacy_periods(schedule)
    out: list[_Segment] = []
    for occurrence in occurrences:
        end_of_schedule = _FOREVER if duration_s is None else occurrence + duration_s
        if recurrence_s is not None:
            end_of_schedule = min(end_of_schedule, occurrence + recurrence_s)
        for i, period in enumerate(periods):
            seg_start = occurrence + period.start_period_s
            seg_end = (
                occurrence + periods[i + 1].start_period_s
                if i + 1 < len(periods)
                else end_of_schedule
            )
            seg_start = max(seg_start, lo)
            seg_end = min(seg_end, end_of_schedule, hi)
            if seg_start < seg_end:
                out.append((seg_start, seg_end, schedule, period))
    return out


# --- memos across calls --------------------------------------------------------------------------
#
# Profiles are frozen, so what is derived from one period (its 2.1 reading, its conversion into
# the requested unit) and what is combined from a set of converted periods never changes. These
# memos keep those results between calls, keyed by object identity: each entry holds the objects
# whose ids it is keyed by, so no id can be reused by another object while the entry exists. They
# are bounded (cleared when full) and only ever return what the pure functions would compute.

_MEMO_MAX = 4096
_legacy_memo: dict[int, tuple[ChargingSchedule, tuple[SchedulePeriod, ...]]] = {}
_converted_memo: dict[tuple[int, RateUnit, int], dict[int, _Converted]] = {}
_combined_memo: dict[tuple[object, ...], PeriodValue] = {}


def _legacy_periods(schedule: ChargingSchedule) -> tuple[SchedulePeriod, ...]:
    """The schedule's periods through :func:`from_legacy_negative_limit`, remembered."""
    found = _legacy_memo.get(id(schedule))
    if found is not None:
        return found[1]
    periods = tuple(from_legacy_negative_limit(period) for period in schedule.periods)
    if len(_legacy_memo) >= _MEMO_MAX:
        _legacy_memo.clear()
    _legacy_memo[id(schedule)] = (schedule, periods)
    return periods


def _converted_periods(
    schedule: ChargingSchedule, rate_unit: RateUnit, electrical: ElectricalParams
) -> dict[int, _Converted]:
    """Each of the schedule's (2.1-read) periods converted into ``rate_unit``, by period id."""
    key = (id(schedule), rate_unit, id(electrical))
    found = _converted_memo.get(key)
    if found is None:
        if len(_converted_memo) >= _MEMO_MAX:
            _converted_memo.clear()
        found = _converted_memo[key] = {
            id(period): _Converted((0, 0, schedule, period), rate_unit, electrical)
            for period in _legacy_periods(schedule)
        }
    return found


# --- stacking ------------------------------------------------------------------------------------


class _Stack:
    """The profiles of one purpose and scope; :meth:`at` gives the prevailing period."""

    __slots__ = ("_converted", "_cursor", "_entries")

    def __init__(self) -> None:
        # (rank, segments); rank orders highest first.
        self._entries: list[tuple[tuple[int, int, int], list[_Segment]]] = []
        self._cursor: list[int] = []
        # Per entry, per segment: its period converted into the requested unit.
        self._converted: list[list[_Converted]] = []

    def add(self, rank: tuple[int, int, int], segments: list[_Segment]) -> None:
        if segments:
            self._entries.append((rank, segments))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def freeze(self) -> None:
        self._entries.sort(key=lambda entry: entry[0], reverse=True)
        self._cursor = [0] * len(self._entries)

    def convert(self, rate_unit: RateUnit, electrical: ElectricalParams) -> None:
        """Convert every segment's period once, for :meth:`at`.

        All segments of one entry come from one schedule (see :func:`_segments`).
        """
        self._converted = []
        for _, segments in self._entries:
            table = _converted_periods(segments[0][2], rate_unit, electrical)
            self._converted.append([table[id(segment[3])] for segment in segments])

    def boundaries(self) -> Iterator[tuple[int, int]]:
        """Each segment's (start, end); segments are clipped to the window, so start is in it."""
        for _, segments in self._entries:
            for segment in segments:
                yield segment[0], segment[1]

    def at(self, t: int) -> _Converted | None:
        """The converted period of the highest-ranked profile covering ``t``.

        ``t`` must not decrease between calls; :meth:`convert` must have run.
        """
        cursors = self._cursor
        for i, (_, segments) in enumerate(self._entries):
            cursor = cursors[i]
            count = len(segments)
            while cursor < count and segments[cursor][1] <= t:
                cursor += 1
            cursors[i] = cursor
            if cursor < count and segments[cursor][0] <= t:
                return self._converted[i][cursor]
        return None


# --- combining -----------------------------------------------------------------------------------

_Triple = tuple[float, float | None, float | None]


class _Converted:
    """One period of one profile, converted into the requested unit (internal, per call)."""

    __slots__ = (
        "discharge",
        "keep",
        "limit",
        "limit_at_soc",
        "min_charging_rate",
        "period",
        "phased",
        "phases",
        "reactive",
        "setpoint",
    )

    def __init__(self, segment: _Segment, rate_unit: RateUnit, electrical: ElectricalParams):
        _, _, schedule, period = segment
        phases = period.number_phases or electrical.phases
        same = schedule.rate_unit == rate_unit
        per_phase_factor = electrical.nominal_voltage_v
        total_factor = per_phase_factor if electrical.dc else per_phase_factor * phases
        divide = schedule.rate_unit == RateUnit.W

        def scale(value: float, factor: float) -> float:
            if same:
                return value
            return value / factor if divide else value * factor

        def triple(base: float | None, l2: float | None, l3: float | None) -> _Triple | None:
            if base is None:
                return None
            if l2 is None and l3 is None:
                return (scale(base, total_factor), None, None)
            return (
                scale(base, per_phase_factor),
                None if l2 is None else scale(l2, per_phase_factor),
                None if l3 is None else scale(l3, per_phase_factor),
            )

        self.keep = (schedule, electrical)  # what the memo key's ids refer to
        self.period = period
        self.phases = 1 if electrical.dc else phases
        self.limit = triple(period.limit, period.limit_l2, period.limit_l3)
        self.discharge = triple(
            period.discharge_limit, period.discharge_limit_l2, period.discharge_limit_l3
        )
        self.setpoint = triple(period.setpoint, period.setpoint_l2, period.setpoint_l3)
        self.reactive = triple(
            period.setpoint_reactive, period.setpoint_reactive_l2, period.setpoint_reactive_l3
        )
        self.phased = (
            _phased(self.limit)
            or _phased(self.discharge)
            or _phased(self.setpoint)
            or _phased(self.reactive)
        )
        rate = schedule.min_charging_rate
        self.min_charging_rate = None if rate is None else scale(rate, total_factor)
        soc = schedule.limit_at_soc
        self.limit_at_soc = (
            None if soc is None else LimitAtSoc(soc.soc_pct, scale(soc.limit, total_factor))
        )


def _phased(value: _Triple | None) -> bool:
    return value is not None and (value[1] is not None or value[2] is not None)


def _per_phase(value: _Triple, phases: int, rate_unit: RateUnit, dc: bool) -> _Triple:
    if _phased(value):
        return value
    share = value[0] if rate_unit == RateUnit.A or dc else value[0] / phases
    return (share, share, share)


def _pick(
    values: list[tuple[_Triple, int]],
    choose: Callable[[Iterable[float]], float],
    rate_unit: RateUnit,
    dc: bool,
    phased: bool,
) -> _Triple | None:
    """Combine one field over several sources: ``choose`` is min (limits) or max (discharge).

    ``phased`` tells whether any source has per-phase values; without, the plain values combine.
    """
    if not values:
        return None
    if len(values) == 1:
        return values[0][0]
    if not phased:
        return (choose([value[0] for value, _ in values]), None, None)
    split = [_per_phase(value, phases, rate_unit, dc) for value, phases in values]
    l1 = choose(value[0] for value in split)
    l2s = [value[1] for value in split if value[1] is not None]
    l3s = [value[2] for value in split if value[2] is not None]
    return (l1, choose(l2s) if l2s else None, choose(l3s) if l3s else None)


def _add(a: _Triple, b: _Triple) -> _Triple:
    def plus(x: float | None, y: float | None) -> float | None:
        return None if x is None else x + (y if y is not None else 0.0)

    return (a[0] + b[0], plus(a[1], b[1]), plus(a[2], b[2]))


def _clamp(value: _Triple, upper: _Triple | None, lower: _Triple | None) -> _Triple:
    def one(x: float | None, hi: float | None, lo: float | None) -> float | None:
        if x is None:
            return None
        if hi is not None:
            x = min(x, hi)
        if lo is not None:
            x = max(x, lo)
        return x

    hi: tuple[float | None, ...] = upper if upper is not None else (None, None, None)
    lo: tuple[float | None, ...] = lower if lower is not None else (None, None, None)
    first = one(value[0], hi[0], lo[0])
    assert first is not None
    return (first, one(value[1], hi[1], lo[1]), one(value[2], hi[2], lo[2]))


_ZERO: _Triple = (0.0, None, None)
_NONE3: tuple[None, None, None] = (None, None, None)


def _zero_like(value: _Triple | None) -> _Triple:
    if value is None or not _phased(value):
        return _ZERO
    return (0.0, None if value[1] is None else 0.0, None if value[2] is None else 0.0)


def _level_limit(external: _Converted | None, generation: _Converted | None) -> _Triple | None:
    """An external constraint's limit plus the local generation of the same scope."""
    if external is None or external.limit is None:
        return None
    if generation is None or generation.limit is None:
        return external.limit
    return _add(external.limit, generation.limit)


def _combine(
    tx: _Converted | None,
    station_max: _Converted | None,
    levels: tuple[tuple[_Converted | None, _Converted | None], ...],
    *,
    evse_level: bool,
    rate_unit: RateUnit,
    dc: bool,
    prefer_external_setpoint: bool,
) -> PeriodValue:
    """The value of one interval from the prevailing period of each stack (see module doc)."""
    limits: list[tuple[_Triple, int]] = []
    discharges: list[tuple[_Triple, int]] = []
    external_setpoint: _Converted | None = None
    contributors: list[_Converted] = []
    for source in (tx, station_max):
        if source is None:
            continue
        contributors.append(source)
        if source.limit is not None:
            limits.append((source.limit, source.phases))
        if source.discharge is not None:
            discharges.append((source.discharge, source.phases))
    for external, generation in levels:
        if generation is not None:
            contributors.append(generation)
        if external is None:
            continue
        contributors.append(external)
        level_limit = _level_limit(external, generation)
        if level_limit is not None:
            limits.append((level_limit, external.phases))
        if external.discharge is not None:
            discharges.append((external.discharge, external.phases))
        if (
            external.setpoint is not None
            and external.period.operation_mode == OperationMode.EXTERNAL_SETPOINT
        ):
            external_setpoint = external

    phased = any(c.phased for c in contributors)
    limit = _pick(limits, min, rate_unit, dc, phased)
    discharge = _pick(discharges, max, rate_unit, dc, phased)
    mode = tx.period.operation_mode if tx is not None else OperationMode.CHARGING_ONLY

    setpoint: _Triple | None = None
    reactive: _Triple | None = None
    if mode == OperationMode.EXTERNAL_SETPOINT and external_setpoint is not None:
        if tx is None or tx.setpoint is None or prefer_external_setpoint:
            setpoint, reactive = external_setpoint.setpoint, external_setpoint.reactive
        else:
            setpoint, reactive = tx.setpoint, tx.reactive
    elif tx is not None and mode not in (OperationMode.CHARGING_ONLY, OperationMode.IDLE):
        setpoint, reactive = tx.setpoint, tx.reactive

    if mode == OperationMode.IDLE:
        limit, discharge, setpoint, reactive = _zero_like(limit), _zero_like(discharge), None, None
    elif evse_level and mode == OperationMode.CHARGING_ONLY:
        discharge = _zero_like(discharge)  # ChargingOnly never discharges
    if setpoint is not None:
        setpoint = _clamp(setpoint, limit, discharge)

    limit_t = limit or _NONE3
    discharge_t = discharge or _NONE3
    setpoint_t = setpoint or _NONE3
    reactive_t = reactive or _NONE3
    phases_given = [c.period.number_phases for c in contributors if c.period.number_phases]
    phase_to_use = next(
        (c.period.phase_to_use for c in contributors if c.period.phase_to_use is not None), None
    )
    if tx is None:
        return PeriodValue(
            limit=limit_t[0],
            limit_l2=limit_t[1],
            limit_l3=limit_t[2],
            discharge_limit=discharge_t[0],
            discharge_limit_l2=discharge_t[1],
            discharge_limit_l3=discharge_t[2],
            setpoint=setpoint_t[0],
            setpoint_l2=setpoint_t[1],
            setpoint_l3=setpoint_t[2],
            setpoint_reactive=reactive_t[0],
            setpoint_reactive_l2=reactive_t[1],
            setpoint_reactive_l3=reactive_t[2],
            number_phases=None if dc or not phases_given else min(phases_given),
            phase_to_use=phase_to_use,
            operation_mode=mode,
        )
    period = tx.period
    return PeriodValue(
        limit=limit_t[0],
        limit_l2=limit_t[1],
        limit_l3=limit_t[2],
        discharge_limit=discharge_t[0],
        discharge_limit_l2=discharge_t[1],
        discharge_limit_l3=discharge_t[2],
        setpoint=setpoint_t[0],
        setpoint_l2=setpoint_t[1],
        setpoint_l3=setpoint_t[2],
        setpoint_reactive=reactive_t[0],
        setpoint_reactive_l2=reactive_t[1],
        setpoint_reactive_l3=reactive_t[2],
        number_phases=None if dc or not phases_given else min(phases_given),
        phase_to_use=phase_to_use,
        operation_mode=mode,
        evse_sleep=period.evse_sleep,
        preconditioning_request=period.preconditioning_request,
        v2x_baseline=period.v2x_baseline,
        v2x_freq_watt_curve=period.v2x_freq_watt_curve,
        v2x_signal_watt_curve=period.v2x_signal_watt_curve,
        min_charging_rate=tx.min_charging_rate,
        limit_at_soc=tx.limit_at_soc,
    )


# --- the composite schedule ----------------------------------------------------------------------

_STACK_NAMES = ("tx", "txdef", "prio", "max", "ext0", "gen0", "exte", "gene")


def _stack_name(
    profile: ChargingProfile,
    evse_id: int,
    transaction: TransactionInfo | None,
    priority_charging: bool,
) -> str | None:
    """Which stack a profile joins for the composite of ``evse_id``; None = not applicable."""
    purpose = profile.purpose
    on_station = profile.evse_id == 0
    if not on_station and profile.evse_id != evse_id:
        return None
    if purpose == _Purpose.CHARGING_STATION_MAX_PROFILE:
        return "max" if on_station else None
    if purpose == _Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS:
        return "ext0" if on_station else "exte"
    if purpose == _Purpose.LOCAL_GENERATION:
        return "gen0" if on_station else "gene"
    if evse_id == 0:
        return None  # the grid connection has no transaction level
    if purpose == _Purpose.TX_DEFAULT_PROFILE:
        return "txdef"
    if purpose == _Purpose.PRIORITY_CHARGING:
        return "prio" if priority_charging else None
    if purpose == _Purpose.TX_PROFILE:
        if on_station or transaction is None:
            return None
        if profile.transaction_id not in (None, transaction.transaction_id):
            return None
        return "tx"
    return None  # pragma: no cover - every purpose is handled above


def _relative_start_s(
    profile: ChargingProfile, transaction: TransactionInfo | None, now_s: int
) -> int:
    if profile.purpose in _TX_LEVEL:
        return now_s if transaction is None else _ts(transaction.started_at)
    return now_s if profile.received_at is None else _ts(profile.received_at)


def _stacks(
    profiles: Iterable[ChargingProfile],
    *,
    evse_id: int,
    transaction: TransactionInfo | None,
    priority_charging: bool,
    schedule_index: int,
    now_s: int,
    window_start_s: int,
    window_end_s: int,
    offline_s: int | None,
) -> dict[str, _Stack]:
    stacks = {name: _Stack() for name in _STACK_NAMES}
    for profile in profiles:
        name = _stack_name(profile, evse_id, transaction, priority_charging)
        if name is None:
            continue
        own_evse = 1 if profile.evse_id == evse_id else 0
        segments = _segments(
            profile,
            schedule_index=schedule_index,
            relative_start_s=_relative_start_s(profile, transaction, now_s),
            window_start_s=window_start_s,
            window_end_s=window_end_s,
            offline_s=offline_s,
        )
        stacks[name].add((profile.stack_level, own_evse, profile.id), segments)
    for stack in stacks.values():
        stack.freeze()
    return stacks


def composite_schedule(
    profiles: Iterable[ChargingProfile],
    *,
    evse_id: int,
    start: datetime,
    duration_s: int,
    rate_unit: RateUnit,
    electrical: ElectricalParams,
    now: datetime,
    transaction: TransactionInfo | None = None,
    external_limits: Iterable[ChargingProfile] = (),
    priority_charging: bool = False,
    offline_since: datetime | None = None,
    prefer_external_setpoint: bool = True,
    schedule_index: int = 0,
) -> CompositeSchedule:
    """Compute the composite schedule of one EVSE, or of the grid connection (K08).

    Args:
        profiles: the installed profiles (any EVSE; those that do not apply are skipped).
        evse_id: the EVSE, or 0 for the station as a whole (K08: "the grid connection").
        start: the schedule start; truncated to the whole second.
        duration_s: the length asked for, >= 0; 0 gives the single value at ``start``.
        rate_unit: the unit of the result (GetCompositeSchedule ``chargingRateUnit``).
        electrical: voltage and phases for A <-> W (of the EVSE; of the grid connection for 0).
        now: the current time: the start of Relative profiles when there is no transaction.
        transaction: the transaction on ``evse_id``, if any; TxProfiles apply only to it.
        external_limits: limits that are not installed profiles (e.g. from the grid functions
            or an EMS), as ChargingStationExternalConstraints / LocalGeneration profiles.
        priority_charging: priority charging is active for the transaction (K21, 2.1).
        offline_since: when the CSMS became unreachable, if it is (maxOfflineDuration, 2.1).
        prefer_external_setpoint: SmartChargingCtrlr.SetpointPriority: under ExternalSetpoint,
            the external set-point wins over one in the Tx(Default)Profile.
        schedule_index: which of a TxProfile's schedules to use (K15.FR.22 / K18.FR.24).

    Returns:
        The merged schedule: adjacent periods always differ.

    Raises:
        SmartChargingValueError: ``duration_s`` is negative (the shell answers such a request
            with Rejected before calling).
    """
    if duration_s < 0:
        raise SmartChargingValueError(f"duration_s must be >= 0, got {duration_s}")
    window_start_s = _ts(start)
    window_end_s = window_start_s + max(duration_s, 1)
    stacks = _stacks(
        [*profiles, *external_limits],
        evse_id=evse_id,
        transaction=transaction,
        priority_charging=priority_charging,
        schedule_index=schedule_index,
        now_s=_ts(now),
        window_start_s=window_start_s,
        window_end_s=window_end_s,
        offline_s=None if offline_since is None else _ts(offline_since),
    )
    cuts = {window_start_s}
    for stack in stacks.values():
        for start_s, end_s in stack.boundaries():
            cuts.add(start_s)
            if end_s < window_end_s:
                cuts.add(end_s)
    instants = sorted(cuts)

    def at(name: str) -> Callable[[int], _Converted | None] | None:
        stack = stacks[name]
        if not stack:
            return None
        stack.convert(rate_unit, electrical)
        return stack.at

    # The transaction level, highest precedence first; only the stacks that hold something.
    tx_level = [f for f in (at("prio"), at("tx"), at("txdef")) if f is not None]
    max_at, ext0_at, gen0_at, exte_at, gene_at = (
        at("max"),
        at("ext0"),
        at("gen0"),
        at("exte"),
        at("gene"),
    )
    evse_level = evse_id != 0
    dc = electrical.dc

    periods: list[CompositePeriod] = []
    previous: PeriodValue | None = None
    for t in instants:
        # Cursors only move forward; a stack not asked at some instant catches up later.
        tx: _Converted | None = None
        for tx_at in tx_level:
            tx = tx_at(t)
            if tx is not None:
                break
        station_max = None if max_at is None else max_at(t)
        ext0 = None if ext0_at is None else ext0_at(t)
        gen0 = None if gen0_at is None else gen0_at(t)
        exte = None if exte_at is None else exte_at(t)
        gene = None if gene_at is None else gene_at(t)
        key = (
            tx,
            station_max,
            ext0,
            gen0,
            exte,
            gene,
            evse_level,
            rate_unit,
            dc,
            prefer_external_setpoint,
        )
        value = _combined_memo.get(key)
        if value is None:
            if len(_combined_memo) >= _MEMO_MAX:
                _combined_memo.clear()
            value = _combined_memo[key] = _combine(
                tx,
                station_max,
                ((ext0, gen0), (exte, gene)),
                evse_level=evse_level,
                rate_unit=rate_unit,
                dc=dc,
                prefer_external_setpoint=prefer_external_setpoint,
            )
        # ``value != previous``, deciding on the fields that usually differ first.
        if value is not previous and (
            previous is None
            or value.limit != previous.limit
            or value.setpoint != previous.setpoint
            or value.discharge_limit != previous.discharge_limit
            or value != previous
        ):
            periods.append(CompositePeriod(t - window_start_s, value))
            previous = value
    return CompositeSchedule(
        evse_id=evse_id,
        schedule_start=_dt(window_start_s),
        duration_s=duration_s,
        rate_unit=rate_unit,
        periods=tuple(periods),
    )


def limit_at(schedule: CompositeSchedule, at: datetime) -> PeriodValue:
    """The composite value at instant ``at`` (truncated to the second).

    Raises:
        SmartChargingValueError: ``at`` lies outside the schedule (for ``duration_s == 0``,
            only ``schedule_start`` itself is inside).
    """
    offset = _ts(at) - _ts(schedule.schedule_start)
    if not 0 <= offset < max(schedule.duration_s, 1):
        raise SmartChargingValueError(
            f"{at.isoformat()} is outside the schedule starting "
            f"{schedule.schedule_start.isoformat()} for {schedule.duration_s} s"
        )
    starts = [period.start_period_s for period in schedule.periods]
    return schedule.periods[bisect.bisect_right(starts, offset) - 1].value


def next_change_after(
    profiles: Iterable[ChargingProfile],
    now: datetime,
    *,
    transactions: Mapping[int, TransactionInfo] | None = None,
    external_limits: Iterable[ChargingProfile] = (),
    offline_since: datetime | None = None,
    schedule_index: int = 0,
) -> datetime | None:
    """The first instant after ``now`` at which any composite schedule may change.

    That is the earliest period start or end, validity bound, recurrence, Dynamic expiry or
    offline expiry of any profile that can apply, so the shell can sleep until then instead of
    polling. An instant where the value turns out not to change is possible (re-evaluating is
    harmless); a change before the returned instant is not. Changes caused by new input (a new
    profile, a transaction starting, going offline) are the shell's own events.

    Args:
        profiles: the installed profiles.
        now: the current time.
        transactions: the running transaction per EVSE: anchors Relative profiles and selects
            TxProfiles. Relative tx-level profiles without a transaction start "now" whenever
            they are evaluated, so they have no boundary of their own.
        external_limits: as for :func:`composite_schedule`.
        offline_since: as for :func:`composite_schedule`.
        schedule_index: as for :func:`composite_schedule`.

    Returns:
        The next boundary (whole seconds, UTC), or None when nothing will change by itself.
    """
    now_s = _ts(now)
    running = dict(transactions or {})
    offline_s = None if offline_since is None else _ts(offline_since)
    best: int | None = None
    for profile in [*profiles, *external_limits]:
        anchors: list[int]
        if profile.purpose in _TX_LEVEL:
            if profile.evse_id == 0:
                candidates = list(running.values())
            else:
                found = running.get(profile.evse_id)
                candidates = [] if found is None else [found]
            if profile.purpose == _Purpose.TX_PROFILE:
                candidates = [
                    tx
                    for tx in candidates
                    if profile.evse_id != 0 and profile.transaction_id in (None, tx.transaction_id)
                ]
                if not candidates:
                    continue
            anchors = [_ts(tx.started_at) for tx in candidates]
        else:
            anchors = [] if profile.received_at is None else [_ts(profile.received_at)]
        if profile.kind == ChargingProfileKind.RELATIVE:
            if not anchors:
                continue
        else:
            anchors = [now_s]  # the anchor is not used
        recurring = profile.kind == ChargingProfileKind.RECURRING
        horizon = now_s + (_WEEK_S if recurring else _FOREVER - now_s)
        for anchor in anchors:
            for start, end, _, _ in _segments(
                profile,
                schedule_index=schedule_index,
                relative_start_s=anchor,
                window_start_s=now_s,
                window_end_s=horizon + (1 if recurring else 0),
                offline_s=offline_s,
            ):
                for boundary in (start, end):
                    if now_s < boundary <= horizon and (best is None or boundary < best):
                        best = boundary
    return None if best is None or best >= _FOREVER else _dt(best)


def to_legacy_limit(value: PeriodValue) -> float | None:
    """The one number a 2.0.1 ``limit`` can carry for a composite value (GetCompositeSchedule).

    The inverse reading of :func:`from_legacy_negative_limit`: Idle is 0; a commanded discharge
    (negative set-point) is that set-point, negative; otherwise the charging limit (None when no
    profile limits it: the shell fills in the rating).
    """
    if value.operation_mode == OperationMode.IDLE:
        return 0.0
    if value.setpoint is not None and value.setpoint < 0:
        return value.setpoint
    return value.limit
