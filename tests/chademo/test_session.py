"""The charger-side CHAdeMO session: transitions, stop and fault paths, interlocks."""

from __future__ import annotations

from typing import Any

import pytest

from station.chademo import LocalChademoError
from station.chademo.frames import (
    Charger109,
    ChargerStatus,
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    VehicleFault,
    VehicleStatus,
)
from station.chademo.session import (
    OCPP_STOPPED_REASON,
    TRANSITIONS,
    ChargerSession,
    ChargingNeeds,
    CloseContactors,
    EnergyFlowStarted,
    EnergyFlowStopped,
    FaultDetected,
    FlowDirection,
    LockConnector,
    OpenContactors,
    Output,
    SessionConfig,
    SessionEnded,
    SessionState,
    SessionStopped,
    SetOutput,
    StartInsulationTest,
    StopReason,
    UnlockConnector,
    VehicleConnected,
)

S = SessionState
VS = VehicleStatus
ENABLED = VS.CHARGING_ENABLED | VS.DISCHARGE_COMPATIBLE
CONFIG = SessionConfig(max_voltage_v=500, max_current_a=125, max_discharge_current_a=30)


class Car:
    """Feeds a session the frames of a simple vehicle; ``t`` advances by 0.1 s per cycle."""

    def __init__(self, session: ChargerSession) -> None:
        self.session = session
        self.t = 0.0
        self.status = VS.DISCHARGE_COMPATIBLE
        self.faults = VehicleFault(0)
        self.request_a = 0
        self.target_v = 400
        self.soc_pct = 50

    def frames(self) -> list[Any]:
        return [
            Vehicle100(minimum_battery_voltage_v=250, maximum_battery_voltage_v=410),
            Vehicle101(max_charging_time_min=60, capacity_kwh=40.0),
            Vehicle102(
                target_voltage_v=self.target_v,
                charging_current_request_a=self.request_a,
                faults=self.faults,
                status=self.status,
                soc_pct=self.soc_pct,
            ),
            Vehicle200(max_discharge_current_a=20, min_discharge_voltage_v=300),
        ]

    def cycle(self, dt: float = 0.1) -> list[Output]:
        self.t += dt
        out: list[Output] = []
        for frame in self.frames():
            out += self.session.receive(frame, self.t)
        return out


def kinds(outputs: list[Output]) -> list[type]:
    return [type(o) for o in outputs]


def to_state(target: SessionState, config: SessionConfig = CONFIG) -> tuple[ChargerSession, Car]:
    """Drive a fresh session along the happy path until ``target``."""
    session = ChargerSession(config)
    car = Car(session)
    car.cycle()
    assert session.state is S.PARAMETER_CHECK
    if target is S.PARAMETER_CHECK:
        return session, car
    session.authorize(car.t)
    car.status |= VS.CHARGING_ENABLED | VS.VEHICLE_CONTACTOR_OPEN
    car.cycle()
    assert session.state is S.INSULATION_TEST
    if target is S.INSULATION_TEST:
        return session, car
    session.insulation_result(True, car.t)
    assert session.state is S.CONTACTORS_CLOSED
    if target is S.CONTACTORS_CLOSED:
        return session, car
    car.status &= ~VS.VEHICLE_CONTACTOR_OPEN
    car.request_a = 100
    car.cycle()
    session.measured(395.0, 0.0, car.t)
    if target is S.CHARGING:
        session.set_power_command(8000, car.t)
    elif target is S.DISCHARGING:
        session.set_power_command(-4000, car.t)
    assert session.state is target
    return session, car


# ---------------------------------------------------------------------------- transitions


def test_transition_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(SessionState)
    for state in S:
        if state not in (S.FAULT, S.ERROR):
            assert any(target is S.FAULT for target in TRANSITIONS[state].values()), state


