"""SunSpec model layouts and the register codec: pure, no I/O, no clock.

Owns:

- the layout of each SunSpec model, read from the model definitions that ``pysunspec2`` ships
  (``sunspec2/models/json/model_NNN.json``, the SunSpec Alliance's own files) instead of register
  tables typed in again here: for every point its offset from the model's ID register, size, type,
  scale factor (a number or the name of a ``sunssf`` point), access and enumeration symbols;
- decoding register words into typed values and encoding values into words, with SunSpec's
  "not implemented" sentinels (``0x8000`` for int16, ``0xFFFF`` for uint16/enum16, ... as listed
  in ``sunspec2.mb``) decoded to ``None``; the word-to-number conversion itself is pymodbus's
  (:meth:`ModbusClientMixin.convert_from_registers` / ``convert_to_registers``), big-endian as
  SunSpec requires;
- scale factors: ``value = raw * 10 ** sf``;
- the discovery constants: the "SunS" marker, its base addresses 0, 40000, 50000, and the end
  model id ``0xFFFF``.

It does not talk to a device (``station.inverter.device`` does) and knows nothing of signs:
values here are as the inverter counts them (701 ``W`` > 0 is export).

Only ``pysunspec2``'s data files are used, not its (synchronous) client.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Final

from pymodbus.client.mixin import ModbusClientMixin

from station.inverter.errors import LocalInverterError, SunSpecError

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "SUNS_MARKER",
    "ModelDef",
    "PointDef",
    "PointType",
    "PointValue",
    "decode_block",
    "decode_point",
    "encode_point",
    "load_group",
    "load_model",
    "model_from_definition",
    "scale",
    "to_raw",
]

DATATYPE = ModbusClientMixin.DATATYPE

SUNS_MARKER: Final[tuple[int, int]] = (0x5375, 0x6E53)
"""The two registers "SunS" that open a SunSpec register map."""

BASE_ADDRESSES: Final[tuple[int, ...]] = (40000, 0, 50000)
"""Where the "SunS" marker may be, in the order discovery tries them (40000 is the common one)."""

END_MODEL_ID: Final = 0xFFFF
"""The model id that ends the model chain."""

PointValue = int | float | str | None
"""A decoded point: an integer (all integer types, enums, bitfields, scale factors), a float
(float32/float64), a string, or ``None`` when the device marks it "not implemented"."""


class PointType(StrEnum):
    """The SunSpec point types (``sunspec2.mdef.TYPE_*``)."""

    INT16 = "int16"
    UINT16 = "uint16"
    COUNT = "count"
    ACC16 = "acc16"
    ENUM16 = "enum16"
    BITFIELD16 = "bitfield16"
    PAD = "pad"
    INT32 = "int32"
    UINT32 = "uint32"
    ACC32 = "acc32"
    ENUM32 = "enum32"
    BITFIELD32 = "bitfield32"
    IPADDR = "ipaddr"
    INT64 = "int64"
    UINT64 = "uint64"
    ACC64 = "acc64"
    IPV6ADDR = "ipv6addr"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    SUNSSF = "sunssf"
    EUI48 = "eui48"


# type -> (pymodbus data type, registers, "not implemented" raw value or None)
# Sentinels as in sunspec2.mb (unimpl_value); accumulators mark "not implemented" with 0.
_INTEGER: Final[dict[PointType, tuple[Any, int, int | None]]] = {
    PointType.INT16: (DATATYPE.INT16, 1, -0x8000),
    PointType.UINT16: (DATATYPE.UINT16, 1, 0xFFFF),
    PointType.COUNT: (DATATYPE.UINT16, 1, 0xFFFF),
    PointType.ACC16: (DATATYPE.UINT16, 1, 0),
    PointType.ENUM16: (DATATYPE.UINT16, 1, 0xFFFF),
    PointType.BITFIELD16: (DATATYPE.UINT16, 1, 0xFFFF),
    PointType.SUNSSF: (DATATYPE.INT16, 1, -0x8000),
    PointType.INT32: (DATATYPE.INT32, 2, -0x80000000),
    PointType.UINT32: (DATATYPE.UINT32, 2, 0xFFFFFFFF),
    PointType.ACC32: (DATATYPE.UINT32, 2, 0),
    PointType.ENUM32: (DATATYPE.UINT32, 2, 0xFFFFFFFF),
    PointType.BITFIELD32: (DATATYPE.UINT32, 2, 0xFFFFFFFF),
    PointType.IPADDR: (DATATYPE.UINT32, 2, 0),
    PointType.INT64: (DATATYPE.INT64, 4, -0x8000000000000000),
    PointType.UINT64: (DATATYPE.UINT64, 4, 0xFFFFFFFFFFFFFFFF),
    PointType.ACC64: (DATATYPE.UINT64, 4, 0),
}
_FLOAT: Final[dict[PointType, tuple[Any, int]]] = {
    PointType.FLOAT32: (DATATYPE.FLOAT32, 2),
    PointType.FLOAT64: (DATATYPE.FLOAT64, 4),
}
_RANGES: Final[dict[Any, tuple[int, int]]] = {
    DATATYPE.INT16: (-0x8000, 0x7FFF),
    DATATYPE.UINT16: (0, 0xFFFF),
    DATATYPE.INT32: (-0x80000000, 0x7FFFFFFF),
    DATATYPE.UINT32: (0, 0xFFFFFFFF),
    DATATYPE.INT64: (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
    DATATYPE.UINT64: (0, 0xFFFFFFFFFFFFFFFF),
}
_SF_RANGE: Final = (-10, 10)


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point of a model.

    Attributes:
        name: the point's name; points of a nested fixed group are ``"Group.Point"``.
        type: its SunSpec type.
        offset: registers from the model's ID register (ID is 0, L is 1, the first point 2).
        size: registers it occupies.
        sf: its scale factor: the name of a ``sunssf`` point of the same model, a fixed
            exponent, or ``None`` (no scaling).
        writable: the definition allows writing it (``access`` "RW").
        symbols: enumeration / bit names to their values.
        units: the unit as the definition spells it ("W", "Secs", ...), or "".
    """

    name: str
    type: PointType
    offset: int
    size: int
    sf: str | int | None = None
    writable: bool = False
    symbols: Mapping[str, int] = field(default_factory=dict)
    units: str = ""


