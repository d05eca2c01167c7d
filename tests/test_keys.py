"""Tests for station.ocpp.keys: exact key conversion between OCPP wire names and ocpp dataclasses.

The oracle is independent of the module: the JSON schemas and dataclasses shipped with the
``ocpp`` library, read directly here, and the library's own validators.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.messages import get_validator
from ocpp.v21 import call as call21
from ocpp.v21 import datatypes as dt21
from ocpp.v21 import enums as enums21

from station.ocpp.keys import (
    SUPPORTED_VERSIONS,
    collisions,
    schema_property_names,
    to_camel,
    to_snake,
)

PACKAGES = {"2.0.1": "v201", "2.1": "v21"}


def load_schemas(version: str) -> dict[str, dict[str, Any]]:
    folder = resources.files(f"ocpp.{PACKAGES[version]}").joinpath("schemas")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8-sig"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


SCHEMAS = {version: load_schemas(version) for version in SUPPORTED_VERSIONS}


def all_property_names(node: Any) -> set[str]:
    """Every key of every ``properties`` object, found by a blind walk of the whole document."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names |= set(value)
            names |= all_property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= all_property_names(item)
    return names


def names_of(version: str) -> set[str]:
    return set().union(*(all_property_names(s) for s in SCHEMAS[version].values()))


def colliding_camel_names(version: str) -> set[str]:
    return set().union(*collisions(version).values()) if collisions(version) else set()


