"""Whole sessions, table-driven: every TxStartPoint x TxStopPoint, and the classic scenarios.

Expected rows are (eventType, triggerReason, chargingState, stoppedReason, seqNo) exactly as the
TransactionEventRequest would carry them. References: OCPP 2.0.1 Part 2 Appendices 3.1.18 (TxCtrlr),
errata 2025-01 §2.18 (Figure 1, PowerPathClosed start) and §2.20 (Figure 56, stop options).
"""

from __future__ import annotations

import pytest

from station.transactions import (
    Authorized,
    CablePlugged,
    CableUnplugged,
    ClosePowerPath,
    DataSigned,
    Deauthorized,
    EnergyTransferStarted,
    EnergyTransferStopped,
    EventType,
    Fault,
    ImmediateReset,
    LocalStop,
    OpenPowerPath,
    ParkingBayOccupied,
    ParkingBayVacated,
    PowerPathClosed,
    PowerPathOpened,
    ReadingContext,
    RemoteStop,
    SampleKind,
    State,
    StoppedReason,
    Suspender,
    TransactionEventOut,
    TxConfig,
    TxPoint,
    UnlockConnector,
)
from tests.transactions.support import TOKEN, Run

P = TxPoint

# --- the 6 x 6 table -----------------------------------------------------------------------------
#
# One plug-first session: bay occupied, plug, meter signs, authorize, contactors close, energy,
# a periodic sample, the driver's token again (local stop), energy stops, contactors open, unplug,
# bay vacated. Before the local stop no point can fall, so the events up to the sample depend only
# on the start point (PREFIX) and the rest only on the stop point (SUFFIX); seqNo runs on.

PREFIX: dict[TxPoint, list[tuple[str, str, str | None]]] = {
    P.PARKING_BAY_OCCUPANCY: [
        ("Started", "EVDetected", "Idle"),
        ("Updated", "CablePluggedIn", "EVConnected"),
        ("Updated", "Authorized", None),
        ("Updated", "ChargingStateChanged", "Charging"),
        ("Updated", "MeterValuePeriodic", None),
    ],
    P.EV_CONNECTED: [
        ("Started", "CablePluggedIn", "EVConnected"),
        ("Updated", "Authorized", None),
        ("Updated", "ChargingStateChanged", "Charging"),
        ("Updated", "MeterValuePeriodic", None),
    ],
    P.DATA_SIGNED: [
        ("Started", "SignedDataReceived", "EVConnected"),
        ("Updated", "Authorized", None),
        ("Updated", "ChargingStateChanged", "Charging"),
        ("Updated", "MeterValuePeriodic", None),
    ],
    P.AUTHORIZED: [
        ("Started", "Authorized", "EVConnected"),
        ("Updated", "ChargingStateChanged", "Charging"),
        ("Updated", "MeterValuePeriodic", None),
    ],
    # Figure 1 (errata §2.18), plug-in first: Started(Authorized, EVConnected), then Charging.
    P.POWER_PATH_CLOSED: [
        ("Started", "Authorized", "EVConnected"),
        ("Updated", "ChargingStateChanged", "Charging"),
        ("Updated", "MeterValuePeriodic", None),
    ],
    P.ENERGY_TRANSFER: [
        ("Started", "ChargingStateChanged", "Charging"),
        ("Updated", "MeterValuePeriodic", None),
    ],
}

