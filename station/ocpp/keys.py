"""Exact camelCase <-> snake_case conversion of OCPP 2.0.1 and 2.1 payload keys.

This module owns one thing: renaming the keys of JSON payloads between the wire names of the OCPP
JSON schemas (OCPP-J, Part 4 §4.1.5 "JSON Payload") and the field names of the ``ocpp`` library's
dataclasses (``ocpp.v201`` / ``ocpp.v21`` ``call``, ``call_result`` and ``datatypes``). It touches
keys only, never values, and does no I/O beyond reading the schemas shipped inside the ``ocpp``
package the first time a version is used.

Why it exists: ``ocpp`` 2.1.0 converts keys with regular expressions
(``ocpp.charge_point.camel_to_snake_case`` / ``snake_to_camel_case``). Those are wrong for 43
OCPP 2.1 property names (every per-phase ``_L2``/``_L3`` field such as ``limit_L2`` and
``setpoint_L3``, ``fixedPF``/``fixedPFAbsorb``/``fixedPFInject``, ``soC``/``soH``,
``priceScheduleID``, ``taxRuleID``, ``receiptUrl``, ``prioritizedEMAIDs``, the
``evMaximumLevel1DCInjection`` family ...), so a payload built from the library's own v21
dataclasses fails the library's own schema validation. In the other direction the library's regex
disagrees with its dataclasses for ``language1``/``language2`` (2.0.1, fields ``language_1`` /
``language_2``) and ``iso15118SchemaVersion``, ``iso15118CertificateHashData``,
``prioritizedEMAIDs`` (2.1).

How: per version, every object schema (each message payload and each entry of ``definitions``) is
paired with the dataclass generated from it (``XRequest.json`` -> ``call.X``, ``XResponse.json`` ->
``call_result.X``, ``definitions/T`` -> ``datatypes.T``) and each property is matched to the one
field whose name equals it once underscores and case are ignored. A property without a dataclass
field (2.0.1 ``datatypes`` have no ``custom_data``; 2.1 ``NotifyPeriodicEventStream`` is a SEND
message without a dataclass) gets the library's ``camel_to_snake_case`` name. Keys that appear in
no schema (vendor keys inside ``customData``) fall back to the library's functions both ways.

Collisions found (``ocpp`` 2.1.0; the 2.0.1 tables have none): two pairs of OCPP 2.1 wire names
share one dataclass field name, so snake -> camel is not a function of the key alone:

- ``soc``: ``LimitAtSoCType.soc`` (held under ``limitAtSoC``) and ``BatteryDataType.soC`` (held
  under ``batteryData``);
- ``price_schedule_id``: ``AbsolutePriceScheduleType.priceScheduleID`` (under
  ``absolutePriceSchedule``) and ``PriceLevelScheduleType.priceScheduleId`` (under
  ``priceLevelSchedule``).

camel -> snake has no collision. A colliding key is resolved, in this order, by (1) the key of
the parent object it sits under (the table records, per colliding key, which parent property
holds which schema; unique for both collisions above), then (2) the shape of the object it sits in
(the one candidate schema whose property set contains all of the object's keys), and last (3) the
alphabetically first candidate, so the result is always deterministic. The same machinery runs in
the camel -> snake direction, so a future library version with a collision there is handled too.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from ocpp.charge_point import camel_to_snake_case as _lib_camel_to_snake_case
from ocpp.charge_point import snake_to_camel_case as _lib_snake_to_camel_case

__all__ = [
    "SUPPORTED_VERSIONS",
    "collisions",
    "schema_property_names",
    "to_camel",
    "to_snake",
]

SUPPORTED_VERSIONS: tuple[str, ...] = ("2.0.1", "2.1")

_PACKAGES: Mapping[str, str] = {"2.0.1": "v201", "2.1": "v21"}


def to_snake(data: Any, version: str) -> Any:
    """Rename every dict key in ``data`` from the OCPP wire name to the dataclass field name.

    Args:
        data: a decoded JSON payload (dicts, lists and scalars, nested to any depth).
        version: ``"2.0.1"`` or ``"2.1"``.

    Returns:
        A copy of ``data`` with converted keys: dicts and lists are rebuilt, every other value
        is the same object, untouched.
        ``ocpp.v21.call.X(**to_snake(payload, "2.1"))`` builds the library's dataclass.

    Raises:
        ValueError: ``version`` is not one of ``SUPPORTED_VERSIONS``.
    """
    return _convert(data, _tables(_package(version)).to_snake)


def to_camel(data: Any, version: str) -> Any:
    """Rename every dict key in ``data`` from the dataclass field name to the OCPP wire name.

    Args:
        data: e.g. ``remove_nones(serialize_as_dict(obj))`` of an ``ocpp`` dataclass.
        version: ``"2.0.1"`` or ``"2.1"``.

    Returns:
        A copy of ``data`` whose keys are the exact property names of the OCPP JSON schemas
        (Part 4 §4.1.5); dicts and lists are rebuilt, every other value is the same object.

    Raises:
        ValueError: ``version`` is not one of ``SUPPORTED_VERSIONS``.
    """
    return _convert(data, _tables(_package(version)).to_camel)


def schema_property_names(version: str) -> frozenset[str]:
    """Every property name (camelCase) defined anywhere in the version's JSON schemas.

    Raises:
        ValueError: ``version`` is not one of ``SUPPORTED_VERSIONS``.
    """
    return _tables(_package(version)).property_names


def collisions(version: str) -> Mapping[str, frozenset[str]]:
    """The snake_case names that more than one wire name maps to, with those wire names.

    For ``"2.1"`` with ``ocpp`` 2.1.0: ``{"soc": {"soc", "soC"}, "price_schedule_id":
    {"priceScheduleID", "priceScheduleId"}}``; for ``"2.0.1"``: empty.

    Raises:
        ValueError: ``version`` is not one of ``SUPPORTED_VERSIONS``.
    """
    return _tables(_package(version)).collisions


# --- conversion ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Direction:
    """The key table for one direction (camel -> snake or snake -> camel).

    ``default`` holds every known source key. ``by_parent`` and ``shapes`` hold only the keys
    that map to more than one target: ``by_parent[(parent_key, key)]`` is the target when the
    parent key decides it; ``shapes[key]`` lists ``(keys of the object schema, target)``.
    """

    default: Mapping[str, str]
    by_parent: Mapping[tuple[str | None, str], str]
    shapes: Mapping[str, tuple[tuple[frozenset[str], str], ...]]
    fallback: Any  # the library's whole-dict converter, used for unknown keys

    def key(self, key: str, parent: str | None, siblings: Mapping[str, Any]) -> str:
        shapes = self.shapes.get(key)
        if shapes is None:
            known = self.default.get(key)
            return known if known is not None else _fallback_key(self.fallback, key)
        by_parent = self.by_parent.get((parent, key))
        if by_parent is not None:
            return by_parent
        fitting = {target for keys, target in shapes if keys.issuperset(siblings)}
        if len(fitting) == 1:
            return fitting.pop()
        return self.default[key]


def _convert(data: Any, direction: _Direction) -> Any:
    """Rebuild ``data`` with converted keys, without recursion.

    Iterative on purpose: a schema-valid payload may nest arbitrarily deep inside
    ``customData`` (its schema allows any extra property), and a recursive walk would let the
    peer raise RecursionError in our code.
    """
    if not isinstance(data, dict | list):
        return data
    root: list[Any] = [None]
    # (source container, key of its parent object, target container, slot in the target)
    pending: list[tuple[Any, str | None, Any, Any]] = [(data, None, root, 0)]
    while pending:
        source, parent, target, slot = pending.pop()
        if isinstance(source, dict):
            converted: dict[Any, Any] = {}
            target[slot] = converted
            for key, value in source.items():
                if isinstance(key, str):
                    new_key, child_parent = direction.key(key, parent, source), key
                else:
                    new_key, child_parent = key, None
                converted[new_key] = value
                if isinstance(value, dict | list):
                    pending.append((value, child_parent, converted, new_key))
        else:
            items = list(source)
            target[slot] = items
            for index, item in enumerate(items):
                if isinstance(item, dict | list):
                    # A list's items sit under the list's own key (Part 4 §4.1.5: 1..* is a list).
                    pending.append((item, parent, items, index))
    return root[0]


def _fallback_key(converter: Any, key: str) -> str:
    # Unknown keys can come from the peer (vendor keys in customData): cache only short ones.
    return _cached_fallback_key(converter, key) if len(key) <= 64 else _lib_key(converter, key)


@functools.lru_cache(maxsize=1024)
def _cached_fallback_key(converter: Any, key: str) -> str:
    return _lib_key(converter, key)


def _lib_key(converter: Any, key: str) -> str:
    return cast(str, next(iter(converter({key: None}))))


# --- table build ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tables:
    to_snake: _Direction
    to_camel: _Direction
    property_names: frozenset[str]
    collisions: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class _ObjectSchema:
    """One object schema: a message payload or one entry of its ``definitions``."""

    parents: frozenset[str | None]  # camel keys that hold it; None = the payload root
    snake_of: Mapping[str, str]  # camel property name -> snake name


def _package(version: str) -> str:
    try:
        return _PACKAGES[version]
    except KeyError:
        raise ValueError(
            f"unsupported OCPP version {version!r}; expected one of {SUPPORTED_VERSIONS}"
        ) from None


def _normal(name: str) -> str:
    return name.replace("_", "").lower()


def _fields_by_normal(module: Any, class_name: str) -> Mapping[str, str]:
    cls = getattr(module, class_name, None)
    if cls is None or not dataclasses.is_dataclass(cls):
        return {}
    fields: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        normal = _normal(field.name)
        if normal in fields:  # never seen in ocpp 2.1.0; refuse to guess
            raise RuntimeError(f"{class_name}: fields {fields[normal]!r}, {field.name!r} clash")
        fields[normal] = field.name
    return fields


def _snake_name(camel: str, fields: Mapping[str, str]) -> str:
    """The dataclass field for ``camel``, or the library's regex result when there is none."""
    field = fields.get(_normal(camel))
    return field if field is not None else _fallback_key(_lib_camel_to_snake_case, camel)