def skeleton(schema: dict[str, Any], node: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """A payload holding every property of ``node``, nested objects expanded via ``$ref``."""
    payload: dict[str, Any] = {}
    for name, prop in node.get("properties", {}).items():
        ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
        if ref and depth < 8:
            target = schema["definitions"][ref.removeprefix("#/definitions/")]
            value: Any = skeleton(schema, target, depth + 1) if "properties" in target else "x"
        else:
            value = 0
        payload[name] = [value] if prop.get("type") == "array" else value
    return payload


def dataclass_for(version: str, file_stem: str, definition: str | None) -> Any:
    package = PACKAGES[version]
    if definition is not None:
        return getattr(importlib.import_module(f"ocpp.{package}.datatypes"), definition, None)
    if file_stem.endswith("Request"):
        return getattr(importlib.import_module(f"ocpp.{package}.call"), file_stem[:-7])
    if file_stem.endswith("Response"):
        return getattr(importlib.import_module(f"ocpp.{package}.call_result"), file_stem[:-8])
    return None  # a 2.1 SEND message has no dataclass


OBJECT_SCHEMAS = [
    pytest.param(version, stem, definition, id=f"{version}-{stem}-{definition or 'root'}")
    for version in SUPPORTED_VERSIONS
    for stem, schema in sorted(SCHEMAS[version].items())
    for definition in [None, *sorted(schema.get("definitions", {}))]
    if "properties" in (schema if definition is None else schema["definitions"][definition])
]


# --- tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_table_holds_every_schema_property_name(version: str) -> None:
    assert schema_property_names(version) == names_of(version)


def test_table_sizes_for_ocpp_2_1_0() -> None:
    assert len(schema_property_names("2.0.1")) == 244
    assert len(schema_property_names("2.1")) == 555


def test_collisions_found_in_the_schemas() -> None:
    assert collisions("2.0.1") == {}
    assert collisions("2.1") == {
        "soc": frozenset({"soc", "soC"}),
        "price_schedule_id": frozenset({"priceScheduleID", "priceScheduleId"}),
    }


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_name_round_trips_on_its_own(version: str) -> None:
    for name in sorted(names_of(version) - colliding_camel_names(version)):
        assert to_camel(to_snake({name: 1}, version), version) == {name: 1}, name


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_message_round_trips_with_every_property(version: str) -> None:
    # Every name in its real context, colliding ones included.
    for stem, schema in sorted(SCHEMAS[version].items()):
        payload = skeleton(schema, schema)
        assert to_camel(to_snake(payload, version), version) == payload, stem


@pytest.mark.parametrize(("version", "stem", "definition"), OBJECT_SCHEMAS)
def test_snake_names_are_the_dataclass_fields(
    version: str, stem: str, definition: str | None
) -> None:
    schema = SCHEMAS[version][stem]
    node = schema if definition is None else schema["definitions"][definition]
    cls = dataclass_for(version, stem, definition)
    kwargs = to_snake(dict.fromkeys(node["properties"]), version)
    if cls is None:  # 2.1 NotifyPeriodicEventStream (SEND): the library's regex names
        assert kwargs == camel_to_snake_case(dict.fromkeys(node["properties"]))
        return
    fields = {field.name for field in dataclasses.fields(cls)}
    # ocpp 2.1.0's v201 datatypes have no custom_data field; everything else is 1:1.
    extra = {"custom_data"} if version == "2.0.1" and definition is not None else set()
    assert set(kwargs) - extra == fields
    cls(**{k: v for k, v in kwargs.items() if k in fields})


# --- colliding keys ---------------------------------------------------------------------------


def test_colliding_keys_follow_their_parent_key() -> None:
    snake = {
        "limit_at_soc": {"soc": 80},
        "battery_data": [{"soc": 50}],
        "absolute_price_schedule": {"price_schedule_id": 1},
        "price_level_schedule": {"price_schedule_id": 2},
    }
    assert to_camel(snake, "2.1") == {
        "limitAtSoC": {"soc": 80},
        "batteryData": [{"soC": 50}],
        "absolutePriceSchedule": {"priceScheduleID": 1},
        "priceLevelSchedule": {"priceScheduleId": 2},
    }


def test_colliding_keys_follow_the_shape_without_a_parent() -> None:
    limit_at_soc = serialize_as_dict(dt21.LimitAtSoCType(limit=11000.0, soc=80))
    battery = remove_nones(
        serialize_as_dict(dt21.BatteryDataType(evse_id=1, serial_number="B1", soc=50.0, soh=99.0))
    )
    assert to_camel(limit_at_soc, "2.1") == {"limit": 11000.0, "soc": 80, "customData": None}
    assert to_camel(battery, "2.1") == {"evseId": 1, "serialNumber": "B1", "soC": 50.0, "soH": 99.0}


def test_colliding_key_without_context_is_deterministic() -> None:
    # Neither parent nor shape decides: the first candidate in code-point order.
    assert to_camel({"soc": 1}, "2.1") == {"soC": 1}
    assert to_camel({"price_schedule_id": 1}, "2.1") == {"priceScheduleID": 1}
    # 2.0.1 has no such property at all: the library's regex decides.
    assert to_camel({"soc": 1}, "2.0.1") == snake_to_camel_case({"soc": 1}) == {"SoC": 1}


# --- wire format ------------------------------------------------------------------------------


def charging_profile_request() -> call21.SetChargingProfile:
    period = dt21.ChargingSchedulePeriodType(
        start_period=0,
        limit=11000.0,
        limit_l2=10000.0,
        limit_l3=9000.0,
        discharge_limit=-7000.0,
        discharge_limit_l2=-6000.0,
        discharge_limit_l3=-5000.0,
        setpoint=-3000.0,
        setpoint_l2=-2000.0,
        setpoint_l3=-1000.0,
        setpoint_reactive=100.0,
        setpoint_reactive_l2=200.0,
        setpoint_reactive_l3=300.0,
        operation_mode=enums21.OperationModeEnumType.central_setpoint,
    )
    schedule = dt21.ChargingScheduleType(
        id=1,
        charging_rate_unit=enums21.ChargingRateUnitEnumType.w,
        charging_schedule_period=[period],
        limit_at_soc=dt21.LimitAtSoCType(limit=3000.0, soc=90),
        price_level_schedule=dt21.PriceLevelScheduleType(
            number_of_price_levels=2,
            price_level_schedule_entries=[
                dt21.PriceLevelScheduleEntryType(duration=3600, price_level=1)
            ],
            price_schedule_id=7,
            time_anchor="2025-01-01T00:00:00Z",
        ),
    )
    profile = dt21.ChargingProfileType(
        id=1,
        stack_level=0,
        charging_profile_purpose=enums21.ChargingProfilePurposeEnumType.tx_default_profile,
        charging_profile_kind=enums21.ChargingProfileKindEnumType.absolute,
        charging_schedule=[schedule],
    )
    return call21.SetChargingProfile(evse_id=1, charging_profile=profile)


def der_control_request() -> call21.SetDERControl:
    fixed_pf = dt21.FixedPFType(displacement=0.9, excitation=True, priority=1)
    return call21.SetDERControl(
        control_id="pf-1",
        control_type=enums21.DERControlEnumType.fixed_pf_absorb,
        is_default=False,
        fixed_pf_absorb=fixed_pf,
    )


def battery_swap_request() -> call21.BatterySwap:
    return call21.BatterySwap(
        battery_data=[dt21.BatteryDataType(evse_id=1, serial_number="B1", soc=50.0, soh=99.0)],
        event_type=enums21.BatterySwapEventEnumType.battery_in,
        id_token=dt21.IdTokenType(id_token="04A1B2C3", type="ISO14443"),
        request_id=1,
    )


WIRE_CASES = [
    pytest.param(charging_profile_request, id="SetChargingProfile"),
    pytest.param(der_control_request, id="SetDERControl"),
    pytest.param(battery_swap_request, id="BatterySwap"),
]


@pytest.mark.parametrize("build", WIRE_CASES)
def test_v21_dataclass_serialises_to_a_schema_valid_payload(build: Any) -> None:
    request = build()
    action = type(request).__name__
    fields = remove_nones(serialize_as_dict(request))
    ours = to_camel(fields, "2.1")
    get_validator(2, action, "2.1").validate(ours)  # raises on any error
    assert to_snake(ours, "2.1") == fields
    type(request)(**to_snake(ours, "2.1"))


@pytest.mark.parametrize("build", WIRE_CASES)
def test_the_library_conversion_fails_the_same_validation(build: Any) -> None:
    request = build()
    theirs = snake_to_camel_case(remove_nones(serialize_as_dict(request)))
    assert not get_validator(2, type(request).__name__, "2.1").is_valid(theirs)


def test_wire_keys_of_the_per_phase_fields() -> None:
    ours = to_camel(remove_nones(serialize_as_dict(charging_profile_request())), "2.1")
    schedule = ours["chargingProfile"]["chargingSchedule"][0]
    period = schedule["chargingSchedulePeriod"][0]
    assert {"limit_L2", "limit_L3", "setpoint_L2", "dischargeLimit_L3"} <= set(period)
    assert schedule["limitAtSoC"] == {"limit": 3000.0, "soc": 90}
    assert schedule["priceLevelSchedule"]["priceScheduleId"] == 7
    der = to_camel(remove_nones(serialize_as_dict(der_control_request())), "2.1")
    assert "fixedPFAbsorb" in der
    assert to_camel(remove_nones(serialize_as_dict(battery_swap_request())), "2.1")[
        "batteryData"
    ] == [{"evseId": 1, "serialNumber": "B1", "soC": 50.0, "soH": 99.0}]


def test_v201_language_fields_match_the_dataclass() -> None:
    # The library's regex gives "language1"; the v201 dataclass field is "language_1".
    assert camel_to_snake_case({"language1": "de"}) == {"language1": "de"}
    assert to_snake({"language1": "de", "language2": "en"}, "2.0.1") == {
        "language_1": "de",
        "language_2": "en",
    }


# --- general behaviour ------------------------------------------------------------------------


def test_values_are_untouched_and_unknown_keys_fall_back_to_the_library() -> None:
    value = {"nested_list": [[1, "camelCase"]]}
    data = {"customData": {"vendorId": "acme", "someVendorKey": value}, "idToken": "ab_Cd"}
    snake = to_snake(data, "2.1")
    assert snake == {
        "custom_data": {"vendor_id": "acme", "some_vendor_key": value},
        "id_token": "ab_Cd",
    }
    assert snake["custom_data"]["some_vendor_key"] is not value  # rebuilt: a key was converted
    assert to_camel({"foo_bar": [1, "x_y"]}, "2.1") == {"fooBar": [1, "x_y"]}
    assert to_snake([1, "a", None, 2.5], "2.1") == [1, "a", None, 2.5]
    assert to_camel("limit_l2", "2.1") == "limit_l2"


def test_deeply_nested_custom_data_does_not_recurse() -> None:
    # customData takes any extra property, so a schema-valid payload can nest without bound.
    depth = 5000
    inner: Any = {"vendorKey": 1}
    for _ in range(depth):
        inner = [inner]
    snake = to_snake({"customData": {"vendorId": "x", "deep": inner}}, "2.1")
    node = snake["custom_data"]["deep"]
    for _ in range(depth):
        node = node[0]
    assert node == {"vendor_key": 1}


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported OCPP version"):
        to_snake({}, "1.6")
    with pytest.raises(ValueError, match="unsupported OCPP version"):
        to_camel({}, "2.0")


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


def nested_dicts(names: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.sampled_from(names), children, max_size=4)
        ),
        max_leaves=25,
    )


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_round_trip_of_nested_dicts_of_schema_names(version: str, data: st.DataObject) -> None:
    names = sorted(names_of(version) - colliding_camel_names(version))
    payload = data.draw(nested_dicts(names))
    assert to_camel(to_snake(payload, version), version) == payload


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_round_trip_of_schema_shaped_payloads(version: str, data: st.DataObject) -> None:
    # Random sub-payloads of real messages: colliding names appear in their real context.
    stem = data.draw(st.sampled_from(sorted(SCHEMAS[version])))
    full = skeleton(SCHEMAS[version][stem], SCHEMAS[version][stem])

    def prune(node: Any) -> Any:
        if isinstance(node, list):
            return [prune(item) for item in node]
        if isinstance(node, dict):
            keep = data.draw(st.sets(st.sampled_from(sorted(node)))) if node else set()
            return {key: prune(value) for key, value in node.items() if key in keep}
        return data.draw(SCALARS)

    payload = prune(full)
    assert to_camel(to_snake(payload, version), version) == payload
