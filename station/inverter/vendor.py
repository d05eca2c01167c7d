"""Declarative vendor register maps: a non-SunSpec converter needs a TOML file, not code.

Owns the map file format (below), its validation, the conversion between register words and
physical values in the station's sign, and :class:`VendorInverter`, which reads measurements
and writes set-points through a Modbus link with such a map. Register words are encoded and
decoded by pymodbus (``ModbusClientMixin.convert_to_registers`` /
``convert_from_registers``, with their word order), never by hand. It must not know SunSpec
(``station.inverter.sunspec`` does) nor decide what power to command (``station.power``).

File format (every key of an entry is checked; unknown keys are errors)::

    [device]                        # optional, for logs and BootNotification-like reports
    manufacturer = "Example"
    model = "DCX-11"

    [[register]]
    name = "discharge_limit_w"      # what the register means (see KNOWN_REGISTERS)
    address = 0x4001                # 0..65535, the address on the wire (hex is a TOML int)
    table = "holding"               # holding | input (input registers are read-only)
    type = "uint16"                 # int16 uint16 int32 uint32 int64 uint64 float32 float64
    scale = 1.0                     # physical = raw * scale; or scale_pow10 = -1 (not both)
    word_order = "big"              # big | little (for 32/64-bit types)
    access = "rw"                   # r | w | rw
    sign = "export_positive"        # signed quantities only: export_positive | import_positive
    unit = "W"                      # optional; must match the name's unit suffix

Sign (DESIGN.md): the station counts power into the vehicle as positive. ``sign`` says how the
device counts a signed quantity: ``export_positive`` (power fed into the grid is positive,
as SunSpec 701 does) is negated once here; ``import_positive`` is taken as it is. Magnitudes
(limits, voltages, energies) carry no sign. A set-point is written with ``setpoint_w`` when the
map has it; otherwise as limits: ``charge_limit_w`` = the charge power, ``discharge_limit_w`` =
the discharge power, the other one 0 (a limit of 0 means no power, never a change of direction).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.exceptions import ModbusException

from station.clock import Clock
from station.errors import ConfigError
from station.inverter.device import (
    FaultCallback,
    FaultKind,
    FaultReport,
    InverterMeasurements,
    InverterOptions,
)
from station.inverter.errors import (
    InverterFaultError,
    InverterLinkError,
    InverterRefusedError,
    LocalInverterError,
    RemoteInverterError,
)
from station.inverter.modbus import ModbusLink

__all__ = [
    "KNOWN_REGISTERS",
    "Access",
    "Register",
    "RegisterLink",
    "RegisterMap",
    "RegisterMapError",
    "RegisterTable",
    "RegisterType",
    "Sign",
    "VendorInverter",
    "VendorModbusLink",
    "load_register_map",
    "parse_register_map",
]

log = logging.getLogger(__name__)


class RegisterMapError(ConfigError):
    """A register map file is unusable; the message names the file, the entry and the problem."""


class RegisterTable(StrEnum):
    """Which Modbus table a register lives in."""

    HOLDING = "holding"
    INPUT = "input"


class RegisterType(StrEnum):
    """The register's data type (pymodbus ``DATATYPE``)."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def datatype(self) -> ModbusClientMixin.DATATYPE:
        """The pymodbus data type."""
        return _DATATYPES[self]

    @property
    def word_count(self) -> int:
        """Registers (16-bit words) it takes."""
        return int(self.datatype.value[1])

    @property
    def is_float(self) -> bool:
        """True for the IEEE 754 types."""
        return self in (RegisterType.FLOAT32, RegisterType.FLOAT64)