# Figure 56 (errata §2.20), one branch per stop point.
SUFFIX: dict[TxPoint, list[tuple[str, str, str | None, str | None]]] = {
    P.AUTHORIZED: [("Ended", "StopAuthorized", None, "Local")],
    P.POWER_PATH_CLOSED: [("Ended", "StopAuthorized", None, "Local")],
    P.ENERGY_TRANSFER: [
        ("Updated", "StopAuthorized", None, None),
        ("Ended", "ChargingStateChanged", "EVConnected", "Local"),
    ],
    P.EV_CONNECTED: [
        ("Updated", "StopAuthorized", None, None),
        ("Updated", "ChargingStateChanged", "EVConnected", None),
        ("Ended", "EVCommunicationLost", "Idle", "Local"),
    ],
    P.PARKING_BAY_OCCUPANCY: [
        ("Updated", "StopAuthorized", None, None),
        ("Updated", "ChargingStateChanged", "EVConnected", None),
        ("Updated", "EVCommunicationLost", "Idle", None),
        ("Ended", "EVDeparted", None, "Local"),
    ],
    # DataSigned holds until the EV leaves; StopTxOnEVSideDisconnect ends it at the unplug too.
    P.DATA_SIGNED: [
        ("Updated", "StopAuthorized", None, None),
        ("Updated", "ChargingStateChanged", "EVConnected", None),
        ("Ended", "EVCommunicationLost", "Idle", "Local"),
    ],
}


def plug_first_session(run: Run) -> None:
    run.send(ParkingBayOccupied())
    run.send(CablePlugged())
    run.send(DataSigned())
    run.send(Authorized(TOKEN))
    run.meter.power_w = 50_000.0
    run.send(PowerPathClosed())
    run.send(EnergyTransferStarted())
    run.send_sample(SampleKind.PERIODIC)
    run.send(LocalStop(TOKEN))
    run.meter.power_w = 0.0
    run.send(EnergyTransferStopped(Suspender.EVSE))
    run.send(PowerPathOpened())
    run.send(CableUnplugged())
    run.send(ParkingBayVacated())


@pytest.mark.parametrize("stop", list(TxPoint), ids=str)
@pytest.mark.parametrize("start", list(TxPoint), ids=str)
def test_start_stop_point_table(start: TxPoint, stop: TxPoint) -> None:
    run = Run(TxConfig(tx_start_points={start}, tx_stop_points={stop}))
    plug_first_session(run)

    prefix = [(*r, None) for r in PREFIX[start]]  # no stoppedReason before the stop
    assert run.rows == [(*r, seq) for seq, r in enumerate([*prefix, *SUFFIX[stop]])]
    assert {m.transaction_id for m in run.messages} == {"TX-1"}
    assert run.machine.state is State.AVAILABLE
    assert run.machine.transaction_id is None

    # One ClosePowerPath (when EVConnected and Authorized both hold), then one OpenPowerPath and
    # one UnlockConnector for the local stop (E07 step 2).
    commands = [o for o in run.outputs if not isinstance(o, TransactionEventOut)]
    assert commands == [ClosePowerPath(1), OpenPowerPath(1), UnlockConnector(1, 1)]

    # The idToken goes out once for the authorization, and again with StopAuthorized (Figure 56).
    with_token = [m for m in run.messages if m.id_token is not None]
    assert [m.id_token for m in with_token] == [TOKEN, TOKEN]
    assert with_token[1].trigger_reason == "StopAuthorized"
    first_authorized = next(m for m in run.messages if m.id_token is not None)
    assert first_authorized.trigger_reason in ("Authorized", "ChargingStateChanged")

    started, ended = run.messages[0], run.messages[-1]
    assert started.event_type is EventType.STARTED
    assert started.meter_values[0].sampled_values[0].context is ReadingContext.TRANSACTION_BEGIN
    assert ended.event_type is EventType.ENDED
    assert ended.meter_values[-1].sampled_values[0].context is ReadingContext.TRANSACTION_END
    begin = started.meter_values[0].sampled_values[0].value
    end = ended.meter_values[-1].sampled_values[0].value
    assert end > begin  # 60 s at 50 kW went into the vehicle


# --- authorization first, every start point, the device model's default stop points --------------

