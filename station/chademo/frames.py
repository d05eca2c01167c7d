"""CHAdeMO CAN frames: bytes ↔ typed, unit-carrying frames (the codec; pure).

This module owns the byte layout of the nine CHAdeMO frames the charger exchanges with a vehicle
(IEEE 2030.1.1 / CHAdeMO 1.x-2.0 with V2H): the vehicle's 0x100, 0x101, 0x102, 0x200, 0x201 and
the charger's 0x108, 0x109, 0x208, 0x209. It must not import ``can`` (the bus adapter builds
``can.Message`` objects), do I/O, or decide anything about the session: it only says what a frame
means. The standard is not public; every byte cites the public implementation it follows, as
gathered in the project's shared reference/chademo.md:

- [EV] EVerest everest-core ``lib/everest/ieee2030_1_1``
- [RS] rand12345/chademo-rs ``src/frames.rs``
- [BE] dalathegreat/Battery-Emulator ``CHADEMO-BATTERY.{cpp,h}`` (EVSE side, V2H)
- [OI] jsphuebner/stm32-car ``src/chademo.cpp`` (vehicle side)

Rules:

- Every frame is 8 bytes (11-bit id, DLC 8) [BE][RS]. Unused bytes encode as 0 and are ignored
  when decoding.
- 16-bit values are little-endian [RS][BE][OI] (a real-car 0x102 ``02 9A 01 ...`` reads 410 V;
  [EV]'s big-endian is treated as a bug there).
- 1 V/bit and 1 A/bit unless a field says otherwise.
- Values are magnitudes: CHAdeMO carries charge and discharge in separate frames, so no field here
  is signed. The session converts to the station's sign convention (+ = into the vehicle).
- Constructing a frame with a value that does not fit its field raises
  :class:`~station.chademo.errors.LocalChademoError` (also a ``ValueError``); decoding bytes of the
  wrong length or with an out-of-range field raises :class:`~station.chademo.errors.FrameError`.
- 0x200 b0/b6 are read raw by [BE] and as ``0xFF - raw`` by [RS]; [BE] is the default and
  :class:`Quirks` ``inverted_200`` selects [RS] for a vehicle that needs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntFlag
from typing import ClassVar, Final, Self, TypeAlias

from station.chademo.errors import FrameError, LocalChademoError

__all__ = [
    "CHARGER_FRAME_IDS",
    "FRAME_LENGTH",
    "FRAME_TYPES",
    "VEHICLE_FRAME_IDS",
    "Charger108",
    "Charger109",
    "Charger208",
    "Charger209",
    "ChargerStatus",
    "Frame",
    "Quirks",
    "Vehicle100",
    "Vehicle101",
    "Vehicle102",
    "Vehicle200",
    "Vehicle201",
    "VehicleFault",
    "VehicleStatus",
    "decode_frame",
]

FRAME_LENGTH: Final = 8
"""Every CHAdeMO frame has DLC 8 [BE][RS]."""

_U8: Final = 0xFF
_U16: Final = 0xFFFF
_NOT_USED: Final = 0xFF
"""0x101 b1 and 0x109 b6: "use the minutes byte instead" [BE][OI]."""


@dataclass(frozen=True, slots=True)
class Quirks:
    """Per-vehicle decoding options where the public implementations disagree.

    Attributes:
        inverted_200: read 0x200 b0 (maximum discharge current) and b6 (minimum battery discharge
            level) as ``0xFF - raw`` like [RS]; the default (False) reads them raw like [BE].
    """

    inverted_200: bool = False


class VehicleFault(IntFlag):
    """0x102 b4, the vehicle's fault flags ([EV][BE][OI] agree; [RS] maps them reversed)."""

    BATTERY_OVERVOLTAGE = 0x01
    BATTERY_UNDERVOLTAGE = 0x02
    BATTERY_CURRENT_DEVIATION = 0x04
    HIGH_BATTERY_TEMPERATURE = 0x08
    BATTERY_VOLTAGE_DEVIATION = 0x10


class VehicleStatus(IntFlag):
    """0x102 b5, the vehicle's status flags [EV][BE][OI]."""

    CHARGING_ENABLED = 0x01
    SHIFT_LEVER_NOT_PARK = 0x02
    CHARGING_SYSTEM_FAULT = 0x04
    VEHICLE_CONTACTOR_OPEN = 0x08
    NORMAL_STOP_REQUEST = 0x10
    DISCHARGE_COMPATIBLE = 0x80


