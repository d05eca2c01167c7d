"""Wire shapes of the smart-charging messages the station sends or reads (K11-K17, K28/K29).

Property tests: whatever :class:`ChargingNeeds` a vehicle session reports, the
NotifyEVChargingNeeds payload is valid against the OCPP JSON schema of both versions after the
station's own key conversion (``station.ocpp.keys``, which gets the v21 ``_L2``/``SoC`` names
right); ScheduleUpdate values survive a round trip through the wire names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.ocpp import keys, rpc
from station.ocpp.convert import (
    ConvertError,
    energy_modes_from_ocpp,
    needs_to_ocpp,
    schedule_to_ocpp,
    schedule_update_from_ocpp,
)
from station.smartcharging import (
    ChargingNeeds,
    ChargingSchedule,
    EnergyTransferMode,
    ExternalLimit,
    RateUnit,
    ScheduleUpdate,
    external_profile,
)

VERSIONS = ("2.0.1", "2.1")

magnitudes = st.none() | st.floats(0, 1e6, allow_nan=False)
percents = st.none() | st.integers(0, 100)


@st.composite
def needs(draw: st.DrawFn) -> ChargingNeeds:
    return ChargingNeeds(
        requested_energy_transfer=draw(st.sampled_from(EnergyTransferMode)),
        available_energy_transfer=tuple(draw(st.lists(st.sampled_from(EnergyTransferMode)))),
        departure_time=draw(
            st.none() | st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1))
        ),
        max_schedule_tuples=draw(st.none() | st.integers(0, 1024)),
        ev_max_current_a=draw(magnitudes),
        ev_max_voltage_v=draw(magnitudes),
        ev_max_power_w=draw(magnitudes),
        energy_capacity_wh=draw(magnitudes),
        soc_pct=draw(percents),
        full_soc_pct=draw(percents),
        max_charge_power_w=draw(magnitudes),
        max_discharge_power_w=draw(magnitudes),
        min_discharge_current_a=draw(magnitudes),
        max_voltage_v=draw(magnitudes),
        target_soc_pct=draw(percents),
        ev_min_v2x_energy_request_wh=draw(st.none() | st.floats(-1e6, 1e6)),
    )


def valid(action: str, payload: dict[str, Any], version: str) -> dict[str, Any]:
    wire = keys.to_camel(payload, version)
    rpc.check_payload(rpc.MessageType.CALL, action, wire, version)
    assert isinstance(wire, dict)
    return wire


@pytest.mark.parametrize("version", VERSIONS)
@given(value=needs())
def test_needs_payload_is_schema_valid(version: str, value: ChargingNeeds) -> None:
    payload: dict[str, Any] = {"evse_id": 1, "charging_needs": needs_to_ocpp(value, version)}
    wire = valid("NotifyEVChargingNeeds", payload, version)
    sent = wire["chargingNeeds"]
    if version == "2.0.1":
        assert sent["requestedEnergyTransfer"] in {
            "DC",
            "AC_single_phase",
            "AC_two_phase",
            "AC_three_phase",
        }
        assert "v2xChargingParameters" not in sent
    else:
        assert sent["requestedEnergyTransfer"] == value.requested_energy_transfer
        if value.target_soc_pct is not None:
            assert sent["v2xChargingParameters"]["targetSoC"] == value.target_soc_pct


def test_needs_v21_names() -> None:
    value = ChargingNeeds(
        requested_energy_transfer=EnergyTransferMode.DC_BPT,
        ev_max_current_a=50.0,
        ev_max_voltage_v=400.0,
        full_soc_pct=90,
        max_discharge_power_w=8000.0,
        ev_max_v2x_energy_request_wh=-250.5,
    )
    wire = valid(
        "NotifyEVChargingNeeds",
        {"evse_id": 2, "charging_needs": needs_to_ocpp(value, "2.1")},
        "2.1",
    )
    assert wire["chargingNeeds"] == {
        "requestedEnergyTransfer": "DC_BPT",
        "dcChargingParameters": {"evMaxCurrent": 50, "evMaxVoltage": 400, "fullSoC": 90},
        "v2xChargingParameters": {"maxDischargePower": 8000, "evMaxV2XEnergyRequest": -250.5},
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_notify_charging_limit_payload_is_schema_valid(version: str) -> None:
    limit = ExternalLimit(evse_id=0, power_w=11000.0, source="SO", discharge_limit_w=-5000.0)
    built = external_profile(limit, datetime(2025, 1, 6, tzinfo=UTC))
    payload = {
        "charging_limit": {"charging_limit_source": "SO", "is_grid_critical": True},
        "evse_id": 0,
        "charging_schedule": [schedule_to_ocpp(built.schedule, version)],
    }
    wire = valid("NotifyChargingLimit", payload, version)
    period = wire["chargingSchedule"][0]["chargingSchedulePeriod"][0]
    assert period["limit"] == 11000
    assert ("dischargeLimit" in period) is (version == "2.1")  # 2.0.1 has no discharge limit


@given(
    st.dictionaries(
        st.sampled_from(["limit", "limit_L2", "setpoint", "setpoint_L3", "dischargeLimit_L2"]),
        st.floats(-1e5, 0),
    )
)
def test_schedule_update_round_trip(wire: dict[str, float]) -> None:
    snake = keys.to_snake({"chargingProfileId": 1, "scheduleUpdate": wire}, "2.1")
    update = schedule_update_from_ocpp(snake["schedule_update"])
    names = {
        "limit": "limit",
        "limit_L2": "limit_l2",
        "setpoint": "setpoint",
        "setpoint_L3": "setpoint_l3",
        "dischargeLimit_L2": "discharge_limit_l2",
    }
    assert {k: getattr(update, names[k]) for k in wire} == wire
    assert ScheduleUpdate(**{names[k]: v for k, v in wire.items()}) == update


def test_bad_inputs_are_convert_errors() -> None:
    with pytest.raises(ConvertError):
        schedule_update_from_ocpp({"limit": float("inf")})
    with pytest.raises(ConvertError):
        energy_modes_from_ocpp(["DC", "Plasma"])
    assert energy_modes_from_ocpp(["DC", "DC_BPT"]) == {
        EnergyTransferMode.DC,
        EnergyTransferMode.DC_BPT,
    }


def test_ev_schedule_payload_is_schema_valid() -> None:
    schedule = ChargingSchedule(
        id=1,
        rate_unit=RateUnit.W,
        periods=(),
    )
    with pytest.raises(rpc.FrameError):  # no period: the schema refuses it, so must we
        valid(
            "NotifyEVChargingSchedule",
            {
                "time_base": "2025-01-06T00:00:00.000Z",
                "evse_id": 1,
                "charging_schedule": schedule_to_ocpp(schedule, "2.1"),
            },
            "2.1",
        )