def test_idle_to_vehicle_detected_to_parameter_check() -> None:
    session = ChargerSession(CONFIG)
    assert session.receive(Vehicle100(maximum_battery_voltage_v=410), 0.0) == []
    assert session.state is S.VEHICLE_DETECTED
    assert session.session_id == 1
    session.receive(Vehicle101(capacity_kwh=40.0), 0.0)
    assert session.state is S.VEHICLE_DETECTED
    out = session.receive(Vehicle102(target_voltage_v=400, soc_pct=60), 0.0)
    assert session.state is S.PARAMETER_CHECK
    assert kinds(out) == [VehicleConnected, ChargingNeeds]
    connected = out[0]
    assert isinstance(connected, VehicleConnected)
    assert connected.parameters.target_voltage_v == 400
    assert connected.parameters.capacity_kwh == 40.0
    needs = out[1]
    assert isinstance(needs, ChargingNeeds)
    assert needs.soc_pct == 60
    assert needs.max_charge_power_w == 125 * 400
    assert not needs.discharge_compatible


def test_permission_needs_authorization_and_charging_enabled() -> None:
    session, car = to_state(S.PARAMETER_CHECK)
    car.status |= VS.CHARGING_ENABLED
    car.cycle()
    assert session.state is S.PARAMETER_CHECK  # not authorized yet
    out = session.authorize(car.t)
    assert session.state is S.INSULATION_TEST
    assert kinds(out) == [LockConnector, StartInsulationTest]
    test = out[1]
    assert isinstance(test, StartInsulationTest)
    assert test.test_id == session.session_id
    assert test.voltage_v == 410  # min(vehicle max battery voltage, station max)


def test_authorization_first_then_charging_enabled() -> None:
    session = ChargerSession(CONFIG)
    session.authorize(0.0)
    car = Car(session)
    car.cycle()
    assert session.state is S.PARAMETER_CHECK
    car.status |= VS.CHARGING_ENABLED
    assert kinds(car.cycle()) == [LockConnector, StartInsulationTest]


def test_insulation_pass_closes_contactors() -> None:
    session, car = to_state(S.INSULATION_TEST)
    assert session.insulation_result(True, car.t, test_id=session.session_id) == [CloseContactors()]
    assert session.state is S.CONTACTORS_CLOSED


def test_contactors_closed_waits_for_vehicle_contactors_and_power() -> None:
    session, car = to_state(S.CONTACTORS_CLOSED)
    assert session.set_power_command(8000, car.t) == []  # vehicle contactor still open
    car.status &= ~VS.VEHICLE_CONTACTOR_OPEN
    car.request_a = 10
    out = car.cycle()
    assert session.state is S.CHARGING
    assert out == [
        EnergyFlowStarted(session.session_id, FlowDirection.CHARGE),
        SetOutput(400.0, 10.0),
    ]


def test_charging_follows_the_bound() -> None:
    session, car = to_state(S.CHARGING)
    # request 100 A, 8000 W / max(395 V measured, 400 V target) = 20 A, station 125 A
    assert session.charge_current_bound_a() == pytest.approx(20.0)
    car.request_a = 12
    assert car.cycle() == [SetOutput(400.0, 12.0)]
    car.request_a = 200
    assert car.cycle() == [SetOutput(400.0, 20.0)]  # power command 8000 W / 400 V
    out = session.set_power_command(100_000, car.t)
    assert out == [SetOutput(400.0, 125.0)]  # station limit
    out = session.set_power_command(40_000, car.t)
    assert out == [SetOutput(400.0, 100.0)]  # power / target voltage
    out = session.measured(500.0, 90.0, car.t)
    assert out == [SetOutput(400.0, 80.0)]  # power / measured voltage


def test_power_zero_stops_the_flow_but_not_the_session() -> None:
    session, car = to_state(S.CHARGING)
    out = session.set_power_command(0, car.t)
    assert out == [SetOutput(0.0, 0.0), EnergyFlowStopped(session.session_id)]
    assert session.state is S.CONTACTORS_CLOSED


