"""TxCtrlr.StopTxOnInvalidId false in the pure machine: the transaction goes on with its energy
capped at MaxEnergyOnInvalidId (none without it), then SuspendedEVSE with the power path open.

StopTxOnInvalidId true is the Deauthorized event (tests/transactions/test_sessions.py and
tests/test_tx_invalid_id_e2e.py).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.transactions import (
    Authorized,
    CablePlugged,
    CableUnplugged,
    ClosePowerPath,
    EnergyTransferStarted,
    EnergyTransferStopped,
    Event,
    LocalStop,
    LocalTransactionError,
    OpenPowerPath,
    PowerPathClosed,
    SampleKind,
    State,
    Suspender,
    Tick,
    TransactionEventOut,
    TxConfig,
    TxPoint,
)
from tests.transactions.support import TOKEN, Run


def charging(run: Run, power_w: float = 36000.0) -> str:
    """Plug, authorize, contactors closed, energy flowing; returns the transaction id."""
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(PowerPathClosed())
    run.meter.power_w = power_w
    run.send(EnergyTransferStarted())
    transaction_id = run.machine.transaction_id
    assert transaction_id is not None
    assert run.machine.state is State.CHARGING
    return transaction_id


def limit(run: Run, transaction_id: str, max_energy_wh: float | None) -> list[object]:
    out = run.machine.limit_energy(transaction_id, max_energy_wh, run.now, run.meter.read(run.now))
    run.outputs.extend(out)
    return list(out)


def test_without_max_energy_the_energy_stops_at_once() -> None:
    run = Run()
    tx = charging(run)
    before = len(run.rows)
    out = limit(run, tx, None)
    assert isinstance(out[0], OpenPowerPath)
    assert not any(isinstance(o, ClosePowerPath) for o in out)
    assert run.rows[before:] == [("Updated", "ChargingStateChanged", "SuspendedEVSE", None, 2)]
    assert run.machine.state is State.SUSPENDED
    assert run.machine.transaction_id == tx  # the transaction goes on
    assert not run.machine.watching_energy
    # Nothing more happens while time passes and the meter stands still.
    run.meter.power_w = 0.0
    assert run.send(Tick(), after_s=5) == []


def test_max_energy_counts_from_the_start_of_the_transaction() -> None:
    run = Run()
    tx = charging(run, power_w=36000.0)  # 10 Wh per second
    started_import = run.messages[0].meter_values[0].sampled_values[0].value
    run.send(Tick(), after_s=3)  # 40 Wh into the transaction (10 Wh came with the start)
    assert limit(run, tx, 150.0) == []  # 110 Wh left
    assert run.machine.watching_energy
    assert run.send(Tick(), after_s=6) == []  # 100 Wh
    out = run.send(Tick(), after_s=6)  # 160 Wh: the cap is passed
    assert isinstance(out[0], OpenPowerPath)
    (message,) = [o for o in out if isinstance(o, TransactionEventOut)]
    assert message.charging_state is not None and message.charging_state.value == "SuspendedEVSE"
    assert message.trigger_reason.value == "ChargingStateChanged"
    assert run.meter.import_wh - started_import == pytest.approx(160.0)
    assert not run.machine.watching_energy


def test_the_cap_reached_inside_a_meter_sample_reports_both() -> None:
    run = Run()
    tx = charging(run)
    limit(run, tx, 50.0)
    before = len(run.rows)
    out = run.send_sample(SampleKind.PERIODIC, after_s=60)
    assert isinstance(out[0], OpenPowerPath)
    assert run.rows[before:] == [
        ("Updated", "MeterValuePeriodic", None, None, 2),
        ("Updated", "ChargingStateChanged", "SuspendedEVSE", None, 3),
    ]


def test_a_second_invalid_answer_never_raises_the_cap() -> None:
    run = Run()
    tx = charging(run)
    limit(run, tx, 20.0)
    assert limit(run, tx, 10_000.0) == []
    out = run.send(Tick(), after_s=3)  # 30 Wh > 20 Wh
    assert isinstance(out[0], OpenPowerPath)


def test_energy_reported_flowing_again_is_stopped_again() -> None:
    run = Run()
    tx = charging(run)
    limit(run, tx, None)
    out = run.send(EnergyTransferStarted())  # a peer that ignored the open contactors
    assert run.machine.state is State.SUSPENDED
    assert isinstance(out[0], OpenPowerPath)


def test_capped_before_the_ev_is_connected_never_closes_the_power_path() -> None:
    """TxStartPoint Authorized: the transaction (and its cap) exist before the EV plugs in."""
    run = Run(TxConfig(tx_start_points={TxPoint.AUTHORIZED}))
    run.send(Authorized(TOKEN))
    tx = run.machine.transaction_id
    assert tx is not None
    assert limit(run, tx, None) == []  # no power path yet: nothing to open
    out = run.send(CablePlugged())
    assert not any(isinstance(o, ClosePowerPath) for o in out)
    assert isinstance(out[0], OpenPowerPath)
    assert run.machine.state is State.SUSPENDED
    assert run.rows[-1][2] == "SuspendedEVSE"


def test_energy_transfer_stop_point_ends_the_transaction() -> None:
    run = Run(TxConfig(tx_stop_points={TxPoint.ENERGY_TRANSFER}))
    tx = charging(run)
    limit(run, tx, None)
    assert run.machine.transaction_id is None
    assert run.rows[-1] == ("Ended", "ChargingStateChanged", "SuspendedEVSE", "DeAuthorized", 2)
    assert any(isinstance(o, OpenPowerPath) for o in run.outputs)


def test_the_session_still_ends_normally() -> None:
    run = Run()
    tx = charging(run)
    limit(run, tx, None)
    run.send(LocalStop(TOKEN))
    run.send(CableUnplugged())
    assert run.machine.transaction_id is None
    assert run.rows[-1][0] == "Ended"
    assert run.rows[-1][3] == "Local"


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_a_bad_cap_is_a_local_error(bad: float) -> None:
    run = Run()
    tx = charging(run)
    with pytest.raises(LocalTransactionError, match="MaxEnergyOnInvalidId"):
        run.machine.limit_energy(tx, bad, run.now)
    assert run.machine.state is State.ERROR


def test_another_transaction_is_a_local_error() -> None:
    run = Run()
    charging(run)
    with pytest.raises(LocalTransactionError, match="energy limit for 'TX-9'"):
        run.machine.limit_energy("TX-9", None, run.now)
    assert run.machine.state is State.ERROR


@settings(max_examples=60, deadline=None)
@given(
    max_energy_wh=st.one_of(st.none(), st.floats(min_value=0, max_value=500)),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.1, max_value=30),  # seconds between readings
            st.floats(min_value=0, max_value=50000),  # power, W
            st.sampled_from(["tick", "start", "stop"]),
        ),
        max_size=25,
    ),
)
def test_the_energy_under_a_cap_stays_within_one_reading(
    max_energy_wh: float | None, steps: list[tuple[float, float, str]]
) -> None:
    """Whatever happens, once the import register passes the cap the power path is commanded
    open, it is never commanded closed again, and the transaction stays open (SuspendedEVSE)."""
    run = Run()
    tx = charging(run)
    start_wh = run.messages[0].meter_values[0].sampled_values[0].value
    limit(run, tx, max_energy_wh)
    cap_wh = -math.inf if max_energy_wh is None else start_wh + max_energy_wh
    for seconds, power_w, what in steps:
        held = any(isinstance(o, OpenPowerPath) for o in run.outputs)
        run.meter.power_w = 0.0 if held else power_w  # the open contactors stop the flow
        events: dict[str, Event] = {
            "tick": Tick(),
            "start": EnergyTransferStarted(),
            "stop": EnergyTransferStopped(Suspender.EV),
        }
        event = events[what]
        if not run.machine.accepts(type(event)):
            continue
        run.send(event, after_s=seconds)
        if run.meter.import_wh >= cap_wh:
            assert not run.machine.watching_energy
            assert run.machine.state is State.SUSPENDED
    assert run.machine.transaction_id == tx
    opened = [i for i, o in enumerate(run.outputs) if isinstance(o, OpenPowerPath)]
    closed = [i for i, o in enumerate(run.outputs) if isinstance(o, ClosePowerPath)]
    if opened:
        assert all(c < opened[0] for c in closed)
    if run.meter.import_wh >= cap_wh:
        assert opened
    assert [m.seq_no for m in run.messages] == list(range(len(run.messages)))