_DATATYPES: Mapping[RegisterType, ModbusClientMixin.DATATYPE] = {
    RegisterType.INT16: ModbusClientMixin.DATATYPE.INT16,
    RegisterType.UINT16: ModbusClientMixin.DATATYPE.UINT16,
    RegisterType.INT32: ModbusClientMixin.DATATYPE.INT32,
    RegisterType.UINT32: ModbusClientMixin.DATATYPE.UINT32,
    RegisterType.INT64: ModbusClientMixin.DATATYPE.INT64,
    RegisterType.UINT64: ModbusClientMixin.DATATYPE.UINT64,
    RegisterType.FLOAT32: ModbusClientMixin.DATATYPE.FLOAT32,
    RegisterType.FLOAT64: ModbusClientMixin.DATATYPE.FLOAT64,
}


class Access(StrEnum):
    """What the station may do with a register."""

    READ = "r"
    WRITE = "w"
    READ_WRITE = "rw"


class Sign(StrEnum):
    """How the device counts a signed quantity."""

    EXPORT_POSITIVE = "export_positive"
    """Power or current into the grid (out of the vehicle) is positive: negated once here."""
    IMPORT_POSITIVE = "import_positive"
    """Power or current from the grid (into the vehicle) is positive: the station's sign."""


@dataclass(frozen=True, slots=True)
class _Meaning:
    signed: bool
    writable: bool  # True: the register must be writable (a control); False: a measurement
    unit: str


KNOWN_REGISTERS: Mapping[str, _Meaning] = {
    "power_w": _Meaning(True, False, "W"),
    "current_a": _Meaning(True, False, "A"),
    "dc_power_w": _Meaning(True, False, "W"),
    "dc_current_a": _Meaning(True, False, "A"),
    "voltage_v": _Meaning(False, False, "V"),
    "dc_voltage_v": _Meaning(False, False, "V"),
    "frequency_hz": _Meaning(False, False, "Hz"),
    "energy_import_wh": _Meaning(False, False, "Wh"),
    "energy_export_wh": _Meaning(False, False, "Wh"),
    "setpoint_w": _Meaning(True, True, "W"),
    "charge_limit_w": _Meaning(False, True, "W"),
    "discharge_limit_w": _Meaning(False, True, "W"),
    "heartbeat": _Meaning(False, True, ""),
}
"""Register names the station understands, with whether they are signed, must be writable, and
their unit. Other names (lower case, digits, ``_``) are allowed and readable by name."""

