"""One transaction state machine per EVSE: a pure core (sans-IO, like h11/_state.py).

It owns the life of the EVSE's sessions and transactions: which events are valid now, when a
transaction starts and ends (TxCtrlr.TxStartPoint / TxStopPoint), what each TransactionEvent
reports (eventType, seqNo, triggerReason, chargingState, stoppedReason, idToken, meterValues) and
which commands the power layer must carry out (close/open the power path, unlock the connector).
It must not do I/O, sleep, read a clock, log, or import ``ocpp``: the shell passes ``now``, the
meter readings and a transaction id factory in, persists what comes out, and sends it.

Theory of operation
-------------------

**Rule 1: event-triggered transitions are data.** :data:`TRANSITIONS` maps each state to the event
types it accepts and the state they lead to. An event type missing from a state's row raises
:class:`~station.transactions.errors.LocalTransactionError`; after any exception the machine is
``ERROR`` and refuses all input (h11 "Rule 1" and ``_process_error``; STYLE.md A2.2). The session
states encode the physical facts the transaction points are made of:

=============  ===========  ==========  =========================================================
state          EV           authorized  meaning
=============  ===========  ==========  =========================================================
AVAILABLE      no           no          nothing going on (a transaction may be held by the bay)
AUTHORIZED     no           yes         waiting for the EV, EVConnectionTimeOut running
CONNECTED      yes          no          waiting for an authorization
READY          yes          yes         power path commanded closed, no energy yet
CHARGING       yes          yes         energy flows
SUSPENDED      yes          yes         power path closed, the EV or the EVSE stopped the flow
STOPPING       yes          no          authorization ended while energy flowed; winding down
FINISHED       yes          no          session over; waiting for the EV to leave
=============  ===========  ==========  =========================================================

**Rule 2: transactions follow the points.** After each transition the machine computes which
TxPoints hold (:data:`POINTS`, plus the bay sensor and DataSigned flags) and compares them with
those that held before. OCPP 2.0.1 Part 2 Appendices 3.1.18 (TxCtrlr):

- TxStartPoint: "When any event in the given list occurs, the Charging Station SHALL start a
  transaction ... Which ever comes first will then cause a transaction to be started." So a
  transaction starts when a configured start point *becomes* true while none is open.
- TxStopPoint: "When any event in the given list is no longer valid, the Charging Station SHALL
  end the transaction." So it ends when any configured stop point *stops* being true.

PowerPathClosed is, by its definition in Part 2 (E01, "This event is the logical AND of
EVConnected and Authorized"), the moment both hold; the machine commands
:class:`ClosePowerPath` at that moment, after the Started event when PowerPathClosed is the start
point (errata 2025-01 §2.18, Figure 1: Started, then "start energy offer"). The PowerPathClosed /
PowerPathOpened *events* are the contactor feedback and only acknowledge the commands.
EnergyTransfer holds while energy flows (CHARGING, and STOPPING until the flow has stopped, which is
what gives errata §2.20 Figure 56 its Updated(StopAuthorized) then Ended(ChargingStateChanged)).
DataSigned holds from the meter's signed data until the EV leaves or the transaction ends.

Further rules, each a decision where the spec leaves room:

- **StopTxOnEVSideDisconnect = true** (a constant of this station's device model): an unplug ends
  the authorization and the transaction (reason EVDisconnected, trigger EVCommunicationLost, as in
  TC_E_17_CS), except that a configured ParkingBayOccupancy stop point holds the transaction
  until the bay is vacated (Figure 56: Updated(EVCommunicationLost), then Ended(EVDeparted)).
- **EVConnectionTimeOut** ends the authorization (C01.FR.26) and the transaction it started
  (trigger EVConnectTimeout, reason Timeout), or, with the bay holding it, reports Updated
  (TC_E_39_CS: "Updated if TxStartPoint is ParkingBayOccupancy, else Ended").
- **StopTxOnInvalidId = false** (the shell calls :meth:`TransactionMachine.limit_energy` when
  the CSMS answered a TransactionEvent with a non-Accepted idTokenInfo): the transaction goes
  on, but the energy into the vehicle since its start is capped at TxCtrlr.MaxEnergyOnInvalidId
  ("Maximum amount of energy in Wh delivered when an identifier is deauthorized by the CSMS
  after start of a transaction", Part 2 Appendices 3.1.18), at once without one. Once the
  import register reaches the cap, the machine opens the power path and processes
  ``EnergyTransferStopped(EVSE, DeAuthorized)``: chargingState SuspendedEVSE (trigger
  ChargingStateChanged), or the end of the transaction where EnergyTransfer is a stop point.
  The power path stays open until the transaction ends. The cap is checked at every reading the
  shell passes in (:attr:`TransactionMachine.watching_energy` says when to pass one).
- **Faults and an immediate reset** always end the transaction (AbnormalCondition / ResetCommand
  with ImmediateReset, B12.FR.04/08 as in errata §2.11).
- **A transaction also ends when no point holds any more**: nothing is left that could make a
  stop point fall, so without this rule it could never end.
- **stoppedReason is the first cause** ("the reason/event that initiated the process of stopping
  the transaction", ReasonEnumType in the 2.1 schema): a local stop followed by an unplug ends with
  Local (Figure 56), not EVDisconnected. A fault or reset overrides it.
- **Authorization ends with the transaction** (errata §2.12: "authorization ... ends when ... the
  transaction ends"): :data:`AFTER_END` moves an authorized state to its unauthorized twin, which
  also opens the power path.
- **No energy outside a transaction.** If the power path is about to close and no transaction is
  open, one starts now, unless EnergyTransfer is a start point, in which case it starts with the
  energy flow at the latest. Appendices 3.1.18 advise putting "all events that should be part of a
  transaction in the list, in case the start event never occurs"; this machine enforces it.
- **No new transaction in STOPPING or FINISHED**: the EV must leave first; these states refuse
  Authorized, so the shell rejects a RequestStartTransaction there.
- **idToken is reported once** per authorization: in the Started event if the driver was
  authorized before the start, else in the Updated event with trigger Authorized/RemoteStart
  (errata §2.12); the StopAuthorized event carries the token that stopped it (Figure 56).
- **chargingState** is sent in Started and whenever it changed since the previous event ("is
  required when state has changed"); Idle while no EV is connected.
- Meter values: TxStartedMeasurands (Transaction.Begin) in Started; TxUpdatedMeasurands
  (Sample.Periodic) or AlignedDataCtrlr.Measurands (Sample.Clock) in Updated for a MeterSample;
  in Ended, TxEndedMeasurands sampled every TxEndedInterval (Sample.Periodic) and
  AlignedDataCtrlr.TxEndedMeasurands every AlignedDataCtrlr.TxEndedInterval (Sample.Clock), then
  TxEndedMeasurands at Transaction.End. An energy register that goes backwards is the meter's
  fault (:class:`~station.transactions.errors.RemoteTransactionError`).

Outputs come in a safe order: ``OpenPowerPath`` first (energy stops before anything else), then
TransactionEvents (the shell commits them before acting further), then ``UnlockConnector``, and
``ClosePowerPath`` last, so that a Started event is on its way before energy can flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

from station.transactions.errors import LocalTransactionError, RemoteTransactionError
from station.transactions.events import (
    Authorized,
    CablePlugged,
    CableUnplugged,
    ChargingRateChanged,
    DataSigned,
    Deauthorized,
    EnergyTransferStarted,
    EnergyTransferStopped,
    EVConnectionTimedOut,
    Event,
    Fault,
    ImmediateReset,
    LocalStop,
    MessageTriggered,
    MeterSample,
    ParkingBayOccupied,
    ParkingBayVacated,
    PowerPathClosed,
    PowerPathOpened,
    RemoteStop,
    Tick,
)
from station.transactions.meter import meter_value
from station.transactions.model import (
    TRANSACTION_ID_MAX_LENGTH,
    ChargingState,
    ClosePowerPath,
    EventType,
    IdToken,
    Measurand,
    MeterReading,
    MeterValue,
    OpenPowerPath,
    OpenTransaction,
    Output,
    ReadingContext,
    SampleKind,
    StoppedReason,
    Suspender,
    TransactionEventOut,
    TriggerReason,
    TxConfig,
    TxPoint,
    UnlockConnector,
)

__all__ = [
    "AFTER_END",
    "POINTS",
    "TRANSITIONS",
    "State",
    "TransactionMachine",
    "abort",
    "next_aligned",
    "recover",
    "resumption_refusal",
]


class State(Enum):
    """The session state of one EVSE (see the table in the module docstring)."""

    AVAILABLE = "AVAILABLE"
    AUTHORIZED = "AUTHORIZED"
    CONNECTED = "CONNECTED"
    READY = "READY"
    CHARGING = "CHARGING"
    SUSPENDED = "SUSPENDED"
    STOPPING = "STOPPING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"


_S = State

# Events that every live state accepts and that never change the session state by themselves:
# sensors, meter, clock, contactor feedback, and the CSMS's stops and rate changes (whose effect,
# if any, the state-specific rows below spell out).
_ANYWHERE: Final[tuple[type[Event], ...]] = (
    Tick,
    MeterSample,
    ParkingBayOccupied,
    ParkingBayVacated,
    DataSigned,
    PowerPathClosed,
    PowerPathOpened,
    ChargingRateChanged,
    MessageTriggered,
    Deauthorized,
    RemoteStop,
    EnergyTransferStopped,
    Fault,
    ImmediateReset,
)


def _row(state: State, changes: Mapping[type[Event], State]) -> dict[type[Event], State]:
    row: dict[type[Event], State] = dict.fromkeys(_ANYWHERE, state)
    row.update(changes)
    return row


TRANSITIONS: Final[dict[State, dict[type[Event], State]]] = {
    _S.AVAILABLE: _row(
        _S.AVAILABLE,
        {CablePlugged: _S.CONNECTED, Authorized: _S.AUTHORIZED},
    ),
    _S.AUTHORIZED: _row(
        _S.AUTHORIZED,
        {
            CablePlugged: _S.READY,
            LocalStop: _S.AVAILABLE,
            Deauthorized: _S.AVAILABLE,
            RemoteStop: _S.AVAILABLE,
            EVConnectionTimedOut: _S.AVAILABLE,
            Fault: _S.AVAILABLE,
            ImmediateReset: _S.AVAILABLE,
        },
    ),
    _S.CONNECTED: _row(
        _S.CONNECTED,
        {
            CableUnplugged: _S.AVAILABLE,
            Authorized: _S.READY,
            RemoteStop: _S.FINISHED,
            Fault: _S.FINISHED,
            ImmediateReset: _S.FINISHED,
        },
    ),
    _S.READY: _row(
        _S.READY,
        {
            CableUnplugged: _S.AVAILABLE,
            LocalStop: _S.FINISHED,
            Deauthorized: _S.FINISHED,
            RemoteStop: _S.FINISHED,
            EnergyTransferStarted: _S.CHARGING,
            EnergyTransferStopped: _S.SUSPENDED,
            Fault: _S.FINISHED,
            ImmediateReset: _S.FINISHED,
        },
    ),
    _S.CHARGING: _row(
        _S.CHARGING,
        {
            CableUnplugged: _S.AVAILABLE,
            LocalStop: _S.STOPPING,
            Deauthorized: _S.STOPPING,
            RemoteStop: _S.STOPPING,
            EnergyTransferStopped: _S.SUSPENDED,
            Fault: _S.FINISHED,
            ImmediateReset: _S.FINISHED,
        },
    ),
    _S.SUSPENDED: _row(
        _S.SUSPENDED,
        {
            CableUnplugged: _S.AVAILABLE,
            LocalStop: _S.FINISHED,
            Deauthorized: _S.FINISHED,
            RemoteStop: _S.FINISHED,
            EnergyTransferStarted: _S.CHARGING,
            Fault: _S.FINISHED,
            ImmediateReset: _S.FINISHED,
        },
    ),
    _S.STOPPING: _row(
        _S.STOPPING,
        {
            CableUnplugged: _S.AVAILABLE,
            EnergyTransferStopped: _S.FINISHED,
            PowerPathOpened: _S.FINISHED,
            Fault: _S.FINISHED,
            ImmediateReset: _S.FINISHED,
        },
    ),
    _S.FINISHED: _row(
        _S.FINISHED,
        {
            CableUnplugged: _S.AVAILABLE,
            # Energy reported flowing after OpenPowerPath (a stop that overtook the start):
            # physically this is STOPPING until the flow is reported stopped.
            EnergyTransferStarted: _S.STOPPING,
        },
    ),
    _S.ERROR: {},
}
"""Rule 1: ``TRANSITIONS[state][type(event)]`` is the next state; a missing key is an error."""

_P = TxPoint

POINTS: Final[dict[State, frozenset[TxPoint]]] = {
    _S.AVAILABLE: frozenset(),
    _S.AUTHORIZED: frozenset({_P.AUTHORIZED}),
    _S.CONNECTED: frozenset({_P.EV_CONNECTED}),
    _S.READY: frozenset({_P.EV_CONNECTED, _P.AUTHORIZED, _P.POWER_PATH_CLOSED}),
    _S.CHARGING: frozenset(
        {_P.EV_CONNECTED, _P.AUTHORIZED, _P.POWER_PATH_CLOSED, _P.ENERGY_TRANSFER}
    ),
    _S.SUSPENDED: frozenset({_P.EV_CONNECTED, _P.AUTHORIZED, _P.POWER_PATH_CLOSED}),
    _S.STOPPING: frozenset({_P.EV_CONNECTED, _P.ENERGY_TRANSFER}),
    _S.FINISHED: frozenset({_P.EV_CONNECTED}),
    _S.ERROR: frozenset(),
}
"""The TxPoints each state makes true (ParkingBayOccupancy and DataSigned are flags)."""

AFTER_END: Final[dict[State, State]] = {
    _S.AUTHORIZED: _S.AVAILABLE,
    _S.CONNECTED: _S.FINISHED,
    _S.READY: _S.FINISHED,
    _S.CHARGING: _S.STOPPING,
    _S.SUSPENDED: _S.FINISHED,
}
"""Rule 2b: where a state goes when its transaction ends (the authorization ends with it)."""

_AUTHORIZED_STATES: Final = frozenset(s for s, p in POINTS.items() if _P.AUTHORIZED in p)
_POWER_PATH_STATES: Final = frozenset({_S.READY, _S.CHARGING, _S.SUSPENDED})
_NO_NEW_TRANSACTION: Final = frozenset({_S.STOPPING, _S.FINISHED, _S.ERROR})

_CHARGING_STATES: Final[dict[State, ChargingState]] = {
    _S.AVAILABLE: ChargingState.IDLE,
    _S.AUTHORIZED: ChargingState.IDLE,
    _S.CONNECTED: ChargingState.EV_CONNECTED,
    _S.READY: ChargingState.EV_CONNECTED,
    _S.CHARGING: ChargingState.CHARGING,
    _S.STOPPING: ChargingState.CHARGING,
    _S.FINISHED: ChargingState.EV_CONNECTED,
}

_T = TriggerReason

_TRIGGERS: Final[dict[type[Event], TriggerReason]] = {
    ParkingBayOccupied: _T.EV_DETECTED,
    ParkingBayVacated: _T.EV_DEPARTED,
    CablePlugged: _T.CABLE_PLUGGED_IN,
    CableUnplugged: _T.EV_COMMUNICATION_LOST,
    Authorized: _T.AUTHORIZED,  # RemoteStart when it carries a remoteStartId
    Deauthorized: _T.DEAUTHORIZED,
    LocalStop: _T.STOP_AUTHORIZED,
    RemoteStop: _T.REMOTE_STOP,
    PowerPathClosed: _T.CHARGING_STATE_CHANGED,
    PowerPathOpened: _T.CHARGING_STATE_CHANGED,
    EnergyTransferStarted: _T.CHARGING_STATE_CHANGED,
    EnergyTransferStopped: _T.CHARGING_STATE_CHANGED,
    DataSigned: _T.SIGNED_DATA_RECEIVED,
    MeterSample: _T.METER_VALUE_PERIODIC,  # MeterValueClock for a clock-aligned sample
    Fault: _T.ABNORMAL_CONDITION,
    ImmediateReset: _T.RESET_COMMAND,
    ChargingRateChanged: _T.CHARGING_RATE_CHANGED,
    MessageTriggered: _T.TRIGGER,
    Tick: _T.EV_CONNECT_TIMEOUT,  # never reported: a Tick only matters as EVConnectionTimedOut
    EVConnectionTimedOut: _T.EV_CONNECT_TIMEOUT,
}
"""The triggerReason of the TransactionEvent an event causes."""

# Events reported in an Updated event whenever a transaction is open (others only when the
# chargingState changed). Deauthorized and MeterSample have conditions of their own.
_ALWAYS_REPORTED: Final[frozenset[type[Event]]] = frozenset(
    {
        CablePlugged,
        CableUnplugged,
        Authorized,
        LocalStop,
        RemoteStop,
        ChargingRateChanged,
        MessageTriggered,
        EVConnectionTimedOut,
    }
)

# Events that may start the stopping of a transaction (the first one is its stoppedReason).
_STOP_CAUSES: Final[frozenset[type[Event]]] = frozenset(
    {CableUnplugged, EVConnectionTimedOut, LocalStop, RemoteStop, Deauthorized}
)


@dataclass(slots=True)
class _Authorization:
    id_token: IdToken
    group_id_token: IdToken | None
    remote_start_id: int | None
    since: datetime
    reported: bool = False
    reservation_id: int | None = None


@dataclass(slots=True)
class _Transaction:
    transaction_id: str
    started_at: datetime
    next_seq_no: int = 0
    reported_state: ChargingState | None = None
    stop_reason: StoppedReason | None = None
    ended_samples: list[MeterValue] = field(default_factory=list)
    next_ended_sample_at: datetime | None = None
    next_aligned_ended_at: datetime | None = None
    begin_import_wh: float | None = None  # the import register at the start, if read
    energy_cap_wh: float | None = None  # StopTxOnInvalidId false: the import register's cap
    energy_held: bool = False  # the cap was reached: power path opened, SuspendedEVSE


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise LocalTransactionError("now must be a timezone-aware UTC datetime")


def next_aligned(after: datetime, interval_s: float) -> datetime:
    """The first multiple of ``interval_s`` (counted from the epoch, so from UTC midnight when it
    divides a day; J01 clock-aligned: 900 s gives :00, :15, :30, :45) strictly after ``after``.

    Raises:
        ZeroDivisionError: ``interval_s`` is 0 (no clock-aligned data: do not ask).
    """
    seconds = after.timestamp()
    return datetime.fromtimestamp((math.floor(seconds / interval_s) + 1) * interval_s, tz=UTC)


class TransactionMachine:
    """The transaction state machine of one EVSE.

    Args:
        evse_id: the EVSE this machine runs (EVSEType.id, > 0).
        new_transaction_id: returns a new, unique transaction id of 1 to 36 characters each time
            it is called (injected, STYLE.md A2.5; e.g. ``lambda: str(uuid.uuid4())``).
        config: the TxCtrlr/SampledDataCtrlr/AlignedDataCtrlr settings; replace
            :attr:`config` when the CSMS changes them.
        connector_id: the connector reported until a :class:`CablePlugged` names another.

    Raises:
        ValueError: an EVSE or connector id below 1.
    """

    def __init__(
        self,
        evse_id: int,
        new_transaction_id: Callable[[], str],
        config: TxConfig | None = None,
        *,
        connector_id: int = 1,
    ) -> None:
        if evse_id < 1 or connector_id < 1:
            raise ValueError("evse_id and connector_id start at 1")
        self.evse_id = evse_id
        self.connector_id = connector_id
        self.config = config if config is not None else TxConfig()
        self._new_transaction_id = new_transaction_id
        self._state = State.AVAILABLE
        self._auth: _Authorization | None = None
        self._tx: _Transaction | None = None
        self._bay_occupied = False
        self._data_signed = False
        self._suspended_by = Suspender.EV
        self._power_path_closed = False
        self._last_reading: MeterReading | None = None

    # --- what the shell may ask ------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def transaction_id(self) -> str | None:
        """The open transaction's id, or None."""
        return self._tx.transaction_id if self._tx is not None else None

    @property
    def open_transaction(self) -> OpenTransaction | None:
        """What to persist so that :func:`recover` can end the transaction after a power loss.

        Still readable after the machine went to ``ERROR`` (use :func:`abort` then).
        """
        if self._tx is None:
            return None
        return OpenTransaction(
            transaction_id=self._tx.transaction_id,
            evse_id=self.evse_id,
            connector_id=self.connector_id,
            started_at=self._tx.started_at,
            next_seq_no=self._tx.next_seq_no,
            last_reading=self._last_reading,
            ended_measurands=tuple(self.config.tx_ended_measurands),
            id_token=self._auth.id_token if self._auth is not None else None,
            group_id_token=self._auth.group_id_token if self._auth is not None else None,
        )

    @property
    def authorization(self) -> IdToken | None:
        """The token the current session is authorized with, if any."""
        return self._auth.id_token if self._auth is not None else None

    @property
    def power_path_closed(self) -> bool:
        """The last contactor feedback (PowerPathClosed / PowerPathOpened)."""
        return self._power_path_closed

    @property
    def last_reading(self) -> MeterReading | None:
        return self._last_reading

    def accepts(self, event_type: type[Event]) -> bool:
        """Whether an event of this type is valid now (so :meth:`receive` will not raise for it,
        given a consistent payload)."""
        return event_type in TRANSITIONS[self._state]

    def can_stop(self, id_token: IdToken, group_id_token: IdToken | None = None) -> bool:
        """Whether presenting ``id_token`` (with its group) ends this session's authorization.

        The same token (C01.FR.25 equality) or one of the same group id token (C01.FR.03, C09).
        """
        auth = self._auth
        if auth is None or not self.accepts(LocalStop):
            return False
        if auth.id_token.matches(id_token):
            return True
        return (
            auth.group_id_token is not None
            and group_id_token is not None
            and auth.group_id_token.matches(group_id_token)
        )

    @property
    def watching_energy(self) -> bool:
        """Whether an energy cap (:meth:`limit_energy`) is set and energy may still flow: the
        shell passes a fresh reading (with a :class:`Tick`) about every second while it is."""
        tx = self._tx
        if tx is None or tx.energy_cap_wh is None or self._state not in _POWER_PATH_STATES:
            return False
        return not (tx.energy_held and self._state is State.SUSPENDED)

    def limit_energy(
        self,
        transaction_id: str,
        max_energy_wh: float | None,
        now: datetime,
        reading: MeterReading | None = None,
    ) -> list[Output]:
        """TxCtrlr.StopTxOnInvalidId false: the CSMS answered non-Accepted for the token of
        ``transaction_id``; cap the energy into the vehicle (module docstring).

        Args:
            transaction_id: the transaction the answer was about; must be the open one.
            max_energy_wh: TxCtrlr.MaxEnergyOnInvalidId, counted from the transaction's start
                (from the last reading when the start value is unknown); None: no more energy.
                A second cap never raises the first.
            now: timezone-aware UTC.
            reading: a fresh meter reading, optional.

        Returns:
            The outputs, as :meth:`receive`: empty while the cap is not reached, else
            OpenPowerPath and the TransactionEvent reporting SuspendedEVSE (or the Ended one).

        Raises:
            LocalTransactionError: no such open transaction, a negative or non-finite
                ``max_energy_wh``, a naive ``now``, or the machine is in ERROR.
            RemoteTransactionError: the reading's energy registers went backwards.
            After either, the machine is in ERROR.
        """
        if self._state is State.ERROR:
            raise LocalTransactionError(f"EVSE {self.evse_id}: the transaction machine is in ERROR")
        try:
            return self._limit_energy(transaction_id, max_energy_wh, now, reading)
        except BaseException:
            self._state = State.ERROR
            raise

    def _limit_energy(
        self,
        transaction_id: str,
        max_energy_wh: float | None,
        now: datetime,
        reading: MeterReading | None,
    ) -> list[Output]:
        _require_aware(now)
        tx = self._tx
        if tx is None or tx.transaction_id != transaction_id:
            raise LocalTransactionError(
                f"EVSE {self.evse_id}: energy limit for {transaction_id!r}, but the open "
                f"transaction is {self.transaction_id!r}"
            )
        if max_energy_wh is not None and not (math.isfinite(max_energy_wh) and max_energy_wh >= 0):
            raise LocalTransactionError(
                f"MaxEnergyOnInvalidId must be a finite number >= 0 Wh, not {max_energy_wh!r}"
            )
        if reading is not None:
            self._take_reading(reading, None)
        if max_energy_wh is None:
            cap_wh = -math.inf
        else:
            base_wh = tx.begin_import_wh
            if base_wh is None:
                last = self._last_reading
                base_wh = last.energy_import_wh if last is not None else 0.0
            cap_wh = base_wh + max_energy_wh
        if tx.energy_cap_wh is None or cap_wh < tx.energy_cap_wh:
            tx.energy_cap_wh = cap_wh
        return self._hold_energy([], now)

    def deadline(self) -> datetime | None:
        """When the shell must :meth:`tick` next: the EVConnectionTimeOut, if it is running."""
        if self._state is State.AUTHORIZED and self._auth is not None:
            return self._auth.since + timedelta(seconds=self.config.ev_connection_timeout_s)
        return None

    # --- input -----------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Output]:
        """Let time pass: ``receive(Tick(), now)``."""
        return self.receive(Tick(), now)

    def resume(
        self,
        open_transaction: OpenTransaction,
        now: datetime,
        reading: MeterReading,
        *,
        energy_allowed: bool,
    ) -> list[Output]:
        """Take over a transaction found open in the store whose EV is still connected (OCPP 2.1
        TxCtrlr.ResumptionTimeout; the shell decides with :func:`resumption_refusal`).

        The machine must be fresh (AVAILABLE, no transaction). It continues the transaction's
        seqNo and reports it in one Updated event, triggerReason TxResumed, chargingState
        EVConnected, with the TxUpdatedMeasurands of the last reading before the interruption
        (context Interruption.Begin) and of ``reading`` (Interruption.End). With
        ``energy_allowed`` (TxCtrlr.AllowEnergyTransferResumption) and an authorization on
        record, the session is authorized again and the power path closes (READY); otherwise the
        EV waits, connected and unauthorized (CONNECTED), until a new authorization.

        Raises:
            LocalTransactionError: the machine is not fresh, ``now`` is naive, or the
                transaction belongs to another EVSE.
            RemoteTransactionError: ``reading`` has an energy register below the last known one.
            After either, the machine is in ERROR.
        """
        if self._state is not State.AVAILABLE or self._tx is not None or self._auth is not None:
            self._state = State.ERROR
            raise LocalTransactionError(
                f"EVSE {self.evse_id}: a transaction can only be resumed by a fresh machine"
            )
        try:
            return self._resume(open_transaction, now, reading, energy_allowed)
        except BaseException:
            self._state = State.ERROR
            raise

    def _resume(
        self,
        open_tx: OpenTransaction,
        now: datetime,
        reading: MeterReading,
        energy_allowed: bool,
    ) -> list[Output]:
        _require_aware(now)
        if open_tx.evse_id != self.evse_id:
            raise LocalTransactionError(
                f"EVSE {self.evse_id}: transaction {open_tx.transaction_id} is EVSE "
                f"{open_tx.evse_id}'s"
            )
        before = open_tx.last_reading
        self._last_reading = before
        self._take_reading(reading, None)
        self.connector_id = open_tx.connector_id
        tx = _Transaction(
            open_tx.transaction_id, started_at=open_tx.started_at, next_seq_no=open_tx.next_seq_no
        )
        if self.config.tx_ended_interval_s > 0:
            tx.next_ended_sample_at = now + timedelta(seconds=self.config.tx_ended_interval_s)
        if self.config.aligned_tx_ended_interval_s > 0:
            tx.next_aligned_ended_at = next_aligned(now, self.config.aligned_tx_ended_interval_s)
        self._tx = tx
        if energy_allowed and open_tx.id_token is not None:
            # Reported before the interruption (every event is committed with this record).
            self._auth = _Authorization(
                open_tx.id_token, open_tx.group_id_token, None, now, reported=True
            )
            self._state = State.READY
        else:
            self._state = State.CONNECTED
        measurands = self.config.tx_updated_measurands
        values = tuple(
            value
            for value in (
                None
                if before is None
                else meter_value(before, measurands, ReadingContext.INTERRUPTION_BEGIN),
                meter_value(reading, measurands, ReadingContext.INTERRUPTION_END),
            )
            if value is not None
        )
        message = self._message(
            EventType.UPDATED,
            Tick(),  # no event caused it: the trigger is given
            now,
            charging_state=self._charging_state(),
            meter_values=values,
            trigger=TriggerReason.TX_RESUMED,
        )
        outputs: list[Output] = [message]
        if self._state in _POWER_PATH_STATES:
            outputs.append(ClosePowerPath(self.evse_id))
        return outputs

    def receive(
        self, event: Event, now: datetime, reading: MeterReading | None = None
    ) -> list[Output]:
        """Process one event.

        Args:
            event: what happened.
            now: when, timezone-aware UTC (the TransactionEvent timestamp).
            reading: a fresh meter reading to use from now on (e.g. for the Transaction.Begin or
                Transaction.End values this event may produce); optional.

        Returns:
            The outputs in the order to carry them out: OpenPowerPath, TransactionEventOuts,
            UnlockConnector, ClosePowerPath.

        Raises:
            LocalTransactionError: the event is not valid in the current state (or the machine
                is in ERROR), contradicts the session, or ``now`` is naive.
            RemoteTransactionError: the reading's energy registers went backwards.
            After either, the machine is in ERROR.
        """
        if self._state is State.ERROR:
            raise LocalTransactionError(f"EVSE {self.evse_id}: the transaction machine is in ERROR")
        try:
            return self._process(event, now, reading)
        except BaseException:
            self._state = State.ERROR
            raise

    # --- the rules -------------------------------------------------------------------------------

    def _process(self, event: Event, now: datetime, reading: MeterReading | None) -> list[Output]:
        _require_aware(now)
        if isinstance(event, Tick):
            deadline = self.deadline()
            if deadline is None or now < deadline:
                self._target(event)  # still validates
                if reading is not None and self.watching_energy:
                    self._take_reading(reading, None)
                    return self._hold_energy([], now)
                return []
            event = EVConnectionTimedOut()
        before = self._state
        target = self._target(event)
        if reading is not None:
            self._take_reading(reading, None)
        points_before = self._points()
        stop_token = self._apply(event, now)
        self._state = target
        if target not in _AUTHORIZED_STATES:
            self._auth = None
        if target is State.AVAILABLE:
            self._data_signed = False
        points_after = self._points()

        messages: list[TransactionEventOut] = []
        tx = self._tx
        if tx is None:
            if self._should_start(event, before, target, points_before, points_after):
                messages.append(self._start(event, now))
        else:
            if (
                type(event) in _STOP_CAUSES
                and tx.stop_reason is None
                and _ends_something(event, before)
            ):
                tx.stop_reason = _reason(event)
            if self._should_end(event, points_before, points_after):
                messages.append(self._end(event, now, stop_token))
            elif self._reportable(event, before):
                messages.append(self._update(event, now, stop_token))

        if tx is not None and self._tx is None:  # ended: Rule 2b
            self._state = AFTER_END.get(self._state, self._state)
            if self._state not in _AUTHORIZED_STATES:
                self._auth = None
            self._data_signed = False

        outputs: list[Output] = []
        if before in _POWER_PATH_STATES and self._state not in _POWER_PATH_STATES:
            outputs.append(OpenPowerPath(self.evse_id))
        outputs.extend(messages)
        if (
            isinstance(event, LocalStop | RemoteStop)
            and before is not self._state
            and self._state in (State.STOPPING, State.FINISHED)
        ):
            outputs.append(UnlockConnector(self.evse_id, self.connector_id))
        if before not in _POWER_PATH_STATES and self._state in _POWER_PATH_STATES:
            outputs.append(ClosePowerPath(self.evse_id))
        return self._hold_energy(outputs, now)

    def _hold_energy(self, outputs: list[Output], now: datetime) -> list[Output]:
        """StopTxOnInvalidId false: once the import register reaches the cap, open the power
        path and stop the energy transfer (SuspendedEVSE); ``outputs`` are those so far."""
        tx = self._tx
        if not self.watching_energy or tx is None or tx.energy_cap_wh is None:
            return outputs
        last = self._last_reading
        if last is not None and last.energy_import_wh < tx.energy_cap_wh:
            return outputs  # no reading at all: nothing can be bounded, so hold at once
        tx.energy_held = True
        stopped = self._process(
            EnergyTransferStopped(Suspender.EVSE, StoppedReason.DE_AUTHORIZED), now, None
        )
        power = (OpenPowerPath, ClosePowerPath)
        return [
            OpenPowerPath(self.evse_id),
            *(o for o in outputs if not isinstance(o, power)),
            *(o for o in stopped if not isinstance(o, power)),
        ]

    def _target(self, event: Event) -> State:
        try:
            return TRANSITIONS[self._state][type(event)]
        except KeyError:
            raise LocalTransactionError(
                f"EVSE {self.evse_id}: {type(event).__name__} is not valid in state "
                f"{self._state.name}"
            ) from None

    def _apply(self, event: Event, now: datetime) -> IdToken | None:
        """Event-specific effects on the flags and the authorization; returns a stop token."""
        if isinstance(event, MeterSample):
            self._take_reading(event.reading, event.kind)
        elif isinstance(event, ParkingBayOccupied):
            self._bay_occupied = True
        elif isinstance(event, ParkingBayVacated):
            self._bay_occupied = False
        elif isinstance(event, DataSigned):
            self._data_signed = True
        elif isinstance(event, PowerPathClosed):
            self._power_path_closed = True
        elif isinstance(event, PowerPathOpened):
            self._power_path_closed = False
        elif isinstance(event, EnergyTransferStopped):
            self._suspended_by = event.by
        elif isinstance(event, CablePlugged):
            if event.connector_id is not None:
                if event.connector_id < 1:
                    raise LocalTransactionError("CablePlugged.connector_id starts at 1")
                self.connector_id = event.connector_id
        elif isinstance(event, Authorized):
            self._auth = _Authorization(
                event.id_token,
                event.group_id_token,
                event.remote_start_id,
                now,
                reservation_id=event.reservation_id,
            )
        elif isinstance(event, LocalStop):
            if not event.master_pass and not self.can_stop(event.id_token, event.group_id_token):
                raise LocalTransactionError(
                    f"EVSE {self.evse_id}: token {event.id_token.id_token!r} may not stop this "
                    "session (check can_stop first)"
                )
            return event.id_token
        elif isinstance(event, RemoteStop) and (
            self._tx is None or event.transaction_id != self._tx.transaction_id
        ):
            raise LocalTransactionError(
                f"EVSE {self.evse_id}: RemoteStop for {event.transaction_id!r}, but the open "
                f"transaction is {self.transaction_id!r}"
            )
        return None

    def _points(self) -> frozenset[TxPoint]:
        points = set(POINTS[self._state])
        if self._bay_occupied:
            points.add(TxPoint.PARKING_BAY_OCCUPANCY)
        if self._data_signed:
            points.add(TxPoint.DATA_SIGNED)
        return frozenset(points)

    def _should_start(
        self,
        event: Event,
        before: State,
        target: State,
        points_before: frozenset[TxPoint],
        points_after: frozenset[TxPoint],
    ) -> bool:
        if target in _NO_NEW_TRANSACTION:
            return False
        if (points_after - points_before) & self.config.tx_start_points:
            return True
        # No energy outside a transaction (module docstring).
        if target is State.CHARGING:
            return True
        return (
            target in _POWER_PATH_STATES
            and before not in _POWER_PATH_STATES
            and TxPoint.ENERGY_TRANSFER not in self.config.tx_start_points
        )

    def _should_end(
        self, event: Event, points_before: frozenset[TxPoint], points_after: frozenset[TxPoint]
    ) -> bool:
        stop_points = self.config.tx_stop_points
        if (points_before - points_after) & stop_points:
            return True
        if isinstance(event, Fault | ImmediateReset):
            return True
        bay_holds = TxPoint.PARKING_BAY_OCCUPANCY in stop_points and self._bay_occupied
        if isinstance(event, CableUnplugged | EVConnectionTimedOut) and not bay_holds:
            return True
        return not points_after

    def _reportable(self, event: Event, before: State) -> bool:
        if type(event) in _ALWAYS_REPORTED:
            return True
        if isinstance(event, Deauthorized):
            return before in _AUTHORIZED_STATES
        if isinstance(event, MeterSample):
            measurands = self._sample_measurands(event.kind)
            return bool(self._reading_values(measurands, _sample_context(event.kind)))
        return self._charging_state() != self._tx_reported_state()

    # --- messages --------------------------------------------------------------------------------

    def _charging_state(self) -> ChargingState:
        if self._state is State.SUSPENDED:
            if self._suspended_by is Suspender.EV:
                return ChargingState.SUSPENDED_EV
            return ChargingState.SUSPENDED_EVSE
        return _CHARGING_STATES[self._state]

    def _tx_reported_state(self) -> ChargingState | None:
        return self._tx.reported_state if self._tx is not None else None

    def _trigger(self, event: Event) -> TriggerReason:
        if isinstance(event, Authorized) and event.remote_start_id is not None:
            return TriggerReason.REMOTE_START
        if isinstance(event, MeterSample) and event.kind is SampleKind.CLOCK:
            return TriggerReason.METER_VALUE_CLOCK
        return _TRIGGERS[type(event)]

    def _sample_measurands(self, kind: SampleKind) -> Sequence[Measurand]:
        if kind is SampleKind.CLOCK:
            return self.config.aligned_measurands
        return self.config.tx_updated_measurands

    def _start(self, event: Event, now: datetime) -> TransactionEventOut:
        transaction_id = self._new_transaction_id()
        if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= (
            TRANSACTION_ID_MAX_LENGTH
        ):
            raise LocalTransactionError(
                f"transaction id must be 1 to {TRANSACTION_ID_MAX_LENGTH} characters: "
                f"{transaction_id!r}"
            )
        tx = _Transaction(transaction_id, started_at=now)
        if self._last_reading is not None:
            tx.begin_import_wh = self._last_reading.energy_import_wh
        if self.config.tx_ended_interval_s > 0:
            tx.next_ended_sample_at = now + timedelta(seconds=self.config.tx_ended_interval_s)
        if self.config.aligned_tx_ended_interval_s > 0:
            tx.next_aligned_ended_at = next_aligned(now, self.config.aligned_tx_ended_interval_s)
        self._tx = tx
        values = self._reading_values(
            self.config.tx_started_measurands, ReadingContext.TRANSACTION_BEGIN
        )
        return self._message(
            EventType.STARTED,
            event,
            now,
            charging_state=self._charging_state(),
            number_of_phases_used=self.config.number_of_phases_used,
            meter_values=values,
        )

    def _update(
        self, event: Event, now: datetime, stop_token: IdToken | None
    ) -> TransactionEventOut:
        values: tuple[MeterValue, ...] = ()
        charging_state: ChargingState | None = None
        if isinstance(event, MeterSample):
            measurands = self._sample_measurands(event.kind)
            values = self._reading_values(measurands, _sample_context(event.kind))
        elif isinstance(event, MessageTriggered):
            # F06: the triggered event states where the transaction is, whether it changed or not.
            charging_state = self._charging_state()
            values = self._reading_values(self.config.tx_updated_measurands, ReadingContext.TRIGGER)
        return self._message(
            EventType.UPDATED,
            event,
            now,
            charging_state=charging_state,
            id_token=stop_token,
            meter_values=values,
        )

    def _end(self, event: Event, now: datetime, stop_token: IdToken | None) -> TransactionEventOut:
        tx = self._tx
        assert tx is not None
        if isinstance(event, Fault | ImmediateReset):
            reason = _reason(event)  # an abnormal end overrides the first cause
        else:
            reason = tx.stop_reason or _reason(event)
        end = self._reading_values(self.config.tx_ended_measurands, ReadingContext.TRANSACTION_END)
        message = self._message(
            EventType.ENDED,
            event,
            now,
            stopped_reason=reason,
            id_token=stop_token,
            meter_values=(*tx.ended_samples, *end),
        )
        self._tx = None
        return message

    def _message(
        self,
        event_type: EventType,
        event: Event,
        now: datetime,
        *,
        charging_state: ChargingState | None = None,
        stopped_reason: StoppedReason | None = None,
        id_token: IdToken | None = None,
        number_of_phases_used: int | None = None,
        meter_values: tuple[MeterValue, ...] = (),
        trigger: TriggerReason | None = None,
    ) -> TransactionEventOut:
        tx = self._tx
        assert tx is not None
        current = self._charging_state()
        if charging_state is None and current != tx.reported_state:
            charging_state = current
        if charging_state is not None:
            tx.reported_state = charging_state
        remote_start_id: int | None = None
        reservation_id: int | None = None
        auth = self._auth
        if id_token is None and auth is not None and not auth.reported:
            # Report the authorization once (errata 2025-01 §2.12), with the reservation it used.
            id_token = auth.id_token
            remote_start_id = auth.remote_start_id
            reservation_id = auth.reservation_id
            auth.reported = True
        message = TransactionEventOut(
            event_type=event_type,
            timestamp=now,
            trigger_reason=self._trigger(event) if trigger is None else trigger,
            seq_no=tx.next_seq_no,
            transaction_id=tx.transaction_id,
            evse_id=self.evse_id,
            connector_id=self.connector_id,
            charging_state=charging_state,
            stopped_reason=stopped_reason,
            id_token=id_token,
            remote_start_id=remote_start_id,
            reservation_id=reservation_id,
            number_of_phases_used=number_of_phases_used,
            meter_values=meter_values,
        )
        tx.next_seq_no += 1
        return message

    # --- meter -----------------------------------------------------------------------------------

    def _reading_values(
        self, measurands: Sequence[Measurand], context: ReadingContext
    ) -> tuple[MeterValue, ...]:
        if self._last_reading is None:
            return ()
        value = meter_value(self._last_reading, measurands, context)
        return () if value is None else (value,)

    def _take_reading(self, reading: MeterReading, kind: SampleKind | None) -> None:
        last = self._last_reading
        if last is not None and (
            reading.energy_import_wh < last.energy_import_wh
            or reading.energy_export_wh < last.energy_export_wh
        ):
            raise RemoteTransactionError(
                f"EVSE {self.evse_id}: meter energy register went backwards "
                f"(import {last.energy_import_wh} -> {reading.energy_import_wh} Wh, "
                f"export {last.energy_export_wh} -> {reading.energy_export_wh} Wh)"
            )
        self._last_reading = reading
        tx = self._tx
        if tx is None:
            return
        config = self.config
        due = tx.next_ended_sample_at
        if due is not None and reading.timestamp >= due and config.tx_ended_measurands:
            value = meter_value(reading, config.tx_ended_measurands, ReadingContext.SAMPLE_PERIODIC)
            if value is not None:
                tx.ended_samples.append(value)
            step = timedelta(seconds=config.tx_ended_interval_s)
            while due <= reading.timestamp:
                due += step
            tx.next_ended_sample_at = due
        due = tx.next_aligned_ended_at
        if (
            kind is SampleKind.CLOCK
            and due is not None
            and reading.timestamp >= due
            and config.aligned_tx_ended_measurands
        ):
            value = meter_value(
                reading, config.aligned_tx_ended_measurands, ReadingContext.SAMPLE_CLOCK
            )
            if value is not None:
                tx.ended_samples.append(value)
            tx.next_aligned_ended_at = next_aligned(
                reading.timestamp, config.aligned_tx_ended_interval_s
            )


