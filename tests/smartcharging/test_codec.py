"""The store's JSON encoding of charging profiles: every profile round-trips exactly."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.smartcharging import (
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
    profile_from_json,
    profile_to_json,
)

_floats = st.floats(allow_nan=False, allow_infinity=False)
# Fixed offsets: a zone's wall time in a DST gap or fold never compares equal across zones.
_aware = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5.5))]),
)


def _builds(cls: type, **overrides: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``st.builds`` with finite floats and aware datetimes for every such field."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if tp in (float, float | None):
            kwargs[field.name] = _floats if tp is float else st.none() | _floats
        elif tp == datetime | None:
            kwargs[field.name] = st.none() | _aware
    kwargs.update(overrides)
    return st.builds(cls, **kwargs)


_periods = _builds(
    SchedulePeriod,
    v2x_freq_watt_curve=st.lists(_builds(FreqWattPoint), max_size=3).map(tuple),
    v2x_signal_watt_curve=st.lists(_builds(SignalWattPoint), max_size=3).map(tuple),
)
_schedules = _builds(
    ChargingSchedule,
    periods=st.lists(_periods, min_size=1, max_size=4).map(tuple),
    limit_at_soc=st.none() | _builds(LimitAtSoc),
)
_profiles = _builds(
    ChargingProfile,
    schedules=st.lists(_schedules, min_size=1, max_size=3).map(tuple),
    limit_source=st.sampled_from(["CSO", "EMS", "SO", "Other", "a site controller"]),
)


@given(_profiles)
def test_every_profile_round_trips_through_json_text(profile: ChargingProfile) -> None:
    text = json.dumps(profile_to_json(profile), allow_nan=False)
    assert profile_from_json(json.loads(text)) == profile


def test_the_encoding_is_stable() -> None:
    """The stored shape: domain field names, enums by value, UTC ISO datetimes, no Nones."""
    profile = ChargingProfile(
        id=7,
        stack_level=2,
        purpose=ChargingProfilePurpose.TX_PROFILE,
        kind=ChargingProfileKind.RECURRING,
        recurrency=RecurrencyKind.DAILY,
        schedules=(
            ChargingSchedule(
                id=1,
                rate_unit=RateUnit.W,
                start_schedule=datetime(2026, 3, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
                periods=(
                    SchedulePeriod(start_period_s=0, limit=11000),
                    SchedulePeriod(
                        start_period_s=600,
                        limit=0.0,
                        setpoint=-4000.5,
                        operation_mode=OperationMode.CENTRAL_SETPOINT,
                        v2x_freq_watt_curve=(FreqWattPoint(49.8, 1000.0),),
                    ),
                ),
            ),
        ),
        evse_id=1,
        transaction_id="tx-1",
        received_at=datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC),
    )
    assert profile_to_json(profile) == {
        "id": 7,
        "stack_level": 2,
        "purpose": "TxProfile",
        "kind": "Recurring",
        "schedules": [
            {
                "id": 1,
                "rate_unit": "W",
                "periods": [
                    {
                        "start_period_s": 0,
                        "limit": 11000,
                        "operation_mode": "ChargingOnly",
                        "preconditioning_request": False,
                        "evse_sleep": False,
                        "v2x_freq_watt_curve": [],
                        "v2x_signal_watt_curve": [],
                    },
                    {
                        "start_period_s": 600,
                        "limit": 0.0,
                        "setpoint": -4000.5,
                        "operation_mode": "CentralSetpoint",
                        "preconditioning_request": False,
                        "evse_sleep": False,
                        "v2x_freq_watt_curve": [{"frequency_hz": 49.8, "power_w": 1000.0}],
                        "v2x_signal_watt_curve": [],
                    },
                ],
                "start_schedule": "2026-03-01T00:00:00+00:00",
                "use_local_time": False,
                "randomized_delay_s": 0,
            }
        ],
        "evse_id": 1,
        "recurrency": "Daily",
        "transaction_id": "tx-1",
        "invalid_after_offline_duration": False,
        "limit_source": "CSO",
        "received_at": "2026-03-01T00:00:00.123456+00:00",
    }
    assert profile_from_json(profile_to_json(profile)) == profile


_GOOD = {
    "id": 1,
    "stack_level": 0,
    "purpose": "TxDefaultProfile",
    "kind": "Relative",
    "schedules": [{"id": 1, "rate_unit": "A", "periods": [{"start_period_s": 0, "limit": 16}]}],
}


def test_missing_fields_take_their_defaults() -> None:
    profile = profile_from_json(_GOOD)
    assert profile.evse_id == 0 and profile.limit_source == "CSO"
    assert profile.schedule.periods[0].limit == 16.0


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({**_GOOD, "colour": "red"}, id="unknown-field"),
        pytest.param({k: v for k, v in _GOOD.items() if k != "kind"}, id="missing-field"),
        pytest.param({**_GOOD, "purpose": "Nonsense"}, id="unknown-enum-value"),
        pytest.param({**_GOOD, "id": "1"}, id="string-for-int"),
        pytest.param({**_GOOD, "id": True}, id="bool-for-int"),
        pytest.param({**_GOOD, "valid_to": "2026-01-01T00:00:00"}, id="naive-datetime"),
        pytest.param({**_GOOD, "valid_to": "yesterday"}, id="not-a-datetime"),
        pytest.param({**_GOOD, "schedules": {}}, id="object-for-list"),
    ],
)
def test_a_corrupt_encoding_is_a_value_error(data: object) -> None:
    with pytest.raises(SmartChargingValueError):
        profile_from_json(data)
