"""Domain values of the transaction core: what goes in, what comes out, how it is configured.

Owns the vocabulary shared by the machine, the meter conversion and the shell: the OCPP enum values
the core emits (as ``StrEnum`` so that the shell's converter can pass ``.value`` straight into an
``ocpp`` payload), the id token, a meter reading, the sampled values derived from it, the
``TransactionEventOut`` message and the commands. It must not import ``ocpp`` (DESIGN.md,
"Protocol types stay at the edge") and does no I/O.

Units live in the names (STYLE.md A2.4) and power/current follow the station's sign convention
(DESIGN.md, "Sign"): positive is energy into the vehicle. Meter conversion splits that sign into
the OCPP Import/Export measurands (:mod:`station.transactions.meter`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "ChargingState",
    "ClosePowerPath",
    "Command",
    "EventType",
    "IdToken",
    "IdTokenType",
    "Location",
    "Measurand",
    "MeterReading",
    "MeterValue",
    "OpenPowerPath",
    "OpenTransaction",
    "Output",
    "ReadingContext",
    "SampleKind",
    "SampledValue",
    "SignedMeterValue",
    "StoppedReason",
    "Suspender",
    "TransactionEventOut",
    "TriggerReason",
    "TxConfig",
    "TxPoint",
    "UnlockConnector",
    "parse_measurands",
    "parse_tx_points",
    "tx_config_from_variables",
]

# OCPP 2.0.1 TransactionType.transactionId, maxLength 36 (TransactionEventRequest.json).
TRANSACTION_ID_MAX_LENGTH = 36
# IdTokenType.idToken: maxLength 36 in 2.0.1, 255 in 2.1; the shell enforces the version's limit.
ID_TOKEN_MAX_LENGTH = 255


# --- OCPP enumerations (values exactly as on the wire) --------------------------------------------


class TxPoint(StrEnum):
    """TxCtrlr.TxStartPoint / TxStopPoint values (OCPP 2.0.1 Part 2 E01; Appendices 3.1.18)."""

    PARKING_BAY_OCCUPANCY = "ParkingBayOccupancy"
    EV_CONNECTED = "EVConnected"
    AUTHORIZED = "Authorized"
    DATA_SIGNED = "DataSigned"
    POWER_PATH_CLOSED = "PowerPathClosed"
    ENERGY_TRANSFER = "EnergyTransfer"


class EventType(StrEnum):
    """TransactionEventEnumType."""

    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


class TriggerReason(StrEnum):
    """TriggerReasonEnumType (OCPP 2.0.1, and TxResumed of 2.1; the wire side writes TxResumed
    as ChargingStateChanged on an OCPP 2.0.1 connection, whose enumeration lacks it)."""

    AUTHORIZED = "Authorized"
    CABLE_PLUGGED_IN = "CablePluggedIn"
    CHARGING_RATE_CHANGED = "ChargingRateChanged"
    CHARGING_STATE_CHANGED = "ChargingStateChanged"
    DEAUTHORIZED = "Deauthorized"
    ENERGY_LIMIT_REACHED = "EnergyLimitReached"
    EV_COMMUNICATION_LOST = "EVCommunicationLost"
    EV_CONNECT_TIMEOUT = "EVConnectTimeout"
    METER_VALUE_CLOCK = "MeterValueClock"
    METER_VALUE_PERIODIC = "MeterValuePeriodic"
    TIME_LIMIT_REACHED = "TimeLimitReached"
    TRIGGER = "Trigger"
    UNLOCK_COMMAND = "UnlockCommand"
    STOP_AUTHORIZED = "StopAuthorized"
    EV_DEPARTED = "EVDeparted"
    EV_DETECTED = "EVDetected"
    REMOTE_STOP = "RemoteStop"
    REMOTE_START = "RemoteStart"
    ABNORMAL_CONDITION = "AbnormalCondition"
    SIGNED_DATA_RECEIVED = "SignedDataReceived"
    RESET_COMMAND = "ResetCommand"
    TX_RESUMED = "TxResumed"  # OCPP 2.1: a transaction resumed after a reboot or power loss


class ChargingState(StrEnum):
    """ChargingStateEnumType."""

    CHARGING = "Charging"
    EV_CONNECTED = "EVConnected"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    IDLE = "Idle"


class StoppedReason(StrEnum):
    """ReasonEnumType: why a transaction ended (transactionInfo.stoppedReason)."""

    DE_AUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    ENERGY_LIMIT_REACHED = "EnergyLimitReached"
    EV_DISCONNECTED = "EVDisconnected"
    GROUND_FAULT = "GroundFault"
    IMMEDIATE_RESET = "ImmediateReset"
    LOCAL = "Local"
    LOCAL_OUT_OF_CREDIT = "LocalOutOfCredit"
    MASTER_PASS = "MasterPass"
    OTHER = "Other"
    OVERCURRENT_FAULT = "OvercurrentFault"
    POWER_LOSS = "PowerLoss"
    POWER_QUALITY = "PowerQuality"
    REBOOT = "Reboot"
    REMOTE = "Remote"
    SOC_LIMIT_REACHED = "SOCLimitReached"
    STOPPED_BY_EV = "StoppedByEV"
    TIME_LIMIT_REACHED = "TimeLimitReached"
    TIMEOUT = "Timeout"


class IdTokenType(StrEnum):
    """IdTokenEnumType (2.0.1) plus the 2.1 IdTokenEnumStringType additions."""

    CENTRAL = "Central"
    EMAID = "eMAID"
    ISO14443 = "ISO14443"
    ISO15693 = "ISO15693"
    KEY_CODE = "KeyCode"
    LOCAL = "Local"
    MAC_ADDRESS = "MacAddress"
    NO_AUTHORIZATION = "NoAuthorization"
    DIRECT_PAYMENT = "DirectPayment"  # 2.1
    EVCCID = "EVCCID"  # 2.1
    VIN = "VIN"  # 2.1


class Measurand(StrEnum):
    """The MeasurandEnumType values this station can derive from a :class:`MeterReading`.

    A superset of ``station.ocpp.devicemodel.MEASURANDS`` (which is what the device model offers
    in the SampledDataCtrlr/AlignedDataCtrlr valuesList), plus Frequency for AC/grid meters.
    """

    ENERGY_ACTIVE_IMPORT_REGISTER = "Energy.Active.Import.Register"
    ENERGY_ACTIVE_EXPORT_REGISTER = "Energy.Active.Export.Register"
    POWER_ACTIVE_IMPORT = "Power.Active.Import"
    POWER_ACTIVE_EXPORT = "Power.Active.Export"
    POWER_OFFERED = "Power.Offered"
    CURRENT_IMPORT = "Current.Import"
    CURRENT_EXPORT = "Current.Export"
    CURRENT_OFFERED = "Current.Offered"
    VOLTAGE = "Voltage"
    SOC = "SoC"
    FREQUENCY = "Frequency"


class ReadingContext(StrEnum):
    """ReadingContextEnumType."""

    INTERRUPTION_BEGIN = "Interruption.Begin"
    INTERRUPTION_END = "Interruption.End"
    OTHER = "Other"
    SAMPLE_CLOCK = "Sample.Clock"
    SAMPLE_PERIODIC = "Sample.Periodic"
    TRANSACTION_BEGIN = "Transaction.Begin"
    TRANSACTION_END = "Transaction.End"
    TRIGGER = "Trigger"


class Location(StrEnum):
    """LocationEnumType (2.1 adds Upstream)."""

    BODY = "Body"
    CABLE = "Cable"
    EV = "EV"
    INLET = "Inlet"
    OUTLET = "Outlet"


class SampleKind(StrEnum):
    """Why the shell took a :class:`~station.transactions.events.MeterSample`."""

    PERIODIC = "periodic"  # every SampledDataCtrlr.TxUpdatedInterval from the start (J02)
    CLOCK = "clock"  # at an AlignedDataCtrlr.Interval boundary (J01)


class Suspender(StrEnum):
    """Who stopped the energy transfer (ChargingState SuspendedEV / SuspendedEVSE)."""

    EV = "EV"
    EVSE = "EVSE"


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdToken:
    """IdTokenType: an identifier and its type (additionalInfo is the shell's business).

    Raises:
        ValueError: an empty id for a type other than NoAuthorization (whose id "SHALL be left
            empty"), or an id longer than 255 characters.
    """

    id_token: str
    type: IdTokenType

    def __post_init__(self) -> None:
        if not self.id_token and self.type is not IdTokenType.NO_AUTHORIZATION:
            raise ValueError(f"empty idToken of type {self.type}")
        if len(self.id_token) > ID_TOKEN_MAX_LENGTH:
            raise ValueError(f"idToken longer than {ID_TOKEN_MAX_LENGTH} characters")

    def matches(self, other: IdToken) -> bool:
        """C01.FR.25: equal idToken and type; the idToken is case insensitive (IdTokenType)."""
        return self.type == other.type and self.id_token.casefold() == other.id_token.casefold()


@dataclass(frozen=True, slots=True)
class SignedMeterValue:
    """SignedMeterValueType for one measurand of a reading (e.g. an OCMF blob from the meter)."""

    measurand: Measurand
    signed_meter_data: str  # base64, as the meter produced it
    signing_method: str
    encoding_method: str
    public_key: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterReading:
    """One reading of the EVSE's meter, all values taken at ``timestamp``.

    ``power_w`` and ``current_a`` are signed as seen from the vehicle (DESIGN.md): positive while
    charging, negative while discharging. The two energy registers only ever count up: import is
    energy delivered to the vehicle, export energy taken from it (billed separately). ``None``
    means the meter does not measure that quantity; such measurands are left out of the sampled
    values.

    Raises:
        ValueError: a naive timestamp, a non-finite value, a negative register, a state of charge
            outside 0..100, a signed value for a measurand twice.
    """

    timestamp: datetime
    energy_import_wh: float
    energy_export_wh: float
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc_pct: float | None = None
    frequency_hz: float | None = None
    power_offered_w: float | None = None
    current_offered_a: float | None = None
    signed: tuple[SignedMeterValue, ...] = ()

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise ValueError("MeterReading.timestamp must be timezone-aware (UTC)")
        for name in (
            "energy_import_wh",
            "energy_export_wh",
            "power_w",
            "current_a",
            "voltage_v",
            "soc_pct",
            "frequency_hz",
            "power_offered_w",
            "current_offered_a",
        ):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"MeterReading.{name} is not a finite number: {value!r}")
        if self.energy_import_wh < 0 or self.energy_export_wh < 0:
            raise ValueError("MeterReading energy registers cannot be negative")
        if self.soc_pct is not None and not 0 <= self.soc_pct <= 100:
            raise ValueError(f"MeterReading.soc_pct outside 0..100: {self.soc_pct}")
        measurands = [s.measurand for s in self.signed]
        if len(measurands) != len(set(measurands)):
            raise ValueError("MeterReading.signed holds two signed values for one measurand")

    def signed_for(self, measurand: Measurand) -> SignedMeterValue | None:
        """The meter's signature over ``measurand`` in this reading, if it gave one."""
        for signed in self.signed:
            if signed.measurand is measurand:
                return signed
        return None


# --- sampled values (SampledValueType / MeterValueType, in domain form) -------------------------


@dataclass(frozen=True, slots=True)
class SampledValue:
    """One SampledValueType. ``phase`` None: an overall value (PhaseEnumType description)."""

    value: float
    measurand: Measurand
    context: ReadingContext
    unit: str  # from the Standardized Units of Measure (Part 2 Appendices)
    location: Location
    phase: str | None = None
    signed_meter_value: SignedMeterValue | None = None


@dataclass(frozen=True, slots=True)
class MeterValue:
    """MeterValueType: sampled values taken at the same moment."""

    timestamp: datetime
    sampled_values: tuple[SampledValue, ...]


# --- configuration ----------------------------------------------------------------------------


def parse_tx_points(text: str) -> frozenset[TxPoint]:
    """A TxStartPoint/TxStopPoint MemberList (comma separated) as a set of points.

    Raises:
        ValueError: an unknown point; the message names it.
    """
    points: set[TxPoint] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            points.add(TxPoint(item))
        except ValueError:
            raise ValueError(f"unknown transaction start/stop point: {item!r}") from None
    return frozenset(points)


def parse_measurands(text: str) -> tuple[Measurand, ...]:
    """A measurand MemberList (comma separated), in order, without duplicates.

    Raises:
        ValueError: a measurand this station cannot report; the message names it.
    """
    result: list[Measurand] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            measurand = Measurand(item)
        except ValueError:
            raise ValueError(f"unsupported measurand: {item!r}") from None
        if measurand not in result:
            result.append(measurand)
    return tuple(result)


def _points(values: Iterable[TxPoint]) -> frozenset[TxPoint]:
    return frozenset(values)


def _measurands(values: Iterable[Measurand]) -> tuple[Measurand, ...]:
    return tuple(dict.fromkeys(values))


_DEFAULT_ENERGY = (Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, Measurand.ENERGY_ACTIVE_EXPORT_REGISTER)


@dataclass(frozen=True, slots=True)
class TxConfig:
    """The TxCtrlr, SampledDataCtrlr and AlignedDataCtrlr variables the machine obeys.

    The defaults are those of ``station.ocpp.devicemodel`` (TxStartPoint PowerPathClosed,
    TxStopPoint EVConnected,Authorized). The shell builds a new one when the CSMS changes a
    variable and assigns it to :attr:`TransactionMachine.config`; a change of start/stop points
    applies from the next event on.

    TxCtrlr.StopTxOnEVSideDisconnect is a constant ``true`` in this station's device model (a
    captive-cable DC session cannot survive an unplug), so the machine implements only that value.
    StopTxOnInvalidId is applied by the shell, which decides whether a non-Accepted idTokenInfo
    becomes a :class:`~station.transactions.events.Deauthorized` event.

    Raises:
        ValueError: an empty set of start or stop points, a negative interval or timeout, a
            number of phases outside 1..3.
    """

    tx_start_points: AbstractSet[TxPoint] = frozenset({TxPoint.POWER_PATH_CLOSED})
    tx_stop_points: AbstractSet[TxPoint] = frozenset({TxPoint.EV_CONNECTED, TxPoint.AUTHORIZED})
    ev_connection_timeout_s: float = 60.0
    tx_started_measurands: Sequence[Measurand] = _DEFAULT_ENERGY
    tx_updated_measurands: Sequence[Measurand] = (
        *_DEFAULT_ENERGY,
        Measurand.POWER_ACTIVE_IMPORT,
        Measurand.POWER_ACTIVE_EXPORT,
        Measurand.SOC,
    )
    tx_ended_measurands: Sequence[Measurand] = _DEFAULT_ENERGY
    tx_ended_interval_s: float = 0.0  # SampledDataCtrlr.TxEndedInterval; 0: only Transaction.End
    aligned_measurands: Sequence[Measurand] = _DEFAULT_ENERGY  # AlignedDataCtrlr.Measurands
    aligned_tx_ended_measurands: Sequence[Measurand] = ()
    aligned_tx_ended_interval_s: float = 0.0
    number_of_phases_used: int | None = None  # None: not reported (a DC EVSE)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tx_start_points", _points(self.tx_start_points))
        object.__setattr__(self, "tx_stop_points", _points(self.tx_stop_points))
        for name in (
            "tx_started_measurands",
            "tx_updated_measurands",
            "tx_ended_measurands",
            "aligned_measurands",
            "aligned_tx_ended_measurands",
        ):
            object.__setattr__(self, name, _measurands(getattr(self, name)))
        if not self.tx_start_points:
            raise ValueError("TxStartPoint is empty: no transaction could ever start")
        if not self.tx_stop_points:
            raise ValueError("TxStopPoint is empty: no transaction could ever end normally")
        for name in (
            "ev_connection_timeout_s",
            "tx_ended_interval_s",
            "aligned_tx_ended_interval_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"TxConfig.{name} cannot be negative")
        if self.number_of_phases_used is not None and not 1 <= self.number_of_phases_used <= 3:
            raise ValueError("TxConfig.number_of_phases_used must be 1, 2 or 3")


_VARIABLES: Final[dict[str, tuple[str, str]]] = {
    "tx_start_points": ("TxCtrlr", "TxStartPoint"),
    "tx_stop_points": ("TxCtrlr", "TxStopPoint"),
    "ev_connection_timeout_s": ("TxCtrlr", "EVConnectionTimeOut"),
    "tx_started_measurands": ("SampledDataCtrlr", "TxStartedMeasurands"),
    "tx_updated_measurands": ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "tx_ended_measurands": ("SampledDataCtrlr", "TxEndedMeasurands"),
    "tx_ended_interval_s": ("SampledDataCtrlr", "TxEndedInterval"),
    "aligned_measurands": ("AlignedDataCtrlr", "Measurands"),
    "aligned_tx_ended_measurands": ("AlignedDataCtrlr", "TxEndedMeasurands"),
    "aligned_tx_ended_interval_s": ("AlignedDataCtrlr", "TxEndedInterval"),
}


def tx_config_from_variables(
    values: Mapping[tuple[str, str], str], *, number_of_phases_used: int | None = None
) -> TxConfig:
    """A :class:`TxConfig` from device-model values keyed by ``(component, variable)``.

    The keys are those of the standardized components (e.g. ``("TxCtrlr", "TxStartPoint")``);
    a missing key keeps the default. Values are the variables' Actual text.

    Raises:
        ValueError: a value that does not parse; the message names the variable.
    """
    changes: dict[str, Any] = {}  # values of the field types, parsed above
    for name, key in _VARIABLES.items():
        text = values.get(key)
        if text is None:
            continue
        try:
            if name.endswith("_points"):
                changes[name] = parse_tx_points(text)
            elif name.endswith("_measurands"):
                changes[name] = parse_measurands(text)
            else:
                changes[name] = float(text)
        except ValueError as exc:
            raise ValueError(f"{key[0]}.{key[1]}: {exc}") from None
    try:
        return replace(TxConfig(), number_of_phases_used=number_of_phases_used, **changes)
    except ValueError as exc:
        raise ValueError(f"transaction configuration: {exc}") from None


# --- outputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionEventOut:
    """One TransactionEventRequest, in domain form, ready for the store and then the CSMS.

    ``offline`` is False here: the shell sets it (``dataclasses.replace``) when it generates the
    event while the CSMS link is down. ``charging_state`` is None when it did not change since the
    previous event of the transaction ("required when state has changed"); the Started event
    always carries it. ``id_token`` and ``remote_start_id`` are set on the event that reports the
    authorization (C01/F01/F02), and on StopAuthorized the token that stopped it (E07).
    """

    event_type: EventType
    timestamp: datetime
    trigger_reason: TriggerReason
    seq_no: int
    transaction_id: str
    evse_id: int
    connector_id: int
    charging_state: ChargingState | None = None
    stopped_reason: StoppedReason | None = None
    id_token: IdToken | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None  # reported with the authorization that consumed it (H03)
    number_of_phases_used: int | None = None
    meter_values: tuple[MeterValue, ...] = ()
    offline: bool = False


@dataclass(frozen=True, slots=True)
class ClosePowerPath:
    """Close the power path (contactors) of the EVSE: the session may transfer energy."""

    evse_id: int


@dataclass(frozen=True, slots=True)
class OpenPowerPath:
    """Stop the energy transfer and open the power path of the EVSE."""

    evse_id: int


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    """Release the connector lock so the driver can unplug (E07 step 2, F03)."""

    evse_id: int
    connector_id: int


Command = ClosePowerPath | OpenPowerPath | UnlockConnector
Output = TransactionEventOut | ClosePowerPath | OpenPowerPath | UnlockConnector


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """What the shell persists beside each TransactionEvent so that a transaction survives a crash.

    :func:`~station.transactions.machine.recover` ends it after a power loss, or
    :meth:`~station.transactions.machine.TransactionMachine.resume` takes it over again;
    ``next_seq_no`` is the seqNo its next event must carry. ``id_token`` / ``group_id_token``
    are the session's authorization (None while it has none); ``alive_at`` is the last time the
    store knew the station was running this transaction (set by the store, not the machine).
    """

    transaction_id: str
    evse_id: int
    connector_id: int
    started_at: datetime
    next_seq_no: int
    last_reading: MeterReading | None = None
    ended_measurands: tuple[Measurand, ...] = field(default=_DEFAULT_ENERGY)
    id_token: IdToken | None = None
    group_id_token: IdToken | None = None
    alive_at: datetime | None = None
