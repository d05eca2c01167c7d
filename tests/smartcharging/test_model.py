"""Domain types: the 2.0.1 negative-limit normalisation and construction checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from station.smartcharging import (
    ChargingSchedule,
    FreqWattPoint,
    OperationMode,
    RateUnit,
    SchedulePeriod,
    SignalWattPoint,
    SmartChargingValueError,
    TransactionInfo,
    from_legacy_negative_limit,
)
from tests.smartcharging.builders import T0, period, profile, schedule

Mode = OperationMode

LEGACY = [
    pytest.param(period(0, 16.0), period(0, 16.0), id="positive-unchanged"),
    pytest.param(period(0, 0.0), period(0, 0.0), id="zero-is-no-power-not-discharge"),
    pytest.param(
        period(0, None, setpoint=5.0, operation_mode=Mode.CENTRAL_SETPOINT),
        period(0, None, setpoint=5.0, operation_mode=Mode.CENTRAL_SETPOINT),
        id="absent-unchanged",
    ),
    pytest.param(
        period(60, -10.0, number_phases=1),
        period(
            60,
            0.0,
            discharge_limit=-10.0,
            setpoint=-10.0,
            operation_mode=Mode.CENTRAL_SETPOINT,
            number_phases=1,
        ),
        id="negative-becomes-discharge-and-setpoint",
    ),
    pytest.param(
        period(0, -10.0, limit_l2=-8.0, limit_l3=-6.0),
        period(
            0,
            0.0,
            limit_l2=0.0,
            limit_l3=0.0,
            discharge_limit=-10.0,
            discharge_limit_l2=-8.0,
            discharge_limit_l3=-6.0,
            setpoint=-10.0,
            setpoint_l2=-8.0,
            setpoint_l3=-6.0,
            operation_mode=Mode.CENTRAL_SETPOINT,
        ),
        id="per-phase",
    ),
]


@pytest.mark.parametrize(("received", "evaluated"), LEGACY)
def test_from_legacy_negative_limit(received: SchedulePeriod, evaluated: SchedulePeriod) -> None:
    normalised = from_legacy_negative_limit(received)
    assert normalised == evaluated
    assert from_legacy_negative_limit(normalised) == normalised  # idempotent


def test_unchanged_period_is_the_same_object() -> None:
    kept = period(0, 16.0)
    assert from_legacy_negative_limit(kept) is kept


NAIVE = datetime(2025, 1, 6, 0, 0)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: profile(valid_from=NAIVE), id="valid_from"),
        pytest.param(lambda: profile(valid_to=NAIVE), id="valid_to"),
        pytest.param(lambda: profile(received_at=NAIVE), id="received_at"),
        pytest.param(lambda: profile(dyn_update_time=NAIVE), id="dyn_update_time"),
        pytest.param(lambda: schedule(start=NAIVE), id="start_schedule"),
        pytest.param(lambda: TransactionInfo("tx", NAIVE), id="started_at"),
    ],
)
def test_naive_datetimes_are_refused(build: Any) -> None:
    with pytest.raises(SmartChargingValueError, match="timezone-aware"):
        build()


def test_profile_schedule_and_numbers() -> None:
    sched = ChargingSchedule(
        id=1, rate_unit=RateUnit.W, periods=(period(0, 1.0),), start_schedule=T0
    )
    assert profile(schedules=sched).schedule is sched
    full = SchedulePeriod(
        start_period_s=0,
        limit=1.0,
        v2x_freq_watt_curve=(FreqWattPoint(50.0, 2.0),),
        v2x_signal_watt_curve=(SignalWattPoint(3, 4.0),),
    )
    assert [v for v in full.numbers() if v is not None] == [1.0, 50.0, 2.0, 4.0]
