"""The OCPP device model: components, variables, their values and the B05-B08 rules.

This module owns the station's device model (OCPP 2.0.1 Part 1 section 4; Part 2 functional block
B, "Provisioning"): which component/variable/attribute combinations exist, their characteristics
(data type, unit, limits, allowed values) and attributes (mutability, persistence, constancy), and
their current values. It answers GetVariables (B06) and SetVariables (B05) item by item, builds the
report data of GetBaseReport (B07) and GetReport (B08), and splits a report into NotifyReport
parts.

It is a pure core (STYLE.md A2.1): no I/O, no asyncio, no clock, and no ``ocpp`` dataclasses.
Requests come in and results go out as plain snake_case dicts shaped like the OCPP datatypes
(``GetVariableResultType``, ``SetVariableResultType``, ``ReportDataType``); the shell in
``station/ocpp`` converts them to and from the wire. Keys whose value would be ``None`` are left
out, never sent as ``null``.

What the shell does with it:

- builds it from :func:`standard_definitions` and the values the store kept
  (:class:`~station.store.VariableKey` → text), and after every request saves
  :meth:`DeviceModel.pending_changes`;
- reacts to changes through :meth:`DeviceModel.subscribe` (for example a new HeartbeatInterval,
  or a new BasicAuthPassword, after which it reconnects: A01);
- writes the read-only values the station itself owns with :meth:`DeviceModel.set_internal`
  (AvailabilityState, ClockCtrlr.DateTime, EVSE Power, ...);
- enforces ItemsPerMessage/BytesPerMessage on incoming requests (B05.FR.11, B06.FR.16/17,
  B08.FR.17/18: a CALLERROR, not a per-item status), which this module does not see.

Requirement ids cite OCPP 2.0.1 Part 2 (edition 3) as amended by the 2025-01 errata.

Names of components, variables and instances are case-insensitive (ComponentType/VariableType
"Case Insensitive"); values are case-sensitive. A result echoes the component and variable exactly
as the request named them (B05.FR.02, B06.FR.02).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Final, TypedDict, Unpack

from station.store import VariableKey

__all__ = [
    "ENVELOPE_MARGIN_BYTES",
    "KNOWN_CONNECTOR_TYPES",
    "MEASURANDS",
    "Attribute",
    "CommDefaults",
    "ComponentCriterion",
    "DataType",
    "DeviceModel",
    "EvseInfo",
    "GetVariableStatus",
    "Mutability",
    "ReportBase",
    "SetVariableStatus",
    "StationIdentity",
    "TxDefaults",
    "VariableDef",
    "VariableKey",
    "split_report",
    "standard_definitions",
]

_logger = logging.getLogger(__name__)

# --- enums (OCPP 2.0.1 datatypes, as plain StrEnums) ------------------------------------------


class DataType(StrEnum):
    """DataEnumType: the data type of a variable (VariableCharacteristicsType.dataType)."""

    STRING = "string"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATETIME = "dateTime"
    BOOLEAN = "boolean"
    OPTION_LIST = "OptionList"
    SEQUENCE_LIST = "SequenceList"
    MEMBER_LIST = "MemberList"


class Mutability(StrEnum):
    """MutabilityEnumType: whether the CSMS may read and/or write an attribute."""

    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class Attribute(StrEnum):
    """AttributeEnumType: which value of a variable is meant. Absent means Actual."""

    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


class GetVariableStatus(StrEnum):
    """GetVariableStatusEnumType (B06)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"


class SetVariableStatus(StrEnum):
    """SetVariableStatusEnumType (B05)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    REBOOT_REQUIRED = "RebootRequired"


class ReportBase(StrEnum):
    """ReportBaseEnumType (B07)."""

    CONFIGURATION_INVENTORY = "ConfigurationInventory"
    FULL_INVENTORY = "FullInventory"
    SUMMARY_INVENTORY = "SummaryInventory"


class ComponentCriterion(StrEnum):
    """ComponentCriterionEnumType (B08): each names a boolean variable of a component."""

    ACTIVE = "Active"
    AVAILABLE = "Available"
    ENABLED = "Enabled"
    PROBLEM = "Problem"


# Reason codes used in attributeStatusInfo (OCPP 2.0.1 Part 2 appendix "Reason codes").
_READ_ONLY: Final = "ReadOnly"
_WRITE_ONLY: Final = "WriteOnly"
_INVALID_VALUE: Final = "InvalidValue"
_VALUE_TOO_LOW: Final = "ValueTooLow"
_VALUE_TOO_HIGH: Final = "ValueTooHigh"
_VALUE_OUT_OF_RANGE: Final = "ValueOutOfRange"

_ATTRIBUTE_TYPES: Final = frozenset(attribute.value for attribute in Attribute)
_VALUE_MAX: Final = 2500  # VariableAttributeType.value / GetVariableResultType.attributeValue
_NAME_MAX: Final = 50  # ComponentType/VariableType name and instance: string[50]
_UNIT_MAX: Final = 16  # VariableCharacteristicsType.unit: string[16]
_VALUES_LIST_MAX: Final = 1000  # VariableCharacteristicsType.valuesList: string[1000]

ENVELOPE_MARGIN_BYTES: Final = 200
"""Bytes kept free in every NotifyReport part for everything around ``reportData``.