_UNIT_SUFFIXES = {"_w": "W", "_wh": "Wh", "_v": "V", "_a": "A", "_hz": "Hz", "_pct": "%", "_s": "s"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ENTRY_KEYS = {
    "name",
    "address",
    "table",
    "type",
    "scale",
    "scale_pow10",
    "word_order",
    "access",
    "sign",
    "unit",
}
_TOP_KEYS = {"device", "register"}
_DEVICE_KEYS = {"manufacturer", "model"}


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


@dataclass(frozen=True, slots=True)
class Register:
    """One register entry of a map (validated by the loader).

    Attributes:
        name: its meaning (``KNOWN_REGISTERS`` or a free name).
        address: first register address on the wire, 0..65535.
        table: holding or input.
        data_type: the register type.
        scale: physical value = raw value * scale (finite, not 0).
        word_order: order of the 16-bit words in a 32/64-bit value.
        access: r, w or rw.
        sign: how the device counts a signed quantity; None for magnitudes.
        unit: documentation only (checked against the name's suffix).
    """

    name: str
    address: int
    table: RegisterTable
    data_type: RegisterType
    scale: float = 1.0
    word_order: Literal["big", "little"] = "big"
    access: Access = Access.READ
    sign: Sign | None = None
    unit: str = ""

    @property
    def count(self) -> int:
        """Registers it spans."""
        return self.data_type.word_count

    @property
    def readable(self) -> bool:
        """True when the station may read it."""
        return self.access in (Access.READ, Access.READ_WRITE)

    @property
    def writable(self) -> bool:
        """True when the station may write it."""
        return self.access in (Access.WRITE, Access.READ_WRITE)

    def _flip(self) -> float:
        return -1.0 if self.sign is Sign.EXPORT_POSITIVE else 1.0

    def decode(self, words: Sequence[int]) -> float:
        """Register words → physical value in the station's sign.

        Raises:
            RemoteInverterError: the words do not fit the type (wrong count, not 16-bit) or
                decode to a value that is not finite (e.g. a float32 NaN).
        """
        if len(words) != self.count or any(not 0 <= w <= 0xFFFF for w in words):
            raise RemoteInverterError(f"{self.name}: {list(words)!r} is not {self.count} words")
        try:
            raw = ModbusClientMixin.convert_from_registers(
                list(words), self.data_type.datatype, word_order=self.word_order
            )
        except ModbusException as exc:
            raise RemoteInverterError(f"{self.name}: cannot decode {list(words)!r}") from exc
        assert isinstance(raw, int | float)
        value = float(raw) * self.scale * self._flip()
        if not math.isfinite(value):
            raise RemoteInverterError(f"{self.name}: the device reports {raw!r}")
        return value + 0.0  # never -0.0

    def raw_value(self, value: float) -> int | float:
        """Physical value (station sign) → the raw number the register holds.

        Raises:
            LocalInverterError: the value is not finite or does not fit the register type.
        """
        if not math.isfinite(value):
            raise LocalInverterError(f"{self.name}: {value!r} is not a finite number")
        raw = value * self._flip() / self.scale
        if self.data_type.is_float:
            return raw
        rounded = round(raw)
        bits = 16 * self.count
        low, high = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            if self.data_type.value.startswith("int")
            else (0, (1 << bits) - 1)
        )
        if not low <= rounded <= high:
            raise LocalInverterError(
                f"{self.name}: {value!r} is raw {rounded}, outside {self.data_type} ({low}..{high})"
            )
        return rounded

    def encode(self, value: float) -> list[int]:
        """Physical value (station sign) → register words.

        Raises:
            LocalInverterError: the value is not finite or does not fit the register type.
        """
        raw = self.raw_value(value)
        try:
            return ModbusClientMixin.convert_to_registers(
                raw, self.data_type.datatype, word_order=self.word_order
            )
        except (struct.error, OverflowError) as exc:
            raise LocalInverterError(
                f"{self.name}: {value!r} does not fit {self.data_type}"
            ) from exc


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """A validated map: registers by name.

    Attributes:
        source: the file it came from (for messages).
        registers: the entries, in file order.
        manufacturer, model: from ``[device]``.
    """

    source: str
    registers: tuple[Register, ...]
    manufacturer: str = ""
    model: str = ""
    _by_name: dict[str, Register] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        self._by_name.update({r.name: r for r in self.registers})

    def get(self, name: str) -> Register | None:
        """The register named ``name``, or None."""
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> Register:
        register = self._by_name.get(name)
        if register is None:
            raise LocalInverterError(f"{self.source}: no register named {name!r}")
        return register

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


# --- loading ------------------------------------------------------------------------------------


def load_register_map(path: str | Path) -> RegisterMap:
    """Read and validate a register map file.

    Raises:
        RegisterMapError: the file cannot be read or parsed, or an entry is invalid (the message
            names the file, the entry ``register[i] (name)`` and the problem).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegisterMapError(source, "", "no such file") from None
    except IsADirectoryError:
        raise RegisterMapError(source, "", "is a directory, not a file") from None
    except PermissionError:
        raise RegisterMapError(source, "", "permission denied") from None
    except UnicodeDecodeError:
        raise RegisterMapError(source, "", "is not UTF-8 text") from None
    return parse_register_map(text, Path(path).name)


def parse_register_map(text: str, source: str = "<register map>") -> RegisterMap:
    """Validate a register map given as TOML text (see the module docstring).

    Args:
        text: the TOML document.
        source: the name used in error messages.

    Returns:
        The map.

    Raises:
        RegisterMapError: as :func:`load_register_map`.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegisterMapError(source, "", f"not valid TOML: {exc}") from None
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise RegisterMapError(source, unknown[0], "unknown key (expected [device], [[register]])")
    device = document.get("device", {})
    if not isinstance(device, dict):
        raise RegisterMapError(source, "device", "must be a table")
    for key in sorted(device):
        if key not in _DEVICE_KEYS:
            raise RegisterMapError(source, f"device.{key}", "unknown key")
        if not isinstance(device[key], str):
            raise RegisterMapError(source, f"device.{key}", "must be a string")
    raw_entries = document.get("register")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise RegisterMapError(source, "register", "the map needs at least one [[register]]")
    registers: list[Register] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        register = _entry(source, index, raw)
        where = f"register[{index}] ({register.name})"
        if register.name in seen:
            raise RegisterMapError(
                source, where, f"name is already used by register[{seen[register.name]}]"
            )
        for other_index, other in enumerate(registers):
            if other.table is register.table and (
                register.address < other.address + other.count
                and other.address < register.address + register.count
            ):
                raise RegisterMapError(
                    source,
                    where,
                    f"{register.table} registers {register.address:#06x}+{register.count} "
                    f"overlap register[{other_index}] ({other.name}) at {other.address:#06x}"
                    f"+{other.count}",
                )
        seen[register.name] = index
        registers.append(register)
    return RegisterMap(
        source=source,
        registers=tuple(registers),
        manufacturer=device.get("manufacturer", ""),
        model=device.get("model", ""),
    )