def _sample_context(kind: SampleKind) -> ReadingContext:
    if kind is SampleKind.CLOCK:
        return ReadingContext.SAMPLE_CLOCK
    return ReadingContext.SAMPLE_PERIODIC


def _ends_something(event: Event, before: State) -> bool:
    """Whether a stop cause actually stopped something (a Deauthorized in a state without an
    authorization is a late answer about a session already over)."""
    if isinstance(event, Deauthorized):
        return before in _AUTHORIZED_STATES
    return True


def _reason(event: Event) -> StoppedReason:
    """The stoppedReason an event gives a transaction it ends or starts to stop."""
    if isinstance(event, Fault):
        return event.reason
    if isinstance(event, LocalStop):
        return StoppedReason.MASTER_PASS if event.master_pass else StoppedReason.LOCAL
    if isinstance(event, EnergyTransferStopped):
        if event.reason is not None:
            return event.reason
        return StoppedReason.STOPPED_BY_EV if event.by is Suspender.EV else StoppedReason.OTHER
    return _REASONS.get(type(event), StoppedReason.OTHER)


_REASONS: Final[dict[type[Event], StoppedReason]] = {
    CableUnplugged: StoppedReason.EV_DISCONNECTED,
    EVConnectionTimedOut: StoppedReason.TIMEOUT,
    RemoteStop: StoppedReason.REMOTE,
    Deauthorized: StoppedReason.DE_AUTHORIZED,
    ImmediateReset: StoppedReason.IMMEDIATE_RESET,
}


