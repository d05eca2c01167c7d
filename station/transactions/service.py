"""The transactions shell: one :class:`TransactionMachine` per EVSE, a durable queue, delivery.

Owns *when* transaction events happen and *that* the CSMS receives every one of them (issue 3,
"The offline queue"):

- Events from the vehicles/readers (:class:`EvsePort` implementations report them through
  :meth:`TransactionService.submit` and :meth:`TransactionService.present_token`) and from the
  CSMS (remote start/stop) go to the EVSE's machine one at a time, in order.
- Every :class:`TransactionEventOut` the machine emits is converted to its wire payload (by the
  :class:`CsmsPort`, so this module imports no protocol types) and committed to SQLite, in the
  same SQLite transaction as the EVSE's open-transaction state, **before** anything else happens
  (the power path closes only after the Started event is on disk).
- One delivery task sends the queue in order, one CALL at a time; a message is deleted only
  after the CSMS's CALLRESULT. A CALLERROR, an invalid response or a timeout is retried after
  MessageAttemptInterval * attempts, up to MessageAttempts (OCPP 2.0.1 Part 2 E13, OCPPCommCtrlr
  MessageAttempts/MessageAttemptInterval [TransactionEvent]); then the message is dropped with a
  log line. Events generated while the link is down carry ``offline: true`` and wait in the
  queue; on reconnect the queue is sent oldest first, so queued messages go before new ones.
- The queue has a bound (``queue_max_messages``): beyond it the oldest meter-value-only Updated
  events are thinned (never Started, Ended or a state change; the others keep their seqNo, so
  the CSMS sees the gap), with a WARNING line and the ``queue_thinned_listeners`` (the station
  sends a MemoryExhaustion security event).
- At start, every transaction found open in the store is ended with stoppedReason PowerLoss
  (:func:`~station.transactions.machine.recover`) and the last persisted meter values.

It must not import ``ocpp`` nor talk SQL (``store/`` does); it logs per EVSE and transaction id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from station.clock import Clock
from station.errors import (
    ConnectionLostError,
    LocalOcppError,
    OcppError,
    RemoteOcppError,
    StoreError,
)
from station.store import (
    AuthCacheRepository,
    LocalListRepository,
    OutboundQueue,
    PendingMessage,
    QueuedMessage,
    QueueThinning,
    TransactionRepository,
)
from station.transactions.auth import (
    AuthConfig,
    AuthorizationStatus,
    AuthSource,
    CacheEntry,
    IdTokenInfo,
    Verdict,
    cache_entry,
    cache_evictions,
    decide_authorization,
    decide_on_authorize_response,
    token_key,
)
from station.transactions.errors import TransactionError
from station.transactions.events import (
    Authorized,
    CablePlugged,
    CableUnplugged,
    ChargingRateChanged,
    Deauthorized,
    Event,
    LocalStop,
    MessageTriggered,
    MeterSample,
    RemoteStop,
    Tick,
)
from station.transactions.local_list import (
    LocalListUpdate,
    SendLocalListStatus,
    plan_local_list_update,
)
from station.transactions.machine import (
    TransactionMachine,
    abort,
    next_aligned,
    recover,
    resumption_refusal,
)
from station.transactions.meter import meter_value
from station.transactions.model import (
    ClosePowerPath,
    IdToken,
    IdTokenType,
    MeterReading,
    MeterValue,
    OpenPowerPath,
    Output,
    ReadingContext,
    SampleKind,
    TransactionEventOut,
    TxConfig,
    UnlockConnector,
)
from station.transactions.reservation_service import ReservationService

__all__ = [
    "TRANSACTION_EVENT",
    "CsmsPort",
    "EvsePort",
    "ServiceSettings",
    "TransactionService",
]

log = logging.getLogger(__name__)

TRANSACTION_EVENT = "TransactionEvent"
DELIVERY_READ_AHEAD = 64
"""Queued messages the delivery task reads at once (one read per batch, not per message)."""
KEEP_ALIVE_S = 10.0
"""How often the store is told that the open transactions still run (their ``alive_at``): an
interruption is measured from it, so it errs long by at most this much (ResumptionTimeout)."""
QUEUE_HEADROOM_DIVISOR = 20
"""A full queue is thinned to 1/20 below its bound, so that it is not thinned at every event."""
ACK_BATCH = 1
"""Delivered messages whose deletion the delivery task may commit at once (one fsync). 1: the
CSMS's acknowledgement of a message is committed before the next one is sent, so a crash can
send again at most the one message whose CALLRESULT arrived just before it (issue 3: "no
message is sent twice"). Larger values replay faster and re-send up to that many."""
ACK_DELAY_S = 0.05
"""The longest a delivered message waits for its deletion to be committed, while sending."""

Spawn = Callable[[Coroutine[Any, Any, None]], None]


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """The device-model values the service obeys, read afresh whenever it needs them."""

    tx: TxConfig = field(default_factory=TxConfig)
    message_attempts: int = 5  # OCPPCommCtrlr.MessageAttempts[TransactionEvent]
    message_attempt_interval_s: float = 30.0  # OCPPCommCtrlr.MessageAttemptInterval[...]
    tx_updated_interval_s: float = 60.0  # SampledDataCtrlr.TxUpdatedInterval; 0: none
    aligned_interval_s: float = 900.0  # AlignedDataCtrlr.Interval; 0: no clock-aligned data
    authorize_remote_start: bool = False  # AuthCtrlr.AuthorizeRemoteStart
    stop_tx_on_invalid_id: bool = True  # TxCtrlr.StopTxOnInvalidId
    resumption_timeout_s: float = 0.0  # TxCtrlr.ResumptionTimeout (2.1); 0: end with PowerLoss
    allow_energy_transfer_resumption: bool = True  # TxCtrlr.AllowEnergyTransferResumption (2.1)
    max_energy_on_invalid_id_wh: float | None = None  # TxCtrlr.MaxEnergyOnInvalidId; None: unset
    auth: AuthConfig = field(default_factory=AuthConfig)


class EvsePort(Protocol):
    """The power hardware and meter of one EVSE (the simulated vehicle, or the real drivers)."""

    def read_meter(self, now: datetime) -> MeterReading:
        """A reading of the EVSE's meter at ``now``."""
        ...

    def close_power_path(self) -> None:
        """Close the contactors; report PowerPathClosed (and the energy flow) as events."""
        ...

    def open_power_path(self) -> None:
        """Stop the energy transfer and open the contactors; report PowerPathOpened."""
        ...

    def unlock_connector(self, connector_id: int) -> None:
        """Release the connector lock."""
        ...

    @property
    def plugged(self) -> bool:
        """Whether an EV is connected now (read at start-up: does a transaction resume, does a
        new session wait)."""
        ...


class CsmsPort(Protocol):
    """What the service needs of the CSMS link (implemented in ``station.ocpp.tx_convert``).

    ``send_transaction_event``, ``send_meter_values`` and ``authorize`` raise
    :class:`~station.errors.OcppError`: ConnectionLostError when offline, CallRejectedError on a
    CALLERROR, CallTimeoutError, RemoteOcppError for an invalid response, LocalOcppError for a
    payload we got wrong.
    """

    @property
    def online(self) -> bool: ...

    async def wait_online(self) -> None: ...

    def encode(self, message: TransactionEventOut) -> dict[str, Any]:
        """The wire payload to queue; raises LocalOcppError if it can never be valid."""
        ...

    async def send_transaction_event(self, payload: dict[str, Any]) -> IdTokenInfo | None: ...

    async def send_meter_values(self, evse_id: int, values: Sequence[MeterValue]) -> None: ...

    async def authorize(self, token: IdToken) -> IdTokenInfo: ...


class TransactionService:
    """Runs the transactions of every EVSE of the station.

    Args:
        ports: EVSE id → its :class:`EvsePort`.
        csms: the CSMS link, as a :class:`CsmsPort`.
        transactions: where open transactions and their queued events are committed together.
        queue: the outbound queue (the delivery side: peek, mark_attempt, ack).
        clock: wall clock for timestamps, monotonic clock for sampling.
        settings: returns the current device-model settings.
        spawn: runs follow-up work (token authorization) on the station's task group.
        new_transaction_id: transaction ids (injected for tests, STYLE.md A2.5).
        on_occupied: ``(evse_id, connector_id, occupied)`` when a cable is plugged/unplugged.
        on_transaction_ended: ``evse_id`` when a transaction of that EVSE has ended.
        on_settled: called after every batch of events has been processed, when the machines
            are consistent again (the energy manager re-evaluates: transaction started or
            ended, authorized, power path closed or opened).
    """

    def __init__(
        self,
        ports: Mapping[int, EvsePort],
        *,
        csms: CsmsPort,
        transactions: TransactionRepository,
        queue: OutboundQueue,
        clock: Clock,
        settings: Callable[[], ServiceSettings],
        spawn: Spawn,
        connector_ids: Mapping[int, int] | None = None,
        new_transaction_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        on_occupied: Callable[[int, int, bool], None] = lambda evse, connector, occupied: None,
        on_transaction_ended: Callable[[int], None] = lambda evse: None,
        on_settled: Callable[[], None] = lambda: None,
        local_list: LocalListRepository | None = None,
        auth_cache: AuthCacheRepository | None = None,
        on_local_list_changed: Callable[[int, int], None] = lambda entries, size_b: None,
        queue_max_messages: int | None = None,
        on_auth_cache_changed: Callable[[int], None] = lambda size_b: None,
    ) -> None:
        self.ports = dict(ports)
        self.csms = csms
        self.transactions = transactions
        self.queue = queue
        self.clock = clock
        self.settings = settings
        self._spawn = spawn
        self._new_transaction_id = new_transaction_id
        self._on_occupied = on_occupied
        self._on_transaction_ended = on_transaction_ended
        #: Subscribers told ``(evse_id, transaction_id)`` when a transaction has started / has
        #: ended (smart charging binds and removes TxProfiles, K01/K05). Append to subscribe.
        self.started_listeners: list[Callable[[int, str], None]] = []
        self.ended_listeners: list[Callable[[int, str], None]] = []
        self._on_settled = on_settled
        #: The queue's bound ([storage] queue_max_messages); None: unbounded.
        self.queue_max_messages = queue_max_messages
        #: Subscribers told each time the full queue was thinned (the OCPP side reports it to
        #: the CSMS). Append to subscribe.
        self.queue_thinned_listeners: list[Callable[[QueueThinning], None]] = []
        #: H03: the reservations a new authorization must respect (set by the composition root).
        self.reservations: ReservationService | None = None
        connectors = connector_ids or {}
        tx_config = settings().tx
        self.machines: dict[int, TransactionMachine] = {
            evse_id: TransactionMachine(
                evse_id, new_transaction_id, tx_config, connector_id=connectors.get(evse_id, 1)
            )
            for evse_id in self.ports
        }
        self._inbox: deque[tuple[int, Event]] = deque()
        self._processing = False
        self._wake = asyncio.Event()
        self._timers_changed = asyncio.Event()
        self._next_sample: dict[int, float] = {}  # EVSE → monotonic time of its next sample
        self._aligned_interval_s = 0.0  # the AlignedDataCtrlr.Interval _next_aligned_at is for
        self._next_aligned_at: datetime | None = None  # the next clock-aligned boundary (J01)
        # D01/C10: the Local Authorization List and the Authorization Cache, read once from the
        # store and written through on every change (they survive a restart).
        self._list_store = local_list
        self._cache_store = auth_cache
        self._on_local_list_changed = on_local_list_changed
        self._on_auth_cache_changed = on_auth_cache_changed
        self._local_version = 0
        self._local_list: dict[tuple[str, str], IdTokenInfo] = {}
        self._cache: dict[tuple[str, str], CacheEntry] = {}
        if local_list is not None:
            stored = local_list.load()
            self._local_version, self._local_list = stored.version, dict(stored.entries)
        if auth_cache is not None:
            self._cache = auth_cache.load()
        #: Messages acknowledged by the CSMS since start (for status displays and tests).
        self.delivered = 0

    # ------------------------------------------------------------------------------ queries

    def busy_evses(self) -> frozenset[int]:
        """EVSEs with a transaction in progress (Reset OnIdle / ChangeAvailability: Scheduled)."""
        return frozenset(e for e, m in self.machines.items() if m.transaction_id is not None)

    def status(self, evse_id: int) -> dict[str, Any]:
        """Per-EVSE fields for ``station sim status``."""
        machine = self.machines.get(evse_id)
        if machine is None:
            return {}
        reading = machine.last_reading
        return {
            "session": machine.state.name,
            "transaction_id": machine.transaction_id,
            "energy_import_wh": None if reading is None else reading.energy_import_wh,
            "energy_export_wh": None if reading is None else reading.energy_export_wh,
            "queued_events": len(self.queue),
        }

    def evse_of(self, transaction_id: str) -> int | None:
        """The EVSE running ``transaction_id``, or None."""
        for evse_id, machine in self.machines.items():
            if machine.transaction_id == transaction_id:
                return evse_id
        return None

    def messages_in_queue(self, transaction_id: str | None = None) -> bool:
        """Whether TransactionEvents (of ``transaction_id``, or any) wait to be delivered."""
        if transaction_id is None:
            return len(self.queue) > 0
        return self.transactions.queued_for(transaction_id) > 0

    def remote_start_evse(self, evse_id: int | None) -> int | None:
        """The EVSE a RequestStartTransaction would authorize, or None to reject it (F01/F02).

        An EVSE that is already authorized or has a transaction refuses; without an ``evse_id``
        the first EVSE with a cable plugged and waiting is chosen, else the first idle one.
        """
        candidates = [evse_id] if evse_id is not None else sorted(self.machines)
        free = [
            e
            for e in candidates
            if e in self.machines
            and self.machines[e].accepts(Authorized)
            and self.machines[e].authorization is None
            and self.machines[e].transaction_id is None
        ]
        for e in free:
            if self.machines[e].accepts(CableUnplugged):  # an EV is waiting there
                return e
        return free[0] if free else None

    # ----------------------------------------------------------------------- start-up

    def recover(self) -> None:
        """Take over what the store says was going on before the station stopped (issue 3).

        Each transaction found open is resumed if OCPP 2.1 TxCtrlr.ResumptionTimeout allows it
        (:func:`~station.transactions.machine.resumption_refusal`: the interruption was short
        enough and the EV is still connected): an Updated event with triggerReason TxResumed,
        and energy again if AllowEnergyTransferResumption and the session was authorized.
        Otherwise it is ended with stoppedReason PowerLoss and the last known meter values. Then
        every EVSE whose EV is still connected without a transaction is told so (CablePlugged),
        as a station reading its connectors at boot; the session waits for an authorization.

        Raises:
            StoreError: the store could not be read or written.
        """
        now = self.clock.now()
        settings = self.settings()
        resumed: set[int] = set()
        for open_tx in self.transactions.open_transactions():
            evse_id = open_tx.evse_id
            port = self.ports.get(evse_id)
            machine = self.machines.get(evse_id)
            refusal = (
                "the EVSE is no longer configured"
                if port is None or machine is None
                else resumption_refusal(
                    open_tx,
                    now,
                    timeout_s=settings.resumption_timeout_s,
                    ev_connected=port.plugged,
                )
            )
            if refusal is None and port is not None and machine is not None:
                if machine.config != settings.tx:
                    machine.config = settings.tx
                try:
                    outputs = machine.resume(
                        open_tx,
                        now,
                        port.read_meter(now),
                        energy_allowed=settings.allow_energy_transfer_resumption,
                    )
                except TransactionError as exc:
                    refusal = f"it cannot be taken over: {exc}"
                    self.machines[evse_id] = TransactionMachine(
                        evse_id,
                        self._new_transaction_id,
                        settings.tx,
                        connector_id=machine.connector_id,
                    )
                else:
                    log.warning(
                        "EVSE %d: transaction %s was open at start-up; resuming it (%s)",
                        evse_id,
                        open_tx.transaction_id,
                        "energy transfer resumes"
                        if machine.authorization is not None
                        else "energy waits for a new authorization",
                    )
                    self._carry_out(evse_id, outputs, now)
                    self._schedule_sample(evse_id, settings)
                    resumed.add(evse_id)
                    for started in list(self.started_listeners):
                        started(evse_id, open_tx.transaction_id)
                    continue
            log.warning(
                "EVSE %d: transaction %s was open at start-up; ending it (PowerLoss): not "
                "resumed, %s",
                evse_id,
                open_tx.transaction_id,
                refusal,
            )
            self._record(evse_id, None, [recover(open_tx, now)], now)
            for ended in list(self.ended_listeners):
                ended(evse_id, open_tx.transaction_id)
        for evse_id, port in self.ports.items():
            machine = self.machines[evse_id]
            if evse_id not in resumed and machine.transaction_id is None and port.plugged:
                log.info("EVSE %d: an EV is connected at start-up", evse_id)
                self.submit(evse_id, CablePlugged(machine.connector_id))
        self._on_settled()

    # -------------------------------------------------------------------------- events

    def submit(self, evse_id: int, event: Event) -> None:
        """Feed one event to an EVSE's machine; events are processed in order, one at a time
        (an event caused by a command, e.g. PowerPathClosed, waits for the current one)."""
        self._inbox.append((evse_id, event))
        if self._processing:
            return
        self._processing = True
        try:
            while self._inbox:
                self._process(*self._inbox.popleft())
        finally:
            self._processing = False
        self._on_settled()

    def present_token(self, evse_id: int, token: IdToken) -> None:
        """A token was presented at EVSE ``evse_id`` (reader or vehicle): authorize it, or stop
        the session it started (E07), as a supervised task."""
        self._spawn(self._present_token(evse_id, token))

    def remote_start(
        self,
        evse_id: int,
        token: IdToken,
        remote_start_id: int,
        group_id_token: IdToken | None = None,
    ) -> None:
        """RequestStartTransaction accepted for ``evse_id`` (call after the response went out).

        Without AuthorizeRemoteStart the authorization applies at once, so a duplicated request
        that follows finds the EVSE taken.
        """
        if self.settings().authorize_remote_start:
            self._spawn(self._remote_start(evse_id, token, remote_start_id, group_id_token))
            return
        machine = self.machines[evse_id]
        if machine.accepts(Authorized) and machine.authorization is None:
            self._authorize_session(evse_id, token, group_id_token, remote_start_id)

    def remote_stop(self, transaction_id: str) -> bool:
        """RequestStopTransaction (F03): False when no EVSE runs ``transaction_id``."""
        evse_id = self.evse_of(transaction_id)
        if evse_id is None:
            return False
        self.submit(evse_id, RemoteStop(transaction_id))
        return True

    def charging_rate_changed(self, evse_id: int) -> None:
        """K12 / K13.FR.03: an external actor changed the charging rate of ``evse_id`` by more
        than LimitChangeSignificance: TransactionEvent Updated, triggerReason
        ChargingRateChanged, queued like every TransactionEvent; nothing without a transaction."""
        machine = self.machines.get(evse_id)
        if machine is not None and machine.transaction_id is not None:
            self.submit(evse_id, ChargingRateChanged())

    # ------------------------------------------------------------ meter values (J01, F06)

    def meter_value_evses(self, evse_id: int | None) -> list[int]:
        """The EVSEs a TriggerMessage(MeterValues) addresses: every EVSE without ``evse_id``,
        else that one if it exists (none: the trigger is Rejected)."""
        if evse_id is None:
            return sorted(self.ports)
        return [evse_id] if evse_id in self.ports and evse_id in self.machines else []

    def transaction_evses(self, evse_id: int | None) -> list[int]:
        """The addressed EVSEs (:meth:`meter_value_evses`) that have a transaction: a
        TriggerMessage(TransactionEvent) makes sense for those only."""
        return [e for e in self.meter_value_evses(evse_id) if self.machines[e].transaction_id]

    def trigger_transaction_event(self, evse_ids: Iterable[int]) -> None:
        """F06: a TransactionEvent Updated with triggerReason Trigger (and the chargingState and
        TxUpdatedMeasurands, context Trigger) for the transaction of each EVSE; queued and
        delivered like every TransactionEvent. Call after the TriggerMessage response."""
        for evse_id in evse_ids:
            machine = self.machines.get(evse_id)
            if machine is not None and machine.transaction_id is not None:
                self.submit(evse_id, MessageTriggered())

    async def send_meter_values(self, evse_ids: Iterable[int]) -> None:
        """F06: MeterValues for each EVSE, read now, with AlignedDataCtrlr.Measurands and
        context Trigger. Call after the TriggerMessage response."""
        now = self.clock.now()
        await self._send_meter_values(self._meter_values(evse_ids, now, ReadingContext.TRIGGER))

    def _meter_values(
        self, evse_ids: Iterable[int], at: datetime, context: ReadingContext
    ) -> list[tuple[int, MeterValue]]:
        measurands = self.settings().tx.aligned_measurands
        values: list[tuple[int, MeterValue]] = []
        for evse_id in evse_ids:
            port = self.ports.get(evse_id)
            if port is None:
                continue
            value = meter_value(port.read_meter(at), measurands, context)
            if value is not None:  # no configured measurand available: nothing to send
                values.append((evse_id, value))
        return values

    async def _send_meter_values(self, values: Sequence[tuple[int, MeterValue]]) -> None:
        """MeterValues, one request per EVSE. Not queued: they are not transaction messages
        (issue 3: "other message kinds never block the queue"), and only a Charging Station with
        OCPPCommCtrlr.QueueAllMessages true (an optional variable this station does not offer;
        Part 2 appendices: "the Charging Station will queue all message until they are
        delivered") queues other messages. Offline, or refused, they are dropped with a log
        line; meter values inside a transaction travel in the queued TransactionEvents."""
        for evse_id, value in values:
            try:
                await self.csms.send_meter_values(evse_id, (value,))
            except OcppError as exc:
                log.info(
                    "EVSE %d: MeterValues (%s) not delivered: %s",
                    evse_id,
                    value.sampled_values[0].context.value,
                    exc,
                )

    def _clock_aligned(self, boundary: datetime) -> None:
        """J01: at an AlignedDataCtrlr.Interval boundary, a Sample.Clock reading of every EVSE:
        in a TransactionEvent (MeterValueClock) where a transaction runs, else in MeterValues."""
        idle: list[int] = []
        for evse_id, machine in list(self.machines.items()):
            port = self.ports.get(evse_id)
            if port is None:
                continue
            if machine.transaction_id is not None:
                self.submit(evse_id, MeterSample(SampleKind.CLOCK, port.read_meter(boundary)))
            else:
                idle.append(evse_id)
        values = self._meter_values(idle, boundary, ReadingContext.SAMPLE_CLOCK)
        if values:
            if self.csms.online:
                self._spawn(self._send_meter_values(values))
            else:
                log.info("clock-aligned MeterValues at %s dropped: offline", boundary.isoformat())

    async def _present_token(self, evse_id: int, token: IdToken) -> None:
        machine = self.machines.get(evse_id)
        if machine is None:
            log.warning("token presented at unknown EVSE %d", evse_id)
            return
        if machine.authorization is not None:
            if machine.can_stop(token):
                self.submit(evse_id, LocalStop(token))
            else:
                log.info("EVSE %d: token %s ignored: another session runs", evse_id, token.id_token)
            return
        info = await self._authorize(evse_id, token)
        if info is None:
            log.info("EVSE %d: token %s not authorized", evse_id, token.id_token)
            return
        machine = self.machines[evse_id]  # the machine may have been replaced meanwhile
        if not machine.accepts(Authorized) or machine.authorization is not None:
            log.info("EVSE %d: token %s authorized too late", evse_id, token.id_token)
            return
        self._authorize_session(evse_id, token, info.group_id_token)

    async def _authorize(self, evse_id: int, token: IdToken) -> IdTokenInfo | None:
        """C01/C10/C15: the info behind an accepting decision, or None when rejected."""
        settings = self.settings()
        now = self.clock.now()
        online = self.csms.online
        decision = decide_authorization(
            token,
            evse_id,
            online=online,
            now=now,
            local_list=self._local_list,
            cache=self._cache,
            config=settings.auth,
        )
        if decision.verdict is Verdict.ASK_CSMS:
            try:
                info = await self.csms.authorize(token)
            except OcppError as exc:
                log.warning("Authorize %s failed (%s); deciding offline", token.id_token, exc)
                decision = decide_authorization(
                    token,
                    evse_id,
                    online=False,
                    now=now,
                    local_list=self._local_list,
                    cache=self._cache,
                    config=settings.auth,
                )
            else:
                self._remember(token, info, settings.auth)
                decision = decide_on_authorize_response(info, evse_id)
        elif decision.source is AuthSource.CACHE:
            self._cache_used(token, now)
        if decision.verdict is not Verdict.ACCEPT:
            return None
        return decision.info or IdTokenInfo(AuthorizationStatus.ACCEPTED)

    def _remember(self, token: IdToken, info: IdTokenInfo, config: AuthConfig) -> None:
        """C10: the CSMS's idTokenInfo for ``token`` goes into the cache (written through)."""
        entry = cache_entry(info, self.clock.now(), config)
        key = token_key(token)
        if entry is None and key not in self._cache:
            return
        try:
            if entry is None:
                if self._cache_store is not None:
                    self._cache_store.remove(token)
                self._cache.pop(key, None)
            else:
                if self._cache_store is not None:
                    self._cache_store.put(token, entry)
                self._cache[key] = entry
            self._fit_cache(config)
        except StoreError:
            log.exception("authorization cache: could not store %s", token.id_token)

    def _cache_used(self, token: IdToken, now: datetime) -> None:
        """The cache entry of ``token`` decided an authorization: it is the most recently used."""
        key = token_key(token)
        entry = self._cache.get(key)
        if entry is None:
            return
        self._cache[key] = replace(entry, last_used_at=now)
        if self._cache_store is not None:
            try:
                self._cache_store.touch(token, now)
            except StoreError:
                log.exception("authorization cache: could not mark %s used", token.id_token)

    def _fit_cache(self, config: AuthConfig) -> None:
        """C10 / AuthCacheCtrlr.Storage: evict (expired first, then least recently used) until
        the cache fits its byte limit; report the bytes it takes.

        Raises:
            StoreError: the store could not be read or written.
        """
        if self._cache_store is None:
            return
        sizes = self._cache_store.sizes()
        limit_b = config.cache_storage_max_b
        if limit_b is not None:
            evicted = cache_evictions(self._cache, sizes, limit_b, self.clock.now(), config)
            if evicted:
                self._cache_store.remove_keys(evicted)
                for key in evicted:
                    self._cache.pop(key, None)
                    sizes.pop(key, None)
                log.info(
                    "authorization cache at its limit of %d B: evicted %d entr%s",
                    limit_b,
                    len(evicted),
                    "y" if len(evicted) == 1 else "ies",
                )
        self._on_auth_cache_changed(sum(sizes.get(key, 0) for key in self._cache))

    # ------------------------------------------------------- D01/D02/C11 list and cache

    def local_list_size(self) -> tuple[int, int]:
        """The list's entries and the bytes they take in the store (LocalAuthListCtrlr)."""
        size_b = 0
        if self._list_store is not None and self._local_list:
            size_b = self._list_store.storage_bytes()
        return len(self._local_list), size_b

    def auth_cache_storage_b(self) -> int:
        """The bytes the Authorization Cache takes in the store (AuthCacheCtrlr.Storage).

        Raises:
            StoreError: the store could not be read.
        """
        if self._cache_store is None or not self._cache:
            return 0
        sizes = self._cache_store.sizes()
        return sum(sizes.get(key, 0) for key in self._cache)

    def local_list_version(self) -> int:
        """D02 GetLocalListVersion: the list's version; 0 when there is none, it is empty or
        it is disabled (LocalAuthListCtrlr.Enabled false)."""
        if not self.settings().auth.local_list_enabled or not self._local_list:
            return 0
        return self._local_version

    def send_local_list(self, update: LocalListUpdate) -> SendLocalListStatus:
        """D01 SendLocalList: apply ``update`` (committed before this returns) and say how it
        went; a store failure leaves the list as it was and answers Failed."""
        enabled = self.settings().auth.local_list_enabled
        current = self._local_version if self._local_list else 0
        change = plan_local_list_update(update, current, enabled=enabled)
        if change.status is not SendLocalListStatus.ACCEPTED:
            log.info(
                "SendLocalList %s version %d: %s (list at version %d)",
                update.update_type.value,
                update.version,
                change.status.value,
                current,
            )
            return change.status
        entries = {} if change.full else dict(self._local_list)
        for token in change.removals:
            entries.pop(token_key(token), None)
        for token, info in change.upserts:
            entries[token_key(token)] = info
        size_b = 0
        if self._list_store is not None:
            try:
                self._list_store.replace(
                    change.version,
                    upserts=change.upserts,
                    removals=change.removals,
                    full=change.full,
                )
                size_b = self._list_store.storage_bytes()
            except StoreError:
                log.exception("SendLocalList version %d: could not store the list", update.version)
                return SendLocalListStatus.FAILED
        self._local_list, self._local_version = entries, change.version
        log.info("local authorization list at version %d: %d entries", change.version, len(entries))
        self._on_local_list_changed(len(entries), size_b)
        return SendLocalListStatus.ACCEPTED

    def clear_cache(self) -> bool:
        """C11 ClearCache: False (Rejected) when the cache is disabled or cannot be cleared."""
        if not self.settings().auth.cache_enabled:
            return False
        if self._cache_store is not None:
            try:
                self._cache_store.clear()
            except StoreError:
                log.exception("ClearCache: could not clear the stored cache")
                return False
        self._cache.clear()
        self._on_auth_cache_changed(0)
        log.info("authorization cache cleared")
        return True

    async def _remote_start(
        self, evse_id: int, token: IdToken, remote_start_id: int, group: IdToken | None
    ) -> None:
        if self.settings().authorize_remote_start:
            # F01.FR.?: AuthorizeRemoteStart true: authorize the token like a local one first.
            info = await self._authorize(evse_id, token)
            if info is None:
                log.info("EVSE %d: remote start %d: token not authorized", evse_id, remote_start_id)
                return
            group = group or info.group_id_token
        machine = self.machines[evse_id]
        if not machine.accepts(Authorized) or machine.authorization is not None:
            log.info("EVSE %d: remote start %d no longer possible", evse_id, remote_start_id)
            return
        self._authorize_session(evse_id, token, group, remote_start_id)

    def _authorize_session(
        self,
        evse_id: int,
        token: IdToken,
        group: IdToken | None,
        remote_start_id: int | None = None,
    ) -> None:
        """Authorize a session the machine can take now, unless a reservation forbids it (H03:
        a reserved EVSE is only for the reserved token or group); a reservation it matches is
        consumed, and its id goes into the TransactionEvent that reports the authorization."""
        reservation_id: int | None = None
        if self.reservations is not None:
            admission = self.reservations.admit(evse_id, token, group)
            if not admission.allowed:
                log.info("EVSE %d: token %s refused: EVSE reserved", evse_id, token.id_token)
                return
            if admission.reservation is not None:
                reservation_id = admission.reservation.reservation_id
                self.reservations.consume(admission.reservation)
        self.submit(evse_id, Authorized(token, group, remote_start_id, reservation_id))

    def _process(self, evse_id: int, event: Event) -> None:
        machine = self.machines.get(evse_id)
        port = self.ports.get(evse_id)
        if machine is None or port is None:
            log.warning("event %s for unknown EVSE %d ignored", type(event).__name__, evse_id)
            return
        if isinstance(event, CablePlugged | CableUnplugged):
            # The connector status follows the cable, whatever the session makes of it.
            connector_id = event.connector_id if isinstance(event, CablePlugged) else None
            self._on_occupied(
                evse_id, connector_id or machine.connector_id, isinstance(event, CablePlugged)
            )
        if not machine.accepts(type(event)):
            log.info(
                "EVSE %d: %s ignored in state %s", evse_id, type(event).__name__, machine.state.name
            )
            return
        settings = self.settings()
        if machine.config != settings.tx:
            machine.config = settings.tx
        now = self.clock.now()
        reading = None if isinstance(event, MeterSample) else port.read_meter(now)
        before = machine.transaction_id
        try:
            outputs = machine.receive(event, now, reading)
        except TransactionError as exc:
            self._machine_failed(evse_id, exc, now)
            return
        self._carry_out(evse_id, outputs, now)
        after = machine.transaction_id
        if before is not None and after != before:
            self._next_sample.pop(evse_id, None)
            log.info("EVSE %d: transaction %s ended", evse_id, before)
            self._on_transaction_ended(evse_id)
            for ended in list(self.ended_listeners):
                ended(evse_id, before)
        if after is not None and after != before:
            self._schedule_sample(evse_id, settings)
            for started in list(self.started_listeners):
                started(evse_id, after)

    def _carry_out(self, evse_id: int, outputs: list[Output], now: datetime) -> None:
        """Commit the events first, then act (the machine's outputs are in a safe order)."""
        machine = self.machines[evse_id]
        port = self.ports[evse_id]
        messages = [o for o in outputs if isinstance(o, TransactionEventOut)]
        if messages:
            self._record(evse_id, machine.open_transaction, messages, now)
        for output in outputs:
            if isinstance(output, OpenPowerPath):
                port.open_power_path()
            elif isinstance(output, ClosePowerPath):
                port.close_power_path()
            elif isinstance(output, UnlockConnector):
                port.unlock_connector(output.connector_id)

    def _machine_failed(self, evse_id: int, exc: TransactionError, now: datetime) -> None:
        """A machine in ERROR: end its transaction (AbnormalCondition) and start afresh."""
        machine = self.machines[evse_id]
        log.error("EVSE %d: transaction machine failed: %s", evse_id, exc)
        open_tx = machine.open_transaction
        self.ports[evse_id].open_power_path()
        if open_tx is not None:
            self._record(evse_id, None, [abort(open_tx, now)], now)
        self.machines[evse_id] = TransactionMachine(
            evse_id, self._new_transaction_id, machine.config, connector_id=machine.connector_id
        )
        if open_tx is not None:
            self._on_transaction_ended(evse_id)
            for ended in list(self.ended_listeners):
                ended(evse_id, open_tx.transaction_id)

    def _record(
        self,
        evse_id: int,
        open_tx: Any,
        messages: list[TransactionEventOut],
        now: datetime,
    ) -> None:
        offline = not self.csms.online
        pending: list[PendingMessage] = []
        for m in messages:
            try:
                payload = self.csms.encode(replace(m, offline=offline) if offline else m)
            except LocalOcppError as exc:
                # E13: a message that can never be valid would block the queue forever.
                log.error(
                    "EVSE %d: TransactionEvent seqNo=%d tx=%s dropped: %s",
                    evse_id,
                    m.seq_no,
                    m.transaction_id,
                    exc,
                )
                continue
            pending.append(PendingMessage(TRANSACTION_EVENT, payload, m.transaction_id))
        try:
            self.transactions.record(evse_id, open_tx, pending, now=now)
        except StoreError:
            # Nothing else can be done here: the message is lost, and says so.
            log.exception("EVSE %d: could not commit %d TransactionEvent(s)", evse_id, len(pending))
            return
        if self.queue_max_messages is not None:
            self._thin(self.queue_max_messages)
        for m in messages:
            log.info(
                "EVSE %d: queued TransactionEvent %s seqNo=%d tx=%s trigger=%s%s",
                evse_id,
                m.event_type.value,
                m.seq_no,
                m.transaction_id,
                m.trigger_reason.value,
                " (offline)" if offline else "",
            )
        self._wake.set()

    def _thin(self, limit: int) -> None:
        """Issue 3: at its bound, the queue drops the oldest meter-value-only Updated events
        (never Started or Ended; the others keep their seqNo, so the CSMS sees the gap the
        seqNo exists to show), says so in a WARNING line, and tells the listeners."""
        try:
            thinning = self.transactions.thin(limit, headroom=limit // QUEUE_HEADROOM_DIVISOR)
        except StoreError:
            log.exception("the outbound queue could not be thinned")
            return
        if thinning is None:
            return
        if thinning.count == 0:
            log.warning(
                "outbound queue over its bound (%d of %d): nothing left that may be thinned",
                thinning.queued,
                limit,
            )
        else:
            log.warning(
                "outbound queue full (bound %d): dropped %d meter-value-only TransactionEvent(s) "
                "(%s); %d messages wait",
                limit,
                thinning.count,
                ", ".join(
                    f"tx={tx} seqNo {seq[0]}..{seq[-1]}" for tx, seq in thinning.dropped.items()
                ),
                thinning.queued,
            )
        for listener in list(self.queue_thinned_listeners):
            listener(thinning)

    # -------------------------------------------------------------------------- running

    async def run(self) -> None:
        """Deliver the queue and take periodic samples until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._deliver())
            group.create_task(self._timers())

    async def _deliver(self) -> None:
        # The head of the queue, read ahead: only this task deletes or changes queued messages,
        # and new ones get higher ids, so the batch stays the head, in order, until it is sent.
        # It is read again after a failed attempt (which changes or drops its first message).
        # A message is deleted only after its CALLRESULT, and that deletion is committed before
        # the next message is sent (ACK_BATCH; always before the queue is read again, before
        # waiting, and before an attempt is recorded). A crash between a CALLRESULT and its
        # commit sends that one message again, byte for byte with its seqNo; nothing is lost.
        batch: deque[QueuedMessage] = deque()
        acked: list[int] = []
        acked_since = 0.0
        try:
            while True:
                if not batch:
                    self._flush_acks(acked)
                    batch.extend(self.queue.peek(DELIVERY_READ_AHEAD))
                if not batch:
                    self._wake.clear()
                    if not self.queue.peek(1):
                        await self._wake.wait()
                    continue
                message = batch[0]
                if not self.csms.online:
                    self._flush_acks(acked)
                    await self.csms.wait_online()
                    continue
                now = self.clock.now()
                if message.next_attempt_at is not None and message.next_attempt_at > now:
                    self._flush_acks(acked)
                    await asyncio.sleep((message.next_attempt_at - now).total_seconds())
                    continue
                if acked and (
                    len(acked) >= ACK_BATCH or self.clock.monotonic() - acked_since >= ACK_DELAY_S
                ):
                    self._flush_acks(acked)
                try:
                    info = await self.csms.send_transaction_event(message.payload)
                except ConnectionLostError:
                    continue  # not an attempt: wait for the link, then send it again
                except (RemoteOcppError, LocalOcppError) as exc:
                    batch.clear()
                    self._flush_acks(acked)
                    self._failed_attempt(message.id, message.attempts + 1, exc)
                    continue
                batch.popleft()
                if not acked:
                    acked_since = self.clock.monotonic()
                acked.append(message.id)
                self.delivered += 1
                if info is not None:
                    self._answered(message.transaction_id, message.payload, info)
        finally:
            with contextlib.suppress(StoreError):
                self._flush_acks(acked)

    def _flush_acks(self, acked: list[int]) -> None:
        """Commit the deletion of the delivered messages in ``acked`` and empty it.

        Raises:
            StoreError: the store could not be written (``acked`` is kept for the next try).
        """
        if acked:
            self.queue.ack_many(acked)
            acked.clear()

    def _failed_attempt(self, message_id: int, attempts: int, exc: OcppError) -> None:
        settings = self.settings()
        now = self.clock.now()
        if isinstance(exc, LocalOcppError) or attempts >= settings.message_attempts:
            # E13: after MessageAttempts the message may be discarded; our own invalid payload
            # would block the queue forever.
            log.error(
                "TransactionEvent (queue id %d) dropped after %d attempt(s): %s",
                message_id,
                attempts,
                exc,
            )
            self.queue.ack(message_id)
            return
        delay_s = settings.message_attempt_interval_s * attempts
        log.warning(
            "TransactionEvent (queue id %d) attempt %d failed (%s); retrying in %g s",
            message_id,
            attempts,
            exc,
            delay_s,
        )
        self.queue.mark_attempt(
            message_id,
            now=now,
            next_attempt_at=now + timedelta(seconds=delay_s),
            error=str(exc),
        )

    def _answered(
        self, transaction_id: str | None, payload: Mapping[str, Any], info: IdTokenInfo
    ) -> None:
        """E05: a non-Accepted idTokenInfo ends the authorization (StopTxOnInvalidId)."""
        token = payload.get("idToken")
        settings = self.settings()
        if isinstance(token, dict):
            with contextlib.suppress(ValueError, KeyError):
                self._remember(
                    IdToken(str(token["idToken"]), IdTokenType(token["type"])), info, settings.auth
                )
        if info.status is AuthorizationStatus.ACCEPTED or transaction_id is None:
            return
        evse_id = self.evse_of(transaction_id)
        if evse_id is not None and settings.stop_tx_on_invalid_id:
            log.info(
                "EVSE %d: transaction %s deauthorized (%s)", evse_id, transaction_id, info.status
            )
            self.submit(evse_id, Deauthorized())
        elif evse_id is not None:
            self._limit_energy(evse_id, transaction_id, settings.max_energy_on_invalid_id_wh)

    def _limit_energy(self, evse_id: int, transaction_id: str, max_energy_wh: float | None) -> None:
        """StopTxOnInvalidId false: the transaction goes on with its energy capped at
        MaxEnergyOnInvalidId (none without it), then SuspendedEVSE (the machine's rule)."""
        machine = self.machines[evse_id]
        log.info(
            "EVSE %d: transaction %s not accepted; StopTxOnInvalidId false: energy capped at %s Wh",
            evse_id,
            transaction_id,
            "0" if max_energy_wh is None else f"{max_energy_wh:g}",
        )
        self._processing = True  # events the outputs cause wait, as in submit()
        try:
            now = self.clock.now()
            try:
                outputs = machine.limit_energy(
                    transaction_id, max_energy_wh, now, self.ports[evse_id].read_meter(now)
                )
            except TransactionError as exc:
                self._machine_failed(evse_id, exc, now)
            else:
                self._carry_out(evse_id, outputs, now)
                if machine.transaction_id != transaction_id:  # EnergyTransfer was a stop point
                    self._next_sample.pop(evse_id, None)
                    log.info("EVSE %d: transaction %s ended", evse_id, transaction_id)
                    self._on_transaction_ended(evse_id)
                    for ended in list(self.ended_listeners):
                        ended(evse_id, transaction_id)
            while self._inbox:
                self._process(*self._inbox.popleft())
        finally:
            self._processing = False
        self._on_settled()

    def _schedule_sample(self, evse_id: int, settings: ServiceSettings) -> None:
        if settings.tx_updated_interval_s > 0:
            self._next_sample[evse_id] = self.clock.monotonic() + settings.tx_updated_interval_s
            self._timers_changed.set()

    def _aligned_due(self, now: datetime) -> datetime | None:
        """J01: take the clock-aligned samples if a boundary has passed; the next boundary."""
        interval = self.settings().aligned_interval_s
        due = self._next_aligned_at
        if (
            interval != self._aligned_interval_s  # at start, or the CSMS changed it
            or (due is not None and (due - now).total_seconds() > interval)  # clock set back
        ):
            self._aligned_interval_s = interval
            self._next_aligned_at = next_aligned(now, interval) if interval > 0 else None
        elif due is not None and due <= now:
            self._next_aligned_at = next_aligned(now, interval)
            # The latest boundary: after a stall the missed ones are skipped, never sent in a burst.
            self._clock_aligned(self._next_aligned_at - timedelta(seconds=interval))
        return self._next_aligned_at

    async def _timers(self) -> None:
        """J02 periodic samples every TxUpdatedInterval; J01 clock-aligned samples every
        AlignedDataCtrlr.Interval; EVConnectionTimeOut ticks; the open transactions' keep-alive
        every :data:`KEEP_ALIVE_S`. Each waits for its own deadline; the settings are read again
        at least every second (a SetVariables applies)."""
        alive_at = self.clock.monotonic()
        while True:
            self._timers_changed.clear()
            mono = self.clock.monotonic()
            if mono - alive_at >= KEEP_ALIVE_S:
                alive_at = mono
                if self.busy_evses():
                    try:
                        self.transactions.keep_alive(self.clock.now())
                    except StoreError:
                        log.exception("the open transactions' keep-alive could not be written")
            due = [e for e, t in self._next_sample.items() if t <= mono]
            for evse_id in due:
                port = self.ports[evse_id]
                interval = self.settings().tx_updated_interval_s
                if interval > 0:
                    self._next_sample[evse_id] += interval
                    if self._next_sample[evse_id] <= mono:  # fell behind: skip, never burst
                        self._next_sample[evse_id] = mono + interval
                else:
                    self._next_sample.pop(evse_id)
                reading = port.read_meter(self.clock.now())
                self.submit(evse_id, MeterSample(SampleKind.PERIODIC, reading))
            now = self.clock.now()
            for evse_id, machine in self.machines.items():
                deadline = machine.deadline()
                if (deadline is not None and deadline <= now) or machine.watching_energy:
                    self.submit(evse_id, Tick())  # EVConnectionTimeOut; MaxEnergyOnInvalidId
            wait_s = 1.0
            if self._next_sample:
                wait_s = min(wait_s, max(0.0, min(self._next_sample.values()) - mono))
            aligned_at = self._aligned_due(now)
            if aligned_at is not None:
                wait_s = min(wait_s, max(0.0, (aligned_at - now).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._timers_changed.wait()