def _entry(source: str, index: int, raw: Any) -> Register:
    """One ``[[register]]`` entry, or a :class:`RegisterMapError` naming it."""
    if not isinstance(raw, dict):
        raise RegisterMapError(source, f"register[{index}]", "must be a table")
    name = raw.get("name")
    label = f"register[{index}] ({name})" if isinstance(name, str) else f"register[{index}]"

    def fail(problem: str) -> RegisterMapError:
        return RegisterMapError(source, label, problem)

    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_ENTRY_KEYS))})")
    for key in ("name", "address", "type"):
        if key not in raw:
            raise fail(f"{key} is missing")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(f"name {name!r} must be lower case letters, digits and _")
    meaning = KNOWN_REGISTERS.get(name)

    address = raw["address"]
    if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 0xFFFF:
        raise fail(f"address {address!r} must be an integer 0..65535 (0x0000..0xFFFF)")

    def choice(key: str, enum: type[StrEnum], default: str | None) -> Any:
        value = raw.get(key, default)
        try:
            return enum(str(value))
        except ValueError:
            raise fail(f'{key} "{value}" is not one of {_choices(enum)}') from None

    data_type = choice("type", RegisterType, None)
    table = choice("table", RegisterTable, RegisterTable.HOLDING.value)
    access = choice("access", Access, Access.READ.value)
    word_order = raw.get("word_order", "big")
    if word_order not in ("big", "little"):
        raise fail(f'word_order "{word_order}" is not one of big, little')

    if "scale" in raw and "scale_pow10" in raw:
        raise fail("give scale or scale_pow10, not both")
    scale_raw = raw.get("scale", 1.0)
    if "scale_pow10" in raw:
        exponent = raw["scale_pow10"]
        if isinstance(exponent, bool) or not isinstance(exponent, int) or not -10 <= exponent <= 10:
            raise fail(f"scale_pow10 {exponent!r} must be an integer -10..10")
        scale_raw = 10.0**exponent
    if (
        isinstance(scale_raw, bool)
        or not isinstance(scale_raw, int | float)
        or not math.isfinite(scale_raw)
        or scale_raw == 0
    ):
        raise fail(f"scale {scale_raw!r} must be a finite number other than 0")
    scale = float(scale_raw)

    sign: Sign | None = None
    if "sign" in raw:
        sign = choice("sign", Sign, None)
    if meaning is not None and meaning.signed and sign is None:
        raise fail(f"sign is missing: {name} is signed ({_choices(Sign)})")
    if meaning is not None and not meaning.signed and sign is not None:
        raise fail(f"sign does not apply: {name} is a magnitude")
    if sign is not None and data_type.value.startswith("uint"):
        raise fail(f"a signed quantity cannot be {data_type}")

    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise fail(f"unit {unit!r} must be a string")
    expected_unit = meaning.unit if meaning is not None else _suffix_unit(name)
    if unit and expected_unit and unit != expected_unit:
        raise fail(f'unit "{unit}" does not match the name (expected "{expected_unit}")')

    if table is RegisterTable.INPUT and access is not Access.READ:
        raise fail(f'input registers are read-only; access must be "r", not "{access}"')
    if meaning is not None and meaning.writable and access is Access.READ:
        raise fail(f'{name} is a control: access must be "w" or "rw"')
    if address + data_type.word_count - 1 > 0xFFFF:
        raise fail(f"{data_type} at {address:#06x} runs past register 0xFFFF")
    return Register(
        name=name,
        address=address,
        table=table,
        data_type=data_type,
        scale=scale,
        word_order=word_order,
        access=access,
        sign=sign,
        unit=unit or expected_unit,
    )