AUTH_FIRST: dict[TxPoint, list[tuple[str, str, str | None, str | None]]] = {
    # No bay sensor, no signed data: the transaction starts at the latest when the power path
    # is to close (no energy outside a transaction).
    P.PARKING_BAY_OCCUPANCY: [
        ("Started", "CablePluggedIn", "EVConnected", None),
        ("Updated", "ChargingStateChanged", "Charging", None),
    ],
    P.DATA_SIGNED: [
        ("Started", "CablePluggedIn", "EVConnected", None),
        ("Updated", "ChargingStateChanged", "Charging", None),
    ],
    P.EV_CONNECTED: [
        ("Started", "CablePluggedIn", "EVConnected", None),
        ("Updated", "ChargingStateChanged", "Charging", None),
    ],
    P.AUTHORIZED: [
        ("Started", "Authorized", "Idle", None),
        ("Updated", "CablePluggedIn", "EVConnected", None),
        ("Updated", "ChargingStateChanged", "Charging", None),
    ],
    # Figure 1 (errata §2.18), authorization first: Started(CablePluggedIn, EVConnected).
    P.POWER_PATH_CLOSED: [
        ("Started", "CablePluggedIn", "EVConnected", None),
        ("Updated", "ChargingStateChanged", "Charging", None),
    ],
    P.ENERGY_TRANSFER: [("Started", "ChargingStateChanged", "Charging", None)],
}


@pytest.mark.parametrize("start", list(TxPoint), ids=str)
def test_authorization_first(start: TxPoint) -> None:
    run = Run(TxConfig(tx_start_points={start}))  # TxStopPoint EVConnected,Authorized
    run.send(Authorized(TOKEN))
    run.send(CablePlugged())
    run.send(EnergyTransferStarted())
    run.send(LocalStop(TOKEN))
    run.send(EnergyTransferStopped(Suspender.EVSE))
    run.send(CableUnplugged())

    rows = [*AUTH_FIRST[start], ("Ended", "StopAuthorized", None, "Local")]
    assert run.rows == [(*r, seq) for seq, r in enumerate(rows)]
    # Authorized before the start: the idToken is in the Started event (errata §2.12).
    assert run.messages[0].id_token == TOKEN


def test_device_model_defaults_and_multiple_points() -> None:
    """TxStartPoint EVConnected,Authorized (the example in Appendices 3.1.18): whichever first."""
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED, P.AUTHORIZED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    run.send(CableUnplugged())
    assert run.rows == [
        ("Started", "CablePluggedIn", "EVConnected", None, 0),
        ("Updated", "Authorized", None, None, 1),
        ("Updated", "ChargingStateChanged", "Charging", None, 2),
        ("Ended", "EVCommunicationLost", "Idle", "EVDisconnected", 3),
    ]
    # Unplugged while charging: the power path opens first.
    assert run.outputs[-2:] == [OpenPowerPath(1), run.messages[-1]]


# --- remote start and stop -----------------------------------------------------------------------


def test_remote_start_before_plug_in_reports_remote_start_id() -> None:
    """F01: RequestStartTransaction(remoteStartId=42), TxStartPoint Authorized."""
    run = Run(TxConfig(tx_start_points={P.AUTHORIZED}))
    run.send(Authorized(TOKEN, remote_start_id=42))
    run.send(CablePlugged())
    assert run.rows == [
        ("Started", "RemoteStart", "Idle", None, 0),
        ("Updated", "CablePluggedIn", "EVConnected", None, 1),
    ]
    started = run.messages[0]
    assert started.remote_start_id == 42
    assert started.id_token == TOKEN
    assert run.messages[1].remote_start_id is None


def test_remote_start_on_a_running_transaction() -> None:
    """F02: cable first (TxStartPoint EVConnected), then RequestStartTransaction."""
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    out = run.send(Authorized(TOKEN, remote_start_id=7))
    assert run.rows == [
        ("Started", "CablePluggedIn", "EVConnected", None, 0),
        ("Updated", "RemoteStart", None, None, 1),
    ]
    assert run.messages[1].remote_start_id == 7
    assert out[-1] == ClosePowerPath(1)


