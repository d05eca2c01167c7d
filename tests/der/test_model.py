"""The DER core (station.der.model), pure: validation, priorities, what is active, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.der import (
    SUNSPEC_CONTROLS,
    CurvePoint,
    DerControl,
    DerControlSet,
    DerControlStatus,
    DerControlType,
    DerCurve,
    DerUnit,
    DerValueError,
    EnterService,
    FixedPF,
    FixedVar,
    Gradient,
    LimitMaxDischarge,
    ReasonCode,
    Rejection,
    SetRequest,
    SettingKind,
    build_control,
    control_from_json,
    control_to_json,
    limit_max_discharge_w,
    report_chunks,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def pf(
    control_id: str,
    priority: int = 0,
    *,
    start: float | None = None,
    duration: float | None = None,
    received: float = 0.0,
) -> DerControl:
    setting = FixedPF(
        priority,
        0.9,
        True,
        None if start is None else at(start),
        duration,
    )
    return DerControl(
        control_id,
        DerControlType.FIXED_PF_ABSORB,
        start is None,
        setting,
        at(received),
    )


def lmd(control_id: str, pct: float | None, priority: int = 0, **kw: float) -> DerControl:
    start = kw.get("start")
    setting = LimitMaxDischarge(
        priority,
        pct,
        None,
        None if start is None else at(start),
        kw.get("duration"),
    )
    return DerControl(control_id, DerControlType.LIMIT_MAX_DISCHARGE, start is None, setting, NOW)


def request(
    control_type: DerControlType, settings: dict[SettingKind, object], *, is_default: bool = True
) -> SetRequest:
    return SetRequest("c-1", control_type, is_default, settings)  # type: ignore[arg-type]


CURVE = DerCurve(0, DerUnit.PCT_MAX_VAR, (CurvePoint(92, 30), CurvePoint(108, -30)))


# --- validation ----------------------------------------------------------------------------------


def test_a_matching_request_builds_a_control() -> None:
    built = build_control(
        request(DerControlType.VOLT_VAR, {SettingKind.CURVE: CURVE}),
        supported=SUNSPEC_CONTROLS,
        now=NOW,
    )
    assert built == DerControl("c-1", DerControlType.VOLT_VAR, True, CURVE, NOW)


@pytest.mark.parametrize(
    ("control_type", "settings", "is_default", "status", "reason"),
    [
        (
            DerControlType.POWER_MONITORING_MUST_TRIP,
            {SettingKind.CURVE: CURVE},
            True,
            DerControlStatus.NOT_SUPPORTED,
            ReasonCode.UNSUPPORTED_REQUEST,
        ),
        (
            DerControlType.VOLT_VAR,
            {},
            True,
            DerControlStatus.REJECTED,
            ReasonCode.MISSING_PARAM,
        ),
        (
            DerControlType.FIXED_PF_ABSORB,
            {SettingKind.FIXED_PF_INJECT: FixedPF(0, 0.9, False)},
            True,
            DerControlStatus.REJECTED,
            ReasonCode.UNSUPPORTED_PARAM,
        ),
        (
            DerControlType.VOLT_VAR,
            {SettingKind.CURVE: CURVE, SettingKind.GRADIENT: Gradient(0, 1, 1)},
            True,
            DerControlStatus.REJECTED,
            ReasonCode.UNSUPPORTED_PARAM,
        ),
        (
            DerControlType.FIXED_VAR,
            {SettingKind.FIXED_VAR: FixedVar(0, 120.0, DerUnit.PCT_MAX_VAR)},
            True,
            DerControlStatus.REJECTED,
            ReasonCode.VALUE_OUT_OF_RANGE,
        ),
        (
            DerControlType.FIXED_PF_ABSORB,
            {SettingKind.FIXED_PF_ABSORB: FixedPF(0, float("nan"), True)},
            True,
            DerControlStatus.REJECTED,
            ReasonCode.INVALID_VALUE,
        ),
        (
            DerControlType.VOLT_VAR,
            {
                SettingKind.CURVE: DerCurve(
                    0, DerUnit.PCT_MAX_VAR, (CurvePoint(108, 0), CurvePoint(92, 0))
                )
            },
            True,
            DerControlStatus.REJECTED,
            ReasonCode.INVALID_VALUE,
        ),
        (
            DerControlType.ENTER_SERVICE,
            {SettingKind.ENTER_SERVICE: EnterService(0, 105, 95, 50.1, 49.9)},
            False,  # EnterService has no schedule: default only
            DerControlStatus.REJECTED,
            ReasonCode.INVALID_SCHEDULE,
        ),
        (
            DerControlType.FIXED_PF_ABSORB,
            {SettingKind.FIXED_PF_ABSORB: FixedPF(0, 0.9, True, NOW, 60)},
            True,  # a default with a schedule
            DerControlStatus.REJECTED,
            ReasonCode.INVALID_SCHEDULE,
        ),
        (
            DerControlType.FIXED_PF_ABSORB,
            {SettingKind.FIXED_PF_ABSORB: FixedPF(0, 0.9, True)},
            False,  # scheduled without startTime/duration
            DerControlStatus.REJECTED,
            ReasonCode.INVALID_SCHEDULE,
        ),
        (
            DerControlType.FIXED_PF_ABSORB,
            {SettingKind.FIXED_PF_ABSORB: FixedPF(0, 0.9, True, at(-120), 60)},
            False,  # already over
            DerControlStatus.REJECTED,
            ReasonCode.INVALID_SCHEDULE,
        ),
        (
            DerControlType.LIMIT_MAX_DISCHARGE,
            {SettingKind.LIMIT_MAX_DISCHARGE: LimitMaxDischarge(0, 101.0)},
            True,
            DerControlStatus.REJECTED,
            ReasonCode.VALUE_OUT_OF_RANGE,
        ),
    ],
)
def test_bad_requests_are_refused(
    control_type: DerControlType,
    settings: dict[SettingKind, object],
    is_default: bool,
    status: DerControlStatus,
    reason: ReasonCode,
) -> None:
    built = build_control(
        request(control_type, settings, is_default=is_default),
        supported=SUNSPEC_CONTROLS,
        now=NOW,
    )
    assert isinstance(built, Rejection)
    assert (built.status, built.reason_code) == (status, reason)
    assert built.additional_info


def test_the_capability_set_decides_what_is_supported() -> None:
    only_pf = frozenset({DerControlType.FIXED_PF_ABSORB})
    built = build_control(
        request(DerControlType.VOLT_VAR, {SettingKind.CURVE: CURVE}), supported=only_pf, now=NOW
    )
    assert isinstance(built, Rejection) and built.status is DerControlStatus.NOT_SUPPORTED
    assert DerControlType.POWER_MONITORING_MUST_TRIP not in SUNSPEC_CONTROLS
    assert len(SUNSPEC_CONTROLS) == len(DerControlType) - 1


# --- priorities and supersession -----------------------------------------------------------------


def test_a_higher_priority_default_supersedes_and_a_lower_one_does_not() -> None:
    controls, superseded = DerControlSet().install(pf("a", 5))
    assert superseded == ()
    controls, superseded = controls.install(pf("b", 1, received=1))
    assert superseded == ("a",)
    controls, superseded = controls.install(pf("c", 9, received=2))
    assert superseded == ()  # it loses
    assert controls.is_superseded(controls.get("c"))  # type: ignore[arg-type]
    assert not controls.is_superseded(controls.get("b"))  # type: ignore[arg-type]
    assert controls.active(NOW)[DerControlType.FIXED_PF_ABSORB].control_id == "b"
    # "a" was already superseded: a new winner does not report it again.
    controls, superseded = controls.install(pf("d", 0, received=3))
    assert superseded == ("b",)


def test_the_same_id_replaces() -> None:
    controls, _ = DerControlSet([pf("a", 1), pf("b", 2)]).install(pf("a", 3, received=5))
    assert len(controls) == 2
    assert controls.get("a").priority == 3  # type: ignore[union-attr]
    assert controls.active(NOW)[DerControlType.FIXED_PF_ABSORB].control_id == "b"


def test_scheduled_controls_supersede_only_when_their_windows_overlap() -> None:
    controls = DerControlSet([pf("early", 5, start=0, duration=60)])
    _, superseded = controls.install(pf("later", 1, start=60, duration=60))
    assert superseded == ()  # [0, 60) and [60, 120) do not overlap
    _, superseded = controls.install(pf("overlap", 1, start=30, duration=60))
    assert superseded == ("early",)


def test_a_scheduled_control_in_its_window_beats_every_default() -> None:
    controls = DerControlSet([pf("default", 0), pf("sched", 9, start=10, duration=10)])
    kind = DerControlType.FIXED_PF_ABSORB
    assert controls.active(at(5))[kind].control_id == "default"
    assert controls.active(at(10))[kind].control_id == "sched"
    assert controls.active(at(20))[kind].control_id == "default"
    assert controls.next_change_after(NOW) == at(10)
    assert controls.next_change_after(at(10)) == at(20)
    assert controls.next_change_after(at(20)) is None
    assert controls.expired(at(20)) == ("sched",)


def test_clear_and_query_select_by_kind_type_and_id() -> None:
    controls = DerControlSet([pf("a", 1), pf("s", 1, start=10, duration=10), lmd("l", 50)])
    assert [c.control_id for c in controls.query(is_default=True)] == ["a", "l"]
    assert [c.control_id for c in controls.query(control_id="s")] == ["s"]
    # controlType is not used when controlId is given.
    found = controls.query(control_type=DerControlType.LIMIT_MAX_DISCHARGE, control_id="a")
    assert [c.control_id for c in found] == ["a"]
    same, gone = controls.clear(is_default=True, control_id="s")  # kind does not match
    assert gone == () and same is controls
    rest, gone = controls.clear(is_default=True, control_type=DerControlType.FIXED_PF_ABSORB)
    assert gone == ("a",) and sorted(c.control_id for c in rest) == ["l", "s"]
    rest, gone = controls.clear(is_default=False)
    assert gone == ("s",)


def test_transitions_start_then_end() -> None:
    controls = DerControlSet([pf("default", 0), pf("sched", 3, start=10, duration=10)])
    assert controls.transitions(frozenset(), at(5)) == ()
    (started,) = controls.transitions(frozenset(), at(10))
    assert (started.control_id, started.started, started.at) == ("sched", True, at(10))
    assert started.superseded_ids == ("default",)
    assert controls.transitions(frozenset({"sched"}), at(15)) == ()
    (ended,) = controls.transitions(frozenset({"sched"}), at(20))
    assert (ended.control_id, ended.started, ended.at) == ("sched", False, at(20))


def test_limit_max_discharge_is_a_share_of_the_rating() -> None:
    assert limit_max_discharge_w(DerControlSet(), 10_000.0, NOW) is None
    assert limit_max_discharge_w(DerControlSet([lmd("l", 25)]), 10_000.0, NOW) == 2500.0
    assert limit_max_discharge_w(DerControlSet([lmd("l", 0)]), 10_000.0, NOW) == 0.0
    assert limit_max_discharge_w(DerControlSet([lmd("l", None)]), 10_000.0, NOW) is None
    scheduled = DerControlSet([lmd("d", 80), lmd("s", 10, start=0, duration=60)])
    assert limit_max_discharge_w(scheduled, 10_000.0, at(30)) == 1000.0
    assert limit_max_discharge_w(scheduled, 10_000.0, at(60)) == 8000.0
    with pytest.raises(DerValueError):
        limit_max_discharge_w(scheduled, -1.0, NOW)


def test_report_chunks() -> None:
    controls = [pf(f"c{n}", n) for n in range(50)]
    chunks = report_chunks(controls)
    assert [len(c) for c in chunks] == [24, 24, 2]
    assert report_chunks([]) == ()
    with pytest.raises(ValueError):
        report_chunks(controls, 0)


def test_duplicate_ids_and_corrupt_json_are_errors() -> None:
    with pytest.raises(DerValueError):
        DerControlSet([pf("a"), pf("a")])
    with pytest.raises(DerValueError):
        control_from_json({"control_id": "a", "control_type": "Nope"})
    good = control_to_json(pf("a"))
    with pytest.raises(DerValueError):
        control_from_json({**good, "setting": {**good["setting"], "colour": "red"}})


# --- properties ----------------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)

curves = st.builds(
    DerCurve,
    priority=st.integers(0, 100),
    y_unit=st.sampled_from(DerUnit),
    points=st.lists(finite, min_size=1, max_size=10, unique=True).map(
        lambda xs: tuple(CurvePoint(x, -x) for x in sorted(xs))
    ),
    response_time_s=st.none() | st.floats(0, 100),
)

controls_st = st.builds(
    lambda control_id, priority, start, duration, received, is_default: pf(
        control_id,
        priority,
        start=None if is_default else start,
        duration=None if is_default else duration,
        received=received,
    ),
    st.text("abcdef", min_size=1, max_size=4),
    st.integers(0, 5),
    st.integers(-100, 100).map(float),
    st.integers(1, 100).map(float),
    st.integers(0, 50).map(float),
    st.booleans(),
)


@given(st.lists(controls_st, max_size=12, unique_by=lambda c: c.control_id), st.integers(-50, 250))
def test_the_active_control_beats_every_other_candidate(
    controls: list[DerControl], now_s: int
) -> None:
    control_set = DerControlSet(controls)
    now = at(now_s)
    candidates = [c for c in controls if c.is_default or c.in_window(now)]
    active = control_set.active(now)
    if not candidates:
        assert active == {}
        return
    winner = active[DerControlType.FIXED_PF_ABSORB]
    assert winner in candidates
    if winner.is_default:
        # A scheduled winner may be superseded by an overlapping rival whose window has
        # not begun or has ended: supersession is about windows, activity about now.
        assert not control_set.is_superseded(winner)
    if any(not c.is_default for c in candidates):
        assert not winner.is_default
    for other in candidates:
        if other is not winner and other.is_default == winner.is_default:
            assert winner.beats(other) and not other.beats(winner)


@given(st.lists(controls_st, max_size=12, unique_by=lambda c: c.control_id), controls_st)
def test_install_reports_only_newly_superseded_rivals(
    controls: list[DerControl], new: DerControl
) -> None:
    before = DerControlSet(controls)
    after, superseded = before.install(new)
    assert after.get(new.control_id) == new
    for control_id in superseded:
        old = after.get(control_id)
        assert old is not None and old.control_id != new.control_id
        assert after.is_superseded(old) and not before.is_superseded(old)
        assert new.beats(old)


@given(curves, st.booleans())
def test_json_round_trip(curve: DerCurve, is_default: bool) -> None:
    control = DerControl("c", DerControlType.VOLT_WATT, is_default, curve, NOW)
    assert control_from_json(control_to_json(control)) == control
    limit = DerControl(
        "l", DerControlType.LIMIT_MAX_DISCHARGE, True, LimitMaxDischarge(1, 50.0, curve), NOW
    )
    assert control_from_json(control_to_json(limit)) == limit
