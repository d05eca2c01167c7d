"""Resuming a transaction after a restart (OCPP 2.1 TxCtrlr.ResumptionTimeout), the pure part.

:func:`resumption_refusal` decides; :meth:`TransactionMachine.resume` takes the transaction over:
one Updated(TxResumed) event continuing the seqNo, with the readings before and after the
interruption, then the session goes on as any other.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.transactions import (
    Authorized,
    CablePlugged,
    CableUnplugged,
    ClosePowerPath,
    EnergyTransferStarted,
    LocalStop,
    Measurand,
    OpenTransaction,
    PowerPathClosed,
    ReadingContext,
    SampleKind,
    TransactionEventOut,
    TransactionMachine,
    TriggerReason,
    TxConfig,
    TxPoint,
)
from station.transactions.errors import LocalTransactionError, RemoteTransactionError
from station.transactions.machine import State, resumption_refusal
from tests.transactions.support import GROUP, T0, TOKEN, Meter, Run, row


def interrupted_charge(config: TxConfig | None = None) -> tuple[Run, OpenTransaction]:
    """A charging session, as the store holds it when the power goes."""
    run = Run(config or TxConfig())
    run.send(CablePlugged())
    run.send(Authorized(TOKEN, GROUP))
    run.send(PowerPathClosed())
    run.meter.power_w = 11_000
    run.send(EnergyTransferStarted())
    run.send_sample(SampleKind.PERIODIC)
    persisted = run.machine.open_transaction
    assert persisted is not None
    return run, replace(persisted, alive_at=run.now)


def fresh_machine(config: TxConfig | None = None) -> TransactionMachine:
    counter = itertools.count(100)
    return TransactionMachine(1, lambda: f"TX-{next(counter)}", config or TxConfig())


def test_the_open_transaction_carries_the_sessions_tokens() -> None:
    _, persisted = interrupted_charge()
    assert (persisted.id_token, persisted.group_id_token) == (TOKEN, GROUP)


def test_resume_continues_the_transaction_and_closes_the_power_path() -> None:
    run, persisted = interrupted_charge()
    boot = run.now + timedelta(seconds=30)
    meter = Meter(run.meter.import_wh, run.meter.export_wh)  # no energy while the power was off
    machine = fresh_machine()
    outputs = machine.resume(persisted, boot, meter.read(boot), energy_allowed=True)
    message, close = outputs
    assert isinstance(message, TransactionEventOut)
    assert close == ClosePowerPath(1)
    assert row(message) == ("Updated", "TxResumed", "EVConnected", None, persisted.next_seq_no)
    assert message.transaction_id == persisted.transaction_id
    assert message.id_token is None  # reported before the interruption
    before, after = message.meter_values
    assert before.timestamp == run.now and after.timestamp == boot
    assert {v.context for v in before.sampled_values} == {ReadingContext.INTERRUPTION_BEGIN}
    assert {v.context for v in after.sampled_values} == {ReadingContext.INTERRUPTION_END}
    imported = {
        v.value
        for v in after.sampled_values
        if v.measurand is Measurand.ENERGY_ACTIVE_IMPORT_REGISTER
    }
    assert imported == {meter.import_wh}
    assert machine.state is State.READY and machine.authorization == TOKEN
    assert machine.transaction_id == persisted.transaction_id

    # The session goes on: energy flows, then the driver stops it with the same card.
    later = boot + timedelta(seconds=1)
    machine.receive(PowerPathClosed(), later)
    (charging,) = machine.receive(EnergyTransferStarted(), later)
    assert isinstance(charging, TransactionEventOut)
    assert row(charging) == (
        "Updated",
        "ChargingStateChanged",
        "Charging",
        None,
        persisted.next_seq_no + 1,
    )
    assert machine.can_stop(TOKEN)
    outputs = machine.receive(LocalStop(TOKEN), later) + machine.receive(CableUnplugged(), later)
    ended = [o for o in outputs if isinstance(o, TransactionEventOut)]
    assert [row(m)[0] for m in ended] == ["Ended"]
    assert ended[0].stopped_reason is not None and ended[0].stopped_reason.value == "Local"


def test_without_energy_resumption_the_ev_waits_for_a_new_authorization() -> None:
    run, persisted = interrupted_charge()
    boot = run.now + timedelta(seconds=5)
    machine = fresh_machine()
    (message,) = machine.resume(persisted, boot, run.meter.read(boot), energy_allowed=False)
    assert isinstance(message, TransactionEventOut)
    assert row(message)[:3] == ("Updated", "TxResumed", "EVConnected")
    assert machine.state is State.CONNECTED and machine.authorization is None
    outputs = machine.receive(Authorized(TOKEN), boot + timedelta(seconds=1))
    assert ClosePowerPath(1) in outputs
    (authorized,) = [o for o in outputs if isinstance(o, TransactionEventOut)]
    assert authorized.trigger_reason is TriggerReason.AUTHORIZED
    assert authorized.id_token == TOKEN  # the new authorization is reported
    assert authorized.transaction_id == persisted.transaction_id


def test_a_transaction_without_an_authorization_resumes_connected() -> None:
    run = Run(TxConfig(tx_start_points={TxPoint.EV_CONNECTED}))
    run.send(CablePlugged())
    persisted = run.machine.open_transaction
    assert persisted is not None and persisted.id_token is None
    machine = fresh_machine()
    machine.resume(persisted, run.now, run.meter.read(run.now), energy_allowed=True)
    assert machine.state is State.CONNECTED


def test_resume_refuses_a_meter_that_went_back_and_a_busy_machine() -> None:
    run, persisted = interrupted_charge()
    back = replace(run.meter.read(run.now), energy_import_wh=run.meter.import_wh - 1)
    machine = fresh_machine()
    with pytest.raises(RemoteTransactionError):
        machine.resume(persisted, run.now, back, energy_allowed=True)
    assert machine.state is State.ERROR
    busy = fresh_machine()
    busy.receive(CablePlugged(), run.now)
    with pytest.raises(LocalTransactionError, match="fresh machine"):
        busy.resume(persisted, run.now, run.meter.read(run.now), energy_allowed=True)
    other_evse = TransactionMachine(2, lambda: "TX-X")
    with pytest.raises(LocalTransactionError, match="EVSE 1's"):
        other_evse.resume(persisted, run.now, run.meter.read(run.now), energy_allowed=True)
    with pytest.raises(LocalTransactionError):
        fresh_machine().resume(
            persisted, datetime(2025, 1, 1), run.meter.read(run.now), energy_allowed=True
        )


def test_resumption_refusals() -> None:
    _, persisted = interrupted_charge()
    alive = persisted.alive_at
    assert alive is not None
    soon = alive + timedelta(seconds=60)

    def refusal(tx: OpenTransaction = persisted, **kw: object) -> str | None:
        args: dict[str, object] = {"timeout_s": 120.0, "ev_connected": True, **kw}
        return resumption_refusal(tx, args.pop("now", soon), **args)  # type: ignore[arg-type]

    assert refusal() is None
    assert refusal(timeout_s=0.0) == "ResumptionTimeout is 0"
    assert refusal(ev_connected=False) == "the EV is no longer connected"
    assert "longer than ResumptionTimeout" in (refusal(timeout_s=59.0) or "")
    assert refusal(replace(persisted, alive_at=None)) == "the time of the interruption is unknown"
    assert "clock went back" in (refusal(now=alive - timedelta(seconds=5)) or "")
    with pytest.raises(LocalTransactionError):
        resumption_refusal(persisted, datetime(2025, 1, 1), timeout_s=1.0, ev_connected=True)


@given(
    down_s=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    timeout_s=st.integers(min_value=0, max_value=7_200),
    connected=st.booleans(),
)
def test_resumed_exactly_when_short_enough_and_connected(
    down_s: float, timeout_s: int, connected: bool
) -> None:
    persisted = OpenTransaction("TX-1", 1, 1, T0, 3, alive_at=T0)
    decision = resumption_refusal(
        persisted, T0 + timedelta(seconds=down_s), timeout_s=timeout_s, ev_connected=connected
    )
    assert (decision is None) == (connected and timeout_s > 0 and down_s <= timeout_s)


@given(
    energy_allowed=st.booleans(),
    with_token=st.booleans(),
    seq=st.integers(min_value=1, max_value=10_000),
)
def test_resume_never_powers_an_unauthorized_session(
    energy_allowed: bool, with_token: bool, seq: int
) -> None:
    """Energy flows after a resume only with energy resumption allowed and a recorded
    authorization; the event always continues the seqNo."""
    reading = Meter().read(T0)
    persisted = OpenTransaction(
        "TX-9", 1, 1, T0, seq, last_reading=reading, id_token=TOKEN if with_token else None
    )
    machine = fresh_machine()
    outputs = machine.resume(persisted, T0, reading, energy_allowed=energy_allowed)
    messages = [o for o in outputs if isinstance(o, TransactionEventOut)]
    assert [m.seq_no for m in messages] == [seq]
    powered = ClosePowerPath(1) in outputs
    assert powered == (energy_allowed and with_token)
    assert (machine.authorization is not None) == powered