The OCPP-J frame ``[2,"<36-char id>","NotifyReport",{"requestId":…,"generatedAt":"…",
"seqNo":…,"tbc":true,"reportData":[…]}]`` takes about 130 bytes besides the items; 200 leaves room
for large request ids and sequence numbers.
"""

KNOWN_CONNECTOR_TYPES: Final = frozenset(
    {
        # OCPP 2.0.1 ConnectorEnumType
        "cCCS1",
        "cCCS2",
        "cG105",
        "cTesla",
        "cType1",
        "cType2",
        "s309-1P-16A",
        "s309-1P-32A",
        "s309-3P-16A",
        "s309-3P-32A",
        "sBS1361",
        "sCEE-7-7",
        "sType2",
        "sType3",
        "Other1PhMax16A",
        "Other1PhOver16A",
        "Other3Ph",
        "Pan",
        "wInductive",
        "wResonant",
        "Undetermined",
        "Unknown",
        # Connector.ConnectorType additions (2.0.1 appendix) and OCPP 2.1 ConnectorEnumType
        "cGBT",
        "cChaoJi",
        "OppCharge",
        "cGBT-DC",
        "cLECCS",
        "cMCS",
        "cNACS",
        "cNACS-CCS1",
        "cCCS1-NACS",
        "cUltraChaoJi",
        "sType1",
    }
)
"""Values accepted for ``Connector.ConnectorType``. CHAdeMO is ``cG105`` (JARI G105-1993)."""

MEASURANDS: Final = (
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Offered",
    "SoC",
    "Voltage",
)
"""The MeasurandEnumType values a DC bidirectional EVSE can sample (the valuesList of the
SampledDataCtrlr/AlignedDataCtrlr measurand variables)."""

_TX_POINTS: Final = (
    "EVConnected",
    "Authorized",
    "PowerPathClosed",
    "EnergyTransfer",
    "ParkingBayOccupancy",
    "DataSigned",
)
_AVAILABILITY_STATES: Final = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")

# --- definitions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariableDef:
    """One variable of one component, with its characteristics and attributes.

    A component is identified by ``component`` + ``component_instance`` + ``evse_id`` +
    ``connector_id``; a variable of it by ``variable`` + ``variable_instance``.

    Limits: for ``integer`` and ``decimal`` variables ``min_limit``/``max_limit`` bound the value.
    For ``string`` and the list types they bound the length of the (CSV) text, as
    VariableCharacteristicsType.maxLimit defines it; ``max_length`` is the hard cap on any stored
    text (the 2500 characters of VariableAttributeType.value, or less).

    ``values_list`` holds the allowed values of an OptionList/MemberList/SequenceList (empty:
    anything goes). ``attributes`` lists the attribute types that exist (AttributeEnumType);
    ``default`` is the initial Actual value and ``attribute_defaults`` the initial value of the
    others, e.g. ``(("MaxSet", "50000"),)``. An empty default means "not known yet" and is allowed
    for every data type (ClockCtrlr.DateTime before the clock is set).

    ``reboot_required``: a SetVariables that changes the value answers RebootRequired (B05.FR.09);
    the new value is saved and takes effect when the model is next built from the store.

    Raises:
        ValueError: an inconsistent definition (see the checks in ``__post_init__``).
    """

    component: str
    variable: str
    data_type: DataType
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] = ()
    mutability: Mutability = Mutability.READ_ONLY
    attributes: tuple[str, ...] = (Attribute.ACTUAL,)
    default: str = ""
    attribute_defaults: tuple[tuple[str, str], ...] = ()
    persistent: bool = True
    constant: bool = False
    reboot_required: bool = False
    max_length: int = _VALUE_MAX

    def __post_init__(self) -> None:
        label = self.label
        for name in ("component", "variable", "component_instance", "variable_instance"):
            text = getattr(self, name)
            if text is not None and not 1 <= len(text) <= _NAME_MAX:
                raise ValueError(f"{label}: {name} must be 1 to {_NAME_MAX} characters")
        if self.connector_id is not None and self.evse_id is None:
            raise ValueError(f"{label}: a connector_id needs an evse_id")
        for name in ("evse_id", "connector_id"):
            number = getattr(self, name)
            if number is not None and number < 1:
                raise ValueError(f"{label}: {name} must be at least 1")
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"{label}: attributes must be distinct and not empty")
        for attribute in self.attributes:
            if attribute not in _ATTRIBUTE_TYPES:
                raise ValueError(f"{label}: unknown attribute type {attribute!r}")
        for attribute, _ in self.attribute_defaults:
            if attribute not in self.attributes or attribute == Attribute.ACTUAL:
                raise ValueError(f"{label}: attribute_defaults names {attribute!r}")
        for option in self.values_list:
            if not option or "," in option:
                raise ValueError(f"{label}: values_list entries must be non-empty, without ','")
        if len(",".join(self.values_list)) > _VALUES_LIST_MAX:
            raise ValueError(f"{label}: values_list longer than {_VALUES_LIST_MAX} characters")
        if self.unit is not None and not 1 <= len(self.unit) <= _UNIT_MAX:
            raise ValueError(f"{label}: unit must be 1 to {_UNIT_MAX} characters")
        if not 1 <= self.max_length <= _VALUE_MAX:
            raise ValueError(f"{label}: max_length must be 1 to {_VALUE_MAX}")
        if self.constant and self.mutability is not Mutability.READ_ONLY:
            raise ValueError(f"{label}: a constant must be ReadOnly")
        if self.reboot_required and not self.persistent:
            raise ValueError(f"{label}: a reboot_required value must be persistent")
        for attribute in self.attributes:
            text = self.initial(attribute)
            if text == "":
                continue
            problem = _check(self, text, check_range=True)
            if problem is not None:
                shown = "(hidden)" if self.mutability is Mutability.WRITE_ONLY else repr(text)
                raise ValueError(f"{label}: {attribute} default {shown}: {problem[1]}")

    @property
    def label(self) -> str:
        """A readable name for logs and errors: ``Component[inst]@evse/conn.Variable[inst]``."""
        text = self.component
        if self.component_instance is not None:
            text += f"[{self.component_instance}]"
        if self.evse_id is not None:
            text += f"@{self.evse_id}"
            if self.connector_id is not None:
                text += f"/{self.connector_id}"
        text += f".{self.variable}"
        if self.variable_instance is not None:
            text += f"[{self.variable_instance}]"
        return text

    def key(self, attribute: str = Attribute.ACTUAL) -> VariableKey:
        """The store key of one attribute of this variable."""
        return VariableKey(
            component=self.component,
            variable=self.variable,
            attribute=str(attribute),
            component_instance=self.component_instance,
            evse_id=self.evse_id,
            connector_id=self.connector_id,
            variable_instance=self.variable_instance,
        )

    def initial(self, attribute: str) -> str:
        """The value an attribute has before anything sets it."""
        if attribute == Attribute.ACTUAL:
            return self.default
        return dict(self.attribute_defaults).get(attribute, "")


# --- value checks -----------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _check(definition: VariableDef, value: str, *, check_range: bool) -> tuple[str, str] | None:
    """Check ``value`` against the characteristics of ``definition`` (B05.FR.07).

    Returns ``None`` when the value is acceptable, else ``(reasonCode, additionalInfo)``.
    ``check_range=False`` skips the numeric min/max limits (values the station measures).
    """
    data_type = definition.data_type
    if len(value) > definition.max_length:
        return _VALUE_OUT_OF_RANGE, f"longer than {definition.max_length} characters"
    if data_type in (DataType.INTEGER, DataType.DECIMAL):
        number: float
        if data_type is DataType.INTEGER:
            if _INTEGER.fullmatch(value) is None:
                return _INVALID_VALUE, "not an integer"
            number = int(value)
        else:
            if _DECIMAL.fullmatch(value) is None:
                return _INVALID_VALUE, "not a decimal number"
            number = float(value)
            if not math.isfinite(number):
                return _INVALID_VALUE, "not a finite decimal number"
        if check_range:
            if definition.min_limit is not None and number < definition.min_limit:
                return _VALUE_TOO_LOW, f"below the minimum {definition.min_limit:g}"
            if definition.max_limit is not None and number > definition.max_limit:
                return _VALUE_TOO_HIGH, f"above the maximum {definition.max_limit:g}"
        return None
    if data_type is DataType.BOOLEAN:
        return None if value in ("true", "false") else (_INVALID_VALUE, "not 'true' or 'false'")
    if data_type is DataType.DATETIME:
        if _DATETIME.fullmatch(value) is None:
            return _INVALID_VALUE, "not an RFC 3339 date-time"
        try:
            datetime.fromisoformat(value.upper())
        except ValueError:
            return _INVALID_VALUE, "not an RFC 3339 date-time"
        return None
    # string and the list types: the limits bound the length of the text.
    if definition.min_limit is not None and len(value) < definition.min_limit:
        return _VALUE_OUT_OF_RANGE, f"shorter than {definition.min_limit:g} characters"
    if definition.max_limit is not None and len(value) > definition.max_limit:
        return _VALUE_OUT_OF_RANGE, f"longer than {definition.max_limit:g} characters"
    allowed = definition.values_list
    if data_type is DataType.OPTION_LIST:
        if value == "" or "," in value:
            return _INVALID_VALUE, "an OptionList takes exactly one value"
        if allowed and value not in allowed:
            return _INVALID_VALUE, "not one of the valuesList"
        return None
    if data_type in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST):
        # MemberList: an unordered (sub)set; SequenceList: an ordered (sub)set, the order being
        # the priority (VariableCharacteristicsType.valuesList). No member twice. An empty
        # MemberList is the empty set; an empty SequenceList has nothing to order.
        if value == "":
            if data_type is DataType.SEQUENCE_LIST:
                return _INVALID_VALUE, "a SequenceList needs at least one value"
            return None
        members = value.split(",")
        if any(member == "" for member in members) or len(set(members)) != len(members):
            return _INVALID_VALUE, "empty or repeated list member"
        if allowed and not set(members) <= set(allowed):
            return _INVALID_VALUE, "a member is not in the valuesList"
        return None
    return None


# --- addressing -------------------------------------------------------------------------------

_ComponentId = tuple[str, str | None, int | None, int | None]
_VariableId = tuple[_ComponentId, str, str | None]


def _fold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _text(value: Any) -> str:
    """An enum member or a string as its wire text."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _component_id(
    name: str, instance: str | None, evse_id: int | None, connector_id: int | None
) -> _ComponentId:
    return (name.casefold(), _fold(instance), evse_id, connector_id)


