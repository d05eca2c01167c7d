"""A stable JSON encoding of the smart-charging domain types, for the store (issue 4: profiles
persist in SQLite and survive restart).

Owns one mapping, :class:`~station.smartcharging.ChargingProfile` <-> JSON-compatible ``dict``,
and nothing else: no I/O, no ``ocpp`` (this is the station's own encoding, not the wire format,
so a profile is stored exactly as the core holds it, whatever version it came in).

The encoding is the dataclass fields by their domain names (``start_period_s``, ``rate_unit``...):

* datetimes: ISO 8601 in UTC (``2026-01-02T03:04:05.123456+00:00``); the instant is kept, the
  original offset is not (the core compares instants only);
* enums: by value (``"TxProfile"``); tuples: lists; nested dataclasses: objects;
* ``None`` fields are left out; a missing field decodes to its default, so adding a field with a
  default later keeps old rows readable. Unknown fields are an error (a row from newer firmware).

Every decoding error is a :class:`~station.smartcharging.SmartChargingValueError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any

from station.smartcharging.model import ChargingProfile, SmartChargingValueError

__all__ = ["profile_from_json", "profile_to_json"]


def profile_to_json(profile: ChargingProfile) -> dict[str, Any]:
    """The profile as a JSON-compatible ``dict`` (see the module docstring)."""
    encoded = _encode(profile)
    assert isinstance(encoded, dict)
    return encoded


def profile_from_json(data: object) -> ChargingProfile:
    """The profile :func:`profile_to_json` encoded.

    Raises:
        SmartChargingValueError: ``data`` is not such an encoding.
    """
    decoded = _decode(ChargingProfile, data, "profile")
    assert isinstance(decoded, ChargingProfile)
    return decoded


def _encode(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _encode(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise SmartChargingValueError(f"cannot encode {type(value).__name__} {value!r}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, data: object, where: str) -> object:
    """``data`` as a value of type ``tp`` (one of the annotations the domain types use)."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _decode(inner, data, where)
    if origin is tuple:
        item_type, _ = typing.get_args(tp)  # tuple[X, ...]
        if not isinstance(data, list):
            raise SmartChargingValueError(f"{where}: expected a list, got {data!r}")
        return tuple(_decode(item_type, v, f"{where}[{i}]") for i, v in enumerate(data))
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise SmartChargingValueError(f"{where}: not a {tp.__name__}: {data!r}") from None
    if tp is datetime:
        if not isinstance(data, str):
            raise SmartChargingValueError(f"{where}: expected a datetime string, got {data!r}")
        try:
            when = datetime.fromisoformat(data)
        except ValueError:
            raise SmartChargingValueError(f"{where}: not an ISO datetime: {data!r}") from None
        if when.tzinfo is None:
            raise SmartChargingValueError(f"{where}: datetime without time zone: {data!r}")
        return when.astimezone(UTC)
    if tp is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if tp in (int, str, bool) and type(data) is tp:
        return data
    raise SmartChargingValueError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {data!r}")


def _decode_dataclass(cls: Any, data: object, where: str) -> object:
    if not isinstance(data, dict):
        raise SmartChargingValueError(f"{where}: expected an object, got {data!r}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SmartChargingValueError(f"{where}: unknown fields {unknown}")
    kwargs = {name: _decode(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise SmartChargingValueError(f"{where}: {exc}") from None