def test_discharging_bound_and_direction_change() -> None:
    session, car = to_state(S.DISCHARGING)
    # min(vehicle 20 A, 4000 W / 400 V = 10 A, station 30 A); voltage floor 300 V (0x200)
    assert session.discharge_current_bound_a() == pytest.approx(10.0)
    out = session.set_power_command(-100_000, car.t)
    assert out == [SetOutput(300.0, -20.0)]
    out = session.set_power_command(5000, car.t)
    assert kinds(out) == [SetOutput, EnergyFlowStopped, EnergyFlowStarted, SetOutput]
    assert out[0] == SetOutput(0.0, 0.0)
    assert session.state is S.CHARGING


def test_no_discharge_without_the_compatible_bit() -> None:
    session, car = to_state(S.CONTACTORS_CLOSED)
    car.status &= ~(VS.VEHICLE_CONTACTOR_OPEN | VS.DISCHARGE_COMPATIBLE)
    car.cycle()
    assert session.set_power_command(-4000, car.t) == []
    assert session.state is S.CONTACTORS_CLOSED
    assert session.discharge_current_bound_a() == 0


def test_discharge_stops_when_the_compatible_bit_clears() -> None:
    session, car = to_state(S.DISCHARGING)
    car.status &= ~VS.DISCHARGE_COMPATIBLE
    out = car.cycle()
    assert out[:2] == [SetOutput(0.0, 0.0), EnergyFlowStopped(session.session_id)]
    assert session.state is S.CONTACTORS_CLOSED


def test_no_discharge_on_a_station_without_v2h() -> None:
    session, car = to_state(S.CONTACTORS_CLOSED, SessionConfig(max_discharge_current_a=0))
    car.status &= ~VS.VEHICLE_CONTACTOR_OPEN
    car.cycle()
    session.set_power_command(-4000, car.t)
    assert session.state is S.CONTACTORS_CLOSED
    assert len(session.charger_frames(car.t)) == 2


def test_full_stop_sequence_with_welding_check() -> None:
    session, car = to_state(S.CHARGING)
    sid = session.session_id
    car.t += 0.05  # the last measurement (0 A) predates the stop
    out = session.stop(car.t, StopReason.REMOTE_STOP)
    assert out == [
        SetOutput(0.0, 0.0),
        EnergyFlowStopped(sid),
        SessionStopped(sid, StopReason.REMOTE_STOP, "station stop"),
    ]
    assert session.state is S.STOPPING
    assert session.measured(395.0, 6.0, car.t) == []  # > 5 A: contactors stay closed
    assert session.measured(395.0, 4.0, car.t) == [OpenContactors()]
    assert session.measured(11.0, 0.0, car.t) == []  # > 10 V: stay locked
    assert session.measured(9.0, 0.0, car.t) == [UnlockConnector()]
    assert session.state is S.UNLOCKED
    car.cycle()  # the vehicle is still there
    assert session.state is S.UNLOCKED
    assert session.tick(car.t + 1.5) == [SessionEnded(sid)]
    assert session.state is S.IDLE


def test_stale_measurement_does_not_open_contactors() -> None:
    session, car = to_state(S.CHARGING)
    session.measured(0.0, 0.0, car.t)
    session.stop(car.t + 0.05)
    assert session.state is S.STOPPING
    assert OpenContactors() not in session.tick(car.t + 0.05)  # measurement predates the stop