def test_remote_stop_with_power_path_closed_stop_point() -> None:
    """TC_E_35_CS: trigger RemoteStop, and stoppedReason Remote in the Ended event."""
    run = Run(TxConfig(tx_start_points={P.POWER_PATH_CLOSED}, tx_stop_points={P.POWER_PATH_CLOSED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    out = run.send(RemoteStop("TX-1"))
    assert run.rows[-1] == ("Ended", "RemoteStop", None, "Remote", 2)
    assert out[0] == OpenPowerPath(1)
    assert out[-1] == UnlockConnector(1, 1)
    assert run.machine.state is State.STOPPING
    run.send(EnergyTransferStopped(Suspender.EVSE))
    assert run.machine.state is State.FINISHED
    assert len(run.messages) == 3  # nothing after Ended


def test_remote_stop_with_ev_connected_stop_point_ends_at_unplug() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    run.send(RemoteStop("TX-1"))
    run.send(PowerPathOpened())
    run.send(CableUnplugged())
    assert run.rows[-3:] == [
        ("Updated", "RemoteStop", None, None, 3),
        ("Updated", "ChargingStateChanged", "EVConnected", None, 4),
        ("Ended", "EVCommunicationLost", "Idle", "Remote", 5),
    ]


# --- deauthorization -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (
            {P.AUTHORIZED},
            [("Ended", "Deauthorized", None, "DeAuthorized", 3)],
        ),
        (
            {P.EV_CONNECTED},
            [
                ("Updated", "Deauthorized", None, None, 3),
                ("Updated", "ChargingStateChanged", "EVConnected", None, 4),
                ("Ended", "EVCommunicationLost", "Idle", "DeAuthorized", 5),
            ],
        ),
    ],
    ids=["stop-Authorized", "stop-EVConnected"],
)
def test_deauthorized_while_charging(
    stop: set[TxPoint], expected: list[tuple[object, ...]]
) -> None:
    """E05 with StopTxOnInvalidId true: the CSMS answers Invalid for the token."""
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points=stop))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    out = run.send(Deauthorized())
    assert out[0] == OpenPowerPath(1)
    assert UnlockConnector(1, 1) not in out  # the cable stays locked on a deauthorization
    run.send(EnergyTransferStopped(Suspender.EVSE))
    run.send(CableUnplugged())
    assert run.rows[3:] == expected


def test_late_deauthorization_after_the_session_is_a_no_op() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(LocalStop(TOKEN))
    assert run.machine.state is State.FINISHED
    assert run.send(Deauthorized()) == []
    run.send(CableUnplugged())
    assert run.rows[-1] == ("Ended", "EVCommunicationLost", "Idle", "Local", 3)


# --- suspension, faults, reset -------------------------------------------------------------------


def test_suspended_by_ev_and_evse_then_resumed() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    run.send(EnergyTransferStopped(Suspender.EV))
    run.send(EnergyTransferStopped(Suspender.EVSE))
    run.send(EnergyTransferStarted())
    assert run.rows[2:] == [
        ("Updated", "ChargingStateChanged", "Charging", None, 2),
        ("Updated", "ChargingStateChanged", "SuspendedEV", None, 3),
        ("Updated", "ChargingStateChanged", "SuspendedEVSE", None, 4),
        ("Updated", "ChargingStateChanged", "Charging", None, 5),
    ]


@pytest.mark.parametrize(
    ("stopped", "reason"),
    [
        (EnergyTransferStopped(Suspender.EV), "StoppedByEV"),
        (EnergyTransferStopped(Suspender.EVSE), "Other"),
        (EnergyTransferStopped(Suspender.EV, StoppedReason.SOC_LIMIT_REACHED), "SOCLimitReached"),
    ],
)
def test_energy_transfer_stop_point_ends_on_suspension(
    stopped: EnergyTransferStopped, reason: str
) -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.ENERGY_TRANSFER}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    out = run.send(stopped)
    state = "SuspendedEV" if stopped.by is Suspender.EV else "SuspendedEVSE"
    assert run.rows[-1] == ("Ended", "ChargingStateChanged", state, reason, 3)
    # The authorization ends with the transaction, so the power path opens and no energy can flow
    # outside a transaction.
    assert out[0] == OpenPowerPath(1)
    assert run.machine.state is State.FINISHED
    assert not run.machine.accepts(Authorized)  # the EV must leave before a new session


