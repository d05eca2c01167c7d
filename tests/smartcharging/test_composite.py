"""Composite schedules (K08) as exact tables: stacking, recurrence, units, validity, V2X."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from station.smartcharging import (
    ChargingProfile,
    CompositeSchedule,
    ElectricalParams,
    OperationMode,
    PeriodValue,
    RateUnit,
    RecurrencyKind,
    SmartChargingValueError,
    TransactionInfo,
    composite_schedule,
    limit_at,
    next_change_after,
    to_legacy_limit,
)
from tests.smartcharging.builders import (
    DAY,
    HOUR,
    T0,
    Kind,
    Purpose,
    at,
    period,
    profile,
    schedule,
)

AC = ElectricalParams(nominal_voltage_v=230.0)
TX = TransactionInfo("tx-1", T0)
Mode = OperationMode


def run(profiles: list[ChargingProfile], **options: Any) -> CompositeSchedule:
    kwargs: dict[str, Any] = {
        "evse_id": 1,
        "start": T0,
        "duration_s": DAY,
        "rate_unit": RateUnit.A,
        "electrical": AC,
        "now": T0,
    }
    kwargs.update(options)
    return composite_schedule(profiles, **kwargs)


def rows(result: CompositeSchedule, *fields: str) -> list[tuple[Any, ...]]:
    names = fields or ("limit",)
    return [(p.start_period_s, *(getattr(p.value, n) for n in names)) for p in result.periods]


def station_max(limit: float, pid: int = 100, **kw: Any) -> ChargingProfile:
    return profile(
        pid,
        Purpose.CHARGING_STATION_MAX_PROFILE,
        evse=0,
        schedules=schedule((0, limit), start=at(-30 * DAY)),
        **kw,
    )


# --- stacking and purposes ------------------------------------------------------------------------

STACKING = [
    pytest.param([], {}, [(0, None)], id="no-profile-no-limit"),
    pytest.param(
        [
            profile(1, stack=0, schedules=schedule((0, 16.0), start=T0)),
            profile(
                2,
                stack=1,
                schedules=schedule((0, 10.0), start=T0),
                valid_from=at(HOUR),
                valid_to=at(2 * HOUR),
            ),
        ],
        {},
        [(0, 16.0), (HOUR, 10.0), (2 * HOUR, 16.0)],
        id="higher-stack-within-validity",
    ),
    pytest.param(
        [
            profile(1, stack=0, schedules=schedule((0, 16.0), start=T0)),
            profile(2, stack=1, schedules=schedule((0, 10.0), start=T0, duration_s=1800)),
        ],
        {},
        [(0, 10.0), (1800, 16.0)],
        id="higher-stack-duration-ends-lower-takes-over",
    ),
    pytest.param(
        [
            profile(1, stack=5, schedules=schedule((0, 10.0), start=T0)),
            profile(
                2,
                Purpose.TX_PROFILE,
                stack=0,
                transaction_id="tx-1",
                schedules=schedule((0, 20.0), start=T0),
            ),
        ],
        {"transaction": TX},
        [(0, 20.0)],
        id="txprofile-overrules-txdefault-whatever-stack",
    ),
    pytest.param(
        [
            profile(1, stack=0, schedules=schedule((0, 10.0), start=T0)),
            profile(
                2,
                Purpose.TX_PROFILE,
                kind=Kind.RELATIVE,
                transaction_id="tx-1",
                schedules=schedule((0, 20.0), duration_s=HOUR),
            ),
        ],
        {"transaction": TX},
        [(0, 20.0), (HOUR, 10.0)],
        id="txprofile-ends-txdefault-resumes",
    ),
    pytest.param(
        [
            profile(1, stack=0, schedules=schedule((0, 10.0), start=T0)),
            profile(
                2,
                Purpose.TX_PROFILE,
                transaction_id="tx-other",
                schedules=schedule((0, 20.0), start=T0),
            ),
        ],
        {"transaction": TX},
        [(0, 10.0)],
        id="txprofile-of-another-transaction-ignored",
    ),
    pytest.param(
        [
            profile(
                2,
                Purpose.TX_PROFILE,
                transaction_id="tx-1",
                schedules=schedule((0, 20.0), start=T0),
            )
        ],
        {},
        [(0, None)],
        id="txprofile-without-transaction-ignored",
    ),
    pytest.param(
        [
            profile(1, stack=1, evse=0, schedules=schedule((0, 12.0), start=T0)),
            profile(2, stack=0, evse=1, schedules=schedule((0, 8.0), start=T0)),
        ],
        {},
        [(0, 12.0)],
        id="txdefault-evse0-higher-stack-wins",
    ),
    pytest.param(
        [
            profile(1, stack=0, evse=0, schedules=schedule((0, 12.0), start=T0)),
            profile(2, stack=1, evse=1, schedules=schedule((0, 8.0), start=T0)),
        ],
        {},
        [(0, 8.0)],
        id="txdefault-evse-higher-stack-wins",
    ),
    pytest.param(
        [
            profile(1, stack=0, evse=0, schedules=schedule((0, 12.0), start=T0)),
            profile(2, stack=0, evse=1, schedules=schedule((0, 8.0), start=T0)),
        ],
        {},
        [(0, 8.0)],
        id="txdefault-tie-goes-to-the-evse",
    ),
    pytest.param(
        [profile(1, stack=0, evse=2, schedules=schedule((0, 8.0), start=T0))],
        {},
        [(0, None)],
        id="txdefault-of-other-evse-ignored",
    ),
    pytest.param(
        [
            profile(
                100,
                Purpose.CHARGING_STATION_MAX_PROFILE,
                evse=0,
                schedules=schedule((0, 32.0), (HOUR, 10.0), start=T0),
            ),
            profile(1, schedules=schedule((0, 16.0), start=T0)),
        ],
        {},
        [(0, 16.0), (HOUR, 10.0)],
        id="station-max-caps-the-evse",
    ),
    pytest.param(
        [
            profile(1, schedules=schedule((0, 16.0), start=T0)),
            profile(
                7,
                Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
                evse=0,
                schedules=schedule((0, 25.0), start=T0),
            ),
            profile(
                8,
                Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
                evse=1,
                schedules=schedule((0, 12.0), start=at(1800)),
            ),
        ],
        {},
        [(0, 16.0), (1800, 12.0)],
        id="external-constraints-station-and-evse",
    ),
    pytest.param(
        [
            profile(
                7,
                Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
                evse=0,
                schedules=schedule((0, 10.0), start=T0),
            ),
            profile(
                9,
                Purpose.LOCAL_GENERATION,
                evse=0,
                schedules=schedule((0, 6.0), start=T0, duration_s=HOUR),
            ),
        ],
        {},
        [(0, 16.0), (HOUR, 10.0)],
        id="local-generation-adds-to-external-limit",
    ),
    pytest.param(
        [profile(9, Purpose.LOCAL_GENERATION, evse=0, schedules=schedule((0, 6.0), start=T0))],
        {},
        [(0, None)],
        id="local-generation-alone-limits-nothing",
    ),
    pytest.param(
        [
            profile(1, schedules=schedule((0, 10.0), start=T0)),
            profile(5, Purpose.PRIORITY_CHARGING, evse=1, schedules=schedule((0, 30.0), start=T0)),
        ],
        {"priority_charging": True},
        [(0, 30.0)],
        id="priority-charging-overrules-when-active",
    ),
    pytest.param(
        [
            profile(1, schedules=schedule((0, 10.0), start=T0)),
            profile(5, Purpose.PRIORITY_CHARGING, evse=1, schedules=schedule((0, 30.0), start=T0)),
        ],
        {},
        [(0, 10.0)],
        id="priority-charging-inactive",
    ),
]


@pytest.mark.parametrize(("profiles", "options", "expected"), STACKING)
def test_stacking(
    profiles: list[ChargingProfile], options: dict[str, Any], expected: list[Any]
) -> None:
    assert rows(run(profiles, **options)) == expected


def test_evse0_is_the_grid_connection() -> None:
    profiles = [
        station_max(32.0),
        profile(
            7,
            Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
            evse=0,
            schedules=schedule((0, 20.0), start=at(HOUR)),
        ),
        profile(
            8,
            Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
            evse=1,
            schedules=schedule((0, 5.0), start=T0),
        ),
        profile(1, evse=0, schedules=schedule((0, 6.0), start=T0)),  # TxDefault: not the grid's
    ]
    result = run(profiles, evse_id=0, transaction=TX)
    assert result.evse_id == 0
    assert rows(result, "limit", "discharge_limit", "operation_mode") == [
        (0, 32.0, None, Mode.CHARGING_ONLY),
        (HOUR, 20.0, None, Mode.CHARGING_ONLY),
    ]


def test_evse0_reports_station_discharge_limit() -> None:
    mx = profile(
        100,
        Purpose.CHARGING_STATION_MAX_PROFILE,
        evse=0,
        schedules=schedule(period(0, 32.0, discharge_limit=-20.0), start=T0),
    )
    assert rows(run([mx], evse_id=0), "limit", "discharge_limit") == [(0, 32.0, -20.0)]


# --- recurrence ----------------------------------------------------------------------------------


def test_daily_recurrence_across_midnight() -> None:
    nightly = profile(
        1,
        kind=Kind.RECURRING,
        recurrency=RecurrencyKind.DAILY,
        schedules=schedule((0, 10.0), (2 * HOUR, 20.0), start=at(-2 * HOUR), duration_s=4 * HOUR),
    )
    # From 21:00 the day before T0 for two days: 22:00-00:00 10 A, 00:00-02:00 20 A, then none.
    result = run([station_max(32.0), nightly], start=at(-3 * HOUR), duration_s=2 * DAY)
    assert rows(result) == [
        (0, 32.0),
        (HOUR, 10.0),
        (3 * HOUR, 20.0),
        (5 * HOUR, 32.0),
        (DAY + HOUR, 10.0),
        (DAY + 3 * HOUR, 20.0),
        (DAY + 5 * HOUR, 32.0),
    ]


def test_daily_recurrence_without_duration_runs_until_next_occurrence() -> None:
    daily = profile(
        1,
        kind=Kind.RECURRING,
        schedules=schedule((0, 10.0), (12 * HOUR, 20.0), start=at(6 * HOUR - 30 * DAY)),
    )
    assert rows(run([daily], duration_s=2 * DAY)) == [
        (0, 20.0),
        (6 * HOUR, 10.0),
        (18 * HOUR, 20.0),
        (DAY + 6 * HOUR, 10.0),
        (DAY + 18 * HOUR, 20.0),
    ]


def test_weekly_recurrence_across_week_boundary() -> None:
    # Sunday 20:00 (T0 is Monday 00:00) for 8 h: 6 A until Monday 02:00, then 12 A until 04:00.
    weekly = profile(
        1,
        kind=Kind.RECURRING,
        recurrency=RecurrencyKind.WEEKLY,
        schedules=schedule(
            (0, 6.0), (6 * HOUR, 12.0), start=at(-4 * HOUR - 5 * 7 * DAY), duration_s=8 * HOUR
        ),
    )
    first = run([station_max(32.0), weekly], start=at(-6 * HOUR), duration_s=12 * HOUR)
    assert rows(first) == [(0, 32.0), (2 * HOUR, 6.0), (8 * HOUR, 12.0), (10 * HOUR, 32.0)]
    next_week = run(
        [station_max(32.0), weekly], start=at(-6 * HOUR + 7 * DAY), duration_s=12 * HOUR
    )
    assert rows(next_week) == rows(first)
    midweek = run([station_max(32.0), weekly], start=at(2 * DAY), duration_s=DAY)
    assert rows(midweek) == [(0, 32.0)]


def test_recurrence_respects_validity() -> None:
    daily = profile(
        1,
        kind=Kind.RECURRING,
        schedules=schedule((0, 10.0), start=T0, duration_s=HOUR),
        valid_from=at(DAY),
        valid_to=at(2 * DAY + 1800),
    )
    assert rows(run([station_max(32.0), daily], duration_s=3 * DAY)) == [
        (0, 32.0),
        (DAY, 10.0),
        (DAY + HOUR, 32.0),
        (2 * DAY, 10.0),
        (2 * DAY + 1800, 32.0),
    ]


# --- units ---------------------------------------------------------------------------------------

UNITS = [
    pytest.param(
        schedule((0, 16.0), start=T0), RateUnit.W, AC, 11040.0, id="A-to-W-3-phases-default"
    ),
    pytest.param(
        schedule(period(0, 16.0, number_phases=1), start=T0),
        RateUnit.W,
        AC,
        3680.0,
        id="A-to-W-1-phase",
    ),
    pytest.param(
        schedule(period(0, 7360.0, number_phases=2), unit=RateUnit.W, start=T0),
        RateUnit.A,
        AC,
        16.0,
        id="W-to-A-2-phases",
    ),
    pytest.param(
        schedule((0, 11040.0), unit=RateUnit.W, start=T0),
        RateUnit.A,
        AC,
        16.0,
        id="W-to-A-3-phases",
    ),
    pytest.param(
        schedule((0, 16.0), start=T0),
        RateUnit.W,
        ElectricalParams(nominal_voltage_v=230.0, phases=1),
        3680.0,
        id="A-to-W-single-phase-station-default",
    ),
    pytest.param(
        schedule((0, 100.0), start=T0),
        RateUnit.W,
        ElectricalParams(nominal_voltage_v=400.0, dc=True),
        40000.0,
        id="A-to-W-dc-nominal-voltage",
    ),
    pytest.param(
        schedule((0, 50000.0), unit=RateUnit.W, start=T0),
        RateUnit.A,
        ElectricalParams(nominal_voltage_v=500.0, dc=True),
        100.0,
        id="W-to-A-dc",
    ),
]


@pytest.mark.parametrize(("sched", "unit", "electrical", "expected"), UNITS)
def test_unit_conversion(
    sched: Any, unit: RateUnit, electrical: ElectricalParams, expected: float
) -> None:
    result = run([profile(1, schedules=sched)], rate_unit=unit, electrical=electrical)
    assert result.rate_unit == unit
    assert rows(result) == [(0, pytest.approx(expected))]


def test_minimum_taken_after_conversion() -> None:
    mx = profile(
        100,
        Purpose.CHARGING_STATION_MAX_PROFILE,
        evse=0,
        schedules=schedule((0, 6900.0), unit=RateUnit.W, start=T0),
    )
    tx_default = profile(1, schedules=schedule((0, 16.0), (HOUR, 8.0), start=T0))
    assert rows(run([mx, tx_default])) == [(0, 10.0), (HOUR, 8.0)]
    assert rows(run([mx, tx_default], rate_unit=RateUnit.W)) == [(0, 6900.0), (HOUR, 5520.0)]


def test_per_phase_values_are_reported_when_present() -> None:
    tx = profile(
        2,
        Purpose.TX_PROFILE,
        transaction_id="tx-1",
        schedules=schedule(period(0, 10.0, limit_l2=12.0, limit_l3=8.0), start=T0),
    )
    result = run([station_max(11.0), tx], transaction=TX)
    assert rows(result, "limit", "limit_l2", "limit_l3") == [(0, 10.0, 11.0, 8.0)]


def test_number_phases_lowest_wins() -> None:
    mx = profile(
        100,
        Purpose.CHARGING_STATION_MAX_PROFILE,
        evse=0,
        schedules=schedule(period(0, 32.0, number_phases=1), start=T0),
    )
    tx_default = profile(1, schedules=schedule(period(0, 16.0, number_phases=3), start=T0))
    assert rows(run([mx, tx_default]), "limit", "number_phases") == [(0, 16.0, 1)]


# --- time anchors, validity, dynamic, offline ----------------------------------------------------

TIMING = [
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), start=T0), received_at=at(HOUR))],
        {},
        [(0, None), (HOUR, 10.0)],
        id="without-validFrom-valid-from-receipt",
    ),
    pytest.param(
        [
            profile(
                1, schedules=schedule((0, 10.0), start=T0), valid_from=at(600), valid_to=at(1200)
            )
        ],
        {},
        [(0, None), (600, 10.0), (1200, None)],
        id="validity-window-cuts",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), (HOUR, 20.0), start=at(-1800)))],
        {},
        [(0, 10.0), (1800, 20.0)],
        id="absolute-started-before-window",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), start=T0, duration_s=900))],
        {},
        [(0, 10.0), (900, None)],
        id="schedule-duration-cuts",
    ),
    pytest.param(
        [
            profile(
                2,
                Purpose.TX_PROFILE,
                kind=Kind.RELATIVE,
                transaction_id="tx-1",
                schedules=schedule((0, 10.0), (HOUR, 20.0)),
            )
        ],
        {"transaction": TransactionInfo("tx-1", at(-1800))},
        [(0, 10.0), (1800, 20.0)],
        id="relative-starts-at-transaction-start",
    ),
    pytest.param(
        [profile(1, kind=Kind.RELATIVE, schedules=schedule((0, 10.0), (HOUR, 20.0)))],
        {"now": at(600)},
        [(0, None), (600, 10.0), (HOUR + 600, 20.0)],
        id="relative-without-transaction-starts-now",
    ),
    pytest.param(
        [
            profile(1, schedules=schedule((0, 10.0), start=T0)),
            profile(
                2,
                stack=1,
                kind=Kind.DYNAMIC,
                schedules=schedule((0, 20.0), duration_s=600),
                dyn_update_time=at(300),
            ),
        ],
        {},
        [(0, 20.0), (900, 10.0)],
        id="dynamic-stale-after-duration-since-update",
    ),
    pytest.param(
        [
            profile(1, schedules=schedule((0, 10.0), start=T0)),
            profile(
                2, stack=1, schedules=schedule((0, 20.0), start=T0), max_offline_duration_s=300
            ),
        ],
        {"offline_since": at(600)},
        [(0, 20.0), (900, 10.0)],
        id="max-offline-duration",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), (HOUR, 10.0), (2 * HOUR, 12.0), start=T0))],
        {},
        [(0, 10.0), (2 * HOUR, 12.0)],
        id="identical-periods-merged",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), start=at(500)))],
        {"start": at(1000) + timedelta(microseconds=999_999), "duration_s": 60},
        [(0, 10.0)],
        id="start-truncated-to-second",
    ),
]


@pytest.mark.parametrize(("profiles", "options", "expected"), TIMING)
def test_timing(
    profiles: list[ChargingProfile], options: dict[str, Any], expected: list[Any]
) -> None:
    assert rows(run(profiles, **options)) == expected


def test_duration_zero_gives_the_value_at_start() -> None:
    # GetCompositeSchedule(duration=0) with a ChargingStationMaxProfile: reported wrong elsewhere.
    result = run([station_max(32.0)], duration_s=0, evse_id=0)
    assert result.duration_s == 0
    assert rows(result) == [(0, 32.0)]
    assert limit_at(result, T0).limit == 32.0


def test_negative_duration_is_a_bug_at_the_edge() -> None:
    with pytest.raises(SmartChargingValueError):
        run([], duration_s=-1)


# --- V2X: discharge, set-points, modes -----------------------------------------------------------


def v2x_tx(*periods: Any, unit: RateUnit = RateUnit.W) -> ChargingProfile:
    return profile(
        2,
        Purpose.TX_PROFILE,
        transaction_id="tx-1",
        schedules=schedule(*periods, unit=unit, start=T0),
    )


V2X = [
    pytest.param(
        [
            v2x_tx(
                period(
                    0,
                    7000.0,
                    discharge_limit=-7000.0,
                    setpoint=-5000.0,
                    operation_mode=Mode.CENTRAL_SETPOINT,
                )
            )
        ],
        (7000.0, -7000.0, -5000.0, Mode.CENTRAL_SETPOINT),
        id="central-setpoint-passes-through",
    ),
    pytest.param(
        [
            v2x_tx(
                period(
                    0,
                    7000.0,
                    discharge_limit=-7000.0,
                    setpoint=-5000.0,
                    operation_mode=Mode.CENTRAL_SETPOINT,
                )
            ),
            profile(
                100,
                Purpose.CHARGING_STATION_MAX_PROFILE,
                evse=0,
                schedules=schedule(
                    period(0, 11000.0, discharge_limit=-4000.0), unit=RateUnit.W, start=T0
                ),
            ),
        ],
        (7000.0, -4000.0, -4000.0, Mode.CENTRAL_SETPOINT),
        id="discharge-limit-closest-to-zero-wins-setpoint-clamped",
    ),
    pytest.param(
        [
            v2x_tx(period(0, None, setpoint=10000.0, operation_mode=Mode.CENTRAL_SETPOINT)),
            profile(
                100,
                Purpose.CHARGING_STATION_MAX_PROFILE,
                evse=0,
                schedules=schedule((0, 7000.0), unit=RateUnit.W, start=T0),
            ),
        ],
        (7000.0, None, 7000.0, Mode.CENTRAL_SETPOINT),
        id="setpoint-clamped-to-station-max",
    ),
    pytest.param(
        [
            v2x_tx(
                period(
                    0, 7000.0, discharge_limit=-7000.0, setpoint=-3000.0, operation_mode=Mode.IDLE
                )
            )
        ],
        (0.0, 0.0, None, Mode.IDLE),
        id="idle-no-power",
    ),
    pytest.param(
        [
            v2x_tx(period(0, 7000.0)),
            profile(
                100,
                Purpose.CHARGING_STATION_MAX_PROFILE,
                evse=0,
                schedules=schedule(
                    period(0, 11000.0, discharge_limit=-4000.0), unit=RateUnit.W, start=T0
                ),
            ),
        ],
        (7000.0, 0.0, None, Mode.CHARGING_ONLY),
        id="charging-only-never-discharges",
    ),
    pytest.param(
        [v2x_tx(period(0, -6000.0))],
        (0.0, -6000.0, -6000.0, Mode.CENTRAL_SETPOINT),
        id="legacy-2.0.1-negative-limit",
    ),
    pytest.param(
        [v2x_tx(period(0, -6000.0)), station_max(10.0)],
        (0.0, -6000.0, -6000.0, Mode.CENTRAL_SETPOINT),
        id="legacy-negative-limit-station-max-bounds-charging-only",
    ),
    pytest.param(
        [v2x_tx(period(0, 0.0))],
        (0.0, 0.0, None, Mode.CHARGING_ONLY),
        id="limit-zero-is-no-power-not-discharge",
    ),
    pytest.param(
        [
            v2x_tx(
                period(0, 7000.0, discharge_limit=-7000.0, operation_mode=Mode.EXTERNAL_SETPOINT)
            ),
            profile(
                -1,
                Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
                evse=1,
                schedules=schedule(
                    period(0, None, setpoint=-3000.0, operation_mode=Mode.EXTERNAL_SETPOINT),
                    unit=RateUnit.W,
                    start=T0,
                ),
                limit_source="EMS",
            ),
        ],
        (7000.0, -7000.0, -3000.0, Mode.EXTERNAL_SETPOINT),
        id="external-setpoint-from-external-system",
    ),
    pytest.param(
        [v2x_tx(period(0, None, operation_mode=Mode.EXTERNAL_LIMITS))],
        (None, None, None, Mode.EXTERNAL_LIMITS),
        id="external-limits-no-profile-bounds",
    ),
]


@pytest.mark.parametrize(("profiles", "expected"), V2X)
def test_v2x(profiles: list[ChargingProfile], expected: tuple[Any, ...]) -> None:
    result = run(profiles, transaction=TX, rate_unit=RateUnit.W)
    assert rows(result, "limit", "discharge_limit", "setpoint", "operation_mode") == [
        (0, *expected)
    ]


def test_v2x_fields_follow_the_transaction_level() -> None:
    from station.smartcharging import FreqWattPoint, LimitAtSoc

    curve = (FreqWattPoint(49.8, -5000.0), FreqWattPoint(50.2, 5000.0))
    tx = profile(
        2,
        Purpose.TX_PROFILE,
        transaction_id="tx-1",
        schedules=schedule(
            period(
                0,
                7000.0,
                discharge_limit=-7000.0,
                operation_mode=Mode.LOCAL_FREQUENCY,
                v2x_baseline=0.0,
                v2x_freq_watt_curve=curve,
                preconditioning_request=True,
            ),
            unit=RateUnit.W,
            start=T0,
            min_charging_rate=1380.0,
            limit_at_soc=LimitAtSoc(80, 3000.0),
        ),
    )
    value = run([tx], transaction=TX, rate_unit=RateUnit.A).periods[0].value
    assert value.operation_mode == Mode.LOCAL_FREQUENCY
    assert value.v2x_freq_watt_curve == curve  # always W: not converted
    assert value.v2x_baseline == 0.0
    assert value.preconditioning_request is True
    assert value.min_charging_rate == pytest.approx(2.0)
    assert value.limit_at_soc is not None and value.limit_at_soc.limit == pytest.approx(
        3000.0 / 690
    )


def test_schedule_index_picks_iso15118_tuple() -> None:
    tx = profile(
        2,
        Purpose.TX_PROFILE,
        transaction_id="tx-1",
        schedules=(schedule((0, 10.0), start=T0), schedule((0, 20.0), start=T0, schedule_id=2)),
    )
    assert rows(run([tx], transaction=TX, schedule_index=1)) == [(0, 20.0)]
    assert rows(run([tx], transaction=TX, schedule_index=2)) == [(0, None)]


def test_external_limits_argument_joins_the_minimum() -> None:
    grid = profile(
        -5,
        Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
        evse=0,
        schedules=schedule((0, 9.0), start=T0),
    )
    assert rows(run([station_max(32.0)], external_limits=[grid])) == [(0, 9.0)]


# --- limit_at, next_change_after, to_legacy_limit -----------------------------------------------


def test_limit_at_finds_the_period() -> None:
    result = run([profile(1, schedules=schedule((0, 10.0), (HOUR, 20.0), start=T0))])
    assert limit_at(result, at(HOUR - 1)).limit == 10.0
    assert limit_at(result, at(HOUR)).limit == 20.0
    assert limit_at(result, at(DAY - 1)).limit == 20.0
    for outside in (at(-1), at(DAY)):
        with pytest.raises(SmartChargingValueError):
            limit_at(result, outside)


NEXT = [
    pytest.param([], {}, T0, None, id="nothing-installed"),
    pytest.param([station_max(32.0)], {}, T0, None, id="open-ended-no-change"),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), (HOUR, 20.0), start=T0, duration_s=2 * HOUR))],
        {},
        at(10),
        at(HOUR),
        id="next-period",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), (HOUR, 20.0), start=T0, duration_s=2 * HOUR))],
        {},
        at(HOUR),
        at(2 * HOUR),
        id="schedule-end-at-boundary-excluded",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), start=T0), valid_from=at(5 * DAY))],
        {},
        T0,
        at(5 * DAY),
        id="valid-from-far-ahead",
    ),
    pytest.param(
        [
            profile(
                1,
                kind=Kind.RECURRING,
                schedules=schedule((0, 10.0), (HOUR, 12.0), start=at(-10 * DAY + 22 * HOUR)),
            )
        ],
        {},
        at(23 * HOUR),
        at(DAY + 22 * HOUR),
        id="daily-next-occurrence",
    ),
    pytest.param(
        [profile(1, kind=Kind.RELATIVE, schedules=schedule((0, 10.0), (HOUR, 12.0)))],
        {},
        at(10),
        None,
        id="relative-without-transaction-never-moves",
    ),
    pytest.param(
        [profile(1, kind=Kind.RELATIVE, schedules=schedule((0, 10.0), (HOUR, 12.0)))],
        {"transactions": {1: TransactionInfo("tx-1", at(-600))}},
        T0,
        at(3000),
        id="relative-anchored-at-transaction",
    ),
    pytest.param(
        [
            profile(
                2,
                Purpose.TX_PROFILE,
                transaction_id="tx-9",
                schedules=schedule((0, 10.0), (HOUR, 12.0), start=T0),
            )
        ],
        {"transactions": {1: TX}},
        T0,
        None,
        id="txprofile-of-no-running-transaction",
    ),
    pytest.param(
        [profile(1, schedules=schedule((0, 10.0), start=T0), max_offline_duration_s=300)],
        {"offline_since": at(100)},
        at(200),
        at(400),
        id="offline-expiry",
    ),
]


@pytest.mark.parametrize(("profiles", "options", "now", "expected"), NEXT)
def test_next_change_after(
    profiles: list[ChargingProfile], options: dict[str, Any], now: Any, expected: Any
) -> None:
    assert next_change_after(profiles, now, **options) == expected


LEGACY = [
    pytest.param(PeriodValue(limit=16.0, discharge_limit=0.0), 16.0, id="charging"),
    pytest.param(PeriodValue(limit=None), None, id="no-limit"),
    pytest.param(
        PeriodValue(
            limit=0.0, discharge_limit=-10.0, setpoint=-10.0, operation_mode=Mode.CENTRAL_SETPOINT
        ),
        -10.0,
        id="discharge",
    ),
    pytest.param(
        PeriodValue(limit=0.0, discharge_limit=0.0, operation_mode=Mode.IDLE), 0.0, id="idle"
    ),
]


@pytest.mark.parametrize(("value", "expected"), LEGACY)
def test_to_legacy_limit(value: PeriodValue, expected: float | None) -> None:
    assert to_legacy_limit(value) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"nominal_voltage_v": 0.0}, id="zero-volts"),
        pytest.param({"nominal_voltage_v": float("nan")}, id="nan-volts"),
        pytest.param({"nominal_voltage_v": 230.0, "phases": 4}, id="four-phases"),
    ],
)
def test_electrical_params_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(SmartChargingValueError):
        ElectricalParams(**bad)
