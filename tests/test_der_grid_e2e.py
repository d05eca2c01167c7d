"""The DER controls act, end to end: a real station, the simulated inverter, the real CSMS.

The bench of :mod:`tests.test_inverter_e2e` (one EVSE: 20 kW charge / 10 kW discharge ratings, a
400 V / 50 Hz grid, the simulated SunSpec inverter over Modbus TCP on 127.0.0.1, the CSMS over a
real ``ocpp2.1`` WebSocket). The CSMS sends SetDERControl; the grid is stepped through the
simulated inverter's scriptable grid; what is checked is what the peers see: the energy manager's
command, the 704 ``WSet`` the station wrote, the grid protection's verdict, the SetDERControl
answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_inverter_e2e import (
    Bench,
    _bench,
    discharging,
    start_session,
    until,
    written_w,
)
from tests.test_link import request


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async for item in _bench("ocpp2.1", tmp_path):
        yield item


async def set_der(bench: Bench, payload: dict[str, Any]) -> dict[str, Any]:
    return await request(bench.csms, "SetDERControl", payload)


FREQ_DROOP = {
    "isDefault": True,
    "controlId": "droop-1",
    "controlType": "FreqDroop",
    "freqDroop": {
        "priority": 0,
        "overFreq": 50.2,
        "underFreq": 49.8,
        "overDroop": 0.05,
        "underDroop": 0.05,
        "responseTime": 0.2,
    },
}


def near(value: float | None, expected: float, tolerance: float = 1.0) -> bool:
    return value is not None and abs(value - expected) <= tolerance


async def test_freq_droop_moves_the_discharge_with_the_grid_frequency(bench: Bench) -> None:
    transaction_id = await start_session(bench)
    await discharging(bench, transaction_id)  # CentralSetpoint -4 kW (dischargeLimit -6 kW)
    assert await set_der(bench, FREQ_DROOP) == {"status": "Accepted"}
    assert bench.command() == (-4000.0, "Setpoint")  # 50 Hz: inside the dead band

    # Under-frequency 49.7 Hz: (49.8 - 49.7) / (50 * 0.05) = 0.04 pu of the EVSE's 20 kW rating
    # = 800 W more discharge, reached with the 0.2 s response time (90 % in 0.2 s).
    seen: set[float] = set()

    def droop_reached() -> bool:
        power_w = bench.power_w()
        if power_w is not None:
            seen.add(power_w)
        return near(power_w, -4800.0, 2.0)

    await bench.control("grid", frequency_hz=49.7)
    await until(droop_reached, 3, "-4800 W command")
    assert any(-4800.0 < w < -4000.0 for w in seen), sorted(seen)  # on its way there
    assert bench.command() is not None and bench.command()[1] == "FrequencyResponse"  # type: ignore[index]
    await until(lambda: near(written_w(bench.sim), 4800.0, 2.0), 3, "WSet +4800 W")
    assert bench.grid() == "InService"

    # Deeper: 49.2 Hz asks for 0.24 pu = 4.8 kW more; the 6 kW dischargeLimit binds.
    await bench.control("grid", frequency_hz=49.2)
    await until(lambda: bench.command() == (-6000.0, "LimitedBySchedule"), 3, "-6000 W")

    # Over-frequency 50.5 Hz: 0.12 pu = 2.4 kW less discharge.
    await bench.control("grid", frequency_hz=50.5)
    await until(lambda: near(bench.power_w(), -1600.0, 2.0), 3, "-1600 W command")
    await until(lambda: near(written_w(bench.sim), 1600.0, 2.0), 3, "WSet +1600 W")
    # 51.1 Hz would be 0.36 pu = 7.2 kW less: the discharge stops, it never becomes a charge.
    await bench.control("grid", frequency_hz=51.1)
    await until(lambda: bench.power_w() == 0.0, 3, "0 W, not a charge")

    # Back inside the dead band: the schedule's set-point again.
    await bench.control("grid", frequency_hz=50.0)
    await until(lambda: bench.command() == (-4000.0, "Setpoint"), 3, "-4000 W again")
    # Cleared: the frequency no longer matters.
    clear = {"isDefault": True, "controlType": "FreqDroop"}
    assert await request(bench.csms, "ClearDERControl", clear) == {"status": "Accepted"}
    await bench.control("grid", frequency_hz=49.7)
    await until(lambda: bench.supervisor.status()["frequency_hz"] == 49.7, 2, "49.7 Hz measured")
    assert bench.command() == (-4000.0, "Setpoint")


@pytest.mark.parametrize(
    "payload",
    [
        {
            "controlType": "WattVar",
            "curve": {
                "priority": 0,
                "yUnit": "PctMaxVar",
                "curveData": [{"x": 20, "y": 0}, {"x": 100, "y": -30}],
            },
        },
        {
            "controlType": "FixedPFAbsorb",
            "fixedPFAbsorb": {"priority": 0, "displacement": 0.95, "excitation": True},
        },
        {
            "controlType": "FreqWatt",
            "curve": {"priority": 0, "yUnit": "PctMaxW", "curveData": [{"x": 50.2, "y": 0}]},
        },
        {
            "controlType": "HVMayTrip",
            "curve": {"priority": 0, "yUnit": "PctEffectiveV", "curveData": [{"x": 1, "y": 115}]},
        },
    ],
    ids=["WattVar", "FixedPFAbsorb", "FreqWatt", "HVMayTrip"],
)
async def test_what_the_station_cannot_do_is_not_supported(
    bench: Bench, payload: dict[str, Any]
) -> None:
    reply = await set_der(bench, {"isDefault": True, "controlId": "x", **payload})
    assert reply["status"] == "NotSupported"
    assert await request(bench.csms, "GetDERControl", {"requestId": 1}) == {"status": "NotFound"}


async def test_a_volt_var_control_reaches_the_inverter_curve(bench: Bench) -> None:
    """VoltVar over ocpp2.1 → the simulated inverter's SunSpec 705 curve enabled; cleared →
    disabled."""
    volt_var = {
        "isDefault": True,
        "controlId": "vv-1",
        "controlType": "VoltVar",
        "curve": {
            "priority": 0,
            "yUnit": "PctMaxVar",
            "curveData": [{"x": 92, "y": 30}, {"x": 108, "y": -30}],
        },
    }
    assert bench.sim.get(705, "Ena") == 0
    assert (await set_der(bench, volt_var))["status"] == "Accepted"
    await until(lambda: bench.sim.get(705, "Ena") == 1, 3, "705 Ena = 1")
    before = list(bench.sim.curve_words(705))
    clear = {"isDefault": True, "controlId": "vv-1"}
    assert await request(bench.csms, "ClearDERControl", clear) == {"status": "Accepted"}
    await until(lambda: bench.sim.get(705, "Ena") == 0, 3, "705 Ena = 0")
    assert any(before)  # the curve's points were written


async def test_a_must_trip_curve_trips_where_the_defaults_would_ride_through(
    bench: Bench,
) -> None:
    transaction_id = await start_session(bench)
    await discharging(bench, transaction_id)
    # 50.7 Hz: the Category II defaults (OF1 51.2 Hz) do not even ride through.
    await bench.control("grid", frequency_hz=50.7)
    await until(lambda: bench.supervisor.status()["frequency_hz"] == 50.7, 2, "50.7 Hz")
    assert bench.grid() == "InService"
    await bench.control("grid", frequency_hz=50.0)
    hf_curve = {
        "isDefault": True,
        "controlId": "hf-1",
        "controlType": "HFMustTrip",
        "curve": {"priority": 0, "yUnit": "Not_Applicable", "curveData": [{"x": 0.1, "y": 50.5}]},
    }
    assert await set_der(bench, hf_curve) == {"status": "Accepted"}
    await bench.control("grid", frequency_hz=50.7)
    await until(lambda: written_w(bench.sim) == 0.0, 1, "0 W on the HFMustTrip curve")
    await until(lambda: bench.grid() == "OutOfService", 2, "tripped")
    assert bench.command() == (0.0, "GridTrip")
    verdict = bench.supervisor.verdict
    assert verdict is not None and verdict.trip_point is not None
    assert verdict.trip_point.name == "HFMustTrip[0]"
    # A curve the protection cannot take (inside the enter-service window) is Rejected.
    bad = {**hf_curve, "controlId": "hf-2"}
    bad["curve"] = {**hf_curve["curve"], "curveData": [{"x": 0.1, "y": 50.05}]}  # type: ignore[dict-item]
    reply = await set_der(bench, bad)
    assert (reply["status"], reply["statusInfo"]["reasonCode"]) == ("Rejected", "InvalidValue")


async def test_enter_service_settings_come_from_the_control(bench: Bench) -> None:
    enter = {
        "isDefault": True,
        "controlId": "es-1",
        "controlType": "EnterService",
        "enterService": {
            "priority": 0,
            "highVoltage": 104,
            "lowVoltage": 96,
            "highFreq": 50.05,
            "lowFreq": 49.95,
            "delay": 0.3,
            "rampRate": 0,
        },
    }
    assert await set_der(bench, enter) == {"status": "Accepted"}
    settings = bench.supervisor.protection.settings.enter_service
    assert (settings.low_voltage_pu, settings.high_voltage_pu) == (0.96, 1.04)
    assert (settings.low_frequency_hz, settings.high_frequency_hz) == (49.95, 50.05)
    assert settings.delay_s == 0.3
    # A trip, then 50.08 Hz: inside the configured window (49.5-50.1 Hz) but not the control's,
    # so the station stays out of service; at 50.0 Hz it enters again after 0.3 s.
    await bench.control("grid", frequency_hz=53.0)
    await until(lambda: bench.grid() == "OutOfService", 2, "tripped")
    await bench.control("grid", frequency_hz=50.08)
    await until(lambda: bench.supervisor.status()["frequency_hz"] == 50.08, 2, "50.08 Hz")
    await asyncio.sleep(1.5)  # longer than the configured 1 s enter-service delay
    assert bench.grid() == "OutOfService"
    await bench.control("grid", frequency_hz=50.0)
    await bench.in_service(timeout_s=2)


async def test_gradients_ramp_the_set_point_up_but_never_down(bench: Bench) -> None:
    gradients = {
        "isDefault": True,
        "controlId": "g-1",
        "controlType": "Gradients",
        "gradient": {"priority": 0, "gradient": 4, "softGradient": 0},
    }
    assert await set_der(bench, gradients) == {"status": "Accepted"}
    transaction_id = await start_session(bench)
    # Charging at 20 kW ramps at 20 kW / 4 s: several written set-points on the way up.
    seen: set[float] = set()

    def charging_at_rating() -> bool:
        seen.add(written_w(bench.sim))
        return written_w(bench.sim) == -20000.0

    await until(charging_at_rating, 8, "WSet -20000 W after the ramp")
    ramp_steps = {w for w in seen if -20000.0 < w < 0.0}
    assert len(ramp_steps) >= 5, sorted(seen)
    # The discharge set-point of -4 kW: down to 0 W at once, then up again by the ramp.
    await bench.control("unplug", evse=1)
    await until(lambda: written_w(bench.sim) == 0.0, 1, "0 W at once on unplug")
    del transaction_id
