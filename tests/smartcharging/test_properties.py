"""Property tests of the composite schedule against a brute-force oracle, and of validation.

The oracle evaluates every profile on its own at one instant (validity, anchor, recurrence by
modular arithmetic, schedule duration), stacks per purpose by stackLevel, and takes the minimum
across purposes. The composite schedule must agree with it at every sampled instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from station.smartcharging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    CompositePeriod,
    CompositeSchedule,
    ElectricalParams,
    OcppVersion,
    OperationMode,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    TransactionInfo,
    composite_schedule,
    convert_rate,
    from_legacy_negative_limit,
    limit_at,
    next_change_after,
    validate,
)
from tests.smartcharging.builders import DAY, HOUR, T0, WEEK, limits

Purpose = ChargingProfilePurpose
Kind = ChargingProfileKind
Mode = OperationMode
ELECTRICAL = ElectricalParams(nominal_voltage_v=230.0)
TX = TransactionInfo("tx-1", T0 - timedelta(hours=1))
WINDOW_START = T0 - timedelta(days=2)
WINDOW_S = 4 * DAY
EXAMPLES = settings(max_examples=100)
RECEIVED = T0 - timedelta(days=3)  # every generated profile was installed before any window


# --- strategies ----------------------------------------------------------------------------------

# (purpose, evse) combinations that apply to EVSE 1.
SLOTS = [
    (Purpose.CHARGING_STATION_MAX_PROFILE, 0),
    (Purpose.TX_DEFAULT_PROFILE, 0),
    (Purpose.TX_DEFAULT_PROFILE, 1),
    (Purpose.TX_PROFILE, 1),
    (Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, 0),
    (Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, 1),
]


@st.composite
def periods(draw: st.DrawFn, unit: RateUnit, tx_level: bool) -> tuple[SchedulePeriod, ...]:
    count = draw(st.integers(1, 4))
    starts = sorted(
        draw(st.sets(st.integers(1, 30 * HOUR), min_size=count - 1, max_size=count - 1))
    )
    top = 100.0 if unit == RateUnit.A else 50_000.0
    magnitude = st.integers(0, int(top)).map(float)
    out = []
    for start in [0, *starts]:
        choice = draw(
            st.sampled_from(["charge", "legacy", "v2x", "idle"] if tx_level else ["charge", "v2x"])
        )
        if choice == "charge":
            out.append(SchedulePeriod(start_period_s=start, limit=draw(magnitude)))
        elif choice == "legacy":
            out.append(SchedulePeriod(start_period_s=start, limit=-draw(magnitude)))
        elif choice == "idle":
            out.append(
                SchedulePeriod(
                    start_period_s=start, limit=draw(magnitude), operation_mode=Mode.IDLE
                )
            )
        else:
            limit = draw(st.none() | magnitude)
            discharge = draw(st.none() | magnitude.map(lambda v: -v))
            if tx_level:
                low = discharge if discharge is not None else -top
                high = limit if limit is not None else top
                setpoint = draw(st.integers(int(low), int(high)).map(float))
                out.append(
                    SchedulePeriod(
                        start_period_s=start,
                        limit=limit,
                        discharge_limit=discharge,
                        setpoint=setpoint,
                        operation_mode=Mode.CENTRAL_SETPOINT,
                    )
                )
            else:
                out.append(
                    SchedulePeriod(
                        start_period_s=start, limit=draw(magnitude), discharge_limit=discharge
                    )
                )
    return tuple(out)


@st.composite
def profiles(draw: st.DrawFn, recurring_only: bool = False) -> list[ChargingProfile]:
    count = draw(st.integers(0, 6))
    out = []
    for pid in range(1, count + 1):
        purpose, evse = draw(st.sampled_from(SLOTS))
        tx_level = purpose in (Purpose.TX_PROFILE, Purpose.TX_DEFAULT_PROFILE)
        kinds = [Kind.RECURRING] if recurring_only else [Kind.ABSOLUTE, Kind.RECURRING]
        if purpose != Purpose.CHARGING_STATION_MAX_PROFILE and not recurring_only:
            kinds.append(Kind.RELATIVE)
        kind = draw(st.sampled_from(kinds))
        unit = draw(st.sampled_from(RateUnit))
        start = None
        recurrency = None
        if kind != Kind.RELATIVE:
            start = T0 + timedelta(seconds=draw(st.integers(-3 * DAY, 2 * DAY)))
        if kind == Kind.RECURRING:
            recurrency = draw(st.sampled_from(RecurrencyKind))
        duration = draw(st.none() | st.integers(1, 2 * DAY))
        valid_from = valid_to = None
        if not recurring_only and draw(st.booleans()):
            valid_from = T0 + timedelta(seconds=draw(st.integers(-2 * DAY, DAY)))
            valid_to = valid_from + timedelta(seconds=draw(st.integers(1, 2 * DAY)))
        out.append(
            ChargingProfile(
                id=pid,
                stack_level=draw(st.integers(0, 3)),
                purpose=purpose,
                kind=kind,
                recurrency=recurrency,
                evse_id=evse,
                transaction_id="tx-1" if purpose == Purpose.TX_PROFILE else None,
                valid_from=valid_from,
                valid_to=valid_to,
                received_at=RECEIVED,
                schedules=(
                    ChargingSchedule(
                        id=1,
                        rate_unit=unit,
                        periods=draw(periods(unit, tx_level)),
                        start_schedule=start,
                        duration_s=duration,
                    ),
                ),
            )
        )
    return out


instants = st.integers(0, WINDOW_S - 1).map(lambda s: WINDOW_START + timedelta(seconds=s))


# --- the oracle ----------------------------------------------------------------------------------


def _seconds(value: datetime) -> int:
    return math.floor((value - T0).total_seconds())


def own_period(profile: ChargingProfile, at: datetime, now: datetime) -> SchedulePeriod | None:
    """The period a profile has at ``at`` on its own, or None."""
    t = _seconds(at)
    valid_from = profile.valid_from or profile.received_at
    if valid_from is not None and t < _seconds(valid_from):
        return None
    if profile.valid_to is not None and t >= _seconds(profile.valid_to):
        return None
    schedule = profile.schedules[0]
    if profile.kind == Kind.RELATIVE:
        received = profile.received_at or now
        anchor = _seconds(TX.started_at if profile.purpose in TX_LEVEL else received)
    else:
        assert schedule.start_schedule is not None
        anchor = _seconds(schedule.start_schedule)
    offset = t - anchor
    if profile.kind == Kind.RECURRING:
        offset %= WEEK if profile.recurrency == RecurrencyKind.WEEKLY else DAY
    if offset < 0 or (schedule.duration_s is not None and offset >= schedule.duration_s):
        return None
    chosen = [p for p in schedule.periods if p.start_period_s <= offset][-1]
    return from_legacy_negative_limit(chosen)


TX_LEVEL = (Purpose.TX_PROFILE, Purpose.TX_DEFAULT_PROFILE)


@dataclass
class Prevailing:
    period: SchedulePeriod
    unit: RateUnit

    def convert(self, value: float) -> float:
        return convert_rate(
            value,
            from_unit=self.unit,
            to_unit=RateUnit.W,
            number_phases=self.period.number_phases,
            per_phase=False,
            electrical=ELECTRICAL,
        )


def prevailing(
    profiles: list[ChargingProfile], at: datetime, now: datetime
) -> dict[str, Prevailing]:
    groups = {
        "max": [p for p in profiles if p.purpose == Purpose.CHARGING_STATION_MAX_PROFILE],
        "tx": [p for p in profiles if p.purpose == Purpose.TX_PROFILE],
        "txdef": [p for p in profiles if p.purpose == Purpose.TX_DEFAULT_PROFILE],
        "ext0": [
            p
            for p in profiles
            if p.purpose == Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS and p.evse_id == 0
        ],
        "ext1": [
            p
            for p in profiles
            if p.purpose == Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS and p.evse_id == 1
        ],
    }
    out = {}
    for name, members in groups.items():
        ranked = sorted(members, key=lambda p: (p.stack_level, p.evse_id, p.id), reverse=True)
        for member in ranked:
            found = own_period(member, at, now)
            if found is not None:
                out[name] = Prevailing(found, member.schedules[0].rate_unit)
                break
    if "tx" in out:
        out.pop("txdef", None)
    return out


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# --- properties ----------------------------------------------------------------------------------


@EXAMPLES
@given(profiles(), st.lists(instants, min_size=1, max_size=8))
def test_composite_matches_the_oracle(
    installed: list[ChargingProfile], samples: list[datetime]
) -> None:
    now = T0
    result = composite_schedule(
        installed,
        evse_id=1,
        start=WINDOW_START,
        duration_s=WINDOW_S,
        rate_unit=RateUnit.W,
        electrical=ELECTRICAL,
        now=now,
        transaction=TX,
    )
    for at in samples:
        value = limit_at(result, at)
        found = prevailing(installed, at, now)
        tx = found.get("tx") or found.get("txdef")
        mode = tx.period.operation_mode if tx else Mode.CHARGING_ONLY
        limits_w = [p.convert(p.period.limit) for p in found.values() if p.period.limit is not None]
        discharges_w = [
            p.convert(p.period.discharge_limit)
            for p in found.values()
            if p.period.discharge_limit is not None
        ]
        assert value.operation_mode == mode
        if mode == Mode.IDLE:
            assert (value.limit, value.discharge_limit, value.setpoint) == (0.0, 0.0, None)
            continue
        # The composite limit is the minimum of every prevailing limit, so never above any of them.
        if limits_w:
            assert value.limit is not None and close(value.limit, min(limits_w))
        else:
            assert value.limit is None
        # Discharge: never more than any prevailing discharge limit allows; none under ChargingOnly.
        if mode == Mode.CHARGING_ONLY:
            assert value.discharge_limit == 0.0
        elif discharges_w:
            assert value.discharge_limit is not None and close(
                value.discharge_limit, max(discharges_w)
            )
        else:
            assert value.discharge_limit is None
        if value.setpoint is not None:
            assert value.limit is None or value.setpoint <= value.limit + 1e-9
            assert value.discharge_limit is None or value.setpoint >= value.discharge_limit - 1e-9


@EXAMPLES
@given(profiles(), instants)
def test_merging_never_changes_a_value(installed: list[ChargingProfile], at: datetime) -> None:
    def run(start: datetime, duration_s: int) -> CompositeSchedule:
        return composite_schedule(
            installed,
            evse_id=1,
            start=start,
            duration_s=duration_s,
            rate_unit=RateUnit.A,
            electrical=ELECTRICAL,
            now=T0,
            transaction=TX,
        )

    whole = run(WINDOW_START, WINDOW_S)
    assert limit_at(whole, at) == run(at, 1).periods[0].value
    starts = [p.start_period_s for p in whole.periods]
    assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < WINDOW_S
    values = [p.value for p in whole.periods]
    assert all(a != b for a, b in pairwise(values))


@EXAMPLES
@given(profiles(recurring_only=True), st.integers(0, 2 * DAY))
def test_recurring_profiles_are_periodic(installed: list[ChargingProfile], offset_s: int) -> None:
    period_s = WEEK if any(p.recurrency == RecurrencyKind.WEEKLY for p in installed) else DAY
    start = T0 + timedelta(seconds=offset_s)

    def periods_from(begin: datetime) -> tuple[CompositePeriod, ...]:
        return composite_schedule(
            installed,
            evse_id=1,
            start=begin,
            duration_s=DAY,
            rate_unit=RateUnit.W,
            electrical=ELECTRICAL,
            now=T0,
            transaction=TX,
        ).periods

    assert periods_from(start) == periods_from(start + timedelta(seconds=period_s))
    assert periods_from(start) == periods_from(start + timedelta(seconds=3 * period_s))


@EXAMPLES
@given(profiles(), instants)
def test_nothing_changes_before_next_change(
    installed: list[ChargingProfile], now: datetime
) -> None:
    boundary = next_change_after(installed, now, transactions={1: TX})
    horizon_s = 9 * DAY if boundary is None else math.floor((boundary - now).total_seconds())
    assert horizon_s > 0
    result = composite_schedule(
        installed,
        evse_id=1,
        start=now,
        duration_s=horizon_s,
        rate_unit=RateUnit.W,
        electrical=ELECTRICAL,
        now=now,
        transaction=TX,
    )
    assert len(result.periods) == 1


@EXAMPLES
@given(
    st.builds(
        SchedulePeriod,
        start_period_s=st.integers(0, 10),
        limit=st.none() | st.floats(-1e6, 1e6),
        limit_l2=st.none() | st.floats(-1e6, 1e6),
        limit_l3=st.none() | st.floats(-1e6, 1e6),
    )
)
def test_legacy_normalisation_signs(received: SchedulePeriod) -> None:
    evaluated = from_legacy_negative_limit(received)
    assert from_legacy_negative_limit(evaluated) == evaluated
    for value in (evaluated.limit, evaluated.limit_l2, evaluated.limit_l3):
        assert value is None or value >= 0
    for value in (
        evaluated.discharge_limit,
        evaluated.discharge_limit_l2,
        evaluated.discharge_limit_l3,
    ):
        assert value is None or value < 0


junk_numbers = (
    st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5).map(float)
)
junk_periods = st.builds(
    SchedulePeriod,
    start_period_s=st.integers(-10, 100),
    limit=junk_numbers,
    limit_l2=junk_numbers,
    discharge_limit=junk_numbers,
    setpoint=junk_numbers,
    number_phases=st.none() | st.integers(-1, 5),
    phase_to_use=st.none() | st.integers(-1, 5),
    operation_mode=st.sampled_from(Mode),
    evse_sleep=st.booleans(),
)
junk_profiles = st.builds(
    ChargingProfile,
    id=st.integers(-5, 5),
    stack_level=st.integers(-2, 12),
    purpose=st.sampled_from(Purpose),
    kind=st.sampled_from(Kind),
    recurrency=st.none() | st.sampled_from(RecurrencyKind),
    evse_id=st.integers(-1, 3),
    transaction_id=st.none() | st.sampled_from(["tx-1", "tx-2"]),
    max_offline_duration_s=st.none() | st.integers(-5, 5),
    schedules=st.lists(
        st.builds(
            ChargingSchedule,
            id=st.integers(0, 3),
            rate_unit=st.sampled_from(RateUnit),
            periods=st.lists(junk_periods, max_size=3).map(tuple),
            start_schedule=st.none() | st.just(T0),
            duration_s=st.none() | st.integers(-5, 5),
            randomized_delay_s=st.integers(-1, 2),
        ),
        max_size=4,
    ).map(tuple),
)


@EXAMPLES
@given(junk_profiles, st.sampled_from(OcppVersion), instants)
def test_validation_and_composition_never_crash(
    candidate: ChargingProfile, version: OcppVersion, now: datetime
) -> None:
    rejection = validate(
        candidate,
        evse_ids={1, 2},
        active_transactions={1: "tx-1"},
        installed=[],
        limits=limits(version),
        now=now,
    )
    if rejection is not None:
        assert rejection.status == "Rejected" and rejection.additional_info
    # Accepted or not (a store may hold anything), the composite schedule must not raise.
    for evse in (0, 1):
        composite_schedule(
            [candidate],
            evse_id=evse,
            start=now,
            duration_s=DAY,
            rate_unit=RateUnit.A,
            electrical=ELECTRICAL,
            now=now,
            transaction=TX,
        )
    next_change_after([candidate], now, transactions={1: TX})