# --- after the machine is gone -----------------------------------------------------------------


def abort(
    open_transaction: OpenTransaction,
    now: datetime,
    *,
    reason: StoppedReason = StoppedReason.OTHER,
    trigger: TriggerReason = TriggerReason.ABNORMAL_CONDITION,
    reading: MeterReading | None = None,
) -> TransactionEventOut:
    """The Ended event for a transaction whose machine can no longer end it.

    For a machine in ERROR (``machine.open_transaction``) or a transaction recovered from the
    store. The Transaction.End values come from ``reading`` if given, else from the last reading
    the machine knew.

    Raises:
        LocalTransactionError: ``now`` is naive.
        RemoteTransactionError: ``reading`` has an energy register below the last known one.
    """
    _require_aware(now)
    last = open_transaction.last_reading
    if (
        reading is not None
        and last is not None
        and (
            reading.energy_import_wh < last.energy_import_wh
            or reading.energy_export_wh < last.energy_export_wh
        )
    ):
        raise RemoteTransactionError("meter energy register went backwards since the last event")
    source = reading if reading is not None else last
    values: tuple[MeterValue, ...] = ()
    if source is not None:
        value = meter_value(
            source, open_transaction.ended_measurands, ReadingContext.TRANSACTION_END
        )
        values = () if value is None else (value,)
    return TransactionEventOut(
        event_type=EventType.ENDED,
        timestamp=now,
        trigger_reason=trigger,
        seq_no=open_transaction.next_seq_no,
        transaction_id=open_transaction.transaction_id,
        evse_id=open_transaction.evse_id,
        connector_id=open_transaction.connector_id,
        stopped_reason=reason,
        meter_values=values,
    )