@dataclass(frozen=True, slots=True)
class ModelDef:
    """The fixed part of one SunSpec model: its points by name, in register order.

    Attributes:
        model_id: the SunSpec model id (1, 701, 704, ...).
        name: the definition's group name ("common", "DERMeasureAC", ...).
        length: registers after ID and L in the fixed part (what a device announces as ``L``
            when the model has no repeating groups).
        points: the points by name.
    """

    model_id: int
    name: str
    length: int
    points: Mapping[str, PointDef]

    def point(self, name: str) -> PointDef:
        """The point called ``name``.

        Raises:
            LocalInverterError: the model defines no such point.
        """
        try:
            return self.points[name]
        except KeyError:
            raise LocalInverterError(f"model {self.model_id} has no point {name!r}") from None


def _symbols(raw: Any) -> dict[str, int]:
    if not isinstance(raw, list):
        return {}
    return {str(s["name"]): int(s["value"]) for s in raw if "name" in s and "value" in s}


def _group_points(
    group: Mapping[str, Any], offset: int, prefix: str, out: dict[str, PointDef]
) -> int:
    """Add the points of ``group`` (and of its nested single groups) from ``offset`` on.

    Returns the offset after the group. Stops at a repeating group (a ``count`` other than 1):
    only the fixed part of a model has fixed offsets.
    """
    for raw in group.get("points", []):
        size = int(raw["size"])
        sf = raw.get("sf")
        name = prefix + str(raw["name"])
        out[name] = PointDef(
            name=name,
            type=PointType(raw["type"]),
            offset=offset,
            size=size,
            sf=sf if isinstance(sf, str | int) else None,
            writable=raw.get("access", "R") == "RW",
            symbols=_symbols(raw.get("symbols")),
            units=str(raw.get("units", "")),
        )
        offset += size
    for sub in group.get("groups", []):
        if sub.get("count", 1) != 1:
            break
        offset = _group_points(sub, offset, f"{prefix}{sub['name']}.", out)
    return offset