def _request_component_id(component: Mapping[str, Any]) -> _ComponentId:
    evse = component.get("evse") or {}
    return _component_id(
        str(component.get("name", "")),
        component.get("instance"),
        evse.get("id"),
        evse.get("connector_id"),
    )


def _request_variable(variable: Mapping[str, Any]) -> tuple[str, str | None]:
    return str(variable.get("name", "")).casefold(), _fold(variable.get("instance"))


def _definition_id(definition: VariableDef) -> _VariableId:
    component = _component_id(
        definition.component,
        definition.component_instance,
        definition.evse_id,
        definition.connector_id,
    )
    return (component, definition.variable.casefold(), _fold(definition.variable_instance))


def _echo_component(component: Mapping[str, Any]) -> dict[str, Any]:
    """The request's ComponentType, as given, without ``None`` values (B05.FR.02, B06.FR.02)."""
    out: dict[str, Any] = {"name": component.get("name", "")}
    if component.get("instance") is not None:
        out["instance"] = component["instance"]
    evse = component.get("evse")
    if evse is not None:
        echoed: dict[str, Any] = {"id": evse.get("id")}
        if evse.get("connector_id") is not None:
            echoed["connector_id"] = evse["connector_id"]
        out["evse"] = echoed
    return out


def _echo_variable(variable: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": variable.get("name", "")}
    if variable.get("instance") is not None:
        out["instance"] = variable["instance"]
    return out


def _component_of(definition: VariableDef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": definition.component}
    if definition.component_instance is not None:
        out["instance"] = definition.component_instance
    if definition.evse_id is not None:
        evse: dict[str, Any] = {"id": definition.evse_id}
        if definition.connector_id is not None:
            evse["connector_id"] = definition.connector_id
        out["evse"] = evse
    return out


def _variable_of(definition: VariableDef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": definition.variable}
    if definition.variable_instance is not None:
        out["instance"] = definition.variable_instance
    return out


def _number(value: float) -> int | float:
    """A limit as JSON: integral values without a fraction."""
    return int(value) if float(value).is_integer() else value


# --- the model --------------------------------------------------------------------------------


class Where(TypedDict, total=False):
    """Which instance of a variable :meth:`DeviceModel.value` and friends read."""

    instance: str | None
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    attribute: str


class DeviceModel:
    """The station's device model: definitions plus current values.

    Args:
        definitions: every variable the station has. Their order is the report order.
        stored: values kept by the store, which replace the defaults. A value for an unknown
            variable or attribute, for a constant or non-persistent variable, or one that no
            longer passes the definition's checks is ignored and logged.

    Raises:
        ValueError: two definitions name the same variable (names compared case-insensitively).
    """

    def __init__(
        self,
        definitions: Iterable[VariableDef],
        stored: Mapping[VariableKey, str] | None = None,
    ) -> None:
        self._definitions: dict[_VariableId, VariableDef] = {}
        self._components: set[_ComponentId] = set()
        self._values: dict[VariableKey, str] = {}
        self._staged: dict[VariableKey, str] = {}
        self._pending: dict[VariableKey, str] = {}
        self._subscribers: list[Callable[[VariableKey, str], None]] = []
        for definition in definitions:
            ident = _definition_id(definition)
            if ident in self._definitions:
                raise ValueError(f"{definition.label}: defined twice")
            self._definitions[ident] = definition
            self._components.add(ident[0])
            for attribute in definition.attributes:
                self._values[definition.key(attribute)] = definition.initial(attribute)
        for key, value in (stored or {}).items():
            self._load(key, value)

    def _load(self, key: VariableKey, value: str) -> None:
        definition = self._definitions.get(
            (
                _component_id(key.component, key.component_instance, key.evse_id, key.connector_id),
                key.variable.casefold(),
                _fold(key.variable_instance),
            )
        )
        if definition is None or key.attribute not in definition.attributes:
            _logger.warning("ignoring stored value of unknown variable %s", key)
            return
        if definition.constant or not definition.persistent:
            _logger.info("ignoring stored value of constant/non-persistent %s", definition.label)
            return
        problem = _check(definition, value, check_range=True)
        if problem is not None:
            _logger.warning(
                "ignoring stored value of %s %s: %s", definition.label, key.attribute, problem[1]
            )
            return
        self._values[definition.key(key.attribute)] = value

    # --- lookups ------------------------------------------------------------------------------

    @property
    def definitions(self) -> tuple[VariableDef, ...]:
        """Every definition, in report order."""
        return tuple(self._definitions.values())

    def _resolve(
        self, component: Mapping[str, Any], variable: Mapping[str, Any]
    ) -> VariableDef | str:
        """The definition a request names, or ``"UnknownComponent"``/``"UnknownVariable"``."""
        component_id = _request_component_id(component)
        if component_id not in self._components:
            return GetVariableStatus.UNKNOWN_COMPONENT
        name, instance = _request_variable(variable)
        definition = self._definitions.get((component_id, name, instance))
        if definition is None:
            return GetVariableStatus.UNKNOWN_VARIABLE
        return definition

    def _lookup(
        self,
        component: str,
        variable: str,
        instance: str | None,
        component_instance: str | None,
        evse_id: int | None,
        connector_id: int | None,
        attribute: str,
    ) -> VariableDef:
        ident = (
            _component_id(component, component_instance, evse_id, connector_id),
            variable.casefold(),
            _fold(instance),
        )
        definition = self._definitions.get(ident)
        if definition is None or attribute not in definition.attributes:
            raise KeyError(f"no device-model variable {component}.{variable} ({attribute})")
        return definition

    # --- GetVariables (B06) -------------------------------------------------------------------

    def get(
        self,
        component: Mapping[str, Any],
        variable: Mapping[str, Any],
        attribute_type: str | None = None,
    ) -> dict[str, Any]:
        """Answer one GetVariableData item with one GetVariableResult (B06.FR.01).

        Args:
            component: the snake_case ComponentType (``name``, ``instance``, ``evse`` with ``id``
                and ``connector_id``).
            variable: the snake_case VariableType (``name``, ``instance``).
            attribute_type: the requested AttributeEnumType; absent means Actual.

        Returns:
            A snake_case GetVariableResultType. ``attribute_status`` is UnknownComponent
            (B06.FR.06), UnknownVariable (B06.FR.07), NotSupportedAttributeType (B06.FR.08),
            Rejected with reason WriteOnly for a WriteOnly variable (B06.FR.09), else Accepted
            with the value (an empty string for a supported attribute that has no value yet).
            ``attribute_type`` is the requested one, or Actual (B06.FR.03).
        """
        attribute = _text(attribute_type) if attribute_type is not None else Attribute.ACTUAL
        result: dict[str, Any] = {
            "attribute_status": "",
            "attribute_type": str(attribute),
            "component": _echo_component(component),
            "variable": _echo_variable(variable),
        }
        found = self._resolve(component, variable)
        if isinstance(found, str):
            result["attribute_status"] = str(found)
        elif attribute not in found.attributes:
            result["attribute_status"] = GetVariableStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE.value
        elif found.mutability is Mutability.WRITE_ONLY:
            result["attribute_status"] = GetVariableStatus.REJECTED.value
            result["attribute_status_info"] = {"reason_code": _WRITE_ONLY}
        else:
            result["attribute_status"] = GetVariableStatus.ACCEPTED.value
            result["attribute_value"] = self._values[found.key(attribute)]
        return result

    # --- SetVariables (B05) -------------------------------------------------------------------

    def set(
        self,
        component: Mapping[str, Any],
        variable: Mapping[str, Any],
        value: str,
        attribute_type: str | None = None,
    ) -> dict[str, Any]:
        """Apply one SetVariableData item from the CSMS; answer one SetVariableResult.

        Checks, in order: UnknownComponent (B05.FR.04), UnknownVariable (B05.FR.05),
        NotSupportedAttributeType (B05.FR.06), Rejected/ReadOnly for a ReadOnly variable
        (B05.FR.08), Rejected with InvalidValue/ValueTooLow/ValueTooHigh/ValueOutOfRange for a
        value that does not fit the data type, limits or valuesList (B05.FR.07). Otherwise the
        value is stored: Accepted (B05.FR.10), or RebootRequired for a ``reboot_required``
        variable whose value changed (B05.FR.09). A rejected item changes nothing.

        Subscribers are told of an applied change; a RebootRequired change is only staged
        (:meth:`staged_changes`) and saved, and applies when the model is next built.

        Returns:
            A snake_case SetVariableResultType; ``attribute_type`` is the requested one, or
            Actual when the request had none (B05.FR.03).
        """
        attribute = _text(attribute_type) if attribute_type is not None else Attribute.ACTUAL
        result: dict[str, Any] = {
            "attribute_type": str(attribute),
            "attribute_status": "",
            "component": _echo_component(component),
            "variable": _echo_variable(variable),
        }
        found = self._resolve(component, variable)
        if isinstance(found, str):
            result["attribute_status"] = str(found)
            return result
        if attribute not in found.attributes:
            result["attribute_status"] = SetVariableStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE.value
            return result
        if found.mutability is Mutability.READ_ONLY:
            result["attribute_status"] = SetVariableStatus.REJECTED.value
            result["attribute_status_info"] = {"reason_code": _READ_ONLY}
            return result
        problem = _check(found, value, check_range=True)
        if problem is not None:
            result["attribute_status"] = SetVariableStatus.REJECTED.value
            result["attribute_status_info"] = {
                "reason_code": problem[0],
                "additional_info": problem[1],
            }
            return result
        result["attribute_status"] = self._apply_from_csms(found, str(attribute), value).value
        return result

    def _apply_from_csms(
        self, definition: VariableDef, attribute: str, value: str
    ) -> SetVariableStatus:
        key = definition.key(attribute)
        running = self._values[key]
        if definition.reboot_required:
            configured = self._staged.get(key, running)
            if value == configured:
                return (
                    SetVariableStatus.REBOOT_REQUIRED
                    if key in self._staged
                    else SetVariableStatus.ACCEPTED
                )
            self._pending[key] = value
            if value == running:  # back to the running value: nothing waits for a reboot
                del self._staged[key]
                return SetVariableStatus.ACCEPTED
            self._staged[key] = value
            self._log_change("staged (reboot required)", definition, attribute, value)
            return SetVariableStatus.REBOOT_REQUIRED
        self._store(definition, key, value)
        return SetVariableStatus.ACCEPTED

    def set_many(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Answer a whole SetVariablesRequest: one result per item, in order (B05.FR.01).

        Each item is a snake_case SetVariableData (``component``, ``variable``,
        ``attribute_value``, ``attribute_type``?) and is processed on its own. The CSMS must not
        send the same component/variable/attributeType twice in one request (B05.FR.13); if it
        does, none of those items is applied and each is Rejected (InvalidValue), since which one
        was meant is unknowable.
        """
        seen: dict[tuple[_ComponentId, str, str | None, str], int] = {}
        for item in items:
            ident = self._item_ident(item)
            seen[ident] = seen.get(ident, 0) + 1
        results: list[dict[str, Any]] = []
        for item in items:
            component, variable = item["component"], item["variable"]
            attribute_type = item.get("attribute_type")
            if seen[self._item_ident(item)] > 1:
                results.append(
                    {
                        "attribute_type": _text(attribute_type or Attribute.ACTUAL),
                        "attribute_status": SetVariableStatus.REJECTED.value,
                        "attribute_status_info": {
                            "reason_code": _INVALID_VALUE,
                            "additional_info": "same variable and attribute set twice (B05.FR.13)",
                        },
                        "component": _echo_component(component),
                        "variable": _echo_variable(variable),
                    }
                )
                continue
            results.append(self.set(component, variable, item["attribute_value"], attribute_type))
        return results

    @staticmethod
    def _item_ident(item: Mapping[str, Any]) -> tuple[_ComponentId, str, str | None, str]:
        name, instance = _request_variable(item["variable"])
        attribute = _text(item.get("attribute_type") or Attribute.ACTUAL)
        return (_request_component_id(item["component"]), name, instance, attribute)

    # --- the station's side -------------------------------------------------------------------

    def value(
        self,
        component: str,
        variable: str,
        *,
        instance: str | None = None,
        component_instance: str | None = None,
        evse_id: int | None = None,
        connector_id: int | None = None,
        attribute: str = Attribute.ACTUAL,
    ) -> str:
        """The running value of a variable as OCPP text, for the station itself.

        ``instance`` is the variable instance (``ItemsPerMessage`` ``instance="GetReport"``).
        WriteOnly values are readable here. A staged (RebootRequired) value is not returned.

        Raises:
            KeyError: no such variable or attribute.
        """
        definition = self._lookup(
            component, variable, instance, component_instance, evse_id, connector_id, attribute
        )
        return self._values[definition.key(attribute)]

    def int_value(self, component: str, variable: str, **where: Unpack[Where]) -> int:
        """:meth:`value` as an ``int``. Raises KeyError, or ValueError if empty or not one."""
        return int(self.value(component, variable, **where))

    def float_value(self, component: str, variable: str, **where: Unpack[Where]) -> float:
        """:meth:`value` as a ``float``. Raises KeyError, or ValueError if empty or not one."""
        return float(self.value(component, variable, **where))

    def bool_value(self, component: str, variable: str, **where: Unpack[Where]) -> bool:
        """:meth:`value` as a ``bool``. Raises KeyError, or ValueError unless true/false."""
        text = self.value(component, variable, **where)
        if text not in ("true", "false"):
            raise ValueError(f"{component}.{variable} is not a boolean: {text!r}")
        return text == "true"

    def set_internal(
        self,
        component: str,
        variable: str,
        value: str,
        *,
        instance: str | None = None,
        component_instance: str | None = None,
        evse_id: int | None = None,
        connector_id: int | None = None,
        attribute: str = Attribute.ACTUAL,
    ) -> None:
        """Set a value the station itself owns (AvailabilityState, DateTime, Power, ...).

        No mutability check, and the change applies at once even for a ``reboot_required``
        variable. The value must still fit the data type, length and valuesList; numeric limits
        are not applied, because a measured value is a fact (EVSE Power may read slightly above
        its rating). Subscribers are told if the value changed.

        Raises:
            KeyError: no such variable or attribute.
            ValueError: the value does not fit, or the variable is a constant.
        """
        definition = self._lookup(
            component, variable, instance, component_instance, evse_id, connector_id, attribute
        )
        if definition.constant:
            raise ValueError(f"{definition.label} is a constant")
        problem = _check(definition, value, check_range=False)
        if problem is not None:
            raise ValueError(f"{definition.label} {attribute}: {problem[1]}")
        key = definition.key(attribute)
        self._staged.pop(key, None)
        self._store(definition, key, value)

    def _store(self, definition: VariableDef, key: VariableKey, value: str) -> None:
        if self._values[key] == value:
            return
        self._values[key] = value
        if definition.persistent:
            self._pending[key] = value
        self._log_change("set", definition, key.attribute, value)
        for callback in self._subscribers:
            callback(key, value)

    @staticmethod
    def _log_change(what: str, definition: VariableDef, attribute: str, value: str) -> None:
        if definition.mutability is Mutability.WRITE_ONLY:
            _logger.info("%s %s %s (WriteOnly value not logged)", what, definition.label, attribute)
        else:
            _logger.info("%s %s %s = %r", what, definition.label, attribute, value)

    def subscribe(self, callback: Callable[[VariableKey, str], None]) -> None:
        """Call ``callback(key, new_value)`` after every applied change of a value.

        Both CSMS changes (SetVariables) and :meth:`set_internal` count; a set to the same value
        does not, nor does a staged RebootRequired change. An exception from the callback
        propagates to the caller of ``set``/``set_internal``; the change stays applied.
        """
        self._subscribers.append(callback)

    def pending_changes(self) -> dict[VariableKey, str]:
        """Persistent values changed since the last call (staged ones included); then forget them.

        The shell saves these to the store, so that a model rebuilt with them as ``stored``
        reports the same values (and applies the staged ones).
        """
        pending, self._pending = self._pending, {}
        return pending

    def staged_changes(self) -> dict[VariableKey, str]:
        """Values accepted with RebootRequired (B05.FR.09) that wait for a reboot."""
        return dict(self._staged)

    # --- reports (B07, B08) -------------------------------------------------------------------

    def _report_item(self, definition: VariableDef) -> dict[str, Any]:
        attributes: list[dict[str, Any]] = []
        for attribute in definition.attributes:
            entry: dict[str, Any] = {"type": str(attribute)}
            # B07.FR.03 / B08.FR.03 (errata 2025-01): never the value of a WriteOnly variable.
            if definition.mutability is not Mutability.WRITE_ONLY:
                entry["value"] = self._values[definition.key(attribute)]
            entry["mutability"] = definition.mutability.value
            entry["persistent"] = definition.persistent
            entry["constant"] = definition.constant
            attributes.append(entry)
        characteristics: dict[str, Any] = {
            "data_type": definition.data_type.value,
            "supports_monitoring": False,
        }
        if definition.unit is not None:
            characteristics["unit"] = definition.unit
        if definition.min_limit is not None:
            characteristics["min_limit"] = _number(definition.min_limit)
        if definition.max_limit is not None:
            characteristics["max_limit"] = _number(definition.max_limit)
        if definition.values_list:
            characteristics["values_list"] = ",".join(definition.values_list)
        return {
            "component": _component_of(definition),
            "variable": _variable_of(definition),
            "variable_attribute": attributes,
            "variable_characteristics": characteristics,
        }

    def base_report(self, report_base: str) -> list[dict[str, Any]]:
        """The ReportData of a GetBaseReport (B07), in definition order.

        - FullInventory: every variable.
        - ConfigurationInventory: the variables the CSMS can write (ReadWrite or WriteOnly).
        - SummaryInventory: availability and problems (the spec's "current charging availability
          and any existing problem conditions"): every AvailabilityState and Available variable,
          plus every Problem, Tripped, Overload and Fallback variable whose value is ``true``.

        WriteOnly variables are reported without a value (B07.FR.03, errata 2025-01).

        Raises:
            ValueError: ``report_base`` is not a ReportBaseEnumType (the shell answers
                NotSupported).
        """
        try:
            base = ReportBase(_text(report_base))
        except ValueError:
            raise ValueError(f"unknown report base {report_base!r}") from None
        selected: list[VariableDef] = []
        for definition in self._definitions.values():
            if base is ReportBase.FULL_INVENTORY:
                keep = True
            elif base is ReportBase.CONFIGURATION_INVENTORY:
                keep = definition.mutability is not Mutability.READ_ONLY
            else:
                keep = self._in_summary(definition)
            if keep:
                selected.append(definition)
        return [self._report_item(definition) for definition in selected]

    def _in_summary(self, definition: VariableDef) -> bool:
        if definition.variable in ("AvailabilityState", "Available"):
            return True
        if definition.variable in ("Problem", "Tripped", "Overload", "Fallback"):
            return self._values.get(definition.key()) == "true"
        return False

    def criteria_report(
        self,
        component_criteria: Sequence[str] | None,
        component_variable: Sequence[Mapping[str, Any]] | None,
    ) -> list[dict[str, Any]]:
        """The ReportData of a GetReport (B08), in definition order.

        Args:
            component_criteria: ComponentCriterionEnumType values. A component matches if any
                criterion holds (they are ORed): its variable of that name (no instance) has the
                Actual value ``true``. A component without an ``Available`` or ``Enabled``
                variable counts as available/enabled (Part 1 section 4.2: absent means "readonly
                and set to true"); without ``Active`` or ``Problem`` it is neither.
            component_variable: snake_case ComponentVariableType entries. A variable matches an
                entry when the component name and instance match; an entry without ``evse``
                matches the component at every EVSE (B08.FR.23), one with an EVSE but no
                ``connector_id`` every connector of it; an entry without ``variable`` matches all
                variables of the component, one with a variable name but no instance every
                instance of it.

        Both given: a variable must satisfy both. Neither given: everything. An empty list means
        the shell answers EmptyResultSet. WriteOnly values are left out (B08.FR.03, errata).

        Raises:
            ValueError: an unknown ComponentCriterionEnumType value.
        """
        criteria: list[ComponentCriterion] = []
        for criterion in component_criteria or ():
            try:
                criteria.append(ComponentCriterion(_text(criterion)))
            except ValueError:
                raise ValueError(f"unknown component criterion {criterion!r}") from None
        selected: list[VariableDef] = []
        for ident, definition in self._definitions.items():
            if criteria and not any(self._criterion_holds(ident[0], c) for c in criteria):
                continue
            if component_variable and not any(
                _matches(entry, ident) for entry in component_variable
            ):
                continue
            selected.append(definition)
        return [self._report_item(definition) for definition in selected]

    def _criterion_holds(self, component: _ComponentId, criterion: ComponentCriterion) -> bool:
        definition = self._definitions.get((component, criterion.value.casefold(), None))
        if definition is None:
            return criterion in (ComponentCriterion.AVAILABLE, ComponentCriterion.ENABLED)
        return self._values.get(definition.key()) == "true"


def _matches(entry: Mapping[str, Any], ident: _VariableId) -> bool:
    """Whether a ComponentVariableType filter entry of a GetReport selects a variable."""
    (name, instance, evse_id, connector_id), variable_name, variable_instance = ident
    component = entry.get("component") or {}
    if str(component.get("name", "")).casefold() != name:
        return False
    if _fold(component.get("instance")) != instance:
        return False
    evse = component.get("evse")
    if evse is not None:
        if evse.get("id") != evse_id:
            return False
        if evse.get("connector_id") is not None and evse["connector_id"] != connector_id:
            return False
    variable = entry.get("variable")
    if variable is not None:
        if str(variable.get("name", "")).casefold() != variable_name:
            return False
        if variable.get("instance") is not None and _fold(variable["instance"]) != (
            variable_instance
        ):
            return False
    return True


# --- NotifyReport parts -----------------------------------------------------------------------


def _size(item: Mapping[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def split_report(
    items: Sequence[dict[str, Any]], *, items_per_message: int, bytes_per_message: int
) -> list[list[dict[str, Any]]]:
    """Split report data into NotifyReport parts (B07.FR.03, B08.FR.03: "one or more").

    Part ``n`` goes out with ``seqNo = n`` and ``tbc = true`` on every part but the last. Each
    part holds at most ``items_per_message`` items (DeviceDataCtrlr.ItemsPerMessage[GetReport])
    and its ``reportData`` array, as compact JSON, at most ``bytes_per_message`` minus
    :data:`ENVELOPE_MARGIN_BYTES` bytes (BytesPerMessage[GetReport]). Sizes are measured on the
    snake_case items; the camelCase wire keys are never longer, so the estimate is safe. An item
    too large for the budget on its own still goes, alone in its part: nothing is lost, and the
    split always ends.

    Returns:
        The parts in order; no parts for no items.

    Raises:
        ValueError: ``items_per_message`` is below 1.
    """
    if items_per_message < 1:
        raise ValueError(f"items_per_message must be at least 1: {items_per_message}")
    budget = bytes_per_message - ENVELOPE_MARGIN_BYTES
    parts: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 2  # the brackets of the array
    for item in items:
        size = _size(item)
        extra = size + (1 if current else 0)  # a comma before every item but the first
        if current and (len(current) >= items_per_message or used + extra > budget):
            parts.append(current)
            current, used, extra = [], 2, size
        current.append(item)
        used += extra
    if current:
        parts.append(current)
    return parts


# --- the standard definitions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvseInfo:
    """What the device model needs to know about one EVSE.

    ``connector_type`` is a ConnectorEnumType value (CHAdeMO is ``cG105``, CCS2 ``cCCS2``);
    ``supply_phases`` is 0 for DC.

    Raises:
        ValueError: an id below 1, no or repeated connectors, an unknown connector type, a
            power not above 0 or phases outside 0-3.
    """

    evse_id: int
    connector_ids: tuple[int, ...]
    connector_type: str
    max_power_w: float
    supply_phases: int = 0

    def __post_init__(self) -> None:
        if self.evse_id < 1:
            raise ValueError(f"evse_id must be at least 1: {self.evse_id}")
        if not self.connector_ids or len(set(self.connector_ids)) != len(self.connector_ids):
            raise ValueError(f"EVSE {self.evse_id}: connector_ids must be distinct, not empty")
        if any(connector_id < 1 for connector_id in self.connector_ids):
            raise ValueError(f"EVSE {self.evse_id}: connector ids must be at least 1")
        if self.connector_type not in KNOWN_CONNECTOR_TYPES:
            raise ValueError(
                f"EVSE {self.evse_id}: unknown connector type {self.connector_type!r} "
                "(a ConnectorEnumType value: CHAdeMO is 'cG105', CCS2 'cCCS2')"
            )
        if not (math.isfinite(self.max_power_w) and self.max_power_w > 0):
            raise ValueError(f"EVSE {self.evse_id}: max_power_w must be above 0")
        if not 0 <= self.supply_phases <= 3:
            raise ValueError(f"EVSE {self.evse_id}: supply_phases must be 0 to 3")


@dataclass(frozen=True, slots=True)
class StationIdentity:
    """Who the station is (BootNotification ChargingStationType, SecurityCtrlr).

    ``organization_name`` is SecurityCtrlr.OrganizationName, the O of the client certificate
    (A02/A03); the CSMS may change it.
    """

    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str
    security_profile: int
    identity: str
    organization_name: str = ""


@dataclass(frozen=True, slots=True)
class CommDefaults:
    """Defaults of the communication variables, before the CSMS changes any."""

    heartbeat_interval_s: int = 300
    message_timeout_s: int = 30
    ws_ping_interval_s: int = 60
    retry_backoff_wait_minimum_s: int = 3
    retry_backoff_random_range_s: int = 10
    retry_backoff_repeat_times: int = 5
    offline_threshold_s: int = 60
    items_per_message_get_report: int = 100
    items_per_message_get_variables: int = 50
    items_per_message_set_variables: int = 50
    bytes_per_message: int = 65000
    reset_retries: int = 1
    message_attempts_transaction_event: int = 5
    message_attempt_interval_transaction_event_s: int = 30


@dataclass(frozen=True, slots=True)
class TxDefaults:
    """Defaults of the transaction variables the configuration sets (``[transactions]``)."""

    resumption_timeout_s: int = 0
    allow_energy_transfer_resumption: bool = True


#: maxLimit of LocalAuthListCtrlr.Entries and of the Storage (bytes) of the list and the cache.
LOCAL_LIST_ENTRIES_MAX = 10000
AUTH_STORAGE_MAX_B = 4_000_000

_RO = Mutability.READ_ONLY
_RW = Mutability.READ_WRITE
_INT = DataType.INTEGER
_BOOL = DataType.BOOLEAN
_STR = DataType.STRING


def _runtime(
    component: str, variable: str, data_type: DataType, default: str, **kw: Any
) -> VariableDef:
    """A ReadOnly value the station sets while running (not persistent, not constant)."""
    return VariableDef(component, variable, data_type, default=default, persistent=False, **kw)


def _constant(
    component: str, variable: str, data_type: DataType, default: str, **kw: Any
) -> VariableDef:
    """A ReadOnly value fixed by the firmware and its configuration."""
    return VariableDef(component, variable, data_type, default=default, constant=True, **kw)


def _setting(
    component: str, variable: str, data_type: DataType, default: str, **kw: Any
) -> VariableDef:
    """A ReadWrite configuration value the CSMS may change; persistent."""
    return VariableDef(component, variable, data_type, default=default, mutability=_RW, **kw)


def standard_definitions(
    *,
    evses: Sequence[EvseInfo],
    identity: StationIdentity,
    comm: CommDefaults,
    tx_defaults: TxDefaults = TxDefaults(),
) -> list[VariableDef]:
    """The device model this station supports, with documented defaults.

    Every variable marked "Required? yes" in the OCPP 2.0.1 appendix (dm_components_vars.csv)
    for the components defined here is present (Part 1 section 4.6: all required variables of an
    implemented functional block). Mutability: ReadOnly where the station cannot honour a change
    (B05.FR.08 rather than accept and ignore), ReadWrite where the CSMS may tune it.

    Raises:
        ValueError: repeated EVSE ids, or a value that does not fit its definition.
    """
    if len({evse.evse_id for evse in evses}) != len(evses):
        raise ValueError("EVSE ids must be distinct")
    defs: list[VariableDef] = []
    add = defs.append

    # DeviceDataCtrlr (B05.FR.11, B06.FR.16/17, B08.FR.17/18): fixed by configuration.
    dd = "DeviceDataCtrlr"
    per_message = {
        "GetReport": comm.items_per_message_get_report,
        "GetVariables": comm.items_per_message_get_variables,
        "SetVariables": comm.items_per_message_set_variables,
    }
    for instance, items in per_message.items():
        add(
            _constant(
                dd, "ItemsPerMessage", _INT, str(items), variable_instance=instance, min_limit=1
            )
        )
    for instance in per_message:
        add(
            _constant(
                dd,
                "BytesPerMessage",
                _INT,
                str(comm.bytes_per_message),
                variable_instance=instance,
                min_limit=1,
            )
        )

    # OCPPCommCtrlr
    oc = "OCPPCommCtrlr"
    add(
        _setting(
            oc, "HeartbeatInterval", _INT, str(comm.heartbeat_interval_s), unit="s", min_limit=1
        )
    )
    # MessageTimeout belongs to the network connection profile: not writable here.
    add(
        _constant(
            oc,
            "MessageTimeout",
            _INT,
            str(comm.message_timeout_s),
            variable_instance="Default",
            unit="s",
            min_limit=1,
        )
    )
    add(
        _setting(
            oc,
            "MessageAttempts",
            _INT,
            str(comm.message_attempts_transaction_event),
            variable_instance="TransactionEvent",
            min_limit=1,
        )
    )
    add(
        _setting(
            oc,
            "MessageAttemptInterval",
            _INT,
            str(comm.message_attempt_interval_transaction_event_s),
            variable_instance="TransactionEvent",
            unit="s",
            min_limit=0,
        )
    )
    # One network connection profile (slot 0) until SetNetworkProfile (B09) is implemented.
    add(VariableDef(oc, "NetworkConfigurationPriority", _STR, default="0"))
    add(_setting(oc, "NetworkProfileConnectionAttempts", _INT, "3", min_limit=1))
    add(
        _setting(oc, "OfflineThreshold", _INT, str(comm.offline_threshold_s), unit="s", min_limit=0)
    )
    add(_setting(oc, "ResetRetries", _INT, str(comm.reset_retries), min_limit=0))
    add(
        _setting(
            oc,
            "RetryBackOffRandomRange",
            _INT,
            str(comm.retry_backoff_random_range_s),
            unit="s",
            min_limit=0,
        )
    )
    add(
        _setting(
            oc, "RetryBackOffRepeatTimes", _INT, str(comm.retry_backoff_repeat_times), min_limit=0
        )
    )
    add(
        _setting(
            oc,
            "RetryBackOffWaitMinimum",
            _INT,
            str(comm.retry_backoff_wait_minimum_s),
            unit="s",
            min_limit=0,
        )
    )
    # 0 disables client-side pings; negative values are not allowed (appendix).
    add(
        _setting(
            oc, "WebSocketPingInterval", _INT, str(comm.ws_ping_interval_s), unit="s", min_limit=0
        )
    )
    add(
        _constant(
            oc, "FileTransferProtocols", DataType.MEMBER_LIST, "HTTPS", values_list=("HTTPS",)
        )
    )
    # DC EVSEs have captive cables: "the mutability SHALL be ReadOnly and the actual value SHALL
    # be false" (appendix, UnlockOnEVSideDisconnect).
    add(_constant(oc, "UnlockOnEVSideDisconnect", _BOOL, "false"))

    # SecurityCtrlr
    sc = "SecurityCtrlr"
    # Changes with the network profile (set_internal), never by SetVariables.
    add(
        VariableDef(
            sc,
            "SecurityProfile",
            _INT,
            default=str(identity.security_profile),
            min_limit=0,
            max_limit=3,
        )
    )
    # identifierString, at most 48 characters (EMI3 compatibility; 2.1 Part 4 section 3.1.2).
    add(_constant(sc, "Identity", _STR, identity.identity, max_limit=48))
    add(_setting(sc, "OrganizationName", _STR, identity.organization_name))
    add(_runtime(sc, "CertificateEntries", _INT, "0", min_limit=0))
    # A00.FR.205 (errata 2025-01): at least 16 characters, at most maxLimit, which must be 40 to
    # 64. WriteOnly so that a report never discloses it (B07.FR.03, B08.FR.03). Accepted, not
    # RebootRequired: the shell reconnects with the new password on the change (A01), as the
    # subscription tells it.
    add(
        VariableDef(
            sc,
            "BasicAuthPassword",
            _STR,
            mutability=Mutability.WRITE_ONLY,
            min_limit=16,
            max_limit=40,
        )
    )

    # ClockCtrlr: DateTime is filled in by the shell (set_internal); only Heartbeat time is used.
    add(_runtime("ClockCtrlr", "DateTime", DataType.DATETIME, ""))
    add(
        _setting(
            "ClockCtrlr",
            "TimeSource",
            DataType.SEQUENCE_LIST,
            "Heartbeat",
            values_list=("Heartbeat",),
        )
    )

    # ChargingStation
    cs = "ChargingStation"
    station_phases = max((evse.supply_phases for evse in evses), default=0)
    add(
        _runtime(
            cs,
            "AvailabilityState",
            DataType.OPTION_LIST,
            "Available",
            values_list=_AVAILABILITY_STATES,
        )
    )
    add(_constant(cs, "Available", _BOOL, "true"))
    add(_constant(cs, "Model", _STR, identity.model))
    add(_constant(cs, "VendorName", _STR, identity.vendor))
    add(_constant(cs, "FirmwareVersion", _STR, identity.firmware_version))
    if identity.serial_number is not None:
        add(_constant(cs, "SerialNumber", _STR, identity.serial_number))
    add(_constant(cs, "SupplyPhases", _INT, str(station_phases), min_limit=0, max_limit=3))
    add(_runtime(cs, "Problem", _BOOL, "false"))
    add(_constant(cs, "AllowReset", _BOOL, "true"))

    # EVSE and Connector tiers (Part 1 section 4.1).
    for evse in evses:
        at = {"evse_id": evse.evse_id}
        add(
            _runtime(
                "EVSE",
                "AvailabilityState",
                DataType.OPTION_LIST,
                "Available",
                values_list=_AVAILABILITY_STATES,
                **at,
            )
        )
        add(_constant("EVSE", "Available", _BOOL, "true", **at))
        # "The variableCharacteristic maxLimit, that holds the maximum power that this EVSE can
        # provide, is required" (appendix). Actual: the instantaneous power, seen from the
        # vehicle (negative while discharging); MaxSet: the rating.
        rating = _format_decimal(evse.max_power_w)
        add(
            _runtime(
                "EVSE",
                "Power",
                DataType.DECIMAL,
                "0",
                unit="W",
                max_limit=evse.max_power_w,
                attributes=(Attribute.ACTUAL, Attribute.MAX_SET),
                attribute_defaults=((Attribute.MAX_SET, rating),),
                **at,
            )
        )
        add(
            _constant(
                "EVSE",
                "SupplyPhases",
                _INT,
                str(evse.supply_phases),
                min_limit=0,
                max_limit=3,
                **at,
            )
        )
        add(_constant("EVSE", "AllowReset", _BOOL, "true", **at))
        for connector_id in evse.connector_ids:
            at_connector = {"evse_id": evse.evse_id, "connector_id": connector_id}
            add(
                _runtime(
                    "Connector",
                    "AvailabilityState",
                    DataType.OPTION_LIST,
                    "Available",
                    values_list=_AVAILABILITY_STATES,
                    **at_connector,
                )
            )
            add(_constant("Connector", "Available", _BOOL, "true", **at_connector))
            add(_constant("Connector", "ConnectorType", _STR, evse.connector_type, **at_connector))
            add(
                _constant(
                    "Connector",
                    "SupplyPhases",
                    _INT,
                    str(evse.supply_phases),
                    min_limit=0,
                    max_limit=3,
                    **at_connector,
                )
            )

    # AuthCtrlr (required variables)
    add(_setting("AuthCtrlr", "AuthorizeRemoteStart", _BOOL, "false"))
    add(_setting("AuthCtrlr", "LocalAuthorizeOffline", _BOOL, "true"))
    add(_setting("AuthCtrlr", "LocalPreAuthorize", _BOOL, "false"))

    # AuthCacheCtrlr (C10/C11): the cache persists; LifeTime counts from the CSMS's last
    # answer for the token. Storage is reported by the shell (set_internal).
    ac = "AuthCacheCtrlr"
    add(_constant(ac, "Available", _BOOL, "true"))
    add(_setting(ac, "Enabled", _BOOL, "true"))
    add(_setting(ac, "LifeTime", _INT, "86400", unit="s", min_limit=1))
    add(
        _constant(
            ac, "Policy", DataType.OPTION_LIST, "LRU", values_list=("LRU", "LFU", "FIFO", "CUSTOM")
        )
    )
    add(_runtime(ac, "Storage", _INT, "0", unit="B", min_limit=0, max_limit=AUTH_STORAGE_MAX_B))
    add(_setting(ac, "DisablePostAuthorize", _BOOL, "false"))

    # LocalAuthListCtrlr (D01/D02, required variables and the ones the station uses).
    ll = "LocalAuthListCtrlr"
    add(_constant(ll, "Available", _BOOL, "true"))
    add(_setting(ll, "Enabled", _BOOL, "true"))
    add(_runtime(ll, "Entries", _INT, "0", min_limit=0, max_limit=LOCAL_LIST_ENTRIES_MAX))
    add(_constant(ll, "ItemsPerMessage", _INT, "100", min_limit=1))
    add(_constant(ll, "BytesPerMessage", _INT, str(comm.bytes_per_message), min_limit=1))
    add(_runtime(ll, "Storage", _INT, "0", unit="B", min_limit=0, max_limit=AUTH_STORAGE_MAX_B))
    add(_setting(ll, "DisablePostAuthorize", _BOOL, "false"))

    # TxCtrlr (required variables)
    tx = "TxCtrlr"
    add(_setting(tx, "EVConnectionTimeOut", _INT, "60", unit="s", min_limit=1))
    # A captive-cable DC session cannot survive an unplug.
    add(_constant(tx, "StopTxOnEVSideDisconnect", _BOOL, "true"))
    add(_setting(tx, "StopTxOnInvalidId", _BOOL, "true"))
    # With StopTxOnInvalidId false: the energy a transaction whose id was not Accepted may still
    # take (from its start); 0 suspends it at once.
    add(_setting(tx, "MaxEnergyOnInvalidId", _INT, "0", unit="Wh", min_limit=0))
    # OCPP 2.1 (issue 3: recovered transactions are ended with PowerLoss "or resumed, as
    # configured"); 0 never resumes, as OCPP 2.0.1 has it.
    add(
        _setting(
            tx,
            "ResumptionTimeout",
            _INT,
            str(tx_defaults.resumption_timeout_s),
            unit="s",
            min_limit=0,
        )
    )
    add(
        _setting(
            tx,
            "AllowEnergyTransferResumption",
            _BOOL,
            "true" if tx_defaults.allow_energy_transfer_resumption else "false",
        )
    )
    add(
        _setting(
            tx, "TxStartPoint", DataType.MEMBER_LIST, "PowerPathClosed", values_list=_TX_POINTS
        )
    )
    add(
        _setting(
            tx,
            "TxStopPoint",
            DataType.MEMBER_LIST,
            "EVConnected,Authorized",
            values_list=_TX_POINTS,
        )
    )

    # SampledDataCtrlr (required variables); an interval of 0 sends no sampled values.
    sd = "SampledDataCtrlr"
    energy = "Energy.Active.Import.Register,Energy.Active.Export.Register"
    add(_setting(sd, "TxEndedInterval", _INT, "0", unit="s", min_limit=0))
    add(_setting(sd, "TxEndedMeasurands", DataType.MEMBER_LIST, energy, values_list=MEASURANDS))
    add(_setting(sd, "TxStartedMeasurands", DataType.MEMBER_LIST, energy, values_list=MEASURANDS))
    add(_setting(sd, "TxUpdatedInterval", _INT, "60", unit="s", min_limit=0))
    add(
        _setting(
            sd,
            "TxUpdatedMeasurands",
            DataType.MEMBER_LIST,
            energy + ",Power.Active.Import,Power.Active.Export,SoC",
            values_list=MEASURANDS,
        )
    )

    # AlignedDataCtrlr (required variables); an interval of 0 sends no clock-aligned values.
    ad = "AlignedDataCtrlr"
    add(_setting(ad, "Interval", _INT, "900", unit="s", min_limit=0))
    add(_setting(ad, "Measurands", DataType.MEMBER_LIST, energy, values_list=MEASURANDS))
    add(_setting(ad, "TxEndedInterval", _INT, "0", unit="s", min_limit=0))
    add(_setting(ad, "TxEndedMeasurands", DataType.MEMBER_LIST, "", values_list=MEASURANDS))

    # ReservationCtrlr (H01-H04): no required variable. Enabled false rejects every ReserveNow;
    # NonEvseSpecific true accepts a ReserveNow without evseId.
    add(_constant("ReservationCtrlr", "Available", _BOOL, "true"))
    add(_setting("ReservationCtrlr", "Enabled", _BOOL, "true"))
    add(_setting("ReservationCtrlr", "NonEvseSpecific", _BOOL, "true"))

    # SmartChargingCtrlr (required variables)
    sm = "SmartChargingCtrlr"
    # maxLimit: how many charging profiles the station can hold (K01: TooManyElements above).
    add(
        _runtime(
            sm,
            "Entries",
            _INT,
            "0",
            variable_instance="ChargingProfiles",
            min_limit=0,
            max_limit=48,
        )
    )
    add(
        _setting(
            sm,
            "LimitChangeSignificance",
            DataType.DECIMAL,
            "1.0",
            unit="Percent",
            min_limit=0,
            max_limit=100,
        )
    )
    # 96 periods: a day at 15-minute resolution.
    add(_constant(sm, "PeriodsPerSchedule", _INT, "96", min_limit=1))
    add(_constant(sm, "ProfileStackLevel", _INT, "10", min_limit=0))
    add(_constant(sm, "RateUnit", DataType.MEMBER_LIST, "A,W", values_list=("A", "W")))
    return defs


def _format_decimal(value: float) -> str:
    """A decimal as OCPP text: no exponent, no needless fraction."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