def resumption_refusal(
    open_transaction: OpenTransaction,
    now: datetime,
    *,
    timeout_s: float,
    ev_connected: bool,
) -> str | None:
    """Why a transaction found open at start-up may not be resumed, or None if it may.

    OCPP 2.1 TxCtrlr.ResumptionTimeout: "the maximum number of seconds that a transaction may be
    interrupted by a power outage and still be resumed afterwards". The interruption is counted
    from ``alive_at`` (the last time the store knew the station ran the transaction, at most one
    keep-alive interval before the outage, so the count errs long, never short) to ``now``; a
    transaction without one is not resumed. The EV must still be connected. 0 never resumes
    (the OCPP 2.0.1 behaviour: end it with PowerLoss).

    Raises:
        LocalTransactionError: ``now`` is naive.
    """
    _require_aware(now)
    if timeout_s <= 0:
        return "ResumptionTimeout is 0"
    if not ev_connected:
        return "the EV is no longer connected"
    alive_at = open_transaction.alive_at
    if alive_at is None:
        return "the time of the interruption is unknown"
    interrupted_s = (now - alive_at).total_seconds()
    if interrupted_s < 0:
        return f"the clock went back {-interrupted_s:.0f} s during the interruption"
    if interrupted_s > timeout_s:
        return (
            f"interrupted for {interrupted_s:.0f} s, longer than ResumptionTimeout "
            f"{timeout_s:.0f} s"
        )
    return None


def recover(
    open_transaction: OpenTransaction, now: datetime, *, reading: MeterReading | None = None
) -> TransactionEventOut:
    """End a transaction found open in the store at start-up: stoppedReason PowerLoss.

    TriggerReasonEnumType has no power-loss value; AbnormalCondition is the one that fits, and it
    is what EVerest's libocpp maps PowerLoss to (``stop_reason_to_trigger_reason_enum`` in
    lib/ocpp/v201/utils.cpp). chargingState is omitted: after the outage nothing is known of it.
    The Transaction.End values are those of ``reading`` (the meter read at start-up) if given,
    else the last reading persisted with the transaction ("the last known meter values", issue 3).

    Raises:
        LocalTransactionError: ``now`` is naive.
        RemoteTransactionError: ``reading`` has an energy register below the last known one.
    """
    return abort(open_transaction, now, reason=StoppedReason.POWER_LOSS, reading=reading)
