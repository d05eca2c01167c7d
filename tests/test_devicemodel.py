"""Tests of the device model core (station/ocpp/devicemodel.py): B05-B08 without I/O."""

from __future__ import annotations

import csv
import json
import logging
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.messages import get_validator

from station.ocpp.devicemodel import (
    ENVELOPE_MARGIN_BYTES,
    CommDefaults,
    DataType,
    DeviceModel,
    EvseInfo,
    Mutability,
    StationIdentity,
    VariableDef,
    VariableKey,
    split_report,
    standard_definitions,
)

CSV_201 = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "ocpp"
    / "2.0.1"
    / "dm_components_vars.csv"
)
CSV_21 = CSV_201.parents[1] / "2.1" / "dm_components_vars.csv"

# --- helpers ----------------------------------------------------------------------------------


def camel(value: Any) -> Any:
    """snake_case keys → camelCase, recursively (the keys here are all regular)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            head, *rest = key.split("_")
            out[head + "".join(part.title() for part in rest)] = camel(item)
        return out
    if isinstance(value, list):
        return [camel(item) for item in value]
    return value


def C(  # noqa: N802
    name: str, instance: str | None = None, evse: int | None = None, conn: int | None = None
) -> dict[str, Any]:
    component: dict[str, Any] = {"name": name}
    if instance is not None:
        component["instance"] = instance
    if evse is not None:
        component["evse"] = {"id": evse}
        if conn is not None:
            component["evse"]["connector_id"] = conn
    return component


def V(name: str, instance: str | None = None) -> dict[str, Any]:  # noqa: N802
    return {"name": name} if instance is None else {"name": name, "instance": instance}


def validate_get_results(results: list[dict[str, Any]]) -> None:
    get_validator(3, "GetVariables", "2.0.1").validate({"getVariableResult": camel(results)})


def validate_set_results(results: list[dict[str, Any]]) -> None:
    get_validator(3, "SetVariables", "2.0.1").validate({"setVariableResult": camel(results)})


def validate_report(items: list[dict[str, Any]]) -> None:
    validator = get_validator(2, "NotifyReport", "2.0.1")
    validator.validate(
        {
            "requestId": 1,
            "generatedAt": "2025-01-01T00:00:00.000Z",
            "seqNo": 0,
            "tbc": False,
            "reportData": camel(items),
        }
    )


RW = Mutability.READ_WRITE
RO = Mutability.READ_ONLY
WO = Mutability.WRITE_ONLY


def table_definitions() -> list[VariableDef]:
    """A small model with one variable per data type and mutability."""
    t = "TestCtrlr"
    return [
        VariableDef(
            t,
            "Int",
            DataType.INTEGER,
            mutability=RW,
            default="5",
            min_limit=0,
            max_limit=100,
            unit="s",
        ),
        VariableDef(
            t, "Dec", DataType.DECIMAL, mutability=RW, default="1.5", min_limit=-10, max_limit=10.5
        ),
        VariableDef(t, "Bool", DataType.BOOLEAN, mutability=RW, default="true"),
        VariableDef(t, "Time", DataType.DATETIME, mutability=RW),
        VariableDef(t, "Str", DataType.STRING, mutability=RW, default="abc", max_length=8),
        VariableDef(
            t, "Opt", DataType.OPTION_LIST, mutability=RW, default="A", values_list=("A", "B", "C")
        ),
        VariableDef(
            t,
            "Members",
            DataType.MEMBER_LIST,
            mutability=RW,
            default="A,B",
            values_list=("A", "B", "C"),
        ),
        VariableDef(
            t,
            "Seq",
            DataType.SEQUENCE_LIST,
            mutability=RW,
            default="A",
            values_list=("A", "B", "C"),
        ),
        VariableDef(t, "Secret", DataType.STRING, mutability=WO, min_limit=4, max_limit=6),
        VariableDef(t, "Fixed", DataType.STRING, default="x", constant=True),
        VariableDef(t, "State", DataType.STRING, default="idle", persistent=False),
        VariableDef(t, "Volatile", DataType.INTEGER, mutability=RW, default="1", persistent=False),
        VariableDef(
            t, "Level", DataType.INTEGER, mutability=RW, default="1", variable_instance="Low"
        ),
        VariableDef(
            t, "Level", DataType.INTEGER, mutability=RW, default="9", variable_instance="High"
        ),
        VariableDef(t, "Boot", DataType.INTEGER, mutability=RW, default="1", reboot_required=True),
        VariableDef(
            t,
            "Range",
            DataType.INTEGER,
            mutability=RW,
            default="5",
            attributes=("Actual", "MinSet", "MaxSet"),
            attribute_defaults=(("MinSet", "0"), ("MaxSet", "10")),
        ),
        VariableDef(
            "EVSE",
            "Power",
            DataType.DECIMAL,
            evse_id=1,
            default="0",
            unit="W",
            max_limit=50000,
            persistent=False,
            attributes=("Actual", "MaxSet"),
            attribute_defaults=(("MaxSet", "50000"),),
        ),
        VariableDef(
            "Connector",
            "Available",
            DataType.BOOLEAN,
            evse_id=1,
            connector_id=1,
            default="true",
            constant=True,
        ),
        VariableDef(
            "ChargingStation", "Problem", DataType.BOOLEAN, default="false", persistent=False
        ),
        VariableDef(
            "ChargingStation",
            "AvailabilityState",
            DataType.OPTION_LIST,
            default="Available",
            persistent=False,
            values_list=("Available", "Unavailable"),
        ),
        VariableDef("AuthCtrlr", "Enabled", DataType.BOOLEAN, mutability=RW, default="true"),
    ]


def table_model() -> DeviceModel:
    return DeviceModel(table_definitions())


IDENTITY = StationIdentity(
    vendor="Acme",
    model="V2G-50",
    serial_number="SN-1",
    firmware_version="1.2.3",
    security_profile=1,
    identity="CS-0001",
)
EVSES = (
    EvseInfo(evse_id=1, connector_ids=(1,), connector_type="cG105", max_power_w=50000.0),
    EvseInfo(evse_id=2, connector_ids=(1, 2), connector_type="cCCS2", max_power_w=62500.5),
)


def standard_model() -> DeviceModel:
    return DeviceModel(standard_definitions(evses=EVSES, identity=IDENTITY, comm=CommDefaults()))


# --- GetVariables (B06) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "variable", "attribute", "status", "value"),
    [
        (C("TestCtrlr"), V("Int"), None, "Accepted", "5"),
        (C("TestCtrlr"), V("Int"), "Actual", "Accepted", "5"),
        (C("testctrlr"), V("INT"), None, "Accepted", "5"),  # names are case-insensitive
        (C("TestCtrlr"), V("Time"), None, "Accepted", ""),  # supported, no value yet
        (C("TestCtrlr"), V("Level", "High"), None, "Accepted", "9"),
        (C("TestCtrlr"), V("Level", "low"), None, "Accepted", "1"),
        (C("TestCtrlr"), V("Level"), None, "UnknownVariable", None),
        (C("TestCtrlr"), V("Range"), "MaxSet", "Accepted", "10"),
        (C("TestCtrlr"), V("Range"), "Target", "NotSupportedAttributeType", None),
        (C("TestCtrlr"), V("Int"), "MaxSet", "NotSupportedAttributeType", None),
        (C("TestCtrlr"), V("Secret"), None, "Rejected", None),  # WriteOnly (B06.FR.09)
        (C("TestCtrlr"), V("Nope"), None, "UnknownVariable", None),
        (C("NoSuchCtrlr"), V("Int"), None, "UnknownComponent", None),
        (C("TestCtrlr", instance="x"), V("Int"), None, "UnknownComponent", None),
        (C("TestCtrlr", evse=1), V("Int"), None, "UnknownComponent", None),
        (C("EVSE", evse=1), V("Power"), "MaxSet", "Accepted", "50000"),
        (C("EVSE", evse=2), V("Power"), None, "UnknownComponent", None),
        (C("EVSE"), V("Power"), None, "UnknownComponent", None),
        (C("Connector", evse=1, conn=1), V("Available"), None, "Accepted", "true"),
        (C("Connector", evse=1), V("Available"), None, "UnknownComponent", None),
    ],
)
def test_get_status(
    component: dict[str, Any],
    variable: dict[str, Any],
    attribute: str | None,
    status: str,
    value: str | None,
) -> None:
    result = table_model().get(component, variable, attribute)
    assert result["attribute_status"] == status
    assert result.get("attribute_value") == value
    assert result["component"] == component  # echoed as asked (B06.FR.02)
    assert result["variable"] == variable
    assert result["attribute_type"] == (attribute or "Actual")
    if status == "Rejected":
        assert result["attribute_status_info"] == {"reason_code": "WriteOnly"}
    validate_get_results([result])


# --- SetVariables (B05) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "status", "reason"),
    [
        ("Int", "42", "Accepted", None),
        ("Int", "0", "Accepted", None),
        ("Int", "100", "Accepted", None),
        ("Int", "+7", "Accepted", None),
        ("Int", "101", "Rejected", "ValueTooHigh"),
        ("Int", "-1", "Rejected", "ValueTooLow"),
        ("Int", "4.0", "Rejected", "InvalidValue"),
        ("Int", "1_000", "Rejected", "InvalidValue"),
        ("Int", " 5", "Rejected", "InvalidValue"),
        ("Int", "", "Rejected", "InvalidValue"),
        ("Int", "٣", "Rejected", "InvalidValue"),  # a non-ASCII digit
        ("Dec", "2.25", "Accepted", None),
        ("Dec", "-10", "Accepted", None),
        ("Dec", ".5", "Accepted", None),
        ("Dec", "1e1", "Accepted", None),
        ("Dec", "10.6", "Rejected", "ValueTooHigh"),
        ("Dec", "-10.01", "Rejected", "ValueTooLow"),
        ("Dec", "nan", "Rejected", "InvalidValue"),
        ("Dec", "inf", "Rejected", "InvalidValue"),
        ("Dec", "1e999", "Rejected", "InvalidValue"),
        ("Dec", "1,5", "Rejected", "InvalidValue"),
        ("Bool", "false", "Accepted", None),
        ("Bool", "True", "Rejected", "InvalidValue"),
        ("Bool", "1", "Rejected", "InvalidValue"),
        ("Time", "2025-03-01T12:00:00Z", "Accepted", None),
        ("Time", "2025-03-01T12:00:00.123+01:00", "Accepted", None),
        ("Time", "2025-03-01T12:00:00.123456789Z", "Accepted", None),
        ("Time", "2025-03-01", "Rejected", "InvalidValue"),
        ("Time", "2025-03-01T12:00:00", "Rejected", "InvalidValue"),  # no offset
        ("Time", "2025-13-01T12:00:00Z", "Rejected", "InvalidValue"),
        ("Str", "", "Accepted", None),
        ("Str", "12345678", "Accepted", None),
        ("Str", "123456789", "Rejected", "ValueOutOfRange"),
        ("Opt", "B", "Accepted", None),
        ("Opt", "b", "Rejected", "InvalidValue"),  # values are case-sensitive
        ("Opt", "D", "Rejected", "InvalidValue"),
        ("Opt", "A,B", "Rejected", "InvalidValue"),
        ("Opt", "", "Rejected", "InvalidValue"),
        ("Members", "C,A", "Accepted", None),
        ("Members", "", "Accepted", None),
        ("Members", "A,A", "Rejected", "InvalidValue"),
        ("Members", "A,D", "Rejected", "InvalidValue"),
        ("Members", "A,", "Rejected", "InvalidValue"),
        ("Seq", "C,A,B", "Accepted", None),
        ("Seq", "B", "Accepted", None),
        ("Seq", "", "Rejected", "InvalidValue"),
        ("Seq", "A,B,A", "Rejected", "InvalidValue"),
        ("Secret", "abcd", "Accepted", None),  # WriteOnly may be written
        ("Secret", "abc", "Rejected", "ValueOutOfRange"),
        ("Secret", "abcdefg", "Rejected", "ValueOutOfRange"),
        ("Fixed", "y", "Rejected", "ReadOnly"),
        ("State", "busy", "Rejected", "ReadOnly"),
        ("Boot", "2", "RebootRequired", None),
        ("Boot", "1", "Accepted", None),  # unchanged: nothing waits for a reboot
        ("Nope", "1", "UnknownVariable", None),
    ],
)
def test_set_status(variable: str, value: str, status: str, reason: str | None) -> None:
    model = table_model()
    before = model.get(C("TestCtrlr"), V(variable))
    result = model.set(C("TestCtrlr"), V(variable), value)
    assert result["attribute_status"] == status
    assert result["attribute_type"] == "Actual"  # absent in the request: Actual
    assert result["component"] == C("TestCtrlr")
    assert result["variable"] == V(variable)
    if reason is None:
        assert "attribute_status_info" not in result
    else:
        assert result["attribute_status_info"]["reason_code"] == reason
    after = model.get(C("TestCtrlr"), V(variable))
    if status == "Accepted" and variable != "Secret":
        assert after["attribute_value"] == value
    elif status != "Accepted":
        assert after == before  # a rejected or staged set changes nothing visible
    validate_set_results([result])


@pytest.mark.parametrize(
    ("component", "variable", "attribute", "status"),
    [
        (C("NoSuchCtrlr"), V("Int"), None, "UnknownComponent"),
        (C("TestCtrlr", evse=1), V("Int"), None, "UnknownComponent"),
        (C("TestCtrlr"), V("Int"), "Target", "NotSupportedAttributeType"),
        (C("TestCtrlr"), V("Range"), "MaxSet", "Accepted"),
        (C("TestCtrlr"), V("Range"), "Target", "NotSupportedAttributeType"),
        (C("TestCtrlr"), V("Level", "HIGH"), None, "Accepted"),
        (C("EVSE", evse=1), V("Power"), "MaxSet", "Rejected"),
        (C("Connector", evse=1, conn=2), V("Available"), None, "UnknownComponent"),
    ],
)
def test_set_addressing(
    component: dict[str, Any], variable: dict[str, Any], attribute: str | None, status: str
) -> None:
    result = table_model().set(component, variable, "7", attribute)
    assert result["attribute_status"] == status
    assert result["attribute_type"] == (attribute or "Actual")
    validate_set_results([result])


def test_set_other_attribute_keeps_actual() -> None:
    model = table_model()
    assert model.set(C("TestCtrlr"), V("Range"), "8", "MaxSet")["attribute_status"] == "Accepted"
    assert model.value("TestCtrlr", "Range", attribute="MaxSet") == "8"
    assert model.value("TestCtrlr", "Range") == "5"
    assert model.pending_changes() == {VariableKey("TestCtrlr", "Range", attribute="MaxSet"): "8"}


def test_reboot_required_is_staged_and_saved() -> None:
    model = table_model()
    seen: list[tuple[VariableKey, str]] = []
    model.subscribe(lambda key, value: seen.append((key, value)))
    key = VariableKey("TestCtrlr", "Boot")
    assert model.set(C("TestCtrlr"), V("Boot"), "2")["attribute_status"] == "RebootRequired"
    # Asked again with the same value: still waiting for the reboot.
    assert model.set(C("TestCtrlr"), V("Boot"), "2")["attribute_status"] == "RebootRequired"
    assert model.value("TestCtrlr", "Boot") == "1"  # the running value
    assert model.staged_changes() == {key: "2"}
    assert seen == []
    stored = model.pending_changes()
    assert stored == {key: "2"}
    rebooted = DeviceModel(table_definitions(), stored)
    assert rebooted.value("TestCtrlr", "Boot") == "2"
    assert rebooted.staged_changes() == {}


def test_reboot_required_back_to_running_value_unstages() -> None:
    model = table_model()
    model.set(C("TestCtrlr"), V("Boot"), "2")
    assert model.set(C("TestCtrlr"), V("Boot"), "1")["attribute_status"] == "Accepted"
    assert model.staged_changes() == {}
    assert model.pending_changes() == {VariableKey("TestCtrlr", "Boot"): "1"}


def test_set_many_answers_every_item_in_order() -> None:
    model = table_model()
    items = [
        {"component": C("TestCtrlr"), "variable": V("Int"), "attribute_value": "7"},
        {"component": C("Nope"), "variable": V("Int"), "attribute_value": "7"},
        {"component": C("TestCtrlr"), "variable": V("Bool"), "attribute_value": "yes"},
        {
            "component": C("TestCtrlr"),
            "variable": V("Range"),
            "attribute_value": "9",
            "attribute_type": "MaxSet",
        },
    ]
    results = model.set_many(items)
    assert [r["attribute_status"] for r in results] == [
        "Accepted",
        "UnknownComponent",
        "Rejected",
        "Accepted",
    ]
    assert [r["variable"]["name"] for r in results] == ["Int", "Int", "Bool", "Range"]
    assert results[3]["attribute_type"] == "MaxSet"
    validate_set_results(results)


def test_set_many_rejects_duplicates_without_applying_them() -> None:
    model = table_model()
    items = [
        {"component": C("TestCtrlr"), "variable": V("Int"), "attribute_value": "7"},
        {"component": C("testctrlr"), "variable": V("int"), "attribute_value": "8"},
        {
            "component": C("TestCtrlr"),
            "variable": V("Int"),
            "attribute_value": "9",
            "attribute_type": "Actual",
        },
        {"component": C("TestCtrlr"), "variable": V("Bool"), "attribute_value": "false"},
    ]
    results = model.set_many(items)
    assert [r["attribute_status"] for r in results] == [
        "Rejected",
        "Rejected",
        "Rejected",
        "Accepted",
    ]
    assert results[0]["attribute_status_info"]["reason_code"] == "InvalidValue"
    assert model.value("TestCtrlr", "Int") == "5"
    assert model.pending_changes() == {VariableKey("TestCtrlr", "Bool"): "false"}
    validate_set_results(results)


# --- persistence and subscriptions ------------------------------------------------------------


def test_pending_changes_are_exactly_the_accepted_persistent_changes() -> None:
    model = table_model()
    model.set(C("TestCtrlr"), V("Int"), "42")  # accepted, persistent
    model.set(C("TestCtrlr"), V("Int"), "43")  # accepted again: the last value counts
    model.set(C("TestCtrlr"), V("Dec"), "99")  # rejected
    model.set(C("TestCtrlr"), V("Volatile"), "3")  # accepted, not persistent
    model.set(C("TestCtrlr"), V("Bool"), "true")  # the same value: no change
    model.set(C("TestCtrlr"), V("Secret"), "hunter")  # accepted, WriteOnly but persistent
    model.set(C("TestCtrlr"), V("Level", "Low"), "2")
    model.set_internal("TestCtrlr", "State", "busy")  # internal, not persistent
    model.set_internal("AuthCtrlr", "Enabled", "false")  # internal, persistent
    pending = model.pending_changes()
    assert pending == {
        VariableKey("TestCtrlr", "Int"): "43",
        VariableKey("TestCtrlr", "Secret"): "hunter",
        VariableKey("TestCtrlr", "Level", variable_instance="Low"): "2",
        VariableKey("AuthCtrlr", "Enabled"): "false",
    }
    assert model.pending_changes() == {}

    rebuilt = DeviceModel(table_definitions(), pending)
    assert rebuilt.get(C("TestCtrlr"), V("Int"))["attribute_value"] == "43"
    assert rebuilt.get(C("TestCtrlr"), V("Level", "Low"))["attribute_value"] == "2"
    assert rebuilt.value("TestCtrlr", "Secret") == "hunter"
    assert rebuilt.bool_value("AuthCtrlr", "Enabled") is False
    assert rebuilt.value("TestCtrlr", "Volatile") == "1"  # back to the default
    assert rebuilt.pending_changes() == {}


def test_stored_values_that_no_longer_fit_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    stored = {
        VariableKey("TestCtrlr", "Int"): "1000",  # out of range now
        VariableKey("TestCtrlr", "Opt"): "Z",  # no longer an option
        VariableKey("TestCtrlr", "Gone"): "1",  # unknown variable
        VariableKey("TestCtrlr", "Int", attribute="Target"): "1",  # unknown attribute
        VariableKey("TestCtrlr", "Fixed"): "y",  # a constant comes from the firmware
        VariableKey("TestCtrlr", "State"): "busy",  # not persistent
        VariableKey("TestCtrlr", "Bool"): "false",  # fine
    }
    with caplog.at_level(logging.INFO, logger="station.ocpp.devicemodel"):
        model = DeviceModel(table_definitions(), stored)
    assert model.value("TestCtrlr", "Int") == "5"
    assert model.value("TestCtrlr", "Opt") == "A"
    assert model.value("TestCtrlr", "Fixed") == "x"
    assert model.value("TestCtrlr", "State") == "idle"
    assert model.value("TestCtrlr", "Bool") == "false"
    assert len(caplog.records) == 6


def test_subscribers_hear_every_applied_change() -> None:
    model = table_model()
    seen: list[tuple[VariableKey, str]] = []
    model.subscribe(lambda key, value: seen.append((key, value)))
    model.set(C("TestCtrlr"), V("Int"), "42")
    model.set(C("TestCtrlr"), V("Int"), "42")  # same value: no change
    model.set(C("TestCtrlr"), V("Int"), "x")  # rejected
    model.set_internal("TestCtrlr", "State", "busy")
    model.set_internal("EVSE", "Power", "-11000.5", evse_id=1)
    assert seen == [
        (VariableKey("TestCtrlr", "Int"), "42"),
        (VariableKey("TestCtrlr", "State"), "busy"),
        (VariableKey("EVSE", "Power", evse_id=1), "-11000.5"),
    ]


def test_write_only_values_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    model = table_model()
    with caplog.at_level(logging.DEBUG, logger="station.ocpp.devicemodel"):
        model.set(C("TestCtrlr"), V("Secret"), "s3cr3t")
    assert caplog.records
    assert "s3cr3t" not in caplog.text


# --- the station's side -----------------------------------------------------------------------


def test_internal_reads() -> None:
    model = table_model()
    assert model.value("testctrlr", "int") == "5"
    assert model.int_value("TestCtrlr", "Int") == 5
    assert model.float_value("TestCtrlr", "Dec") == 1.5
    assert model.bool_value("TestCtrlr", "Bool") is True
    assert model.int_value("TestCtrlr", "Level", instance="High") == 9
    assert model.float_value("EVSE", "Power", evse_id=1, attribute="MaxSet") == 50000.0
    assert model.bool_value("Connector", "Available", evse_id=1, connector_id=1) is True
    with pytest.raises(KeyError):
        model.value("TestCtrlr", "Nope")
    with pytest.raises(KeyError):
        model.value("EVSE", "Power")  # no EVSE given
    with pytest.raises(KeyError):
        model.value("TestCtrlr", "Int", attribute="Target")
    with pytest.raises(ValueError, match="not a boolean"):
        model.bool_value("TestCtrlr", "Str")


def test_set_internal() -> None:
    model = table_model()
    model.set_internal("ChargingStation", "AvailabilityState", "Unavailable")
    assert model.get(C("ChargingStation"), V("AvailabilityState"))["attribute_value"] == (
        "Unavailable"
    )
    model.set_internal("EVSE", "Power", "50100", evse_id=1)  # a measurement may exceed maxLimit
    assert model.float_value("EVSE", "Power", evse_id=1) == 50100.0
    model.set_internal("TestCtrlr", "Boot", "3")  # applies at once
    assert model.int_value("TestCtrlr", "Boot") == 3
    with pytest.raises(ValueError, match="valuesList"):
        model.set_internal("ChargingStation", "AvailabilityState", "Sleeping")
    with pytest.raises(ValueError, match="decimal"):
        model.set_internal("EVSE", "Power", "lots", evse_id=1)
    with pytest.raises(ValueError, match="constant"):
        model.set_internal("TestCtrlr", "Fixed", "y")
    with pytest.raises(KeyError):
        model.set_internal("TestCtrlr", "Nope", "1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_type": DataType.INTEGER, "default": "x"}, "not an integer"),
        ({"data_type": DataType.INTEGER, "default": "5", "max_limit": 4}, "maximum"),
        ({"data_type": DataType.STRING, "mutability": RW, "constant": True}, "constant"),
        ({"data_type": DataType.STRING, "persistent": False, "reboot_required": True}, "reboot"),
        ({"data_type": DataType.STRING, "attributes": ()}, "attributes"),
        ({"data_type": DataType.STRING, "attributes": ("Actual", "Bogus")}, "Bogus"),
        ({"data_type": DataType.STRING, "attribute_defaults": (("MaxSet", "1"),)}, "MaxSet"),
        ({"data_type": DataType.OPTION_LIST, "values_list": ("a,b",)}, "values_list"),
        ({"data_type": DataType.STRING, "connector_id": 1}, "evse_id"),
        ({"data_type": DataType.STRING, "evse_id": 0}, "at least 1"),
        ({"data_type": DataType.STRING, "max_length": 2501}, "max_length"),
    ],
)
def test_inconsistent_definitions_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VariableDef("X", "Y", **kwargs)


def test_duplicate_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        DeviceModel(
            [VariableDef("X", "Y", DataType.STRING), VariableDef("x", "y", DataType.INTEGER)]
        )


# --- reports (B07, B08) -----------------------------------------------------------------------


def names(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for item in items:
        component, variable = item["component"], item["variable"]
        text = component["name"]
        if "evse" in component:
            text += f"@{component['evse']['id']}"
            if "connector_id" in component["evse"]:
                text += f"/{component['evse']['connector_id']}"
        text += "." + variable["name"]
        if "instance" in variable:
            text += f"[{variable['instance']}]"
        out.append(text)
    return out


def test_full_inventory_reports_everything_but_write_only_values() -> None:
    model = table_model()
    model.set(C("TestCtrlr"), V("Secret"), "hunter")
    items = model.base_report("FullInventory")
    assert len(items) == len(table_definitions())
    secret = next(i for i in items if i["variable"]["name"] == "Secret")
    assert secret["variable_attribute"] == [
        {"type": "Actual", "mutability": "WriteOnly", "persistent": True, "constant": False}
    ]
    assert "hunter" not in json.dumps(items)
    power = next(i for i in items if i["variable"]["name"] == "Power")
    assert power["component"] == {"name": "EVSE", "evse": {"id": 1}}
    assert [a["type"] for a in power["variable_attribute"]] == ["Actual", "MaxSet"]
    assert power["variable_characteristics"] == {
        "data_type": "decimal",
        "supports_monitoring": False,
        "unit": "W",
        "max_limit": 50000,
    }
    members = next(i for i in items if i["variable"]["name"] == "Members")
    assert members["variable_characteristics"]["values_list"] == "A,B,C"
    assert all("null" not in json.dumps(item) for item in items)
    validate_report(items)


def test_configuration_inventory_is_the_writable_variables() -> None:
    items = table_model().base_report("ConfigurationInventory")
    expected = [
        d
        for d in table_definitions()
        if d.mutability in (Mutability.READ_WRITE, Mutability.WRITE_ONLY)
    ]
    assert len(items) == len(expected)
    assert {a["mutability"] for i in items for a in i["variable_attribute"]} == {
        "ReadWrite",
        "WriteOnly",
    }
    validate_report(items)


def test_summary_inventory_is_availability_and_problems() -> None:
    model = table_model()
    assert names(model.base_report("SummaryInventory")) == [
        "Connector@1/1.Available",
        "ChargingStation.AvailabilityState",
    ]
    model.set_internal("ChargingStation", "Problem", "true")
    items = model.base_report("SummaryInventory")
    assert names(items) == [
        "Connector@1/1.Available",
        "ChargingStation.Problem",
        "ChargingStation.AvailabilityState",
    ]
    validate_report(items)


def test_unknown_report_base() -> None:
    with pytest.raises(ValueError, match="report base"):
        table_model().base_report("Everything")


@pytest.mark.parametrize(
    ("criteria", "component_variable", "expected"),
    [
        # Problem: only components whose Problem variable is true: none yet.
        (["Problem"], None, []),
        # Enabled: AuthCtrlr has Enabled=true; the others have no Enabled variable, which counts
        # as true (Part 1 section 4.2), so every component matches.
        (["Enabled"], None, None),
        (["Active"], None, []),
        (None, [{"component": C("EVSE")}], ["EVSE@1.Power"]),  # no evse: every EVSE
        (None, [{"component": C("EVSE", evse=1)}], ["EVSE@1.Power"]),
        (None, [{"component": C("EVSE", evse=2)}], []),
        (None, [{"component": C("Connector", evse=1)}], ["Connector@1/1.Available"]),
        (None, [{"component": C("Connector", evse=1, conn=2)}], []),
        (
            None,
            [{"component": C("testctrlr"), "variable": V("level")}],
            ["TestCtrlr.Level[Low]", "TestCtrlr.Level[High]"],
        ),
        (
            None,
            [{"component": C("TestCtrlr"), "variable": V("Level", "High")}],
            ["TestCtrlr.Level[High]"],
        ),
        (
            None,
            [
                {"component": C("TestCtrlr"), "variable": V("Int")},
                {"component": C("AuthCtrlr")},
            ],
            ["TestCtrlr.Int", "AuthCtrlr.Enabled"],
        ),
        (None, [{"component": C("TestCtrlr", instance="other")}], []),
        (["Problem"], [{"component": C("ChargingStation")}], []),
        (["Enabled"], [{"component": C("AuthCtrlr")}], ["AuthCtrlr.Enabled"]),
    ],
)
def test_criteria_report(
    criteria: list[str] | None,
    component_variable: list[dict[str, Any]] | None,
    expected: list[str] | None,
) -> None:
    model = table_model()
    items = model.criteria_report(criteria, component_variable)
    if expected is None:
        assert len(items) == len(table_definitions())
    else:
        assert names(items) == expected
    if items:
        validate_report(items)


def test_criteria_follow_the_values() -> None:
    model = table_model()
    model.set(C("AuthCtrlr"), V("Enabled"), "false")
    assert "AuthCtrlr.Enabled" not in names(model.criteria_report(["Enabled"], None))
    model.set_internal("ChargingStation", "Problem", "true")
    assert names(model.criteria_report(["Problem"], None)) == [
        "ChargingStation.Problem",
        "ChargingStation.AvailabilityState",
    ]
    # Criteria are ORed.
    both = names(model.criteria_report(["Problem", "Enabled"], None))
    assert "ChargingStation.Problem" in both
    assert "TestCtrlr.Int" in both
    assert "AuthCtrlr.Enabled" not in both
    assert len(model.criteria_report(None, None)) == len(table_definitions())
    with pytest.raises(ValueError, match="criterion"):
        model.criteria_report(["Broken"], None)


# --- NotifyReport parts -----------------------------------------------------------------------


def _array_bytes(items: list[dict[str, Any]]) -> int:
    return len(json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


report_items = st.lists(
    st.fixed_dictionaries(
        {
            "n": st.integers(),
            "pad": st.text(max_size=300),
        }
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    items=report_items,
    items_per_message=st.integers(min_value=1, max_value=20),
    bytes_per_message=st.integers(min_value=0, max_value=3000),
)
def test_split_report_keeps_every_item_within_both_limits(
    items: list[dict[str, Any]], items_per_message: int, bytes_per_message: int
) -> None:
    tagged = [dict(item, n=index) for index, item in enumerate(items)]
    parts = split_report(
        tagged, items_per_message=items_per_message, bytes_per_message=bytes_per_message
    )
    assert [item for part in parts for item in part] == tagged  # none lost, none repeated
    assert all(parts) and (len(parts) >= 1) == bool(tagged)
    for part in parts:
        assert len(part) <= items_per_message
        if len(part) > 1:
            assert _array_bytes(part) <= bytes_per_message - ENVELOPE_MARGIN_BYTES
    # Greedy: a part was closed only because the next item did not fit.
    for part, following in pairwise(parts):
        assert (
            len(part) == items_per_message
            or _array_bytes([*part, following[0]]) > bytes_per_message - ENVELOPE_MARGIN_BYTES
        )


def test_split_report_edges() -> None:
    big = {"pad": "x" * 5000}
    small = {"pad": "y"}
    assert split_report([], items_per_message=10, bytes_per_message=1000) == []
    assert split_report([small, big, small], items_per_message=10, bytes_per_message=1000) == [
        [small],
        [big],
        [small],
    ]
    assert split_report([small] * 5, items_per_message=2, bytes_per_message=65000) == [
        [small, small],
        [small, small],
        [small],
    ]
    with pytest.raises(ValueError, match="items_per_message"):
        split_report([small], items_per_message=0, bytes_per_message=1000)


def test_full_report_splits_into_valid_notify_reports() -> None:
    model = standard_model()
    items = model.base_report("FullInventory")
    parts = split_report(items, items_per_message=10, bytes_per_message=2000)
    assert len(parts) > 1
    validator = get_validator(2, "NotifyReport", "2.0.1")
    for seq_no, part in enumerate(parts):
        payload = {
            "requestId": 2147483647,
            "generatedAt": "2025-01-01T00:00:00.000Z",
            "seqNo": seq_no,
            "tbc": seq_no < len(parts) - 1,
            "reportData": camel(part),
        }
        validator.validate(payload)
        frame = json.dumps(
            [2, "0" * 36, "NotifyReport", payload], separators=(",", ":"), ensure_ascii=False
        )
        assert len(frame.encode("utf-8")) <= 2000


# --- the standard definitions -----------------------------------------------------------------


def test_standard_definitions_have_unique_keys() -> None:
    defs = standard_definitions(evses=EVSES, identity=IDENTITY, comm=CommDefaults())
    keys = [d.key() for d in defs]
    assert len(set(keys)) == len(keys)
    DeviceModel(defs)  # also unique case-insensitively


def test_standard_model_reports_validate() -> None:
    model = standard_model()
    for base in ("FullInventory", "ConfigurationInventory", "SummaryInventory"):
        items = model.base_report(base)
        assert items
        validate_report(items)
    full = model.base_report("FullInventory")
    password = next(i for i in full if i["variable"]["name"] == "BasicAuthPassword")
    assert "value" not in password["variable_attribute"][0]
    assert password["variable_characteristics"]["min_limit"] == 16
    assert password["variable_characteristics"]["max_limit"] == 40


def test_standard_model_values() -> None:
    model = standard_model()
    assert model.int_value("OCPPCommCtrlr", "HeartbeatInterval") == 300
    assert model.int_value("DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport") == 100
    assert model.int_value("DeviceDataCtrlr", "BytesPerMessage", instance="SetVariables") == 65000
    assert model.int_value("OCPPCommCtrlr", "MessageTimeout", instance="Default") == 30
    assert model.int_value("SecurityCtrlr", "SecurityProfile") == 1
    assert model.value("SecurityCtrlr", "Identity") == "CS-0001"
    assert model.value("TxCtrlr", "TxStartPoint") == "PowerPathClosed"
    assert model.value("TxCtrlr", "TxStopPoint") == "EVConnected,Authorized"
    assert model.value("Connector", "ConnectorType", evse_id=1, connector_id=1) == "cG105"
    assert model.value("Connector", "ConnectorType", evse_id=2, connector_id=2) == "cCCS2"
    assert model.value("EVSE", "Power", evse_id=2, attribute="MaxSet") == "62500.5"
    assert model.value("ChargingStation", "SerialNumber") == "SN-1"
    # The CSMS may tune the communication settings, but not what the station cannot change.
    assert (
        model.set(C("OCPPCommCtrlr"), V("WebSocketPingInterval"), "0")["attribute_status"]
        == "Accepted"
    )
    assert (
        model.set(C("OCPPCommCtrlr"), V("WebSocketPingInterval"), "-1")["attribute_status"]
        == "Rejected"
    )
    assert (
        model.set(C("SecurityCtrlr"), V("SecurityProfile"), "2")["attribute_status"] == "Rejected"
    )
    assert (
        model.set(C("TxCtrlr"), V("TxStartPoint"), "EVConnected,Authorized")["attribute_status"]
        == "Accepted"
    )
    assert model.set(C("TxCtrlr"), V("TxStartPoint"), "Plugged")["attribute_status"] == "Rejected"
    # BasicAuthPassword: 16 to 40 characters (A00.FR.205), Accepted so the shell reconnects.
    seen: list[VariableKey] = []
    model.subscribe(lambda key, value: seen.append(key))
    short = model.set(C("SecurityCtrlr"), V("BasicAuthPassword"), "x" * 15)
    assert short["attribute_status"] == "Rejected"
    good = model.set(C("SecurityCtrlr"), V("BasicAuthPassword"), "x" * 16)
    assert good["attribute_status"] == "Accepted"
    assert seen == [VariableKey("SecurityCtrlr", "BasicAuthPassword")]
    assert model.get(C("SecurityCtrlr"), V("BasicAuthPassword"))["attribute_status"] == "Rejected"
    model.set_internal("ClockCtrlr", "DateTime", "2025-01-01T00:00:00.000Z")
    assert model.value("ClockCtrlr", "DateTime") == "2025-01-01T00:00:00.000Z"


def test_evse_info_validation() -> None:
    with pytest.raises(ValueError, match="cG105"):
        EvseInfo(evse_id=1, connector_ids=(1,), connector_type="cCHAdeMO", max_power_w=50000.0)
    with pytest.raises(ValueError, match="evse_id"):
        EvseInfo(evse_id=0, connector_ids=(1,), connector_type="cCCS2", max_power_w=50000.0)
    with pytest.raises(ValueError, match="connector"):
        EvseInfo(evse_id=1, connector_ids=(), connector_type="cCCS2", max_power_w=50000.0)
    with pytest.raises(ValueError, match="max_power_w"):
        EvseInfo(evse_id=1, connector_ids=(1,), connector_type="cCCS2", max_power_w=0.0)
    with pytest.raises(ValueError, match="distinct"):
        standard_definitions(evses=[EVSES[0], EVSES[0]], identity=IDENTITY, comm=CommDefaults())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


@pytest.mark.skipif(not CSV_201.exists(), reason=f"OCPP 2.0.1 appendix CSV not at {CSV_201}")
def test_standard_names_exist_in_the_ocpp_appendix() -> None:
    rows = read_csv(CSV_201)
    specific = {(r["Specific Component"], r["Variable"]): r for r in rows}
    # The OCPP 2.1 additions this station implements (TxCtrlr.ResumptionTimeout, ...) are
    # checked against the 2.1 appendix; the required-variable check below stays 2.0.1's.
    rows_21 = read_csv(CSV_21) if CSV_21.exists() else []
    for r in rows_21:
        specific.setdefault((r["Specific Component"], r["Variable"]), r)
    generic = {r["Variable"]: r for r in rows if r["Specific Component"] == "<generic>"}
    csv_types = {"passwordString": "string", "identifierString": "string"}
    defs = standard_definitions(evses=EVSES, identity=IDENTITY, comm=CommDefaults())
    for definition in defs:
        row = specific.get((definition.component, definition.variable)) or generic.get(
            definition.variable
        )
        assert row is not None, f"{definition.label} is not in the OCPP 2.0.1 or 2.1 appendix"
        data_type = csv_types.get(row["DataType"], row["DataType"])
        assert definition.data_type.value == data_type, definition.label
        if row["Instance"] and not row["Instance"].startswith("<"):
            instances = {
                r["Instance"]
                for r in rows
                if (r["Specific Component"], r["Variable"])
                == (definition.component, definition.variable)
            }
            assert definition.variable_instance in instances, definition.label

    # Every required variable of every component defined here is present (Part 1 section 4.6).
    present = {(d.component, d.variable, d.variable_instance or "") for d in defs}
    components = {d.component for d in defs}
    for row in rows:
        if row["Specific Component"] in components and row["Required?"] == "yes":
            wanted = (row["Specific Component"], row["Variable"], row["Instance"])
            assert wanted in present, f"required {wanted} missing"


def test_standard_results_validate() -> None:
    model = standard_model()
    gets = [
        model.get(C("OCPPCommCtrlr"), V("HeartbeatInterval")),
        model.get(C("EVSE", evse=2), V("Power"), "MaxSet"),
        model.get(C("SecurityCtrlr"), V("BasicAuthPassword")),
        model.get(C("Connector", evse=2, conn=2), V("ConnectorType")),
        model.get(C("Nope"), V("Nope")),
    ]
    validate_get_results(gets)
    sets = model.set_many(
        [
            {
                "component": C("OCPPCommCtrlr"),
                "variable": V("HeartbeatInterval"),
                "attribute_value": "60",
            },
            {
                "component": C("SampledDataCtrlr"),
                "variable": V("TxUpdatedMeasurands"),
                "attribute_value": "Energy.Active.Import.Register,SoC",
            },
            {
                "component": C("ChargingStation"),
                "variable": V("Model"),
                "attribute_value": "Other",
            },
            {
                "component": C("SmartChargingCtrlr"),
                "variable": V("LimitChangeSignificance"),
                "attribute_value": "101",
            },
        ]
    )
    assert [r["attribute_status"] for r in sets] == ["Accepted", "Accepted", "Rejected", "Rejected"]
    validate_set_results(sets)
