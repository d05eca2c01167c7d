"""The events that drive a transaction machine: frozen dataclasses, named as nouns (h11/_events.py).

Each is something that happened at one EVSE, reported by the shell: the EV, the driver, the CSMS,
the power hardware, the meter or the clock. The machine decides what it means for the transaction
(:mod:`station.transactions.machine`); the events carry no OCPP types.

Where an event comes from, and which requirement it serves:

========================  ====================================================================
ParkingBayOccupied        bay sensor (TxPoint ParkingBayOccupancy, trigger EVDetected)
ParkingBayVacated         bay sensor (trigger EVDeparted)
CablePlugged              EV connected (TxPoint EVConnected, trigger CablePluggedIn)
CableUnplugged            EV disconnected (trigger EVCommunicationLost, reason EVDisconnected)
Authorized                token accepted locally, by Authorize, or a RequestStartTransaction
                          (``remote_start_id`` set: trigger RemoteStart, F01/F02)
Deauthorized              the CSMS answered a TransactionEvent with a non-Accepted idTokenInfo
                          and StopTxOnInvalidId is true (E05; reason DeAuthorized)
LocalStop                 the same token (or group, or MasterPass) presented again (E07, C16)
RemoteStop                RequestStopTransaction for this transaction (F03)
PowerPathClosed/Opened    contactor feedback (acknowledges ClosePowerPath / OpenPowerPath)
EnergyTransferStarted     energy is flowing (TxPoint EnergyTransfer, chargingState Charging)
EnergyTransferStopped     the EV or the EVSE stopped it (SuspendedEV / SuspendedEVSE)
DataSigned                the meter produced signed data (TxPoint DataSigned)
MeterSample               a periodic or clock-aligned reading (J01/J02)
Fault                     a fault ended the session (trigger AbnormalCondition)
ImmediateReset            Reset Immediate (B12; trigger ResetCommand, reason ImmediateReset)
ChargingRateChanged       the charging limit changed significantly (trigger ChargingRateChanged)
MessageTriggered          TriggerMessage(TransactionEvent) (F06; trigger Trigger)
Tick                      time passed (EVConnectionTimeOut)
EVConnectionTimedOut      produced by the machine from a Tick (C01.FR.26, E03; EVConnectTimeout)
========================  ====================================================================

A power loss is not an event: the machine that knew about the transaction died with the power.
On start-up the shell ends each open transaction it recovers from the store with
:func:`~station.transactions.machine.recover`.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.transactions.model import (
    IdToken,
    MeterReading,
    SampleKind,
    StoppedReason,
    Suspender,
)

__all__ = [
    "Authorized",
    "CablePlugged",
    "CableUnplugged",
    "ChargingRateChanged",
    "DataSigned",
    "Deauthorized",
    "EVConnectionTimedOut",
    "EnergyTransferStarted",
    "EnergyTransferStopped",
    "Event",
    "Fault",
    "ImmediateReset",
    "LocalStop",
    "MessageTriggered",
    "MeterSample",
    "ParkingBayOccupied",
    "ParkingBayVacated",
    "PowerPathClosed",
    "PowerPathOpened",
    "RemoteStop",
    "Tick",
]


@dataclass(frozen=True, slots=True)
class ParkingBayOccupied:
    """An object (probably an EV) is detected in the parking bay."""


@dataclass(frozen=True, slots=True)
class ParkingBayVacated:
    """The parking bay is free again."""


@dataclass(frozen=True, slots=True)
class CablePlugged:
    """The EV is connected: both ends of the cable, or the communication is established.

    ``connector_id``: the connector of the EVSE the EV is on, when the EVSE has more than one.
    """

    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class CableUnplugged:
    """The EV is no longer connected (EV side disconnect)."""


@dataclass(frozen=True, slots=True)
class Authorized:
    """A driver or EV is authorized to charge at this EVSE.

    The shell has already made the decision (local list, cache, Authorize, or a
    RequestStartTransaction with AuthorizeRemoteStart false). ``remote_start_id`` is the
    RequestStartTransaction's remoteStartId; ``group_id_token`` comes from the idTokenInfo and lets
    another token of the same group stop the session (C01.FR.03, C09).
    """

    id_token: IdToken
    group_id_token: IdToken | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None  # the reservation this authorization consumed (H03)


@dataclass(frozen=True, slots=True)
class Deauthorized:
    """The authorization was revoked (invalid, expired, blocked... token)."""


@dataclass(frozen=True, slots=True)
class LocalStop:
    """A token presented at the station ends the authorization (E07).

    The token must be the one that authorized the session, or carry its group id token (check
    with :meth:`TransactionMachine.can_stop` first), unless ``master_pass`` is set: a token of
    the MasterPassGroupId stops any session (C16; stoppedReason MasterPass).
    """

    id_token: IdToken
    group_id_token: IdToken | None = None
    master_pass: bool = False


@dataclass(frozen=True, slots=True)
class RemoteStop:
    """RequestStopTransaction for ``transaction_id``, which must be this EVSE's transaction."""

    transaction_id: str


@dataclass(frozen=True, slots=True)
class PowerPathClosed:
    """The contactors reported closed."""


@dataclass(frozen=True, slots=True)
class PowerPathOpened:
    """The contactors reported open: no energy can flow."""


@dataclass(frozen=True, slots=True)
class EnergyTransferStarted:
    """Energy flows between EV and EVSE (in either direction)."""


@dataclass(frozen=True, slots=True)
class EnergyTransferStopped:
    """Energy stopped flowing, because of the EV or the EVSE.

    ``reason`` is the stoppedReason to report if this ends the transaction (TxStopPoint
    EnergyTransfer), e.g. SOCLimitReached; without it, StoppedByEV for the EV and Other for the
    EVSE.
    """

    by: Suspender
    reason: StoppedReason | None = None


@dataclass(frozen=True, slots=True)
class DataSigned:
    """The meter produced signed data for this session."""


@dataclass(frozen=True, slots=True)
class MeterSample:
    """A meter reading the shell took for a periodic (J02) or clock-aligned (J01) sample."""

    kind: SampleKind
    reading: MeterReading


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault stopped the EVSE; the transaction ends with ``reason``.

    Typical reasons: EmergencyStop, GroundFault, OvercurrentFault, PowerQuality, Other.
    """

    reason: StoppedReason = StoppedReason.OTHER


@dataclass(frozen=True, slots=True)
class ImmediateReset:
    """ResetRequest type Immediate: end the transaction before resetting (B12.FR.04/08)."""


@dataclass(frozen=True, slots=True)
class ChargingRateChanged:
    """The charging rate limit changed by more than LimitChangeSignificance."""


@dataclass(frozen=True, slots=True)
class MessageTriggered:
    """TriggerMessage requested a TransactionEvent for this EVSE (F06)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; ``now`` is given to :meth:`TransactionMachine.receive` as for every event."""


@dataclass(frozen=True, slots=True)
class EVConnectionTimedOut:
    """The EV was not connected within EVConnectionTimeOut of the authorization."""


Event = (
    ParkingBayOccupied
    | ParkingBayVacated
    | CablePlugged
    | CableUnplugged
    | Authorized
    | Deauthorized
    | LocalStop
    | RemoteStop
    | PowerPathClosed
    | PowerPathOpened
    | EnergyTransferStarted
    | EnergyTransferStopped
    | DataSigned
    | MeterSample
    | Fault
    | ImmediateReset
    | ChargingRateChanged
    | MessageTriggered
    | Tick
    | EVConnectionTimedOut
)
"""Any event the machine takes."""