def test_stop_before_the_lock_needs_no_welding_check() -> None:
    session, car = to_state(S.PARAMETER_CHECK)
    out = session.stop(car.t)
    assert kinds(out) == [SetOutput, SessionStopped]
    assert session.state is S.UNLOCKED


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda car: setattr(car, "faults", VehicleFault.HIGH_BATTERY_TEMPERATURE), "VehicleFault"),
        (lambda car: setattr(car, "status", car.status | VS.CHARGING_SYSTEM_FAULT), "VehicleFault"),
        (
            lambda car: setattr(car, "status", car.status | VS.NORMAL_STOP_REQUEST),
            "VehicleStopRequest",
        ),
        (
            lambda car: setattr(car, "status", car.status & ~VS.CHARGING_ENABLED),
            "VehicleStopRequest",
        ),
        (lambda car: setattr(car, "status", car.status | VS.SHIFT_LEVER_NOT_PARK), "ShiftLever"),
        (lambda car: setattr(car, "target_v", 501), "BatteryIncompatible"),
    ],
)
@pytest.mark.parametrize(
    "state", [S.INSULATION_TEST, S.CONTACTORS_CLOSED, S.CHARGING, S.DISCHARGING]
)
def test_vehicle_stop_paths(change: Any, reason: str, state: SessionState) -> None:
    session, car = to_state(state)
    change(car)
    out = car.cycle()
    assert session.state is S.STOPPING
    stopped = [o for o in out if isinstance(o, SessionStopped)]
    assert [s.reason for s in stopped] == [StopReason(reason)]
    assert out[0] == SetOutput(0.0, 0.0)
    assert CloseContactors() not in out


def test_battery_incompatible_in_parameter_check_sets_the_status_bit() -> None:
    session = ChargerSession(CONFIG)
    car = Car(session)
    car.target_v = 600
    out = car.cycle()
    assert (
        SessionStopped(1, StopReason.BATTERY_INCOMPATIBLE, "target 600 V > available 500 V") in out
    )
    f109 = session.charger_frames(car.t)[1]
    assert isinstance(f109, Charger109)
    assert ChargerStatus.BATTERY_INCOMPATIBLE in f109.status
    assert ChargerStatus.STOP_CONTROL in f109.status


@pytest.mark.parametrize("state", [S.PARAMETER_CHECK, S.INSULATION_TEST, S.CHARGING])
def test_vehicle_timeout(state: SessionState) -> None:
    session, car = to_state(state)
    assert session.tick(car.t + 1.0) == []  # exactly the timeout: still fine
    out = session.tick(car.t + 1.01)
    assert (
        SessionStopped(session.session_id, StopReason.VEHICLE_TIMEOUT, "no vehicle frame for 1.0 s")
        in out
    )


def test_handshake_timeout_counts_from_authorization() -> None:
    session, car = to_state(S.PARAMETER_CHECK)
    for _ in range(300):  # 30 s unauthorized in PARAMETER_CHECK: no handshake timeout
        car.cycle()
    assert session.state is S.PARAMETER_CHECK
    session.authorize(car.t)
    for _ in range(195):
        car.cycle()
    assert session.state is S.PARAMETER_CHECK  # 19.5 s, vehicle never enables charging
    stopped = [o for _ in range(10) for o in car.cycle() if isinstance(o, SessionStopped)]
    assert [o.reason for o in stopped] == [StopReason.HANDSHAKE_TIMEOUT]
    assert session.state is S.UNLOCKED


def test_insulation_failure_faults() -> None:
    session, car = to_state(S.INSULATION_TEST)
    sid = session.session_id
    out = session.insulation_result(False, car.t)
    assert out == [
        OpenContactors(),
        SetOutput(0.0, 0.0),
        SessionStopped(sid, StopReason.INSULATION_FAILURE, "insulation test failed"),
        FaultDetected(sid, StopReason.INSULATION_FAILURE, "insulation test failed"),
    ]
    assert session.state is S.FAULT
    assert session.measured(9.0, 0.0, car.t) == [UnlockConnector()]
    assert session.state is S.FAULT  # latched
    car.cycle()
    assert session.state is S.FAULT
    assert session.reset(car.t) == [OpenContactors(), SetOutput(0.0, 0.0), SessionEnded(sid)]
    assert session.state is S.IDLE