def _suffix_unit(name: str) -> str:
    for suffix, unit in _UNIT_SUFFIXES.items():
        if name.endswith(suffix):
            return unit
    return ""


# --- the device -------------------------------------------------------------------------------


class RegisterLink(Protocol):
    """What :class:`VendorInverter` needs from a Modbus link (errors already translated)."""

    async def read(self, address: int, count: int) -> list[int]:
        """Read holding registers."""
        ...

    async def read_input(self, address: int, count: int) -> list[int]:
        """Read input registers."""
        ...

    async def write(self, address: int, values: Sequence[int]) -> None:
        """Write holding registers."""
        ...


class VendorModbusLink(ModbusLink):
    """:class:`~station.inverter.modbus.ModbusLink` plus Read Input Registers (function 0x04)."""

    async def read_input(self, address: int, count: int) -> list[int]:
        """Read ``count`` input registers from ``address`` (at most 125, one request).

        Raises:
            InverterTimeout, InverterLinkError, InverterRefused: as ``ModbusLink.read``.
            LocalInverterError: the range is outside 0..65535 or longer than one request.
        """
        if count < 1 or count > 125 or address < 0 or address + count > 0x10000:
            raise LocalInverterError(f"input register range {address}+{count} is not readable")
        device_id = self.settings.device_id
        response = await self._call(
            "read input",
            address,
            lambda c: c.read_input_registers(address, count=count, device_id=device_id),
        )
        words = list(response.registers)
        if len(words) != count:
            raise RemoteInverterError(f"{self.where}: asked for {count} input registers")
        return words


class _WrongReadBackError(RemoteInverterError):
    """A register read back differs from what was written."""