def _ref_target(prop: Mapping[str, Any]) -> str | None:
    ref = prop.get("$ref")
    if ref is None and isinstance(prop.get("items"), dict):
        ref = prop["items"].get("$ref")
    prefix = "#/definitions/"
    return ref[len(prefix) :] if isinstance(ref, str) and ref.startswith(prefix) else None


def _object_schemas(package: str) -> Iterator[_ObjectSchema]:
    modules = {
        kind: importlib.import_module(f"ocpp.{package}.{kind}")
        for kind in ("call", "call_result", "datatypes")
    }
    folder = resources.files(f"ocpp.{package}").joinpath("schemas")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        schema = json.loads(entry.read_text(encoding="utf-8-sig"))
        stem = entry.name.removesuffix(".json")
        if stem.endswith("Request"):
            root_fields = _fields_by_normal(modules["call"], stem.removesuffix("Request"))
        elif stem.endswith("Response"):
            root_fields = _fields_by_normal(modules["call_result"], stem.removesuffix("Response"))
        else:  # a 2.1 SEND message (Part 4 §4.2.4): no dataclass
            root_fields = {}
        definitions: dict[str, Any] = schema.get("definitions", {})
        objects: list[tuple[str | None, Mapping[str, Any], Mapping[str, str]]] = [
            (None, schema, root_fields)
        ]
        objects += [
            (name, body, _fields_by_normal(modules["datatypes"], name))
            for name, body in definitions.items()
        ]
        held_by: dict[str, set[str | None]] = {}
        for _, body, _ in objects:
            for camel, prop in body.get("properties", {}).items():
                target = _ref_target(prop)
                if target is not None:
                    held_by.setdefault(target, set()).add(camel)
        for name, body, fields in objects:
            properties: Mapping[str, Any] = body.get("properties", {})
            if not properties:
                continue  # an enum definition
            yield _ObjectSchema(
                parents=frozenset({None}) if name is None else frozenset(held_by.get(name, ())),
                snake_of={camel: _snake_name(camel, fields) for camel in properties},
            )