def test_insulation_timeout_faults() -> None:
    session, car = to_state(S.INSULATION_TEST)
    for _ in range(101):
        car.cycle()
    assert session.state is S.FAULT
    assert session.stop_reason is StopReason.INSULATION_FAILURE


def test_stale_insulation_results_are_rejected() -> None:
    session, car = to_state(S.PARAMETER_CHECK)
    with pytest.raises(LocalChademoError, match="no insulation test"):
        session.insulation_result(True, car.t)
    assert session.state is S.PARAMETER_CHECK
    # A whole session with a passed test, then a new session: the old pass does not count.
    session, car = to_state(S.CHARGING)
    old = session.session_id
    session.stop(car.t)
    session.measured(0.0, 0.0, car.t)
    session.tick(car.t + 2)
    assert session.state is S.IDLE
    car.t += 2
    car.status = VS.DISCHARGE_COMPATIBLE
    car.cycle()
    session.authorize(car.t)
    car.status |= VS.CHARGING_ENABLED
    car.cycle()
    assert session.state is S.INSULATION_TEST
    assert session.session_id == old + 1
    with pytest.raises(LocalChademoError, match="insulation result for test"):
        session.insulation_result(True, car.t, test_id=old)
    assert session.state is S.INSULATION_TEST
    for _ in range(5):
        assert CloseContactors() not in car.cycle()


@pytest.mark.parametrize(
    "state", [S.IDLE, S.PARAMETER_CHECK, S.INSULATION_TEST, S.CHARGING, S.STOPPING]
)
def test_emergency_stop_opens_at_once(state: SessionState) -> None:
    if state is S.IDLE:
        session, t = ChargerSession(CONFIG), 0.0
    elif state is S.STOPPING:
        session, car = to_state(S.CHARGING)
        session.stop(car.t)
        t = car.t
    else:
        session, car = to_state(state)
        t = car.t
    out = session.emergency_stop(t)
    assert out[:2] == [OpenContactors(), SetOutput(0.0, 0.0)]
    assert isinstance(out[-1], FaultDetected)
    assert out[-1].reason is StopReason.EMERGENCY_STOP
    assert session.state is S.FAULT
    f109 = session.charger_frames(t)[1]
    assert ChargerStatus.CHARGER_MALFUNCTION in f109.status
    assert ChargerStatus.CHARGING not in f109.status


def test_stop_timeout_faults_and_keeps_the_connector_locked() -> None:
    session, car = to_state(S.CHARGING)
    session.stop(car.t)
    out = session.tick(car.t + 10.5)
    assert session.state is S.FAULT
    assert (
        FaultDetected(
            session.session_id,
            StopReason.STOP_TIMEOUT,
            "output not safe in time (welding suspected)",
        )
        in out
    )
    assert UnlockConnector() not in out
    assert session.measured(50.0, 0.0, car.t + 11) == []  # still voltage: no unlock


def test_bus_error_stops() -> None:
    session, car = to_state(S.CHARGING)
    out = session.bus_error(car.t, "bus-off")
    assert SessionStopped(session.session_id, StopReason.BUS_ERROR, "bus-off") in out
    assert session.state is S.STOPPING


# ---------------------------------------------------------------------------- bad input, ERROR


def test_bad_input_changes_nothing() -> None:
    session, car = to_state(S.CHARGING)
    before = session.state
    with pytest.raises(LocalChademoError):
        session.set_power_command(float("nan"), car.t)
    with pytest.raises(LocalChademoError):
        session.measured(float("inf"), 0.0, car.t)
    with pytest.raises(LocalChademoError, match="backwards"):
        session.tick(car.t - 1)
    with pytest.raises(LocalChademoError, match="not a vehicle frame"):
        session.receive(Charger109(), car.t)
    with pytest.raises(LocalChademoError, match="stop"):
        session.reset(car.t)
    assert session.state is before


