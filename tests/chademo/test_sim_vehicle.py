"""The simulated CHAdeMO vehicle: its battery (properties), its protocol core driven by a scripted
charger (pure, time passed in), and its CAN node over python-can's ``virtual`` bus."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import can
import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.chademo.frames import (
    Charger108,
    Charger109,
    Charger208,
    Charger209,
    ChargerStatus,
    Frame,
    Quirks,
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    Vehicle201,
    VehicleFault,
    VehicleStatus,
    decode_frame,
)
from station.clock import SystemClock
from station.sim.chademo_vehicle import (
    Battery,
    ChademoVehicleSpec,
    InjectedFault,
    SimChademoVehicle,
    VehicleCore,
    VehiclePhase,
    register_commands,
)
from station.sim.control import ControlServer, Endpoint

# --- battery properties -------------------------------------------------------------------------

capacities = st.floats(min_value=1.0, max_value=200_000.0, allow_nan=False)
socs = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
transfers = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), max_size=30)


@given(capacities, socs, transfers)
def test_battery_soc_stays_in_bounds_and_energy_is_conserved(
    capacity_wh: float, soc_pct: float, offers: list[float]
) -> None:
    battery = Battery.at_soc(capacity_wh, soc_pct, 300.0, 400.0)
    start_wh = battery.energy_wh
    moved_total = 0.0
    for offer in offers:
        before = battery
        battery, moved = battery.transfer(offer)
        assert 0.0 <= battery.soc_pct <= 100.0
        assert 0.0 <= battery.energy_wh <= capacity_wh
        assert math.isclose(battery.energy_wh, before.energy_wh + moved, abs_tol=1e-6)
        assert abs(moved) <= abs(offer) + 1e-9
        assert moved == 0 or math.copysign(1, moved) == math.copysign(1, offer)
        assert 300.0 <= battery.voltage_v <= 400.0
        moved_total += moved
    assert math.isclose(battery.energy_wh - start_wh, moved_total, abs_tol=1e-6 * (1 + len(offers)))


@given(capacities, socs, socs)
def test_battery_voltage_rises_with_soc(capacity_wh: float, a: float, b: float) -> None:
    low, high = sorted((a, b))
    v_low = Battery.at_soc(capacity_wh, low, 250.0, 410.0).voltage_v
    v_high = Battery.at_soc(capacity_wh, high, 250.0, 410.0).voltage_v
    assert 250.0 <= v_low <= v_high <= 410.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity_wh": 0.0},
        {"capacity_wh": float("nan")},
        {"min_voltage_v": 500.0},
        {"soc_pct": 101.0},
    ],
)
def test_bad_battery_is_refused(kwargs: dict[str, float]) -> None:
    args = {"capacity_wh": 1000.0, "soc_pct": 50.0, "min_voltage_v": 300.0, "max_voltage_v": 400.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match="battery"):
        Battery.at_soc(**args)


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="max_charge_current_a"):
        ChademoVehicleSpec(max_charge_current_a=300)
    with pytest.raises(ValueError, match="soc_pct"):
        ChademoVehicleSpec(soc_pct=-1)


# --- the core against a scripted charger ---------------------------------------------------------

AVAILABLE = Charger108(
    welding_detection_supported=True,
    available_output_voltage_v=500,
    available_output_current_a=125,
    threshold_voltage_v=420,
)


def by_id(frames: list[Frame]) -> dict[int, Frame]:
    return {f.ARBITRATION_ID: f for f in frames}


def f102(core: VehicleCore, now: float) -> Vehicle102:
    frame = by_id(core.tick(now))[0x102]
    assert isinstance(frame, Vehicle102)
    return frame


def charging_core(spec: ChademoVehicleSpec | None = None) -> tuple[VehicleCore, float]:
    """A core driven to ENERGY at t = 1.0 s."""
    core = VehicleCore()
    core.plug(spec or ChademoVehicleSpec(), 0.0)
    core.receive(AVAILABLE)
    core.tick(0.1)
    core.receive(Charger109(status=ChargerStatus.STOP_CONTROL | ChargerStatus.CONNECTOR_LOCKED))
    core.tick(0.2)
    core.tick(0.6)
    assert core.phase is VehiclePhase.ENERGY
    return core, 0.6


def test_unplugged_vehicle_is_silent() -> None:
    core = VehicleCore()
    assert core.tick(0.0) == []
    assert core.status()["plugged"] is False


def test_plugged_vehicle_announces_itself() -> None:
    core = VehicleCore()
    core.plug(ChademoVehicleSpec(soc_pct=40, capacity_wh=2000), 0.0)
    frames = by_id(core.tick(0.1))
    assert set(frames) == {0x100, 0x101, 0x102, 0x200, 0x201}
    f100, f101, f102_ = frames[0x100], frames[0x101], frames[0x102]
    assert isinstance(f100, Vehicle100) and f100.maximum_battery_voltage_v == 410
    assert isinstance(f101, Vehicle101) and f101.capacity_kwh == 2.0
    assert isinstance(f102_, Vehicle102)
    assert f102_.soc_pct == 40 and f102_.target_voltage_v == 410
    assert f102_.charging_current_request_a == 0
    assert f102_.status == VehicleStatus.VEHICLE_CONTACTOR_OPEN | VehicleStatus.DISCHARGE_COMPATIBLE
    assert isinstance(frames[0x200], Vehicle200) and isinstance(frames[0x201], Vehicle201)
    with pytest.raises(RuntimeError, match="already plugged"):
        core.plug(ChademoVehicleSpec(), 0.2)


def test_no_v2h_frames_without_v2h() -> None:
    core = VehicleCore()
    core.plug(ChademoVehicleSpec(v2h=False), 0.0)
    frames = by_id(core.tick(0.1))
    assert set(frames) == {0x100, 0x101, 0x102}
    frame = frames[0x102]
    assert isinstance(frame, Vehicle102)
    assert not frame.status & VehicleStatus.DISCHARGE_COMPATIBLE


def test_sequence_enable_lock_contactors_ramp() -> None:
    core = VehicleCore()
    core.plug(ChademoVehicleSpec(contactor_delay_s=0.3, ramp_a_per_s=100), 0.0)
    assert not f102(core, 0.1).status & VehicleStatus.CHARGING_ENABLED
    core.receive(AVAILABLE)
    assert f102(core, 0.2).status & VehicleStatus.CHARGING_ENABLED
    core.receive(Charger109(status=ChargerStatus.STOP_CONTROL | ChargerStatus.CONNECTOR_LOCKED))
    locked = f102(core, 0.3)
    assert locked.status & VehicleStatus.VEHICLE_CONTACTOR_OPEN  # insulation test time
    assert f102(core, 0.5).status & VehicleStatus.VEHICLE_CONTACTOR_OPEN
    closed = f102(core, 0.6)
    assert not closed.status & VehicleStatus.VEHICLE_CONTACTOR_OPEN
    requests = [f102(core, 0.6 + 0.1 * n).charging_current_request_a for n in range(1, 13)]
    assert requests == sorted(requests)
    assert requests[0] == 20 and requests[-1] == 100  # 10 A per 100 ms, up to the spec's limit


def test_energy_follows_the_chargers_present_output() -> None:
    core, t = charging_core(ChademoVehicleSpec(capacity_wh=10_000, soc_pct=50))
    core.receive(
        Charger109(
            present_output_voltage_v=400,
            present_output_current_a=90,
            status=ChargerStatus.CHARGING | ChargerStatus.CONNECTOR_LOCKED,
        )
    )
    for n in range(1, 11):
        core.tick(t + 0.1 * n)
    assert core.charged_wh == pytest.approx(400 * 90 * 1.0 / 3600)  # 1 s at 36 kW = 10 Wh
    assert core.battery.energy_wh == pytest.approx(5000 + 10)
    assert core.status()["present_power_w"] == 36_000


def test_target_soc_ends_the_charge_and_contactors_open_at_low_current() -> None:
    core, t = charging_core(ChademoVehicleSpec(capacity_wh=100, soc_pct=89.9, target_soc_pct=90))
    locked_charging = ChargerStatus.CHARGING | ChargerStatus.CONNECTOR_LOCKED
    core.receive(
        Charger109(
            present_output_voltage_v=400, present_output_current_a=50, status=locked_charging
        )
    )
    t += 0.1
    frame = f102(core, t)
    t += 0.1
    frame = f102(core, t)
    assert core.phase is VehiclePhase.STOPPING
    assert frame.charging_current_request_a == 0
    assert not frame.status & VehicleStatus.CHARGING_ENABLED
    assert not frame.status & VehicleStatus.VEHICLE_CONTACTOR_OPEN  # still 50 A flowing
    core.receive(
        Charger109(
            present_output_voltage_v=400,
            present_output_current_a=5,
            status=ChargerStatus.STOP_CONTROL | ChargerStatus.CONNECTOR_LOCKED,
        )
    )
    frame = f102(core, t + 0.1)
    assert core.status()["phase"] == VehiclePhase.FINISHED.value
    assert frame.status & VehicleStatus.VEHICLE_CONTACTOR_OPEN
    assert core.stop_reason == "target SoC reached"


def test_charger_stop_control_after_charging_stops_the_vehicle() -> None:
    core, t = charging_core()
    core.receive(Charger109(status=ChargerStatus.CHARGING | ChargerStatus.CONNECTOR_LOCKED))
    core.tick(t + 0.1)
    core.receive(Charger109(status=ChargerStatus.STOP_CONTROL | ChargerStatus.CONNECTOR_LOCKED))
    frame = f102(core, t + 0.2)
    assert core.phase is VehiclePhase.FINISHED
    assert frame.status & VehicleStatus.VEHICLE_CONTACTOR_OPEN
    assert not frame.status & VehicleStatus.CHARGING_ENABLED


@pytest.mark.parametrize(
    ("kind", "fault", "status"),
    [
        (InjectedFault.STOP_REQUEST, VehicleFault(0), VehicleStatus.NORMAL_STOP_REQUEST),
        (InjectedFault.OVERVOLTAGE, VehicleFault.BATTERY_OVERVOLTAGE, VehicleStatus(0)),
        (InjectedFault.UNDERVOLTAGE, VehicleFault.BATTERY_UNDERVOLTAGE, VehicleStatus(0)),
        (InjectedFault.CURRENT_DEVIATION, VehicleFault.BATTERY_CURRENT_DEVIATION, VehicleStatus(0)),
        (InjectedFault.HIGH_TEMPERATURE, VehicleFault.HIGH_BATTERY_TEMPERATURE, VehicleStatus(0)),
        (InjectedFault.VOLTAGE_DEVIATION, VehicleFault.BATTERY_VOLTAGE_DEVIATION, VehicleStatus(0)),
        (InjectedFault.SYSTEM_FAULT, VehicleFault(0), VehicleStatus.CHARGING_SYSTEM_FAULT),
        (InjectedFault.SHIFT_LEVER, VehicleFault(0), VehicleStatus.SHIFT_LEVER_NOT_PARK),
    ],
)
def test_injected_faults_set_their_bits_and_stop_asking(
    kind: InjectedFault, fault: VehicleFault, status: VehicleStatus
) -> None:
    core, t = charging_core()
    assert f102(core, t + 0.1).charging_current_request_a > 0
    core.inject_fault(kind)
    frame = f102(core, t + 0.2)
    assert frame.faults == fault
    assert frame.status & status == status
    assert frame.charging_current_request_a == 0
    assert core.phase in (VehiclePhase.STOPPING, VehiclePhase.FINISHED)


def test_silence_and_incompatible_voltage() -> None:
    core = VehicleCore()
    core.plug(ChademoVehicleSpec(target_voltage_v=410), 0.0)
    core.receive(AVAILABLE)
    core.inject_fault(InjectedFault.INCOMPATIBLE_VOLTAGE)
    assert f102(core, 0.1).target_voltage_v > AVAILABLE.available_output_voltage_v
    core.inject_fault(InjectedFault.SILENCE)
    assert core.tick(0.2) == []
    core.clear_faults()
    assert f102(core, 0.3).target_voltage_v == 410
    with pytest.raises(ValueError):
        core.inject_fault(InjectedFault("no-such-fault"))


def test_v2h_discharge_and_the_minimum_soc() -> None:
    spec = ChademoVehicleSpec(
        capacity_wh=100, soc_pct=21, min_discharge_soc_pct=20, max_discharge_current_a=40
    )
    core, t = charging_core(spec)
    frames = by_id(core.tick(t + 0.1))
    f200 = frames[0x200]
    assert isinstance(f200, Vehicle200) and f200.max_discharge_current_a == 40
    core.receive(
        Charger109(
            present_output_voltage_v=300,
            discharge_compatible=True,
            status=ChargerStatus.CHARGING | ChargerStatus.CONNECTOR_LOCKED,
        )
    )
    core.receive(
        Charger208(
            present_discharge_current_a=40,
            available_input_voltage_v=500,
            available_input_current_a=50,
            lower_threshold_voltage_v=250,
        )
    )
    core.receive(Charger209(sequence_control_number=2))
    now = t + 0.1
    while core.battery.soc_pct > 20 and now < t + 30:
        now += 0.1
        frames = by_id(core.tick(now))
    assert core.discharged_wh == pytest.approx(1.0, abs=0.34)  # 1 % of 100 Wh, one 0.33 Wh step
    assert core.phase is VehiclePhase.ENERGY  # discharging is not the end of the session
    frames = by_id(core.tick(now + 0.1))
    f200 = frames[0x200]
    f201 = frames[0x201]
    assert isinstance(f200, Vehicle200) and f200.max_discharge_current_a == 0
    assert isinstance(f201, Vehicle201) and f201.sequence_number == 2


def test_unplug_silences_and_keeps_the_battery() -> None:
    core, t = charging_core(ChademoVehicleSpec(soc_pct=33))
    core.unplug()
    assert core.tick(t + 0.1) == []
    assert core.status()["soc_pct"] == pytest.approx(33)
    core.plug(ChademoVehicleSpec(soc_pct=60), t + 0.2)
    assert f102(core, t + 0.3).soc_pct == 60


# --- the CAN node --------------------------------------------------------------------------------


async def test_node_sends_every_100_ms_and_hears_the_charger() -> None:
    channel = f"test-veh-{uuid.uuid4().hex[:8]}"
    vehicle = SimChademoVehicle(SystemClock(), interface="virtual", channel=channel)
    charger = can.Bus(interface="virtual", channel=channel)
    vehicle.start()
    try:
        vehicle.plug(ChademoVehicleSpec(v2h=False, soc_pct=42))

        def collect(seconds: float) -> list[can.Message]:
            out: list[can.Message] = []
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                if (msg := charger.recv(left)) is not None:
                    out.append(msg)
            return out

        got = await asyncio.to_thread(collect, 1.0)
        stamps = [m.timestamp for m in got if m.arbitration_id == 0x102]
        assert 7 <= len(stamps) <= 13
        assert all(0.03 <= b - a <= 0.2 for a, b in itertools.pairwise(stamps))
        assert {m.arbitration_id for m in got} == {0x100, 0x101, 0x102}
        first = decode_frame(0x102, bytes(got[-1].data), Quirks())
        assert isinstance(first, Vehicle102) and first.soc_pct == 42
        assert not first.status & VehicleStatus.CHARGING_ENABLED
        charger.send(
            can.Message(arbitration_id=0x108, data=AVAILABLE.encode(), is_extended_id=False)
        )
        charger.send(can.Message(arbitration_id=0x7FF, data=b"\x01", is_extended_id=False))
        charger.send(can.Message(arbitration_id=0x109, data=b"\x00", is_extended_id=False))
        await asyncio.sleep(0.25)
        got = await asyncio.to_thread(collect, 0.15)
        last = next(m for m in reversed(got) if m.arbitration_id == 0x102)
        frame = decode_frame(0x102, bytes(last.data), Quirks())
        assert isinstance(frame, Vehicle102) and frame.status & VehicleStatus.CHARGING_ENABLED
        assert vehicle.bad_frames == 1  # the short 0x109
        vehicle.inject_fault("silence")
        await asyncio.sleep(0.15)
        await asyncio.to_thread(collect, 0.05)  # drain what was sent before the silence
        assert await asyncio.to_thread(collect, 0.3) == []
        with pytest.raises(ValueError):
            vehicle.inject_fault("bogus")
        assert vehicle.status()["faults"] == ["silence"]
    finally:
        await vehicle.close()
        charger.shutdown()


async def test_station_sim_commands(tmp_path: Path) -> None:
    control = ControlServer(Endpoint(None, 0, tmp_path / "sim.endpoint"))
    channel = f"test-veh-{uuid.uuid4().hex[:8]}"
    vehicle = SimChademoVehicle(SystemClock(), interface="virtual", channel=channel)
    register_commands(control, {1: vehicle})

    async def call(**request: object) -> dict[str, Any]:
        return await control.handle_line(json.dumps(request))

    try:
        bad = await call(cmd="chademo_plug", evse=1, soc_pct=120)
        assert bad["ok"] is False and "soc_pct" in bad["error"]
        assert not vehicle.plugged
        assert (await call(cmd="chademo_plug", evse=2))["ok"] is False
        assert (await call(cmd="chademo_plug", evse=1, colour="red"))["ok"] is False
        assert (await call(cmd="chademo_stop", evse=1))["ok"] is False  # nothing plugged
        plugged = await call(cmd="chademo_plug", evse=1, soc_pct=35, capacity_kwh=40, v2h=False)
        assert plugged["ok"] is True and plugged["soc_pct"] == 35 and plugged["v2h"] is False
        assert vehicle.core.spec.capacity_wh == 40_000
        assert (await call(cmd="chademo_plug", evse=1))["ok"] is False  # already plugged
        bad_kind = await call(cmd="chademo_fault", evse=1, kind="gremlins")
        assert bad_kind["ok"] is False and vehicle.core.faults == set()
        faulted = await call(cmd="chademo_fault", evse=1, kind="shift_lever")
        assert faulted["faults"] == ["shift_lever"]
        assert (await call(cmd="chademo_clear", evse=1))["faults"] == []
        stopped = await call(cmd="chademo_stop", evse=1)
        assert stopped["faults"] == ["stop_request"]
        assert (await call(cmd="chademo_status", evse=1))["plugged"] is True
        assert (await call(cmd="chademo_unplug", evse=1))["plugged"] is False
    finally:
        await vehicle.close()
