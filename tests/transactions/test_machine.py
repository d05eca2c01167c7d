"""The machine's rules one at a time: the tables, errors and ERROR, timeouts, recovery, meter
values in TransactionEvents, stop tokens."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from station.errors import StationError
from station.ocpp.devicemodel import CommDefaults, EvseInfo, StationIdentity, standard_definitions
from station.transactions import (
    AFTER_END,
    POINTS,
    TRANSITIONS,
    Authorized,
    CablePlugged,
    CableUnplugged,
    ChargingRateChanged,
    ChargingState,
    ClosePowerPath,
    DataSigned,
    Deauthorized,
    EnergyTransferStarted,
    EnergyTransferStopped,
    EVConnectionTimedOut,
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
    MeterReading,
    MeterSample,
    OpenPowerPath,
    ParkingBayOccupied,
    ParkingBayVacated,
    PowerPathClosed,
    PowerPathOpened,
    ReadingContext,
    RemoteStop,
    RemoteTransactionError,
    SampleKind,
    State,
    StoppedReason,
    Suspender,
    Tick,
    TransactionError,
    TransactionEventOut,
    TransactionMachine,
    TriggerReason,
    TxConfig,
    TxPoint,
    UnlockConnector,
    abort,
    parse_measurands,
    parse_tx_points,
    recover,
    tx_config_from_variables,
)
from tests.transactions.support import GROUP, OTHER_TOKEN, T0, TOKEN, Run, row

P = TxPoint
LIVE = [s for s in State if s is not State.ERROR]

# --- the tables ----------------------------------------------------------------------------------


def test_every_state_has_a_row_and_error_has_none() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.ERROR] == {}
    for state in LIVE:
        # the clock, the meter, faults and resets can happen at any time
        for event_type in (Tick, MeterSample, Fault, ImmediateReset, ParkingBayOccupied):
            assert event_type in TRANSITIONS[state], (state, event_type)


def test_power_path_closed_is_ev_connected_and_authorized() -> None:
    """Part 2 E01: PowerPathClosed "is the logical AND of EVConnected and Authorized"."""
    for state, points in POINTS.items():
        both = P.EV_CONNECTED in points and P.AUTHORIZED in points
        assert (P.POWER_PATH_CLOSED in points) == both, state
        assert P.ENERGY_TRANSFER not in points or P.EV_CONNECTED in points, state


def test_after_end_leaves_no_authorization() -> None:
    """Errata §2.12: the authorization ends when the transaction ends."""
    for state, target in AFTER_END.items():
        assert P.AUTHORIZED in POINTS[state] or state is State.CONNECTED
        assert P.AUTHORIZED not in POINTS[target]
        assert target in TRANSITIONS  # a real state


def test_device_model_defaults_match_the_config_defaults() -> None:
    """TxConfig() mirrors the TxCtrlr/SampledDataCtrlr/AlignedDataCtrlr defaults."""
    defs = standard_definitions(
        evses=[EvseInfo(1, (1,), "cG105", 50_000.0)],
        identity=StationIdentity("v", "m", None, "1.0", 1, "CS-1"),
        comm=CommDefaults(),
    )
    by_name = {(d.component, d.variable): d for d in defs if d.evse_id is None}
    config = TxConfig()
    start = by_name[("TxCtrlr", "TxStartPoint")]
    assert parse_tx_points(start.default) == config.tx_start_points
    assert parse_tx_points(",".join(start.values_list)) == set(TxPoint)
    assert parse_tx_points(by_name[("TxCtrlr", "TxStopPoint")].default) == config.tx_stop_points
    assert float(by_name[("TxCtrlr", "EVConnectionTimeOut")].default) == (
        config.ev_connection_timeout_s
    )
    sampled = {
        name: parse_measurands(by_name[("SampledDataCtrlr", name)].default)
        for name in ("TxStartedMeasurands", "TxUpdatedMeasurands", "TxEndedMeasurands")
    }
    assert sampled["TxStartedMeasurands"] == config.tx_started_measurands
    assert sampled["TxUpdatedMeasurands"] == config.tx_updated_measurands
    assert sampled["TxEndedMeasurands"] == config.tx_ended_measurands
    offered = by_name[("SampledDataCtrlr", "TxUpdatedMeasurands")].values_list
    assert parse_measurands(",".join(offered))  # every measurand the device model offers
    aligned = by_name[("AlignedDataCtrlr", "Measurands")].default
    assert parse_measurands(aligned) == config.aligned_measurands
    # and all at once, as the shell builds it
    values = {key: d.default for key, d in by_name.items()}
    assert tx_config_from_variables(values) == config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({("TxCtrlr", "TxStartPoint"): "Plugged"}, "TxCtrlr.TxStartPoint: .*'Plugged'"),
        ({("TxCtrlr", "TxStopPoint"): ""}, "TxStopPoint is empty"),
        ({("SampledDataCtrlr", "TxEndedInterval"): "soon"}, "SampledDataCtrlr.TxEndedInterval"),
    ],
)
def test_config_from_bad_variables(values: dict[tuple[str, str], str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tx_config_from_variables(values)


def test_config_from_variables_overrides() -> None:
    config = tx_config_from_variables(
        {("TxCtrlr", "TxStartPoint"): "EVConnected", ("TxCtrlr", "EVConnectionTimeOut"): "30"},
        number_of_phases_used=3,
    )
    assert config.tx_start_points == {P.EV_CONNECTED}
    assert config.ev_connection_timeout_s == 30.0
    assert config.number_of_phases_used == 3


# --- reaching every state, and every event type --------------------------------------------------

PATHS: dict[State, list[Event]] = {
    State.AVAILABLE: [],
    State.AUTHORIZED: [Authorized(TOKEN)],
    State.CONNECTED: [CablePlugged()],
    State.READY: [CablePlugged(), Authorized(TOKEN)],
    State.CHARGING: [CablePlugged(), Authorized(TOKEN), EnergyTransferStarted()],
    State.SUSPENDED: [
        CablePlugged(),
        Authorized(TOKEN),
        EnergyTransferStarted(),
        EnergyTransferStopped(Suspender.EV),
    ],
    State.STOPPING: [CablePlugged(), Authorized(TOKEN), EnergyTransferStarted(), LocalStop(TOKEN)],
    State.FINISHED: [CablePlugged(), Authorized(TOKEN), LocalStop(TOKEN)],
}

SAMPLE = MeterReading(timestamp=T0, energy_import_wh=0.0, energy_export_wh=0.0)
EXAMPLES: dict[type[Event], Callable[[TransactionMachine], Event]] = {
    ParkingBayOccupied: lambda m: ParkingBayOccupied(),
    ParkingBayVacated: lambda m: ParkingBayVacated(),
    CablePlugged: lambda m: CablePlugged(),
    CableUnplugged: lambda m: CableUnplugged(),
    Authorized: lambda m: Authorized(OTHER_TOKEN),
    Deauthorized: lambda m: Deauthorized(),
    LocalStop: lambda m: LocalStop(TOKEN, master_pass=True),
    RemoteStop: lambda m: RemoteStop(m.transaction_id or "none"),
    PowerPathClosed: lambda m: PowerPathClosed(),
    PowerPathOpened: lambda m: PowerPathOpened(),
    EnergyTransferStarted: lambda m: EnergyTransferStarted(),
    EnergyTransferStopped: lambda m: EnergyTransferStopped(Suspender.EVSE),
    DataSigned: lambda m: DataSigned(),
    MeterSample: lambda m: MeterSample(SampleKind.PERIODIC, SAMPLE),
    Fault: lambda m: Fault(),
    ImmediateReset: lambda m: ImmediateReset(),
    ChargingRateChanged: lambda m: ChargingRateChanged(),
    MessageTriggered: lambda m: MessageTriggered(),
    Tick: lambda m: Tick(),
    EVConnectionTimedOut: lambda m: EVConnectionTimedOut(),
}


def machine_in(state: State) -> TransactionMachine:
    # TxStartPoint EVConnected,Authorized: a transaction is open in every state but AVAILABLE,
    # so that RemoteStop has a transaction to name.
    config = TxConfig(
        tx_start_points={P.EV_CONNECTED, P.AUTHORIZED}, tx_stop_points={P.EV_CONNECTED}
    )
    counter = itertools.count(1)
    machine = TransactionMachine(1, lambda: f"TX-{next(counter)}", config)
    for n, event in enumerate(PATHS[state]):
        machine.receive(event, T0 + timedelta(seconds=n))
    assert machine.state is state
    return machine


def test_examples_cover_every_event_type() -> None:
    used = {event_type for row_ in TRANSITIONS.values() for event_type in row_}
    assert used == set(EXAMPLES)


CELLS = [(state, event_type) for state in LIVE for event_type in EXAMPLES]


@pytest.mark.parametrize(("state", "event_type"), CELLS, ids=lambda x: getattr(x, "__name__", x))
def test_every_cell_of_the_table(state: State, event_type: type[Event]) -> None:
    """A listed event goes where the table says (or on, by AFTER_END); any other raises, and then
    the machine is in ERROR for good (STYLE.md A2.2)."""
    machine = machine_in(state)
    event = EXAMPLES[event_type](machine)
    now = T0 + timedelta(minutes=5)
    if event_type in TRANSITIONS[state]:
        assert machine.accepts(event_type)
        if event_type is RemoteStop and machine.transaction_id is None:
            return
        machine.receive(event, now)
        target = TRANSITIONS[state][event_type]
        assert machine.state in (target, AFTER_END.get(target, target))
    else:
        assert not machine.accepts(event_type)
        with pytest.raises(LocalTransactionError, match=event_type.__name__):
            machine.receive(event, now)
        assert machine.state is State.ERROR
        assert not machine.accepts(Tick)
        with pytest.raises(LocalTransactionError, match="ERROR"):
            machine.receive(Tick(), now)


# --- errors --------------------------------------------------------------------------------------


def test_error_tree() -> None:
    assert issubclass(LocalTransactionError, TransactionError)
    assert issubclass(RemoteTransactionError, TransactionError)
    assert issubclass(TransactionError, StationError)


def test_after_an_error_the_open_transaction_can_still_be_ended() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    with pytest.raises(LocalTransactionError):
        run.send(CablePlugged())  # already connected: the shell got something wrong
    open_tx = run.machine.open_transaction
    assert open_tx is not None
    ended = abort(open_tx, run.now + timedelta(seconds=1))
    assert row(ended) == ("Ended", "AbnormalCondition", None, "Other", 2)
    assert ended.meter_values[0].sampled_values[0].context is ReadingContext.TRANSACTION_END


def test_naive_now_is_refused() -> None:
    machine = TransactionMachine(1, lambda: "TX")
    with pytest.raises(LocalTransactionError, match="timezone"):
        machine.receive(CablePlugged(), datetime(2025, 1, 1))
    assert machine.state is State.ERROR


@pytest.mark.parametrize("bad_id", ["", "x" * 37])
def test_transaction_ids_must_fit_the_schema(bad_id: str) -> None:
    machine = TransactionMachine(1, lambda: bad_id, TxConfig(tx_start_points={P.EV_CONNECTED}))
    with pytest.raises(LocalTransactionError, match="transaction id"):
        machine.receive(CablePlugged(), T0)


def test_remote_stop_must_name_the_open_transaction() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    with pytest.raises(LocalTransactionError, match="TX-9"):
        run.send(RemoteStop("TX-9"))


def test_energy_register_going_backwards_is_the_meters_fault() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    earlier = replace(run.meter.read(run.now), energy_import_wh=run.meter.import_wh - 1)
    with pytest.raises(RemoteTransactionError, match="backwards"):
        run.machine.receive(MeterSample(SampleKind.PERIODIC, earlier), run.now)
    assert run.machine.state is State.ERROR


def test_invalid_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        TransactionMachine(0, lambda: "TX")
    machine = TransactionMachine(1, lambda: "TX")
    with pytest.raises(LocalTransactionError, match="connector_id"):
        machine.receive(CablePlugged(connector_id=0), T0)


# --- who may stop a session ----------------------------------------------------------------------


def test_can_stop_same_token_case_insensitively_or_same_group() -> None:
    """C01.FR.25 (same idToken and type; idToken case insensitive), C09 (group id)."""
    run = Run()
    run.send(CablePlugged())
    assert not run.machine.can_stop(TOKEN)  # nothing to stop yet
    run.send(Authorized(TOKEN, group_id_token=GROUP))
    assert run.machine.can_stop(IdToken("04a1b2c3", IdTokenType.ISO14443))
    assert not run.machine.can_stop(IdToken("04A1B2C3", IdTokenType.ISO15693))
    assert not run.machine.can_stop(OTHER_TOKEN)
    assert run.machine.can_stop(OTHER_TOKEN, group_id_token=GROUP)
    with pytest.raises(LocalTransactionError, match="may not stop"):
        run.send(LocalStop(OTHER_TOKEN))


def test_group_member_and_master_pass_stops() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.AUTHORIZED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN, group_id_token=GROUP))
    run.send(LocalStop(OTHER_TOKEN, group_id_token=GROUP))
    assert run.rows[-1] == ("Ended", "StopAuthorized", None, "Local", 2)
    assert run.messages[-1].id_token == OTHER_TOKEN

    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.AUTHORIZED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(LocalStop(OTHER_TOKEN, master_pass=True))
    assert run.rows[-1] == ("Ended", "StopAuthorized", None, "MasterPass", 2)  # C16.FR.07


def test_presenting_the_token_again_before_plug_in_ends_the_authorization() -> None:
    run = Run(TxConfig(tx_start_points={P.AUTHORIZED}, tx_stop_points={P.EV_CONNECTED}))
    run.send(Authorized(TOKEN))
    out = run.send(LocalStop(TOKEN))
    assert run.rows == [
        ("Started", "Authorized", "Idle", None, 0),
        ("Ended", "StopAuthorized", None, "Local", 1),
    ]
    assert UnlockConnector(1, 1) not in out  # nothing is plugged in
    assert run.machine.state is State.AVAILABLE


# --- EVConnectionTimeOut -------------------------------------------------------------------------


def test_ev_connection_timeout_ends_the_transaction_it_started() -> None:
    """C01.FR.26, E03 / TC_E_39_CS: trigger EVConnectTimeout, stoppedReason Timeout."""
    run = Run(TxConfig(tx_start_points={P.AUTHORIZED}, ev_connection_timeout_s=60))
    run.send(Authorized(TOKEN))
    authorized_at = run.now
    assert run.machine.deadline() == authorized_at + timedelta(seconds=60)
    assert run.send(Tick(), after_s=59.9) == []
    assert run.machine.state is State.AUTHORIZED
    run.now = authorized_at + timedelta(seconds=59)
    run.machine.tick(authorized_at + timedelta(seconds=60))
    assert run.machine.state is State.AVAILABLE
    assert run.machine.authorization is None
    assert run.machine.deadline() is None
    assert run.machine.transaction_id is None


def test_ev_connection_timeout_rows() -> None:
    run = Run(TxConfig(tx_start_points={P.AUTHORIZED}, ev_connection_timeout_s=30))
    run.send(Authorized(TOKEN))
    run.send(Tick(), after_s=30)
    assert run.rows == [
        ("Started", "Authorized", "Idle", None, 0),
        ("Ended", "EVConnectTimeout", None, "Timeout", 1),
    ]


def test_ev_connection_timeout_without_a_transaction_only_ends_the_authorization() -> None:
    run = Run(TxConfig(tx_start_points={P.POWER_PATH_CLOSED}))
    run.send(Authorized(TOKEN))
    assert run.send(Tick(), after_s=61) == []
    assert run.machine.state is State.AVAILABLE
    assert run.messages == []
    run.send(CablePlugged())
    assert run.machine.state is State.CONNECTED  # the old authorization is gone


def test_ev_connection_timeout_with_the_bay_holding_the_transaction() -> None:
    """TC_E_39_CS: "Updated if TxStartPoint is ParkingBayOccupancy, else Ended"."""
    bay = {P.PARKING_BAY_OCCUPANCY}
    run = Run(TxConfig(tx_start_points=bay, tx_stop_points=bay))
    run.send(ParkingBayOccupied())
    run.send(Authorized(TOKEN))
    run.send(Tick(), after_s=60)
    run.send(ParkingBayVacated())
    assert run.rows == [
        ("Started", "EVDetected", "Idle", None, 0),
        ("Updated", "Authorized", None, None, 1),
        ("Updated", "EVConnectTimeout", None, None, 2),
        ("Ended", "EVDeparted", None, "Timeout", 3),
    ]


def test_plugging_in_stops_the_timeout() -> None:
    run = Run(TxConfig(tx_start_points={P.AUTHORIZED}))
    run.send(Authorized(TOKEN))
    run.send(CablePlugged(), after_s=30)
    assert run.machine.deadline() is None
    assert run.send(Tick(), after_s=3600) == []
    assert run.machine.state is State.READY


# --- power loss, recovery ------------------------------------------------------------------------


def test_recover_ends_an_open_transaction_with_power_loss() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.meter.power_w = 11_000
    run.send(EnergyTransferStarted())
    run.send_sample(SampleKind.PERIODIC)
    persisted = run.machine.open_transaction
    assert persisted is not None
    assert persisted.next_seq_no == 4
    # ... the power goes; the machine is gone; at start-up the shell finds `persisted` ...
    boot = run.now + timedelta(minutes=10)
    ended = recover(persisted, boot)
    assert row(ended) == ("Ended", "AbnormalCondition", None, "PowerLoss", 4)
    assert ended.timestamp == boot
    assert ended.transaction_id == "TX-1"
    (value,) = ended.meter_values
    assert value.timestamp == run.now  # the last known reading
    assert [(v.measurand, v.value, v.context) for v in value.sampled_values] == [
        (
            Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
            run.meter.import_wh,
            ReadingContext.TRANSACTION_END,
        ),
        (
            Measurand.ENERGY_ACTIVE_EXPORT_REGISTER,
            run.meter.export_wh,
            ReadingContext.TRANSACTION_END,
        ),
    ]


def test_recover_with_a_fresh_reading_and_its_checks() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    persisted = run.machine.open_transaction
    assert persisted is not None
    later = replace(run.meter.read(run.now), energy_import_wh=run.meter.import_wh + 5)
    ended = recover(persisted, run.now, reading=later)
    assert ended.meter_values[0].sampled_values[0].value == run.meter.import_wh + 5
    earlier = replace(later, energy_import_wh=run.meter.import_wh - 5)
    with pytest.raises(RemoteTransactionError):
        recover(persisted, run.now, reading=earlier)
    with pytest.raises(LocalTransactionError):
        recover(persisted, datetime(2025, 1, 1))
    no_reading = replace(persisted, last_reading=None)
    assert recover(no_reading, run.now).meter_values == ()


# --- meter values in TransactionEvents -----------------------------------------------------------


def test_meter_values_per_context() -> None:
    config = TxConfig(
        tx_start_points={P.EV_CONNECTED},
        tx_stop_points={P.EV_CONNECTED},
        tx_started_measurands=(Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, Measurand.SOC),
        tx_updated_measurands=(Measurand.POWER_ACTIVE_IMPORT, Measurand.POWER_ACTIVE_EXPORT),
        aligned_measurands=(Measurand.VOLTAGE,),
        tx_ended_measurands=(
            Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
            Measurand.ENERGY_ACTIVE_EXPORT_REGISTER,
        ),
        number_of_phases_used=3,
    )
    run = Run(config)
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.meter.power_w = -7_000.0  # discharging: energy out of the vehicle
    run.send(EnergyTransferStarted())
    run.send_sample(SampleKind.PERIODIC)
    run.send_sample(SampleKind.CLOCK)
    run.send(MessageTriggered())
    run.send(CableUnplugged())

    def shape(message: TransactionEventOut) -> list[tuple[str, float, str, str, str]]:
        return [
            (v.measurand.value, v.value, v.context.value, v.unit, v.location.value)
            for mv in message.meter_values
            for v in mv.sampled_values
        ]

    started, _, _, periodic, clock, triggered, ended = run.messages
    assert started.number_of_phases_used == 3
    assert all(m.number_of_phases_used is None for m in run.messages[1:])
    assert shape(started) == [
        ("Energy.Active.Import.Register", 1000.0, "Transaction.Begin", "Wh", "Outlet"),
        ("SoC", 50.0, "Transaction.Begin", "Percent", "EV"),
    ]
    assert periodic.trigger_reason is TriggerReason.METER_VALUE_PERIODIC
    assert shape(periodic) == [
        ("Power.Active.Import", 0.0, "Sample.Periodic", "W", "Outlet"),
        ("Power.Active.Export", 7000.0, "Sample.Periodic", "W", "Outlet"),
    ]
    assert clock.trigger_reason is TriggerReason.METER_VALUE_CLOCK
    assert shape(clock) == [("Voltage", 400.0, "Sample.Clock", "V", "Outlet")]
    assert triggered.trigger_reason is TriggerReason.TRIGGER
    assert triggered.charging_state is ChargingState.CHARGING  # F06: always says where it is
    assert [v.context for v in triggered.meter_values[0].sampled_values] == [
        ReadingContext.TRIGGER,
        ReadingContext.TRIGGER,
    ]
    ended_values = shape(ended)
    assert [v[0] for v in ended_values] == [
        "Energy.Active.Import.Register",
        "Energy.Active.Export.Register",
    ]
    assert ended_values[1][1] > 500.0  # the export register counted the discharge
    assert ended_values[0][1] == 1000.0  # nothing was imported


def test_samples_outside_a_transaction_or_without_measurands_send_nothing() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, aligned_measurands=()))
    assert run.send_sample(SampleKind.PERIODIC) == []  # no transaction (MeterValues: the shell)
    run.send(CablePlugged())
    assert run.send_sample(SampleKind.CLOCK) == []  # AlignedDataCtrlr.Measurands is empty
    assert len(run.send_sample(SampleKind.PERIODIC)) == 1


def test_tx_ended_interval_collects_samples_for_the_ended_event() -> None:
    """J02: TxEndedMeasurands every TxEndedInterval, plus the aligned TxEnded values."""
    config = TxConfig(
        tx_start_points={P.EV_CONNECTED},
        tx_stop_points={P.EV_CONNECTED},
        tx_updated_measurands=(),
        tx_ended_interval_s=120,
        aligned_tx_ended_measurands=(Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,),
        aligned_tx_ended_interval_s=900,
    )
    run = Run(config, now=datetime(2025, 3, 1, 11, 59, 59, tzinfo=UTC))
    run.send(CablePlugged())  # at 12:00:00
    run.send(Authorized(TOKEN))
    run.meter.power_w = 22_000
    run.send(EnergyTransferStarted())
    for _ in range(10):  # every 60 s, up to 12:10:02
        assert run.send_sample(SampleKind.PERIODIC) == []  # no TxUpdatedMeasurands
    run.send_sample(SampleKind.CLOCK, after_s=298)  # 12:15:00, an aligned boundary
    run.send(CableUnplugged())
    ended = run.messages[-1]
    contexts = [mv.sampled_values[0].context for mv in ended.meter_values]
    assert contexts == [ReadingContext.SAMPLE_PERIODIC] * 6 + [
        ReadingContext.SAMPLE_CLOCK,
        ReadingContext.TRANSACTION_END,
    ]
    stamps = [mv.timestamp for mv in ended.meter_values]
    assert stamps == sorted(stamps)
    energy = [mv.sampled_values[0].value for mv in ended.meter_values]
    assert energy == sorted(energy)


def test_a_reading_without_the_configured_measurands_is_not_reported() -> None:
    run = Run(
        TxConfig(tx_start_points={P.EV_CONNECTED}, tx_updated_measurands=(Measurand.FREQUENCY,))
    )
    run.send(CablePlugged())
    assert run.send_sample(SampleKind.PERIODIC) == []  # the meter has no frequency


# --- smaller rules -------------------------------------------------------------------------------


def test_charging_rate_changed_is_reported_in_a_transaction() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    assert run.send(ChargingRateChanged()) == []
    run.send(CablePlugged())
    run.send(ChargingRateChanged())
    assert run.rows[-1] == ("Updated", "ChargingRateChanged", None, None, 1)


def test_stop_overtaken_by_energy_start() -> None:
    """A local stop in READY opens the power path; energy reported after that is winding down."""
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(LocalStop(TOKEN))
    assert run.send(EnergyTransferStarted()) == [run.messages[-1]]
    assert run.machine.state is State.STOPPING
    run.send(EnergyTransferStopped(Suspender.EVSE))
    assert run.rows[-2:] == [
        ("Updated", "ChargingStateChanged", "Charging", None, 3),
        ("Updated", "ChargingStateChanged", "EVConnected", None, 4),
    ]


def test_connector_from_the_plug_in() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged(connector_id=2))
    run.send(Authorized(TOKEN))
    out = run.send(LocalStop(TOKEN))
    assert {m.connector_id for m in run.messages} == {2}
    assert out[-1] == UnlockConnector(1, 2)


def test_power_path_feedback_is_recorded_without_messages() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.send(CablePlugged())
    assert run.send(Authorized(TOKEN))[-1] == ClosePowerPath(1)
    assert run.send(PowerPathClosed()) == []
    assert run.machine.power_path_closed
    assert run.send(PowerPathOpened()) == []
    assert not run.machine.power_path_closed


def test_a_new_config_applies_to_the_next_transaction() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}))
    run.machine.config = TxConfig(tx_start_points={P.POWER_PATH_CLOSED})
    run.send(CablePlugged())
    assert run.messages == []
    run.send(Authorized(TOKEN))
    assert run.rows == [("Started", "Authorized", "EVConnected", None, 0)]


def test_energy_never_flows_outside_a_transaction() -> None:
    """Start points that never happen (no bay sensor): the transaction starts at the latest when
    the power path is to close, ahead of the ClosePowerPath command."""
    run = Run(TxConfig(tx_start_points={P.PARKING_BAY_OCCUPANCY}))
    run.send(CablePlugged())
    out = run.send(Authorized(TOKEN))
    assert isinstance(out[0], TransactionEventOut)
    assert out[0].event_type is EventType.STARTED
    assert out[-1] == ClosePowerPath(1)


def test_outputs_are_ordered_open_messages_unlock_close() -> None:
    run = Run(TxConfig(tx_start_points={P.EV_CONNECTED}, tx_stop_points={P.AUTHORIZED}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    run.send(EnergyTransferStarted())
    out = run.send(LocalStop(TOKEN))
    assert [type(o) for o in out] == [OpenPowerPath, TransactionEventOut, UnlockConnector]


def test_fault_without_a_transaction_changes_nothing_but_the_state() -> None:
    run = Run(TxConfig(tx_start_points={P.ENERGY_TRANSFER}))
    run.send(CablePlugged())
    run.send(Authorized(TOKEN))
    out = run.send(Fault(StoppedReason.OVERCURRENT_FAULT))
    assert out == [OpenPowerPath(1)]
    assert run.machine.state is State.FINISHED
