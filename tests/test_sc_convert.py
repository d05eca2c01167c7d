"""Table tests of ``station.ocpp.convert``: real camelCase payloads, validated against the schemas.

Every payload below is first checked with the ``ocpp`` library's own schema validator, converted
to snake_case exactly as the session hands it to a handler (:func:`station.ocpp.keys.to_snake`),
read into domain types, and (for reports and composite schedules) written back and validated
again on the wire, so both directions and both versions are covered.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.messages import MessageType, get_validator

from station.ocpp import keys
from station.ocpp.convert import (
    ConvertError,
    clear_criteria_from_ocpp,
    composite_to_ocpp,
    profile_criteria_from_ocpp,
    profile_from_ocpp,
    profile_to_ocpp,
)
from station.smartcharging import (
    ChargingProfilePurpose,
    ClearCriteria,
    CompositePeriod,
    CompositeSchedule,
    ElectricalParams,
    FreqWattPoint,
    OperationMode,
    PeriodValue,
    ProfileCriteria,
    RateUnit,
    SchedulePeriod,
    composite_schedule,
    from_legacy_negative_limit,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def valid(action: str, payload: dict[str, Any], version: str, kind: int = MessageType.Call) -> None:
    get_validator(kind, action, version).validate(payload)  # raises on any error


def received(payload: dict[str, Any], version: str) -> dict[str, Any]:
    """What the SetChargingProfile handler receives: schema-checked, snake_case."""
    valid("SetChargingProfile", payload, version)
    snake = keys.to_snake(payload, version)
    assert isinstance(snake, dict)
    return snake


def report(profile_wire: dict[str, Any], version: str) -> dict[str, Any]:
    """A ReportChargingProfilesRequest carrying one converted profile, on the wire."""
    wire = keys.to_camel(
        {
            "request_id": 1,
            "charging_limit_source": "CSO",
            "evse_id": 1,
            "charging_profile": [profile_wire],
        },
        version,
    )
    valid("ReportChargingProfiles", wire, version)
    return dict(wire["chargingProfile"][0])


TX_DEFAULT_201 = {
    "evseId": 1,
    "chargingProfile": {
        "id": 7,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "validFrom": "2025-03-01T00:00:00Z",
        "validTo": "2025-03-02T00:00:00+01:00",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2025-03-01T10:00:00.000Z",
                "duration": 7200,
                "chargingRateUnit": "A",
                "minChargingRate": 6.5,
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 32},
                    {"startPeriod": 1800, "limit": 16.5, "numberPhases": 1},
                ],
            }
        ],
    },
}

NEGATIVE_201 = {
    "evseId": 1,
    "chargingProfile": {
        "id": 8,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -5000}],
            }
        ],
    },
}

DISCHARGE_21 = {
    "evseId": 1,
    "chargingProfile": {
        "id": 9,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "maxOfflineDuration": 600,
        "chargingSchedule": [
            {
                "id": 3,
                "startSchedule": "2025-03-01T11:00:00Z",
                "chargingRateUnit": "W",
                "limitAtSoC": {"soc": 80, "limit": 3000},
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "limit": 7000,
                        "dischargeLimit": -6000,
                        "setpoint": -4000.5,
                        "operationMode": "CentralSetpoint",
                    },
                    {
                        "startPeriod": 900,
                        "operationMode": "LocalFrequency",
                        "v2xBaseline": 100,
                        "v2xFreqWattCurve": [
                            {"frequency": 49.8, "power": 5000},
                            {"frequency": 50.2, "power": -5000},
                        ],
                    },
                    {"startPeriod": 1800, "operationMode": "Idle", "evseSleep": True},
                ],
            }
        ],
    },
}

PHASES_21 = {
    "evseId": 2,
    "chargingProfile": {
        "id": 10,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "transactionId": "tx-1",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "limit": 16,
                        "limit_L2": 10,
                        "limit_L3": 8,
                        "dischargeLimit": -6,
                        "dischargeLimit_L2": -5,
                        "dischargeLimit_L3": -4,
                        "setpoint": -3,
                        "setpoint_L2": -2,
                        "setpoint_L3": -1,
                        "setpointReactive": 1,
                        "setpointReactive_L2": 2,
                        "setpointReactive_L3": 3,
                        "operationMode": "CentralSetpoint",
                    }
                ],
            }
        ],
    },
}


CASES = [
    pytest.param(TX_DEFAULT_201, "2.0.1", id="201-tx-default"),
    pytest.param(NEGATIVE_201, "2.0.1", id="201-negative-limit"),
    pytest.param(TX_DEFAULT_201, "2.1", id="21-tx-default"),
    pytest.param(DISCHARGE_21, "2.1", id="21-discharge"),
    pytest.param(PHASES_21, "2.1", id="21-per-phase"),
]


def test_tx_default_fields_201() -> None:
    data = received(TX_DEFAULT_201, "2.0.1")
    profile = profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)
    assert profile.id == 7 and profile.stack_level == 2 and profile.evse_id == 1
    assert profile.purpose == ChargingProfilePurpose.TX_DEFAULT_PROFILE
    assert profile.valid_from == datetime(2025, 3, 1, tzinfo=UTC)
    assert profile.valid_to == datetime(2025, 3, 1, 23, tzinfo=UTC)  # +01:00 -> UTC
    assert profile.received_at == NOW
    schedule = profile.schedule
    assert schedule.rate_unit == RateUnit.A
    assert schedule.start_schedule == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert schedule.duration_s == 7200 and schedule.min_charging_rate == 6.5
    assert schedule.periods == (
        SchedulePeriod(start_period_s=0, limit=32.0),
        SchedulePeriod(start_period_s=1800, limit=16.5, number_phases=1),
    )


def test_negative_limit_is_stored_as_received_201() -> None:
    data = received(NEGATIVE_201, "2.0.1")
    profile = profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)
    period = profile.schedule.periods[0]
    assert period.limit == -5000.0
    assert period.discharge_limit is None and period.operation_mode == OperationMode.CHARGING_ONLY
    # The composite reads it as a discharge set-point, sign per DESIGN.md.
    legacy = from_legacy_negative_limit(period)
    assert (legacy.limit, legacy.discharge_limit, legacy.setpoint) == (0.0, -5000.0, -5000.0)
    assert legacy.operation_mode == OperationMode.CENTRAL_SETPOINT


def test_v2x_fields_21() -> None:
    data = received(DISCHARGE_21, "2.1")
    profile = profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)
    assert profile.max_offline_duration_s == 600
    schedule = profile.schedule
    assert schedule.limit_at_soc is not None and schedule.limit_at_soc.soc_pct == 80
    first, second, third = schedule.periods
    assert (first.limit, first.discharge_limit, first.setpoint) == (7000.0, -6000.0, -4000.5)
    assert first.operation_mode == OperationMode.CENTRAL_SETPOINT
    assert second.operation_mode == OperationMode.LOCAL_FREQUENCY
    assert second.limit is None and second.v2x_baseline == 100.0
    assert second.v2x_freq_watt_curve == (FreqWattPoint(49.8, 5000.0), FreqWattPoint(50.2, -5000.0))
    assert third.operation_mode == OperationMode.IDLE and third.evse_sleep


def test_per_phase_fields_21() -> None:
    data = received(PHASES_21, "2.1")
    period_in = data["charging_profile"]["charging_schedule"][0]["charging_schedule_period"][0]
    assert "limit_l2" in period_in  # keys.py: limit_L2 -> limit_l2, exactly
    profile = profile_from_ocpp(data["charging_profile"], evse_id=2, received_at=NOW)
    p = profile.schedule.periods[0]
    assert (p.limit, p.limit_l2, p.limit_l3) == (16.0, 10.0, 8.0)
    assert (p.discharge_limit, p.discharge_limit_l2, p.discharge_limit_l3) == (-6.0, -5.0, -4.0)
    assert (p.setpoint, p.setpoint_l2, p.setpoint_l3) == (-3.0, -2.0, -1.0)
    assert (p.setpoint_reactive, p.setpoint_reactive_l2, p.setpoint_reactive_l3) == (1, 2, 3)
    assert profile.transaction_id == "tx-1"


@pytest.mark.parametrize(("payload", "version"), CASES)
def test_report_round_trip(payload: dict[str, Any], version: str) -> None:
    """ReportChargingProfiles reports a profile exactly as it was received (K09)."""
    data = received(payload, version)
    profile = profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)
    wire = report(profile_to_ocpp(profile, version), version)
    expected = copy.deepcopy(payload["chargingProfile"])
    # Times go out normalised (UTC, milliseconds, Z); everything else is as received.
    for key in ("validFrom", "validTo"):
        if key in expected:
            expected[key] = wire[key]
    for schedule, out in zip(expected["chargingSchedule"], wire["chargingSchedule"], strict=True):
        if "startSchedule" in schedule:
            assert out["startSchedule"].endswith("Z") and len(out["startSchedule"]) == 24
            schedule["startSchedule"] = out["startSchedule"]
    assert wire == expected


def test_times_go_out_as_utc_milliseconds() -> None:
    data = received(TX_DEFAULT_201, "2.0.1")
    profile = profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)
    wire = profile_to_ocpp(profile, "2.0.1")
    assert wire["valid_to"] == "2025-03-01T23:00:00.000Z"
    assert wire["charging_schedule"][0]["start_schedule"] == "2025-03-01T10:00:00.000Z"


def test_v21_fields_are_not_reported_over_201() -> None:
    data = received(DISCHARGE_21, "2.1")
    profile = profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)
    wire = profile_to_ocpp(profile, "2.0.1")
    assert "max_offline_duration" not in wire
    period = wire["charging_schedule"][0]["charging_schedule_period"][0]
    assert set(period) == {"start_period", "limit"}  # no dischargeLimit/setpoint/operationMode


def test_date_time_without_zone_is_refused() -> None:
    payload = copy.deepcopy(TX_DEFAULT_201)
    payload["chargingProfile"]["validFrom"] = "2025-03-01T00:00:00"  # type: ignore[index]
    data = received(payload, "2.0.1")
    with pytest.raises(ConvertError, match="validFrom"):
        profile_from_ocpp(data["charging_profile"], evse_id=1, received_at=NOW)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (None, None),
        ({}, ClearCriteria()),
        (
            {"evseId": 0, "chargingProfilePurpose": "ChargingStationMaxProfile", "stackLevel": 1},
            ClearCriteria(0, ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE, 1),
        ),
    ],
)
def test_clear_criteria(criteria: dict[str, Any] | None, expected: ClearCriteria | None) -> None:
    for version in ("2.0.1", "2.1"):
        payload = {"chargingProfileCriteria": criteria} if criteria is not None else {}
        valid("ClearChargingProfile", payload, version)
        data = keys.to_snake(payload, version)
        assert clear_criteria_from_ocpp(data.get("charging_profile_criteria")) == expected


def test_profile_criteria() -> None:
    payload = {
        "requestId": 5,
        "evseId": 1,
        "chargingProfile": {
            "chargingProfilePurpose": "TxDefaultProfile",
            "stackLevel": 0,
            "chargingProfileId": [1, 2],
            "chargingLimitSource": ["CSO"],
        },
    }
    for version in ("2.0.1", "2.1"):
        valid("GetChargingProfiles", payload, version)
        data = keys.to_snake(payload, version)
        assert profile_criteria_from_ocpp(
            data["charging_profile"], evse_id=data.get("evse_id")
        ) == ProfileCriteria(
            evse_id=1,
            purpose=ChargingProfilePurpose.TX_DEFAULT_PROFILE,
            stack_level=0,
            profile_ids=frozenset({1, 2}),
            limit_sources=frozenset({"CSO"}),
        )


def composite(*values: tuple[int, PeriodValue]) -> CompositeSchedule:
    return CompositeSchedule(
        evse_id=1,
        schedule_start=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        duration_s=3600,
        rate_unit=RateUnit.W,
        periods=tuple(CompositePeriod(s, v) for s, v in values),
    )


DISCHARGING = PeriodValue(
    limit=0.0,
    discharge_limit=-6000.0,
    setpoint=-4000.0,
    operation_mode=OperationMode.CENTRAL_SETPOINT,
)


@pytest.mark.parametrize(
    ("value", "v201", "v21"),
    [
        pytest.param(
            PeriodValue(limit=11000.0, discharge_limit=0.0),
            {"limit": 11000},
            {"limit": 11000, "dischargeLimit": 0, "operationMode": "ChargingOnly"},
            id="charging",
        ),
        pytest.param(
            PeriodValue(),
            {"limit": 20000},
            {"limit": 20000, "operationMode": "ChargingOnly"},
            id="unlimited-filled-with-rating",
        ),
        pytest.param(
            DISCHARGING,
            {"limit": -4000},
            {
                "limit": 0,
                "dischargeLimit": -6000,
                "setpoint": -4000,
                "operationMode": "CentralSetpoint",
            },
            id="discharge",
        ),
        pytest.param(
            PeriodValue(limit=0.0, discharge_limit=0.0, operation_mode=OperationMode.IDLE),
            {"limit": 0},
            {"limit": 0, "dischargeLimit": 0, "operationMode": "Idle"},
            id="idle",
        ),
        pytest.param(
            PeriodValue(limit=16.5, limit_l2=10.0, limit_l3=8.0, number_phases=3),
            {"limit": 16.5, "numberPhases": 3},
            {
                "limit": 16.5,
                "limit_L2": 10,
                "limit_L3": 8,
                "numberPhases": 3,
                "operationMode": "ChargingOnly",
            },
            id="per-phase",
        ),
    ],
)
def test_composite_shapes(value: PeriodValue, v201: dict[str, Any], v21: dict[str, Any]) -> None:
    for version, expected in (("2.0.1", v201), ("2.1", v21)):
        schedule = composite_to_ocpp(composite((0, value)), version, fill_limit=20000.0)
        wire = keys.to_camel({"status": "Accepted", "schedule": schedule}, version)
        valid("GetCompositeSchedule", wire, version, MessageType.CallResult)
        assert wire["schedule"]["scheduleStart"] == "2025-03-01T12:00:00.123Z"
        assert wire["schedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, **expected}]


def test_composite_from_real_profiles_both_versions() -> None:
    """2.0.1 negative limit and 2.1 setpoint give the same composite, each in its own shape."""
    legacy = profile_from_ocpp(
        received(NEGATIVE_201, "2.0.1")["charging_profile"], evse_id=1, received_at=NOW
    )
    result = composite_schedule(
        [legacy],
        evse_id=1,
        start=NOW,
        duration_s=60,
        rate_unit=RateUnit.W,
        electrical=ElectricalParams(400.0, dc=True),
        now=NOW,
    )
    out_201 = composite_to_ocpp(result, "2.0.1", fill_limit=20000.0)
    assert out_201["charging_schedule_period"] == [{"start_period": 0, "limit": -5000}]
    out_21 = keys.to_camel(composite_to_ocpp(result, "2.1", fill_limit=20000.0), "2.1")
    assert out_21["chargingSchedulePeriod"] == [
        {
            "startPeriod": 0,
            "limit": 0,
            "dischargeLimit": -5000,
            "setpoint": -5000,
            "operationMode": "CentralSetpoint",
        }
    ]


def test_energy_manager_sees_the_legacy_discharge_in_its_own_sign() -> None:
    """2.0.1 limit -5000 W -> the energy manager's ScheduleNow: no charging, discharge 5 kW."""
    from station.power import OperationMode as PowerMode
    from station.smartcharging.service import schedule_now

    legacy = profile_from_ocpp(
        received(NEGATIVE_201, "2.0.1")["charging_profile"], evse_id=1, received_at=NOW
    )
    result = composite_schedule(
        [legacy],
        evse_id=1,
        start=NOW,
        duration_s=0,
        rate_unit=RateUnit.W,
        electrical=ElectricalParams(400.0, dc=True),
        now=NOW,
    )
    now_value = schedule_now(result.periods[0].value)
    assert (now_value.limit_w, now_value.discharge_limit_w, now_value.setpoint_w) == (
        0.0,
        -5000.0,
        -5000.0,
    )
    assert now_value.mode is PowerMode.CENTRAL_SETPOINT