class VendorInverter:
    """A non-SunSpec converter driven through a :class:`RegisterMap`; an ``InverterPort``.

    Set-and-verify as :class:`~station.inverter.device.SunSpecInverter` does it: write, read
    back every readable control register, retry up to ``options.write_retries`` times; a device
    that refuses, does not answer or reads back something else is a fault: 0 W is commanded
    (best effort), ``on_fault`` is told, :class:`InverterFaultError` raised, and non-zero
    set-points are refused until :meth:`clear_fault`. :meth:`run` feeds the ``heartbeat``
    register (when the map has one) every ``options.heartbeat_interval_s``.

    Args:
        link: the Modbus link (:class:`VendorModbusLink` in the field).
        register_map: the validated map.
        clock: for measurement timestamps and fault times.
        options: retries and heartbeat interval (the other options are SunSpec-only for now).
        on_fault: told of each fault once, after 0 W was commanded.

    Raises:
        LocalInverterError: the map has no register to command power with.
    """

    def __init__(
        self,
        link: RegisterLink,
        register_map: RegisterMap,
        *,
        clock: Clock,
        options: InverterOptions | None = None,
        on_fault: FaultCallback | None = None,
    ) -> None:
        if "setpoint_w" not in register_map and not (
            "charge_limit_w" in register_map or "discharge_limit_w" in register_map
        ):
            raise LocalInverterError(
                f"{register_map.source}: the map has no setpoint_w, charge_limit_w or "
                "discharge_limit_w: the station cannot command this device"
            )
        self.link = link
        self.map = register_map
        self.options = options if options is not None else InverterOptions()
        self._clock = clock
        self._on_fault = on_fault
        self._fault: FaultReport | None = None
        self._heartbeat = 0
        self._lock = asyncio.Lock()
        self.last_measurements: InverterMeasurements | None = None

    # --- registers by name -----------------------------------------------------------------

    async def read_value(self, name: str) -> float:
        """Read one register by name, in physical units and the station's sign.

        Raises:
            LocalInverterError: no such register, or it is write-only.
            RemoteInverterError: the link failed or the device sent an impossible value.
        """
        register = self.map[name]
        if not register.readable:
            raise LocalInverterError(f"{self.map.source}: {name} is write-only")
        if register.table is RegisterTable.INPUT:
            words = await self.link.read_input(register.address, register.count)
        else:
            words = await self.link.read(register.address, register.count)
        return register.decode(words)

    async def write_value(self, name: str, value: float) -> None:
        """Write one register by name (physical units, station sign).

        Raises:
            LocalInverterError: no such register, read-only, or the value does not fit.
            RemoteInverterError: the link failed or the device refused.
        """
        register = self.map[name]
        if not register.writable:
            raise LocalInverterError(f"{self.map.source}: {name} is read-only")
        await self.link.write(register.address, register.encode(value))

    # --- InverterPort -------------------------------------------------------------------------

    @property
    def fault(self) -> FaultReport | None:
        """The fault that holds the device at 0 W, or None."""
        return self._fault

    def clear_fault(self) -> None:
        """Allow non-zero set-points again."""
        self._fault = None

    async def read_measurements(self) -> InverterMeasurements:
        """Read the measurement registers the map has (one request each).

        Raises:
            RemoteInverterError: the link failed or a value is impossible.
        """
        values: dict[str, float] = {}
        for name in _MEASUREMENTS:
            register = self.map.get(name)
            if register is not None and register.readable:
                values[name] = await self.read_value(name)
        reading = InverterMeasurements(
            timestamp=self._clock.now(),
            power_w=values.get("power_w"),
            current_a=values.get("current_a"),
            voltage_v=values.get("voltage_v"),
            frequency_hz=values.get("frequency_hz"),
            energy_import_wh=values.get("energy_import_wh"),
            energy_export_wh=values.get("energy_export_wh"),
            dc_voltage_v=values.get("dc_voltage_v"),
            dc_current_a=values.get("dc_current_a"),
            dc_power_w=values.get("dc_power_w"),
        )
        self.last_measurements = reading
        return reading

    def _writes(self, power_w: float) -> list[tuple[Register, list[int]]]:
        """The registers and words that command ``power_w``; raises before anything is sent."""
        if not math.isfinite(power_w):
            raise LocalInverterError(f"set-point must be a finite number, got {power_w}")
        setpoint = self.map.get("setpoint_w")
        if setpoint is not None:
            return [(setpoint, setpoint.encode(power_w))]
        writes: list[tuple[float, Register]] = []
        charge_w, discharge_w = max(power_w, 0.0), max(-power_w, 0.0)
        for name, value in (("charge_limit_w", charge_w), ("discharge_limit_w", discharge_w)):
            register = self.map.get(name)
            if register is not None:
                writes.append((value, register))
            elif value > 0:
                raise LocalInverterError(
                    f"{self.map.source}: no {name} register for a set-point of {power_w} W"
                )
        # The closing limit first: on a change of direction both are never open at once.
        writes.sort(key=lambda item: item[0])
        return [(register, register.encode(value)) for value, register in writes]

    async def _set(self, writes: list[tuple[Register, list[int]]]) -> None:
        for register, words in writes:
            await self.link.write(register.address, words)
        for register, words in writes:
            if register.readable:
                back = await self.link.read(register.address, register.count)
                if back != words:
                    raise _WrongReadBackError(
                        f"{register.name} reads back {back!r} after writing {words!r}"
                    )

    async def apply_setpoint(self, power_w: float) -> None:
        """Command ``power_w`` (``+`` = into the vehicle) and verify what can be read back.

        With ``setpoint_w`` in the map the value is written there. Otherwise the limits are
        written: ``charge_limit_w`` = max(power_w, 0), ``discharge_limit_w`` = max(-power_w,
        0); a direction the map has no register for must be 0 W.

        Raises:
            InverterFaultError: refused, no answer or a wrong read-back after the retries; 0 W
                has been commanded and ``on_fault`` told. Also raised, without a new report,
                for a non-zero set-point while a fault is held.
            LocalInverterError: the value is not finite, does not fit its register, or needs a
                register the map lacks (nothing is written then).
        """
        writes = self._writes(power_w)
        if self._fault is not None and power_w != 0:
            raise InverterFaultError(self._fault)
        async with self._lock:
            kind, detail = FaultKind.NO_ANSWER, ""
            for attempt in range(1 + self.options.write_retries):
                try:
                    await self._set(writes)
                except _WrongReadBackError as exc:
                    kind, detail = FaultKind.WRONG_READBACK, str(exc)
                except InverterRefusedError as exc:
                    kind, detail = FaultKind.REFUSED, str(exc)
                except InverterLinkError as exc:
                    kind, detail = FaultKind.NO_ANSWER, str(exc)
                else:
                    log.debug("vendor %s: set-point %.0f W taken", self.map.source, power_w)
                    return
                log.warning(
                    "vendor %s: set-point %.0f W attempt %d failed: %s",
                    self.map.source,
                    power_w,
                    attempt + 1,
                    detail,
                )
            measured = self.last_measurements.power_w if self.last_measurements else None
            report = FaultReport(kind, power_w, detail, self._clock.now(), measured)
            self._fault = report
            await self._zero()
        log.error("vendor %s: fault %s: %s", self.map.source, kind, detail)
        if self._on_fault is not None:
            self._on_fault(report)
        raise InverterFaultError(report)

    async def _zero(self) -> None:
        """Command 0 W, best effort (a failure is logged, not raised)."""
        try:
            for register, words in self._writes(0.0):
                await self.link.write(register.address, words)
        except (RemoteInverterError, LocalInverterError) as exc:
            log.warning("vendor %s: commanding 0 W failed: %s", self.map.source, exc)

    async def feed_heartbeat(self) -> bool:
        """Write the next heartbeat count, when the map has a ``heartbeat`` register.

        Returns:
            True when a heartbeat register was written.

        Raises:
            RemoteInverterError: the link failed or the device refused.
        """
        register = self.map.get("heartbeat")
        if register is None:
            return False
        bits = 16 * register.count
        signed = register.data_type.value.startswith("int")
        modulus = 1 << (bits - 1) if signed else 1 << bits
        self._heartbeat = (self._heartbeat + 1) % modulus
        await self.link.write(register.address, register.encode(self._heartbeat * register.scale))
        return True

    async def run(self) -> None:
        """Feed the heartbeat every ``options.heartbeat_interval_s`` until cancelled.

        A failed heartbeat is logged and tried again on the next beat (the device's own
        reversion timeout is the fail-safe when the link stays down).
        """
        if "heartbeat" not in self.map:
            return
        while True:
            try:
                await self.feed_heartbeat()
            except RemoteInverterError as exc:
                log.warning("vendor %s: heartbeat failed: %s", self.map.source, exc)
            await asyncio.sleep(self.options.heartbeat_interval_s)

    async def close(self) -> None:
        """Command 0 W (best effort) and close the link when it can be closed."""
        async with self._lock:
            await self._zero()
        close = getattr(self.link, "close", None)
        if close is not None:
            await close()


_MEASUREMENTS = (
    "power_w",
    "current_a",
    "voltage_v",
    "frequency_hz",
    "energy_import_wh",
    "energy_export_wh",
    "dc_voltage_v",
    "dc_current_a",
    "dc_power_w",
)
