"""Random sessions against the invariants of issue 3 (hypothesis stateful testing).

Whatever the order of events valid in the current state, and whatever the start/stop points:
- the machine never raises for an event its table accepts;
- per transaction: seqNo runs 0, 1, 2... without a gap; exactly one Started, first; at most one
  Ended, last, always with a stoppedReason; nothing after it;
- one transaction at a time per EVSE, ids never reused;
- energy registers in the meter values never decrease (ordered by their timestamps);
- energy never flows outside a transaction (CHARGING implies an open one; ClosePowerPath is only
  commanded inside one, unless EnergyTransfer is a start point);
- after a power loss, :func:`recover` ends the open transaction with the next seqNo; after an
  invalid event the machine is in ERROR and :func:`abort` ends it the same way.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from station.transactions import (
    TRANSITIONS,
    Authorized,
    CablePlugged,
    CableUnplugged,
    ChargingRateChanged,
    ClosePowerPath,
    DataSigned,
    Deauthorized,
    EnergyTransferStarted,
    EnergyTransferStopped,
    Event,
    EventType,
    Fault,
    IdToken,
    IdTokenType,
    ImmediateReset,
    LocalStop,
    LocalTransactionError,
    Measurand,
    MessageTriggered,
    MeterSample,
    Output,
    ParkingBayOccupied,
    ParkingBayVacated,
    PowerPathClosed,
    PowerPathOpened,
    RemoteStop,
    SampleKind,
    State,
    StoppedReason,
    Suspender,
    Tick,
    TransactionEventOut,
    TransactionMachine,
    TxConfig,
    TxPoint,
    abort,
    recover,
)
from tests.transactions.support import GROUP, T0, Meter

POINT_SETS = st.frozensets(st.sampled_from(list(TxPoint)), min_size=1)
TOKENS = [
    IdToken("AAAA0001", IdTokenType.ISO14443),
    IdToken("bbbb0002", IdTokenType.ISO15693),
    IdToken("user@example", IdTokenType.CENTRAL),
]
STEP_S = st.sampled_from([0.0, 0.5, 1.0, 7.0, 30.0, 59.0, 61.0, 300.0])
ENERGY = (Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, Measurand.ENERGY_ACTIVE_EXPORT_REGISTER)
ALL_EVENTS = sorted({t for row in TRANSITIONS.values() for t in row}, key=lambda t: t.__name__)


class TransactionSessions(RuleBasedStateMachine):
    machine: TransactionMachine

    @initialize(
        start=POINT_SETS,
        stop=POINT_SETS,
        timeout_s=st.sampled_from([1.0, 60.0, 180.0]),
        ended_interval_s=st.sampled_from([0.0, 30.0, 120.0]),
        aligned_ended=st.booleans(),
    )
    def setup(
        self,
        start: frozenset[TxPoint],
        stop: frozenset[TxPoint],
        timeout_s: float,
        ended_interval_s: float,
        aligned_ended: bool,
    ) -> None:
        self.config = TxConfig(
            tx_start_points=start,
            tx_stop_points=stop,
            ev_connection_timeout_s=timeout_s,
            tx_ended_interval_s=ended_interval_s,
            aligned_tx_ended_measurands=ENERGY if aligned_ended else (),
            aligned_tx_ended_interval_s=900.0 if aligned_ended else 0.0,
        )
        self.counter = itertools.count(1)
        self.machine = self._new_machine()
        self.now = T0
        self.meter = Meter()
        self.log: dict[str, list[TransactionEventOut]] = {}
        self.ended: set[str] = set()
        self.open: str | None = None

    def _new_machine(self) -> TransactionMachine:
        return TransactionMachine(1, lambda: f"TX-{next(self.counter)}", self.config)

    # --- bookkeeping --------------------------------------------------------------------------

    def _advance(self, seconds: float) -> None:
        self.meter.advance(seconds)
        self.now += timedelta(seconds=seconds)

    def _send(self, event: Event, seconds: float, with_reading: bool = True) -> None:
        assert self.machine.accepts(type(event))
        self._advance(seconds)
        reading = self.meter.read(self.now) if with_reading else None
        self._record(self.machine.receive(event, self.now, reading))

    def _record(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, TransactionEventOut):
                self._record_message(output)
            elif isinstance(output, ClosePowerPath):
                assert (
                    self.machine.transaction_id is not None
                    or TxPoint.ENERGY_TRANSFER in self.config.tx_start_points
                ), "power path closed outside a transaction"

    def _record_message(self, message: TransactionEventOut) -> None:
        tx_id = message.transaction_id
        assert tx_id not in self.ended, f"{tx_id}: event after Ended"
        events = self.log.setdefault(tx_id, [])
        assert message.seq_no == len(events), f"{tx_id}: seqNo gap"
        if message.event_type is EventType.STARTED:
            assert not events, f"{tx_id}: second Started"
            assert self.open is None, "two transactions open at once on one EVSE"
            assert message.charging_state is not None
            self.open = tx_id
        else:
            assert events, f"{tx_id}: first event is not Started"
            assert self.open == tx_id
        events.append(message)
        if message.event_type is EventType.ENDED:
            assert message.stopped_reason is not None, f"{tx_id}: Ended without stoppedReason"
            self.ended.add(tx_id)
            self.open = None
            self._check_energy(events)

    @staticmethod
    def _check_energy(events: list[TransactionEventOut]) -> None:
        for measurand in ENERGY:
            values = sorted(
                (meter_value.timestamp, sampled.value)
                for message in events
                for meter_value in message.meter_values
                for sampled in meter_value.sampled_values
                if sampled.measurand is measurand
            )
            registers = [value for _, value in values]
            assert registers == sorted(registers), f"{measurand} went backwards"

    # --- the world ------------------------------------------------------------------------------

    @rule(power_w=st.sampled_from([-20_000.0, -3_700.0, 0.0, 7_400.0, 50_000.0]))
    def change_power(self, power_w: float) -> None:
        self.meter.power_w = power_w

    @precondition(lambda self: self.machine.accepts(CablePlugged))
    @rule(seconds=STEP_S)
    def plug(self, seconds: float) -> None:
        self._send(CablePlugged(), seconds)

    @precondition(lambda self: self.machine.accepts(CableUnplugged))
    @rule(seconds=STEP_S, with_reading=st.booleans())
    def unplug(self, seconds: float, with_reading: bool) -> None:
        self._send(CableUnplugged(), seconds, with_reading)

    @precondition(lambda self: self.machine.accepts(Authorized))
    @rule(
        token=st.sampled_from(TOKENS),
        grouped=st.booleans(),
        remote_start_id=st.none() | st.integers(0, 1000),
        seconds=STEP_S,
    )
    def authorize(
        self, token: IdToken, grouped: bool, remote_start_id: int | None, seconds: float
    ) -> None:
        group = GROUP if grouped else None
        self._send(Authorized(token, group, remote_start_id), seconds)

    @precondition(lambda self: self.machine.authorization is not None)
    @rule(how=st.sampled_from(["same", "case", "master"]), seconds=STEP_S)
    def local_stop(self, how: str, seconds: float) -> None:
        token = self.machine.authorization
        assert token is not None
        if how == "case":
            token = IdToken(token.id_token.swapcase(), token.type)
        assert self.machine.can_stop(token)
        self._send(LocalStop(token, master_pass=how == "master"), seconds)

    @precondition(lambda self: self.machine.transaction_id is not None)
    @rule(seconds=STEP_S)
    def remote_stop(self, seconds: float) -> None:
        transaction_id = self.machine.transaction_id
        assert transaction_id is not None
        self._send(RemoteStop(transaction_id), seconds)

    @rule(seconds=STEP_S)
    def deauthorize(self, seconds: float) -> None:
        self._send(Deauthorized(), seconds)

    @precondition(lambda self: self.machine.accepts(EnergyTransferStarted))
    @rule(seconds=STEP_S)
    def energy_starts(self, seconds: float) -> None:
        self._send(EnergyTransferStarted(), seconds)

    @rule(
        by=st.sampled_from(list(Suspender)),
        reason=st.none() | st.just(StoppedReason.SOC_LIMIT_REACHED),
        seconds=STEP_S,
    )
    def energy_stops(self, by: Suspender, reason: StoppedReason | None, seconds: float) -> None:
        self._send(EnergyTransferStopped(by, reason), seconds)

    @rule(
        event=st.sampled_from(
            [
                PowerPathClosed(),
                PowerPathOpened(),
                ParkingBayOccupied(),
                ParkingBayVacated(),
                DataSigned(),
                ChargingRateChanged(),
                MessageTriggered(),
                Fault(StoppedReason.GROUND_FAULT),
                ImmediateReset(),
            ]
        ),
        seconds=STEP_S,
    )
    def something_happens(self, event: Event, seconds: float) -> None:
        self._send(event, seconds)

    @rule(kind=st.sampled_from(list(SampleKind)), seconds=STEP_S)
    def sample(self, kind: SampleKind, seconds: float) -> None:
        self._advance(seconds)
        event = MeterSample(kind, self.meter.read(self.now))
        self._record(self.machine.receive(event, self.now))

    @rule(seconds=STEP_S)
    def tick(self, seconds: float) -> None:
        self._advance(seconds)
        self._record(self.machine.tick(self.now))
        deadline = self.machine.deadline()
        assert deadline is None or deadline > self.now

    @rule(seconds=STEP_S)
    def power_loss(self, seconds: float) -> None:
        persisted = self.machine.open_transaction
        self._advance(seconds)
        self.machine = self._new_machine()  # everything in memory is gone
        if persisted is not None:
            ended = recover(persisted, self.now, reading=self.meter.read(self.now))
            assert ended.stopped_reason is StoppedReason.POWER_LOSS
            self._record_message(ended)
        assert self.open is None

    @rule(data=st.data())
    def invalid_event(self, data: st.DataObject) -> None:
        refused = [t for t in ALL_EVENTS if not self.machine.accepts(t)]
        if not refused:
            return
        event_type = data.draw(st.sampled_from(refused))
        try:
            self.machine.receive(event_type.__new__(event_type), self.now)
        except LocalTransactionError:
            pass
        else:
            raise AssertionError(f"{event_type.__name__} accepted in a state that refuses it")
        assert self.machine.state is State.ERROR
        assert not self.machine.accepts(Tick)
        persisted = self.machine.open_transaction
        self.machine = self._new_machine()
        if persisted is not None:
            self._record_message(abort(persisted, self.now))

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def transaction_bookkeeping_agrees(self) -> None:
        if hasattr(self, "machine"):
            assert self.machine.transaction_id == self.open

    @invariant()
    def no_energy_outside_a_transaction(self) -> None:
        if hasattr(self, "machine") and self.machine.state is State.CHARGING:
            assert self.machine.transaction_id is not None

    @invariant()
    def authorization_matches_the_state(self) -> None:
        if hasattr(self, "machine"):
            authorized = self.machine.state in (
                State.AUTHORIZED,
                State.READY,
                State.CHARGING,
                State.SUSPENDED,
            )
            assert (self.machine.authorization is not None) == authorized


TransactionSessions.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTransactionSessions = TransactionSessions.TestCase