@pytest.mark.parametrize(
    ("event", "trigger", "reason"),
    [
        (Fault(StoppedReason.GROUND_FAULT), "AbnormalCondition", "GroundFault"),
        (Fault(StoppedReason.EMERGENCY_STOP), "AbnormalCondition", "EmergencyStop"),
        (Fault(), "AbnormalCondition", "Other"),
        (ImmediateReset(), "ResetCommand", "ImmediateReset"),
    ],
)
def test_fault_and_reset_end_any_transaction(
    event: Fault | ImmediateReset, trigger: str, reason: str
) -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    out = run.send(event)
    assert run.rows[-1] == ("Ended", trigger, "EVConnected", reason, 3)
    assert out[0] == OpenPowerPath(1)
    assert run.machine.state is State.FINISHED
    run.send(CableUnplugged())
    assert run.machine.state is State.AVAILABLE
    assert len(run.messages) == 4


def test_reset_overrides_an_earlier_stop_cause() -> None:
    """B12.FR.04/08 (errata §2.11): the reset's Ended says ImmediateReset."""
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(LocalStop(TOKEN))
    run.send(ImmediateReset())
    assert run.rows[-1] == ("Ended", "ResetCommand", None, "ImmediateReset", 3)


# --- unplug and the parking bay ------------------------------------------------------------------


def test_unplug_while_charging_ends_with_ev_disconnected() -> None:
    run = Run(TxConfig(tx_start_points={P.POWER_PATH_CLOSED}, tx_stop_points={P.AUTHORIZED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    out = run.send(CableUnplugged())
    assert run.rows[-1] == ("Ended", "EVCommunicationLost", "Idle", "EVDisconnected", 2)
    assert out[0] == OpenPowerPath(1)
    assert run.machine.authorization is None


def test_parking_bay_session_without_plugging_in() -> None:
    run = Run(
        TxConfig(
            tx_start_points={P.PARKING_BAY_OCCUPANCY}, tx_stop_points={P.PARKING_BAY_OCCUPANCY}
        )
    )
    run.send(ParkingBayOccupied())
    run.send(ParkingBayVacated())
    assert run.rows == [
        ("Started", "EVDetected", "Idle", None, 0),
        ("Ended", "EVDeparted", None, "Other", 1),
    ]


def test_parking_bay_replug_continues_the_same_transaction() -> None:
    run = Run(
        TxConfig(
            tx_start_points={P.PARKING_BAY_OCCUPANCY}, tx_stop_points={P.PARKING_BAY_OCCUPANCY}
        )
    )
    run.send(ParkingBayOccupied())
    run.send(CablePlugged())
    run.send(CableUnplugged())
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    assert {m.transaction_id for m in run.messages} == {"TX-1"}
    assert run.rows[2:] == [
        ("Updated", "EVCommunicationLost", "Idle", None, 2),
        ("Updated", "CablePluggedIn", "EVConnected", None, 3),
        ("Updated", "Authorized", None, None, 4),
        ("Updated", "ChargingStateChanged", "Charging", None, 5),
    ]


def test_a_second_session_gets_a_new_transaction_from_seq_no_zero() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    for _ in range(2):
        run.send(CablePlugged())
        run.send(Authorized(TOKEN))
        run.send(EnergyTransferStarted())
        run.send(LocalStop(TOKEN))
        run.send(PowerPathOpened())
        run.send(CableUnplugged())
    first = [m.seq_no for m in run.messages if m.transaction_id == "TX-1"]
    second = [m.seq_no for m in run.messages if m.transaction_id == "TX-2"]
    assert first == second == [0, 1, 2, 3]