class ChargerStatus(IntFlag):
    """0x109 b5, the charger's status flags [EV][BE].

    ``STOP_CONTROL`` is set before charging and while stopping, never together with ``CHARGING``.
    """

    CHARGING = 0x01
    CHARGER_MALFUNCTION = 0x02
    CONNECTOR_LOCKED = 0x04
    BATTERY_INCOMPATIBLE = 0x08
    CHARGING_SYSTEM_MALFUNCTION = 0x10
    STOP_CONTROL = 0x20


_NO_FAULT: Final = VehicleFault(0)
_NO_STATUS: Final = VehicleStatus(0)

# --------------------------------------------------------------------------------------------
# helpers


def _check_int(name: str, value: int, high: int, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalChademoError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise LocalChademoError(f"{name} = {value} is outside {low}..{high}")


def _check_optional(name: str, value: int | None, high: int) -> None:
    if value is not None:
        _check_int(name, value, high)


def _tenths(name: str, value: float) -> int:
    """``value`` in 0.1 units as a u16, or LocalChademoError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LocalChademoError(f"{name} must be a finite number, got {value!r}")
    raw = round(value * 10)
    if not 0 <= raw <= _U16:
        raise LocalChademoError(f"{name} = {value} is outside 0..{_U16 / 10}")
    return raw


def _u16(value: int) -> bytes:
    # Little-endian [RS][BE][OI].
    return value.to_bytes(2, "little")


def _le16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _check_length(cls: type, data: bytes) -> None:
    if len(data) != FRAME_LENGTH:
        name = cls.__name__
        raise FrameError(
            f"{name} (0x{getattr(cls, 'ARBITRATION_ID', 0):03X}) needs {FRAME_LENGTH} bytes, "
            f"got {len(data)}: {bytes(data).hex(' ')}"
        )


def _remote(cls: type, data: bytes, exc: LocalChademoError) -> FrameError:
    return FrameError(
        f"{cls.__name__} (0x{getattr(cls, 'ARBITRATION_ID', 0):03X}) {bytes(data).hex(' ')}: {exc}"
    )


# --------------------------------------------------------------------------------------------
# vehicle → charger


@dataclass(frozen=True, slots=True)
class Vehicle100:
    """0x100: the vehicle's battery limits (sent from plug-in on).

    Attributes:
        minimum_charge_current_a: b0 [BE][OI].
        minimum_battery_voltage_v: b2-3 [BE][OI].
        maximum_battery_voltage_v: b4-5 [BE][OI][RS].
        charged_rate_reference_pct: b6, the value of 0x102 b6 that means 100 % (0x64) [BE][OI].
    """

    ARBITRATION_ID: ClassVar[int] = 0x100

    minimum_charge_current_a: int = 0
    minimum_battery_voltage_v: int = 0
    maximum_battery_voltage_v: int = 0
    charged_rate_reference_pct: int = 100

    def __post_init__(self) -> None:
        _check_int("minimum_charge_current_a", self.minimum_charge_current_a, _U8)
        _check_int("minimum_battery_voltage_v", self.minimum_battery_voltage_v, _U16)
        _check_int("maximum_battery_voltage_v", self.maximum_battery_voltage_v, _U16)
        _check_int("charged_rate_reference_pct", self.charged_rate_reference_pct, _U8)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        return (
            bytes([self.minimum_charge_current_a, 0])  # b0 [BE][OI]; b1 unused
            + _u16(self.minimum_battery_voltage_v)  # b2-3 [BE][OI]
            + _u16(self.maximum_battery_voltage_v)  # b4-5 [BE][OI][RS]
            + bytes([self.charged_rate_reference_pct, 0])  # b6 [BE][OI]; b7 unused
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length or a field out of range.
        """
        _check_length(cls, data)
        try:
            return cls(
                minimum_charge_current_a=data[0],
                minimum_battery_voltage_v=_le16(data, 2),
                maximum_battery_voltage_v=_le16(data, 4),
                charged_rate_reference_pct=data[6],
            )
        except LocalChademoError as exc:
            raise _remote(cls, data, exc) from exc


@dataclass(frozen=True, slots=True)
class Vehicle101:
    """0x101: charging time limits and battery capacity.

    Attributes:
        max_charging_time_10s: b1, maximum charging time in 10 s units; None when the vehicle
            sends 0xFF ("use b2") [BE][OI].
        max_charging_time_min: b2, maximum charging time in minutes [BE][OI].
        estimated_charging_time_min: b3 [BE][OI].
        capacity_kwh: b5-6, total battery capacity, 0.1 kWh/bit [BE].
    """

    ARBITRATION_ID: ClassVar[int] = 0x101

    max_charging_time_10s: int | None = None
    max_charging_time_min: int = 0
    estimated_charging_time_min: int = 0
    capacity_kwh: float = 0.0

    def __post_init__(self) -> None:
        _check_optional("max_charging_time_10s", self.max_charging_time_10s, _NOT_USED - 1)
        _check_int("max_charging_time_min", self.max_charging_time_min, _U8)
        _check_int("estimated_charging_time_min", self.estimated_charging_time_min, _U8)
        _tenths("capacity_kwh", self.capacity_kwh)

    @property
    def max_charging_time_s(self) -> int:
        """The maximum charging time: b1 x 10 s, or b2 x 60 s when b1 is 0xFF [BE][OI]."""
        if self.max_charging_time_10s is not None:
            return self.max_charging_time_10s * 10
        return self.max_charging_time_min * 60

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        by_10s = _NOT_USED if self.max_charging_time_10s is None else self.max_charging_time_10s
        return (
            bytes(
                [
                    0,  # b0 unused
                    by_10s,  # b1 x10 s, 0xFF = use b2 [BE][OI]
                    self.max_charging_time_min,  # b2 x1 min [BE][OI]
                    self.estimated_charging_time_min,  # b3 x1 min [BE][OI]
                    0,  # b4 unused
                ]
            )
            + _u16(_tenths("capacity_kwh", self.capacity_kwh))  # b5-6 0.1 kWh/bit [BE]
            + b"\x00"  # b7 unused
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length or a field out of range.
        """
        _check_length(cls, data)
        try:
            return cls(
                max_charging_time_10s=None if data[1] == _NOT_USED else data[1],
                max_charging_time_min=data[2],
                estimated_charging_time_min=data[3],
                capacity_kwh=_le16(data, 5) / 10,
            )
        except LocalChademoError as exc:
            raise _remote(cls, data, exc) from exc


@dataclass(frozen=True, slots=True)
class Vehicle102:
    """0x102: the vehicle's live request and status.

    Attributes:
        protocol_number: b0; 0 (v0.9), 1, 2 (v1.x), ≥3 CHAdeMO 2.0 [BE].
        target_voltage_v: b1-2 [BE][OI][RS] (real car: ``02 9A 01`` = 410 V).
        charging_current_request_a: b3 [BE][OI][RS].
        faults: b4 [EV][BE][OI].
        status: b5 [EV][BE][OI].
        soc_pct: b6, state of charge (charged rate) 0..100 % [BE][OI].
    """

    ARBITRATION_ID: ClassVar[int] = 0x102

    protocol_number: int = 2
    target_voltage_v: int = 0
    charging_current_request_a: int = 0
    faults: VehicleFault = _NO_FAULT
    status: VehicleStatus = _NO_STATUS
    soc_pct: int = 0

    def __post_init__(self) -> None:
        _check_int("protocol_number", self.protocol_number, _U8)
        _check_int("target_voltage_v", self.target_voltage_v, _U16)
        _check_int("charging_current_request_a", self.charging_current_request_a, _U8)
        _check_int("faults", int(self.faults), _U8)
        _check_int("status", int(self.status), _U8)
        _check_int("soc_pct", self.soc_pct, 100)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        return (
            bytes([self.protocol_number])  # b0 [BE]
            + _u16(self.target_voltage_v)  # b1-2 little-endian [RS][BE][OI]
            + bytes(
                [
                    self.charging_current_request_a,  # b3 [BE][OI][RS]
                    int(self.faults),  # b4 [EV][BE][OI]
                    int(self.status),  # b5 [EV][BE][OI]
                    self.soc_pct,  # b6 [BE][OI]
                    0,  # b7 unused
                ]
            )
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length or a field out of range (state of charge above 100 %).
        """
        _check_length(cls, data)
        try:
            return cls(
                protocol_number=data[0],
                target_voltage_v=_le16(data, 1),
                charging_current_request_a=data[3],
                faults=VehicleFault(data[4]),
                status=VehicleStatus(data[5]),
                soc_pct=data[6],
            )
        except LocalChademoError as exc:
            raise _remote(cls, data, exc) from exc


@dataclass(frozen=True, slots=True)
class Vehicle200:
    """0x200 (V2H): the vehicle's discharge limits.

    Attributes:
        max_discharge_current_a: b0, raw [BE] (``0xFF - raw`` with ``Quirks.inverted_200`` [RS]).
        min_discharge_voltage_v: b4-5 [BE][RS].
        min_battery_discharge_level_pct: b6, raw [BE] (inverted with the quirk [RS]).
        max_remaining_capacity_for_charging_pct: b7 [BE][RS].
    """

    ARBITRATION_ID: ClassVar[int] = 0x200

    max_discharge_current_a: int = 0
    min_discharge_voltage_v: int = 0
    min_battery_discharge_level_pct: int = 0
    max_remaining_capacity_for_charging_pct: int = 0

    def __post_init__(self) -> None:
        _check_int("max_discharge_current_a", self.max_discharge_current_a, _U8)
        _check_int("min_discharge_voltage_v", self.min_discharge_voltage_v, _U16)
        _check_int("min_battery_discharge_level_pct", self.min_battery_discharge_level_pct, _U8)
        _check_int(
            "max_remaining_capacity_for_charging_pct",
            self.max_remaining_capacity_for_charging_pct,
            _U8,
        )

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes, laid out as ``quirks`` says the vehicle sends them."""
        current = self.max_discharge_current_a
        level = self.min_battery_discharge_level_pct
        if quirks.inverted_200:
            current, level = _U8 - current, _U8 - level  # b0, b6 inverted [RS]
        return (
            bytes([current, 0, 0, 0])  # b0 raw [BE] / inverted [RS]; b1-3 unused
            + _u16(self.min_discharge_voltage_v)  # b4-5 [BE][RS]
            + bytes(
                [
                    level,  # b6 raw [BE] / inverted [RS]
                    self.max_remaining_capacity_for_charging_pct,  # b7 [BE][RS]
                ]
            )
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes, b0/b6 raw [BE] or inverted [RS] as ``quirks`` says.

        Raises:
            FrameError: wrong length.
        """
        _check_length(cls, data)
        current, level = data[0], data[6]
        if quirks.inverted_200:
            current, level = _U8 - current, _U8 - level
        try:
            return cls(
                max_discharge_current_a=current,
                min_discharge_voltage_v=_le16(data, 4),
                min_battery_discharge_level_pct=level,
                max_remaining_capacity_for_charging_pct=data[7],
            )
        except LocalChademoError as exc:
            raise _remote(cls, data, exc) from exc


@dataclass(frozen=True, slots=True)
class Vehicle201:
    """0x201 (V2H): the vehicle's discharge estimate; rarely sent by real cars [BE].

    The sources give no unit for the two 16-bit values, so they stay raw.

    Attributes:
        sequence_number: b0, V2H charge/discharge sequence number [BE].
        approx_discharge_completion_time_raw: b1-2 [BE].
        available_vehicle_energy_raw: b3-4 [BE].
    """

    ARBITRATION_ID: ClassVar[int] = 0x201

    sequence_number: int = 0
    approx_discharge_completion_time_raw: int = 0
    available_vehicle_energy_raw: int = 0

    def __post_init__(self) -> None:
        _check_int("sequence_number", self.sequence_number, _U8)
        _check_int(
            "approx_discharge_completion_time_raw", self.approx_discharge_completion_time_raw, _U16
        )
        _check_int("available_vehicle_energy_raw", self.available_vehicle_energy_raw, _U16)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        return (
            bytes([self.sequence_number])  # b0 [BE]
            + _u16(self.approx_discharge_completion_time_raw)  # b1-2 [BE]
            + _u16(self.available_vehicle_energy_raw)  # b3-4 [BE]
            + bytes(3)  # b5-7 unused [BE]
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length.
        """
        _check_length(cls, data)
        return cls(
            sequence_number=data[0],
            approx_discharge_completion_time_raw=_le16(data, 1),
            available_vehicle_energy_raw=_le16(data, 3),
        )


# --------------------------------------------------------------------------------------------
# charger → vehicle


@dataclass(frozen=True, slots=True)
class Charger108:
    """0x108: the charger's capability.

    Attributes:
        welding_detection_supported: b0, 0 = not supported [BE][EV] ([BE] sends 1).
        available_output_voltage_v: b1-2 [BE][RS].
        available_output_current_a: b3 [BE][RS].
        threshold_voltage_v: b4-5, the voltage at which the charger stops [BE][RS].
    """

    ARBITRATION_ID: ClassVar[int] = 0x108

    welding_detection_supported: bool = True
    available_output_voltage_v: int = 0
    available_output_current_a: int = 0
    threshold_voltage_v: int = 0

    def __post_init__(self) -> None:
        _check_int("available_output_voltage_v", self.available_output_voltage_v, _U16)
        _check_int("available_output_current_a", self.available_output_current_a, _U8)
        _check_int("threshold_voltage_v", self.threshold_voltage_v, _U16)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        return (
            bytes([1 if self.welding_detection_supported else 0])  # b0 [BE][EV]
            + _u16(self.available_output_voltage_v)  # b1-2 [BE][RS]
            + bytes([self.available_output_current_a])  # b3 [BE][RS]
            + _u16(self.threshold_voltage_v)  # b4-5 [BE][RS]
            + bytes(2)  # b6-7 zero [BE]
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length.
        """
        _check_length(cls, data)
        return cls(
            welding_detection_supported=data[0] != 0,
            available_output_voltage_v=_le16(data, 1),
            available_output_current_a=data[3],
            threshold_voltage_v=_le16(data, 4),
        )


@dataclass(frozen=True, slots=True)
class Charger109:
    """0x109: the charger's live status.

    Attributes:
        protocol_number: b0 ([BE] sends 2) [BE][EV].
        present_output_voltage_v: b1-2 [BE][RS].
        present_output_current_a: b3 [BE][RS].
        discharge_compatible: b4, V2H [BE].
        status: b5 [BE][EV].
        remaining_charging_time_10s: b6 in 10 s units; None when 0xFF ("use b7") [BE][EV].
        remaining_charging_time_min: b7 in minutes [BE][EV].
    """

    ARBITRATION_ID: ClassVar[int] = 0x109

    protocol_number: int = 2
    present_output_voltage_v: int = 0
    present_output_current_a: int = 0
    discharge_compatible: bool = False
    status: ChargerStatus = ChargerStatus.STOP_CONTROL
    remaining_charging_time_10s: int | None = None
    remaining_charging_time_min: int = 0xFF

    def __post_init__(self) -> None:
        _check_int("protocol_number", self.protocol_number, _U8)
        _check_int("present_output_voltage_v", self.present_output_voltage_v, _U16)
        _check_int("present_output_current_a", self.present_output_current_a, _U8)
        _check_int("status", int(self.status), _U8)
        _check_optional(
            "remaining_charging_time_10s", self.remaining_charging_time_10s, _NOT_USED - 1
        )
        _check_int("remaining_charging_time_min", self.remaining_charging_time_min, _U8)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        by_10s = (
            _NOT_USED
            if self.remaining_charging_time_10s is None
            else self.remaining_charging_time_10s
        )
        return (
            bytes([self.protocol_number])  # b0 [BE][EV]
            + _u16(self.present_output_voltage_v)  # b1-2 [BE][RS]
            + bytes(
                [
                    self.present_output_current_a,  # b3 [BE][RS]
                    1 if self.discharge_compatible else 0,  # b4 [BE]
                    int(self.status),  # b5 [BE][EV]
                    by_10s,  # b6 x10 s, 0xFF = use b7 [BE][EV]
                    self.remaining_charging_time_min,  # b7 x1 min [BE][EV]
                ]
            )
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length.
        """
        _check_length(cls, data)
        return cls(
            protocol_number=data[0],
            present_output_voltage_v=_le16(data, 1),
            present_output_current_a=data[3],
            discharge_compatible=data[4] != 0,
            status=ChargerStatus(data[5]),
            remaining_charging_time_10s=None if data[6] == _NOT_USED else data[6],
            remaining_charging_time_min=data[7],
        )


@dataclass(frozen=True, slots=True)
class Charger208:
    """0x208 (V2H): the charger's discharge capability; currents are sent as ``0xFF - value``.

    Attributes:
        present_discharge_current_a: b0 = 0xFF - value [RS][BE].
        available_input_voltage_v: b1-2 [RS][BE].
        available_input_current_a: b3 = 0xFF - value, the discharge current the charger can
            take [RS][BE].
        lower_threshold_voltage_v: b6-7 [RS][BE].
    """

    ARBITRATION_ID: ClassVar[int] = 0x208

    present_discharge_current_a: int = 0
    available_input_voltage_v: int = 0
    available_input_current_a: int = 0
    lower_threshold_voltage_v: int = 0

    def __post_init__(self) -> None:
        _check_int("present_discharge_current_a", self.present_discharge_current_a, _U8)
        _check_int("available_input_voltage_v", self.available_input_voltage_v, _U16)
        _check_int("available_input_current_a", self.available_input_current_a, _U8)
        _check_int("lower_threshold_voltage_v", self.lower_threshold_voltage_v, _U16)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        return (
            bytes([_U8 - self.present_discharge_current_a])  # b0 inverted [RS][BE]
            + _u16(self.available_input_voltage_v)  # b1-2 [RS][BE]
            + bytes([_U8 - self.available_input_current_a, 0, 0])  # b3 inverted; b4-5 0 [RS][BE]
            + _u16(self.lower_threshold_voltage_v)  # b6-7 [RS][BE]
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length.
        """
        _check_length(cls, data)
        return cls(
            present_discharge_current_a=_U8 - data[0],
            available_input_voltage_v=_le16(data, 1),
            available_input_current_a=_U8 - data[3],
            lower_threshold_voltage_v=_le16(data, 6),
        )


@dataclass(frozen=True, slots=True)
class Charger209:
    """0x209 (V2H): the charger's discharge sequence and estimate.

    The sources give no unit for the remaining discharge time, so it stays raw.

    Attributes:
        sequence_control_number: b0, charge/discharge sequence control number [BE][RS].
        remaining_discharge_time_raw: b1-2 [BE][RS].
    """

    ARBITRATION_ID: ClassVar[int] = 0x209

    sequence_control_number: int = 2
    remaining_discharge_time_raw: int = 0

    def __post_init__(self) -> None:
        _check_int("sequence_control_number", self.sequence_control_number, _U8)
        _check_int("remaining_discharge_time_raw", self.remaining_discharge_time_raw, _U16)

    def encode(self, quirks: Quirks = Quirks()) -> bytes:
        """The 8 data bytes."""
        return (
            bytes([self.sequence_control_number])  # b0 [BE][RS]
            + _u16(self.remaining_discharge_time_raw)  # b1-2 [BE][RS]
            + bytes(5)  # b3-7 unused
        )

    @classmethod
    def decode(cls, data: bytes, quirks: Quirks = Quirks()) -> Self:
        """Decode 8 bytes.

        Raises:
            FrameError: wrong length.
        """
        _check_length(cls, data)
        return cls(
            sequence_control_number=data[0],
            remaining_discharge_time_raw=_le16(data, 1),
        )


Frame: TypeAlias = (
    Vehicle100
    | Vehicle101
    | Vehicle102
    | Vehicle200
    | Vehicle201
    | Charger108
    | Charger109
    | Charger208
    | Charger209
)
"""Any CHAdeMO frame."""

FRAME_TYPES: Final[dict[int, type[Frame]]] = {
    cls.ARBITRATION_ID: cls
    for cls in (
        Vehicle100,
        Vehicle101,
        Vehicle102,
        Vehicle200,
        Vehicle201,
        Charger108,
        Charger109,
        Charger208,
        Charger209,
    )
}
"""Arbitration id → frame class."""

VEHICLE_FRAME_IDS: Final = frozenset({0x100, 0x101, 0x102, 0x200, 0x201})
"""The ids a vehicle sends (a charger listens for these)."""

CHARGER_FRAME_IDS: Final = frozenset({0x108, 0x109, 0x208, 0x209})
"""The ids a charger sends (a vehicle listens for these)."""


def decode_frame(arbitration_id: int, data: bytes, quirks: Quirks = Quirks()) -> Frame | None:
    """Decode one CAN frame's data by its id.

    Args:
        arbitration_id: the 11-bit CAN id.
        data: the frame's data bytes (8 for CHAdeMO).
        quirks: per-vehicle decoding options.

    Returns:
        The typed frame, or None if ``arbitration_id`` is not a CHAdeMO frame.

    Raises:
        FrameError: a CHAdeMO id with the wrong length or an out-of-range field.
    """
    cls = FRAME_TYPES.get(arbitration_id)
    if cls is None:
        return None
    return cls.decode(bytes(data), quirks)
