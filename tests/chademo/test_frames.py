"""The CHAdeMO codec: round trips, golden frames from the reference, errors, the 0x200 quirk."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.chademo import (
    FRAME_TYPES,
    Charger108,
    Charger109,
    Charger208,
    Charger209,
    ChargerStatus,
    Frame,
    FrameError,
    LocalChademoError,
    Quirks,
    RemoteChademoError,
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    Vehicle201,
    VehicleFault,
    VehicleStatus,
    decode_frame,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
time10 = st.one_of(st.none(), st.integers(0, 0xFE))

FRAMES: dict[type[Any], st.SearchStrategy[Any]] = {
    Vehicle100: st.builds(
        Vehicle100,
        minimum_charge_current_a=u8,
        minimum_battery_voltage_v=u16,
        maximum_battery_voltage_v=u16,
        charged_rate_reference_pct=u8,
    ),
    Vehicle101: st.builds(
        Vehicle101,
        max_charging_time_10s=time10,
        max_charging_time_min=u8,
        estimated_charging_time_min=u8,
        capacity_kwh=u16.map(lambda raw: raw / 10),
    ),
    Vehicle102: st.builds(
        Vehicle102,
        protocol_number=u8,
        target_voltage_v=u16,
        charging_current_request_a=u8,
        faults=u8.map(VehicleFault),
        status=u8.map(VehicleStatus),
        soc_pct=st.integers(0, 100),
    ),
    Vehicle200: st.builds(
        Vehicle200,
        max_discharge_current_a=u8,
        min_discharge_voltage_v=u16,
        min_battery_discharge_level_pct=u8,
        max_remaining_capacity_for_charging_pct=u8,
    ),
    Vehicle201: st.builds(
        Vehicle201,
        sequence_number=u8,
        approx_discharge_completion_time_raw=u16,
        available_vehicle_energy_raw=u16,
    ),
    Charger108: st.builds(
        Charger108,
        welding_detection_supported=st.booleans(),
        available_output_voltage_v=u16,
        available_output_current_a=u8,
        threshold_voltage_v=u16,
    ),
    Charger109: st.builds(
        Charger109,
        protocol_number=u8,
        present_output_voltage_v=u16,
        present_output_current_a=u8,
        discharge_compatible=st.booleans(),
        status=u8.map(ChargerStatus),
        remaining_charging_time_10s=time10,
        remaining_charging_time_min=u8,
    ),
    Charger208: st.builds(
        Charger208,
        present_discharge_current_a=u8,
        available_input_voltage_v=u16,
        available_input_current_a=u8,
        lower_threshold_voltage_v=u16,
    ),
    Charger209: st.builds(Charger209, sequence_control_number=u8, remaining_discharge_time_raw=u16),
}


def test_every_frame_type_has_a_strategy() -> None:
    assert set(FRAMES) == set(FRAME_TYPES.values())


@pytest.mark.parametrize("cls", list(FRAMES), ids=lambda c: c.__name__)
@given(data=st.data(), inverted=st.booleans())
def test_round_trip(cls: type[Any], data: st.DataObject, inverted: bool) -> None:
    frame = data.draw(FRAMES[cls])
    quirks = Quirks(inverted_200=inverted)
    raw = frame.encode(quirks)
    assert isinstance(raw, bytes)
    assert len(raw) == 8
    assert cls.decode(raw, quirks) == frame
    assert decode_frame(cls.ARBITRATION_ID, raw, quirks) == frame
    # Encoding is a function of the frame: decode → encode reproduces the bytes.
    assert cls.decode(raw, quirks).encode(quirks) == raw


@pytest.mark.parametrize("cls", list(FRAMES), ids=lambda c: c.__name__)
@given(raw=st.binary(min_size=8, max_size=8))
def test_decode_never_raises_anything_but_frame_error(cls: type[Any], raw: bytes) -> None:
    try:
        frame = cls.decode(raw)
    except FrameError:
        return
    assert len(frame.encode()) == 8


@pytest.mark.parametrize("cls", list(FRAMES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("length", [0, 1, 7, 9, 64])
def test_wrong_length_is_a_remote_frame_error(cls: type[Any], length: int) -> None:
    with pytest.raises(FrameError, match="needs 8 bytes"):
        cls.decode(bytes(length))
    with pytest.raises(RemoteChademoError):
        decode_frame(cls.ARBITRATION_ID, bytes(length))


def test_real_car_target_voltage_is_little_endian() -> None:
    # A real-car 0x102 "02 9A 01 ..." is 0x019A = 410 V [RS][BE][OI].
    frame = decode_frame(0x102, bytes.fromhex("02 9A 01 00 00 00 00 00"))
    assert isinstance(frame, Vehicle102)
    assert frame.protocol_number == 2
    assert frame.target_voltage_v == 410


def test_be_power_up_frames() -> None:
    # [BE] power-up frames, decoded and re-encoded byte for byte.
    raw108 = bytes.fromhex("01 F4 01 0F B3 01 00 00")
    raw109 = bytes.fromhex("02 00 00 00 01 20 FF FF")
    raw208 = bytes.fromhex("FF F4 01 F0 00 00 FA 00")
    assert Charger108.decode(raw108) == Charger108(
        welding_detection_supported=True,
        available_output_voltage_v=500,
        available_output_current_a=15,
        threshold_voltage_v=435,
    )
    assert Charger109.decode(raw109) == Charger109(
        protocol_number=2,
        present_output_voltage_v=0,
        present_output_current_a=0,
        discharge_compatible=True,
        status=ChargerStatus.STOP_CONTROL,
        remaining_charging_time_10s=None,
        remaining_charging_time_min=0xFF,
    )
    assert Charger208.decode(raw208) == Charger208(
        present_discharge_current_a=0,
        available_input_voltage_v=500,
        available_input_current_a=15,
        lower_threshold_voltage_v=250,
    )
    for cls, raw in ((Charger108, raw108), (Charger109, raw109), (Charger208, raw208)):
        assert cls.decode(raw).encode() == raw


def test_vehicle_flags_decode_to_named_bits() -> None:
    frame = Vehicle102.decode(bytes([2, 0x9A, 0x01, 100, 0b00000101, 0b10010011, 80, 0]))
    assert frame.charging_current_request_a == 100
    assert frame.faults == VehicleFault.BATTERY_OVERVOLTAGE | VehicleFault.BATTERY_CURRENT_DEVIATION
    assert VehicleStatus.CHARGING_ENABLED in frame.status
    assert VehicleStatus.SHIFT_LEVER_NOT_PARK in frame.status
    assert VehicleStatus.NORMAL_STOP_REQUEST in frame.status
    assert VehicleStatus.DISCHARGE_COMPATIBLE in frame.status
    assert VehicleStatus.VEHICLE_CONTACTOR_OPEN not in frame.status
    assert frame.soc_pct == 80


def test_vehicle_101_times_and_capacity() -> None:
    frame = Vehicle101.decode(bytes([0, 0xFF, 90, 60, 0, 0x18, 0x01, 0]))
    assert frame.max_charging_time_10s is None
    assert frame.max_charging_time_s == 90 * 60
    assert frame.capacity_kwh == pytest.approx(28.0)
    frame = Vehicle101.decode(bytes([0, 12, 90, 60, 0, 0, 0, 0]))
    assert frame.max_charging_time_s == 120


def test_soc_above_100_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="soc_pct"):
        Vehicle102.decode(bytes([2, 0, 0, 0, 0, 0, 101, 0]))


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Vehicle102(target_voltage_v=70000), "target_voltage_v"),
        (lambda: Vehicle102(charging_current_request_a=256), "charging_current_request_a"),
        (lambda: Vehicle102(charging_current_request_a=-1), "charging_current_request_a"),
        (lambda: Vehicle102(soc_pct=101), "soc_pct"),
        (lambda: Vehicle101(capacity_kwh=6553.6), "capacity_kwh"),
        (lambda: Vehicle101(capacity_kwh=float("nan")), "capacity_kwh"),
        (lambda: Vehicle101(max_charging_time_10s=255), "max_charging_time_10s"),
        (lambda: Charger108(available_output_current_a=300), "available_output_current_a"),
        (lambda: Charger109(remaining_charging_time_10s=0xFF), "remaining_charging_time_10s"),
        (lambda: Charger208(available_input_current_a=256), "available_input_current_a"),
        (lambda: Charger209(remaining_discharge_time_raw=-5), "remaining_discharge_time_raw"),
        (lambda: Vehicle200(max_discharge_current_a=1.5), "max_discharge_current_a"),
    ],
)
def test_out_of_range_values_are_local_errors(build: Any, field: str) -> None:
    with pytest.raises(LocalChademoError, match=field) as info:
        build()
    assert isinstance(info.value, ValueError)


def test_0x200_quirk_both_ways() -> None:
    raw = bytes([0xE1, 0, 0, 0, 0x2C, 0x01, 0xEB, 0x50])
    be = Vehicle200.decode(raw)  # [BE]: raw
    assert be.max_discharge_current_a == 0xE1
    assert be.min_battery_discharge_level_pct == 0xEB
    assert be.min_discharge_voltage_v == 300
    assert be.max_remaining_capacity_for_charging_pct == 0x50
    rs = Vehicle200.decode(raw, Quirks(inverted_200=True))  # [RS]: 0xFF - raw
    assert rs.max_discharge_current_a == 30
    assert rs.min_battery_discharge_level_pct == 20
    assert rs.min_discharge_voltage_v == 300
    assert rs.max_remaining_capacity_for_charging_pct == 0x50
    assert rs.encode(Quirks(inverted_200=True)) == raw
    assert rs.encode() == bytes([30, 0, 0, 0, 0x2C, 0x01, 20, 0x50])
    # The quirk touches 0x200 only.
    v102 = bytes([2, 0x9A, 0x01, 10, 0, 1, 50, 0])
    assert Vehicle102.decode(v102, Quirks(inverted_200=True)) == Vehicle102.decode(v102)


def test_0x208_currents_are_inverted_on_the_wire() -> None:
    raw = Charger208(present_discharge_current_a=10, available_input_current_a=20).encode()
    assert raw[0] == 0xFF - 10
    assert raw[3] == 0xFF - 20


@pytest.mark.parametrize("arbitration_id", [0x000, 0x103, 0x107, 0x10A, 0x110, 0x7FF])
def test_non_chademo_ids_decode_to_none(arbitration_id: int) -> None:
    assert decode_frame(arbitration_id, bytes(8)) is None


def test_frames_are_frozen() -> None:
    frame: Frame = Vehicle102()
    with pytest.raises(AttributeError):
        frame.soc_pct = 5  # type: ignore[misc]