def _direction(
    occurrences: list[tuple[frozenset[str | None], str, str, frozenset[str]]],
    fallback: Any,
) -> tuple[_Direction, dict[str, frozenset[str]]]:
    """Build one direction from ``(parent keys, source key, target key, sibling keys)``."""
    targets: dict[str, set[str]] = {}
    for _, source, target, _ in occurrences:
        targets.setdefault(source, set()).add(target)
    ambiguous = {source: frozenset(t) for source, t in targets.items() if len(t) > 1}
    by_parent_sets: dict[tuple[str | None, str], set[str]] = {}
    shapes: dict[str, set[tuple[frozenset[str], str]]] = {}
    for parents, source, target, siblings in occurrences:
        if source not in ambiguous:
            continue
        shapes.setdefault(source, set()).add((siblings, target))
        for parent in parents:
            by_parent_sets.setdefault((parent, source), set()).add(target)
    return (
        _Direction(
            default={source: min(t) for source, t in targets.items()},
            by_parent={key: t.pop() for key, t in by_parent_sets.items() if len(t) == 1},
            shapes={
                source: tuple(sorted(s, key=lambda x: (x[1], sorted(x[0]))))
                for source, s in shapes.items()
            },
            fallback=fallback,
        ),
        ambiguous,
    )


@functools.cache
def _tables(package: str) -> _Tables:
    objects = list(_object_schemas(package))
    forward = [
        (obj.parents, camel, snake, frozenset(obj.snake_of))
        for obj in objects
        for camel, snake in obj.snake_of.items()
    ]
    to_snake_direction, _ = _direction(forward, _lib_camel_to_snake_case)
    # Parents are keys too: in the snake -> camel direction they are looked up by snake name.
    parent_snake = to_snake_direction.default
    backward = [
        (
            frozenset(None if p is None else parent_snake[p] for p in obj.parents),
            snake,
            camel,
            frozenset(obj.snake_of.values()),
        )
        for obj in objects
        for camel, snake in obj.snake_of.items()
    ]
    to_camel_direction, ambiguous = _direction(backward, _lib_snake_to_camel_case)
    return _Tables(
        to_snake=to_snake_direction,
        to_camel=to_camel_direction,
        property_names=frozenset(to_snake_direction.default),
        collisions=ambiguous,
    )
