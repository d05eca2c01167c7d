"""Property tests: random event orders never break the session's interlocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from station.chademo import LocalChademoError
from station.chademo.frames import (
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    VehicleFault,
    VehicleStatus,
)
from station.chademo.session import (
    ChargerSession,
    CloseContactors,
    FaultDetected,
    OpenContactors,
    SessionConfig,
    SessionState,
    SetOutput,
    StartInsulationTest,
    UnlockConnector,
)

S = SessionState
CONFIG = SessionConfig(
    max_voltage_v=500, max_current_a=125, max_discharge_current_a=30, vehicle_timeout_s=1.0
)
VS = VehicleStatus
# Mostly the bits of a cooperative vehicle, sometimes anything.
status = st.one_of(
    st.sampled_from(
        [
            VS.CHARGING_ENABLED | VS.DISCHARGE_COMPATIBLE,
            VS.CHARGING_ENABLED,
            VS.DISCHARGE_COMPATIBLE,
            VS.CHARGING_ENABLED | VS.DISCHARGE_COMPATIBLE | VS.VEHICLE_CONTACTOR_OPEN,
        ]
    ),
    st.integers(0, 255).map(VS),
)
frames = st.one_of(
    st.builds(
        Vehicle100,
        minimum_charge_current_a=st.integers(0, 10),
        minimum_battery_voltage_v=st.integers(200, 300),
        maximum_battery_voltage_v=st.integers(300, 520),
    ),
    st.builds(Vehicle101, capacity_kwh=st.integers(0, 1000).map(lambda r: r / 10)),
    st.builds(
        Vehicle102,
        target_voltage_v=st.integers(300, 520),
        charging_current_request_a=st.integers(0, 255),
        faults=st.one_of(st.just(VehicleFault(0)), st.integers(0, 31).map(VehicleFault)),
        status=status,
        soc_pct=st.integers(0, 100),
    ),
    st.builds(
        Vehicle200,
        max_discharge_current_a=st.integers(0, 255),
        min_discharge_voltage_v=st.integers(0, 400),
    ),
)
good102 = st.builds(
    Vehicle102,
    target_voltage_v=st.integers(300, 500),
    charging_current_request_a=st.integers(0, 255),
    status=st.sampled_from(
        [
            VS.CHARGING_ENABLED | VS.DISCHARGE_COMPATIBLE,
            VS.CHARGING_ENABLED,
            VS.DISCHARGE_COMPATIBLE,
            VS.CHARGING_ENABLED | VS.DISCHARGE_COMPATIBLE | VS.VEHICLE_CONTACTOR_OPEN,
        ]
    ),
    soc_pct=st.integers(0, 100),
)
cycle = st.tuples(
    st.builds(Vehicle100, maximum_battery_voltage_v=st.integers(300, 520)),
    st.builds(Vehicle101, capacity_kwh=st.just(40.0)),
    good102,
    st.builds(Vehicle200, max_discharge_current_a=st.integers(0, 255)),
)
ops = st.one_of(
    st.tuples(st.just("cycle"), cycle),
    st.tuples(st.just("cycle"), cycle),
    st.tuples(st.just("cycle"), cycle),
    st.tuples(st.just("cycle"), cycle),
    st.tuples(st.just("frame"), frames),
    st.tuples(st.just("frame"), frames),
    st.tuples(st.just("frame"), frames),
    st.tuples(st.just("authorize"), st.none()),
    st.tuples(st.just("power"), st.floats(-60_000, 60_000)),
    st.tuples(st.just("insulation"), st.booleans()),
    st.tuples(st.just("insulation"), st.just(True)),
    st.tuples(st.just("insulation"), st.just(True)),
    st.tuples(st.just("authorize"), st.none()),
    st.tuples(st.just("power"), st.floats(-60_000, 60_000)),
    st.tuples(
        st.just("measured"),
        st.tuples(st.floats(0, 520), st.floats(-150, 150)),
    ),
    st.tuples(st.just("tick"), st.none()),
    st.tuples(st.just("stop"), st.none()),
    st.tuples(st.just("estop"), st.none()),
    st.tuples(st.just("reset"), st.none()),
)
steps = st.lists(
    st.tuples(ops, st.one_of(st.floats(0, 0.15), st.floats(0, 0.15), st.floats(0, 3))),
    max_size=150,
)


@dataclass
class Model:
    """What the interlocks may rely on: the inputs as the session received them."""

    v102: Vehicle102 | None = None
    v200: Vehicle200 | None = None
    power_w: float = 0.0
    measured_v: float = 0.0
    passed_tests: set[int] = field(default_factory=set)
    contactors_closed: bool = False
    output: SetOutput = field(default_factory=lambda: SetOutput(0.0, 0.0))

    def voltage(self) -> float:
        target = self.v102.target_voltage_v if self.v102 is not None else 0
        return max(self.measured_v, float(target), 1.0)


def apply(session: ChargerSession, model: Model, op: str, arg: Any, now: float) -> list[Any]:
    try:
        if op == "cycle":
            out = []
            for frame in arg:
                out += apply(session, model, "frame", frame, now)
            return out
        if op == "frame":
            out = session.receive(arg, now)
            if isinstance(arg, Vehicle102):
                model.v102 = arg
            elif isinstance(arg, Vehicle200):
                model.v200 = arg
            return out
        if op == "authorize":
            return session.authorize(now)
        if op == "power":
            model.power_w = arg
            return session.set_power_command(arg, now)
        if op == "insulation" and session.state is not S.INSULATION_TEST:
            with pytest.raises(LocalChademoError):  # a stale result is rejected
                session.insulation_result(arg, now)
            return []
        if op == "insulation":
            running = session.state is S.INSULATION_TEST
            sid = session.session_id
            out = session.insulation_result(arg, now)
            assert running, "an insulation result outside INSULATION_TEST was accepted"
            if arg:
                model.passed_tests.add(sid)
            return out
        if op == "measured":
            model.measured_v = arg[0]
            return session.measured(arg[0], arg[1], now)
        if op == "tick":
            return session.tick(now)
        if op == "stop":
            return session.stop(now)
        if op == "estop":
            return session.emergency_stop(now)
        return session.reset(now)
    except LocalChademoError:
        return []


@settings(max_examples=500)
@given(steps=steps)
def test_interlocks_hold_under_random_event_orders(steps: list[tuple[Any, float]]) -> None:
    run(ChargerSession(CONFIG), Model(), steps, 0.0)


@settings(max_examples=300)
@given(steps=steps)
def test_interlocks_hold_from_contactors_closed(steps: list[tuple[Any, float]]) -> None:
    session, model = ChargerSession(CONFIG), Model()
    frames = (
        Vehicle100(maximum_battery_voltage_v=410),
        Vehicle101(capacity_kwh=40.0),
        Vehicle102(
            target_voltage_v=400,
            charging_current_request_a=200,
            status=VS.CHARGING_ENABLED | VS.DISCHARGE_COMPATIBLE,
        ),
        Vehicle200(max_discharge_current_a=25),
    )
    apply(session, model, "authorize", None, 0.0)
    apply(session, model, "cycle", frames, 0.0)
    apply(session, model, "insulation", True, 0.0)
    model.contactors_closed = True
    assert session.state is S.CONTACTORS_CLOSED
    run(session, model, steps, 0.0)


def run(session: ChargerSession, model: Model, steps: list[tuple[Any, float]], now: float) -> None:
    flat: list[tuple[str, Any, float]] = []
    for (op, arg), dt in steps:
        if op == "cycle":  # one frame at a time, so each output is checked against its inputs
            flat += [("frame", frame, dt if i == 0 else 0.0) for i, frame in enumerate(arg)]
        else:
            flat.append((op, arg, dt))
    for op, arg, dt in flat:
        now += dt
        state_before = session.state
        outputs = apply(session, model, op, arg, now)
        for out in outputs:
            if isinstance(out, CloseContactors):
                # Never without a passed insulation test in THIS session.
                assert session.session_id in model.passed_tests
                model.contactors_closed = True
            elif isinstance(out, OpenContactors):
                model.contactors_closed = False
            elif isinstance(out, StartInsulationTest):
                assert out.test_id == session.session_id
            elif isinstance(out, SetOutput):
                model.output = out
                if out.current_a > 0:
                    assert model.v102 is not None
                    bound = min(
                        model.v102.charging_current_request_a,
                        model.power_w / model.voltage(),
                        CONFIG.max_current_a,
                    )
                    assert out.current_a <= bound + 1e-9
                elif out.current_a < 0:
                    # Never discharge without the compatible bit.
                    assert model.v102 is not None and model.v200 is not None
                    assert VS.DISCHARGE_COMPATIBLE in model.v102.status
                    bound = min(
                        model.v200.max_discharge_current_a,
                        -model.power_w / model.voltage(),
                        CONFIG.max_discharge_current_a,
                    )
                    assert -out.current_a <= bound + 1e-9
            elif isinstance(out, UnlockConnector) and op != "reset":
                assert model.measured_v <= 10.0
                assert not model.contactors_closed
            elif isinstance(out, FaultDetected):
                # After a fault: contactors open and output 0, in that call.
                assert not model.contactors_closed
                assert model.output == SetOutput(0.0, 0.0)
        if session.state in (S.FAULT, S.ERROR, S.IDLE, S.UNLOCKED):
            assert not model.contactors_closed, (state_before, session.state, op)
            assert model.output.current_a == 0
        if session.state not in (S.CHARGING, S.DISCHARGING):
            assert model.output.current_a == 0
        event(f"reached {session.state}")
        if session.state is S.ERROR:
            session.reset(now)
            model.contactors_closed = False
            model.output = SetOutput(0.0, 0.0)


@pytest.mark.parametrize("seed_steps", [40])
def test_a_cooperative_vehicle_reaches_charging(seed_steps: int) -> None:
    """The property test's generators can reach the interesting states at all."""
    session = ChargerSession(CONFIG)
    now = 0.0
    session.authorize(now)
    for _ in range(seed_steps):
        now += 0.1
        for frame in (
            Vehicle100(maximum_battery_voltage_v=410),
            Vehicle101(capacity_kwh=40.0),
            Vehicle102(
                target_voltage_v=400, charging_current_request_a=50, status=VS.CHARGING_ENABLED
            ),
        ):
            session.receive(frame, now)
        if session.state is S.INSULATION_TEST:
            session.insulation_result(True, now)
        session.set_power_command(10_000, now)
    assert session.state is S.CHARGING