class ExplodingFrame(Vehicle102):
    """A hostile frame whose state of charge cannot be read."""

    def __getattribute__(self, name: str) -> Any:
        if name == "soc_pct" and object.__getattribute__(self, "__dict__").get("armed"):
            raise RuntimeError("boom")
        return super().__getattribute__(name)


def test_exception_in_a_transition_goes_to_error() -> None:
    session = ChargerSession(CONFIG)
    session.receive(Vehicle100(), 0.0)
    session.receive(Vehicle101(), 0.0)
    frame = ExplodingFrame(target_voltage_v=400)
    object.__setattr__(frame, "armed", True)
    out = session.receive(frame, 0.0)
    assert out[:2] == [OpenContactors(), SetOutput(0.0, 0.0)]
    assert isinstance(out[2], FaultDetected)
    assert out[2].reason is StopReason.INTERNAL_ERROR
    assert session.state is S.ERROR
    assert isinstance(session.error, RuntimeError)
    for call in (
        lambda: session.tick(1.0),
        lambda: session.receive(Vehicle100(), 1.0),
        lambda: session.authorize(1.0),
        lambda: session.measured(0, 0, 1.0),
    ):
        with pytest.raises(LocalChademoError, match="ERROR"):
            call()
    assert ChargerStatus.CHARGER_MALFUNCTION in session.charger_frames(1.0)[1].status
    assert kinds(session.reset(1.0)) == [OpenContactors, SetOutput, SessionEnded]
    assert session.state is S.IDLE
    assert session.error is None


def test_reset_is_idempotent_in_idle() -> None:
    session = ChargerSession(CONFIG)
    assert session.reset(0.0) == [OpenContactors(), SetOutput(0.0, 0.0)]
    assert session.reset(0.0) == [OpenContactors(), SetOutput(0.0, 0.0)]
    assert session.state is S.IDLE


# ---------------------------------------------------------------------------- frames, config


def test_charger_frames_follow_the_state() -> None:
    session, car = to_state(S.PARAMETER_CHECK)
    f108, f109, f208, f209 = session.charger_frames(car.t)
    assert f108.available_output_voltage_v == 500
    assert f108.available_output_current_a == 125
    assert f109.status == ChargerStatus.STOP_CONTROL
    assert f109.discharge_compatible
    assert f208.available_input_current_a == 30
    assert f209.sequence_control_number == 2
    session, car = to_state(S.CHARGING)
    session.measured(398.4, 19.6, car.t)
    f108, f109, *_ = session.charger_frames(car.t)
    assert f109.status == ChargerStatus.CHARGING | ChargerStatus.CONNECTOR_LOCKED
    assert (f109.present_output_voltage_v, f109.present_output_current_a) == (398, 20)
    assert f108.available_output_current_a == 20  # 8000 W / 398.4 V, floored
    for frame in (f108, f109):
        assert len(frame.encode()) == 8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_current_a": 256},
        {"max_voltage_v": -1},
        {"vehicle_timeout_s": 0},
        {"handshake_timeout_s": float("nan")},
        {"threshold_voltage_v": 600},
    ],
)
def test_bad_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalChademoError):
        SessionConfig(**kwargs)


def test_every_stop_reason_maps_to_an_ocpp_reason() -> None:
    ocpp_reasons = {
        "DeAuthorized", "EmergencyStop", "EnergyLimitReached", "EVDisconnected", "GroundFault",
        "ImmediateReset", "Local", "LocalOutOfCredit", "MasterPass", "Other", "OvercurrentFault",
        "PowerLoss", "PowerQuality", "Reboot", "Remote", "SOCLimitReached", "StoppedByEV",
        "TimeLimitReached", "Timeout",
    }  # fmt: skip
    assert set(OCPP_STOPPED_REASON) == set(StopReason)
    assert set(OCPP_STOPPED_REASON.values()) <= ocpp_reasons