def model_from_definition(definition: Mapping[str, Any]) -> ModelDef:
    """Build a :class:`ModelDef` from a parsed SunSpec JSON model definition.

    Raises:
        LocalInverterError: the definition is not shaped like a SunSpec model definition.
    """
    try:
        group = definition["group"]
        points: dict[str, PointDef] = {}
        end = _group_points(group, 0, "", points)
        return ModelDef(
            model_id=int(definition["id"]), name=str(group["name"]), length=end - 2, points=points
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LocalInverterError(f"not a SunSpec model definition: {exc}") from exc


@cache
def load_model(model_id: int) -> ModelDef:
    """The layout of SunSpec model ``model_id``, from ``pysunspec2``'s model definitions.

    Raises:
        LocalInverterError: no definition ships for that model id.
    """
    source = resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
    try:
        text = source.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise LocalInverterError(f"no SunSpec definition for model {model_id}") from exc
    return model_from_definition(json.loads(text))


@cache
def load_group(model_id: int, path: tuple[str, ...]) -> ModelDef:
    """The layout of one instance of the repeating group at ``path`` in model ``model_id``.

    For example ``load_group(705, ("Crv",))`` is one volt-var curve without its points and
    ``load_group(705, ("Crv", "Pt"))`` one curve point. Offsets count from the start of the group
    instance; ``length`` is the size of its fixed part (nested repeating groups excluded). Scale
    factor names refer to ``sunssf`` points of the model's fixed part.

    Raises:
        LocalInverterError: no definition for the model, or no such group in it.
    """
    source = resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
    try:
        group: Mapping[str, Any] = json.loads(source.read_text(encoding="utf-8"))["group"]
    except (FileNotFoundError, OSError, KeyError) as exc:
        raise LocalInverterError(f"no SunSpec definition for model {model_id}") from exc
    for name in path:
        group = next((g for g in group.get("groups", []) if g.get("name") == name), {})
        if not group:
            raise LocalInverterError(f"model {model_id} has no group {'.'.join(path)}")
    points: dict[str, PointDef] = {}
    end = _group_points(group, 0, "", points)
    return ModelDef(model_id=model_id, name=".".join(path), length=end, points=points)


def decode_point(point: PointDef, words: Sequence[int]) -> PointValue:
    """Decode the ``point.size`` registers of ``point`` (big-endian, as SunSpec specifies).

    Returns:
        The value, or ``None`` when the registers hold the "not implemented" sentinel (and always
        for ``pad``).

    Raises:
        LocalInverterError: ``words`` is not ``point.size`` registers of 0..65535.
        SunSpecError: a string that is not valid UTF-8, a scale factor outside -10..10.
    """
    if len(words) != point.size or any(not 0 <= w <= 0xFFFF for w in words):
        raise LocalInverterError(
            f"{point.name}: needs {point.size} registers of 0..65535, got {list(words)!r}"
        )
    kind = point.type
    if kind is PointType.PAD:
        return None
    if kind is PointType.STRING:
        if not any(words):
            return None
        try:
            text = ModbusClientMixin.convert_from_registers(list(words), DATATYPE.STRING)
        except UnicodeDecodeError as exc:
            raise SunSpecError(f"{point.name}: not a UTF-8 string") from exc
        assert isinstance(text, str)
        return text.rstrip("\0")
    if kind is PointType.IPV6ADDR:
        value = _from_words(words, DATATYPE.UINT64)
        return None if value == 0 else value
    if kind is PointType.EUI48:
        value = _from_words(words, DATATYPE.UINT64) & 0xFFFFFFFFFFFF
        return None if value == 0xFFFFFFFFFFFF else value
    if kind in _FLOAT:
        number = ModbusClientMixin.convert_from_registers(list(words), _FLOAT[kind][0])
        assert isinstance(number, float)
        return None if math.isnan(number) else number
    datatype, _, sentinel = _INTEGER[kind]
    raw = ModbusClientMixin.convert_from_registers(list(words), datatype)
    assert isinstance(raw, int)
    if raw == sentinel:
        return None
    if kind is PointType.SUNSSF and not _SF_RANGE[0] <= raw <= _SF_RANGE[1]:
        raise SunSpecError(f"{point.name}: scale factor {raw} outside -10..10")
    return raw


def _from_words(words: Sequence[int], datatype: Any) -> int:
    """Several registers as one unsigned number, most significant word first."""
    parts = ModbusClientMixin.convert_from_registers(list(words), datatype)
    value = 0
    for part in parts if isinstance(parts, list) else [parts]:
        assert isinstance(part, int)
        value = (value << 64) | part
    return value


def encode_point(point: PointDef, value: PointValue) -> list[int]:
    """The registers that hold ``value`` in ``point``; ``None`` writes the "not implemented" value.

    Raises:
        LocalInverterError: the value has the wrong type for the point, does not fit its range,
            equals the "not implemented" sentinel, or is a string too long for the point.
    """
    kind = point.type
    if value is None:
        return _unimplemented(point)
    if kind is PointType.PAD:
        raise LocalInverterError(f"{point.name}: a pad point holds no value")
    if kind is PointType.STRING:
        if not isinstance(value, str) or "\0" in value:
            raise LocalInverterError(f"{point.name}: needs a string without NUL, got {value!r}")
        words = ModbusClientMixin.convert_to_registers(value, DATATYPE.STRING)
        if len(words) > point.size:
            raise LocalInverterError(
                f"{point.name}: {value!r} is longer than {point.size * 2} bytes"
            )
        return words + [0] * (point.size - len(words))
    if kind in _FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise LocalInverterError(f"{point.name}: needs a number, got {value!r}")
        return ModbusClientMixin.convert_to_registers(float(value), _FLOAT[kind][0])
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalInverterError(f"{point.name}: needs an integer, got {value!r}")
    if kind in (PointType.IPV6ADDR, PointType.EUI48):
        bits = 128 if kind is PointType.IPV6ADDR else 48
        if not 0 <= value < 1 << bits:
            raise LocalInverterError(f"{point.name}: {value} does not fit {bits} bits")
        parts = [(value >> 64) & (2**64 - 1), value & (2**64 - 1)]
        words = ModbusClientMixin.convert_to_registers(parts, DATATYPE.UINT64)
        return words[-point.size :]
    datatype, _, sentinel = _INTEGER[kind]
    low, high = _SF_RANGE if kind is PointType.SUNSSF else _RANGES[datatype]
    if not low <= value <= high or value == sentinel:
        raise LocalInverterError(
            f"{point.name}: {value} is outside the range of {kind} ({low}..{high}"
            + (f", {sentinel} means not implemented)" if sentinel is not None else ")")
        )
    return ModbusClientMixin.convert_to_registers(value, datatype)


def _unimplemented(point: PointDef) -> list[int]:
    kind = point.type
    if kind in (PointType.PAD, PointType.STRING, PointType.IPV6ADDR):
        return [0] * point.size
    if kind is PointType.EUI48:
        return [0] + [0xFFFF] * (point.size - 1)
    if kind in _FLOAT:
        return ModbusClientMixin.convert_to_registers(math.nan, _FLOAT[kind][0])
    datatype, _, sentinel = _INTEGER[kind]
    assert sentinel is not None
    return ModbusClientMixin.convert_to_registers(sentinel, datatype)


def decode_block(model: ModelDef, words: Sequence[int]) -> dict[str, PointValue]:
    """Decode every point of ``model`` that lies within ``words``.

    ``words`` starts at the model's ID register; points past its end are left out, so a
    read of the first registers of a long model decodes what it covers.

    Raises:
        SunSpecError: ``words`` does not start with the model's id, or holds bad data.
    """
    if not words or words[0] != model.model_id:
        raise SunSpecError(f"expected model {model.model_id}, found id {words[:1]!r}")
    return {
        name: decode_point(p, words[p.offset : p.offset + p.size])
        for name, p in model.points.items()
        if p.offset + p.size <= len(words)
    }


def _exponent(model: ModelDef, point: PointDef, values: Mapping[str, PointValue]) -> int | None:
    sf = point.sf
    if sf is None:
        return 0
    if isinstance(sf, int):
        return sf
    exponent = values.get(sf)
    if exponent is None:
        return None
    if not isinstance(exponent, int):
        raise SunSpecError(f"model {model.model_id}: scale factor {sf} is not an integer")
    return exponent


def scale(model: ModelDef, values: Mapping[str, PointValue], name: str) -> float | None:
    """The physical value of point ``name``: its raw value times 10 to its scale factor.

    Returns:
        ``None`` when the point or its scale factor is not implemented (or not in ``values``).

    Raises:
        LocalInverterError: the model has no such point, or it is not a number.
        SunSpecError: the scale factor is not an integer.
    """
    point = model.point(name)
    raw = values.get(name)
    if raw is None:
        return None
    if isinstance(raw, str):
        raise LocalInverterError(f"{name} is a string, not a number")
    exponent = _exponent(model, point, values)
    if exponent is None:
        return None
    return float(raw) * 10.0**exponent if exponent >= 0 else float(raw) / 10.0**-exponent


def to_raw(model: ModelDef, values: Mapping[str, PointValue], name: str, value: float) -> int:
    """The raw integer for the physical ``value`` of point ``name``, rounded to its resolution.

    ``values`` supplies the scale factor points (as read from the device).

    Raises:
        LocalInverterError: the value is not finite, the scale factor is not implemented, or the
            raw value does not fit the point's type.
    """
    point = model.point(name)
    if not math.isfinite(value):
        raise LocalInverterError(f"{name}: {value} is not a finite number")
    exponent = _exponent(model, point, values)
    if exponent is None:
        raise LocalInverterError(f"{name}: its scale factor {point.sf} is not implemented")
    raw = round(value / 10.0**exponent) if exponent >= 0 else round(value * 10.0**-exponent)
    encode_point(point, raw)  # range check
    return raw
