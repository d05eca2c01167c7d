"""Volt-var (705) and volt-watt (706) curves written to the simulated inverter over real Modbus TCP
on 127.0.0.1, checked at the register level."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.clock import SystemClock
from station.der.grid import supported_controls
from station.der.model import (
    CurvePoint,
    DerControlStatus,
    DerControlType,
    DerCurve,
    DerUnit,
    SetRequest,
    SettingKind,
)
from station.der.service import DerService
from station.der.volt_curves import DerVoltCurves
from station.inverter import (
    FaultKind,
    FaultReport,
    InverterFaultError,
    InverterOptions,
    LocalInverterError,
    ModbusLink,
    ModbusSettings,
    ModbusTcp,
    SunSpecInverter,
)
from station.inverter.curves import curve_layout, curve_values
from station.inverter.sunspec import decode_point
from station.sim.inverter import CURVE_POINTS, SimFault, SimInverter, SimInverterSpec

CLOCK = SystemClock()
FAST = InverterOptions(write_retries=1, settle_timeout_s=1.0, poll_interval_s=0.05)

VOLT_VAR = DerCurve(
    priority=1,
    y_unit=DerUnit.PCT_MAX_VAR,
    points=(
        CurvePoint(92.0, 44.0),
        CurvePoint(98.0, 0.0),
        CurvePoint(102.0, 0.0),
        CurvePoint(108.0, -44.0),
    ),
)
VOLT_WATT = DerCurve(
    priority=1,
    y_unit=DerUnit.PCT_MAX_W,
    points=(CurvePoint(106.0, 100.0), CurvePoint(110.0, 20.0)),
)


@contextlib.asynccontextmanager
async def running(
    spec: SimInverterSpec | None = None,
) -> AsyncIterator[tuple[SimInverter, SunSpecInverter, list[FaultReport]]]:
    sim = SimInverter(spec or SimInverterSpec(time_constant_s=0.05, volt_curves=True), clock=CLOCK)
    await sim.start()
    faults: list[FaultReport] = []
    inverter: SunSpecInverter | None = None
    try:
        settings = ModbusSettings(ModbusTcp("127.0.0.1", sim.port), timeout_s=0.3)
        inverter = await SunSpecInverter.open(
            ModbusLink(settings, clock=CLOCK), clock=CLOCK, options=FAST, on_fault=faults.append
        )
        yield sim, inverter, faults
    finally:
        if inverter is not None:
            sim.clear_fault()
            await inverter.close()
        await sim.stop()


def decoded_curve(sim: SimInverter, model_id: int, y_name: str) -> list[tuple[float, float]]:
    """The active points of the sim's curve, decoded from its registers and scaled."""
    layout = curve_layout(model_id, CURVE_POINTS)
    words = sim.curve_words(model_id)
    act = decode_point(layout.header.point("ActPt"), words[0:1])
    assert isinstance(act, int)
    v_sf, y_sf = sim.get(model_id, "V_SF"), sim.get(model_id, "DeptRef_SF")
    assert isinstance(v_sf, int) and isinstance(y_sf, int)
    out = []
    for i in range(act):
        at = layout.header.length + i * layout.point.length
        v = decode_point(layout.point.point("V"), words[at : at + 1])
        y = decode_point(layout.point.point(y_name), words[at + 1 : at + 2])
        assert isinstance(v, int) and isinstance(y, int)
        out.append((round(v * 10.0**v_sf, 6), round(y * 10.0**y_sf, 6)))
    return out


async def test_volt_var_and_volt_watt_land_in_the_registers() -> None:
    async with running() as (sim, inverter, faults):
        assert {705, 706} <= set(inverter.models)
        await inverter.write_volt_var(VOLT_VAR)
        await inverter.write_volt_watt(VOLT_WATT)
        assert decoded_curve(sim, 705, "Var") == [(p.x, p.y) for p in VOLT_VAR.points]
        assert decoded_curve(sim, 706, "W") == [(p.x, p.y) for p in VOLT_WATT.points]
        assert sim.get(705, "Ena") == 1 and sim.get(706, "Ena") == 1
        assert sim.get(705, "AdptCrvReq") == 1 and sim.get(705, "AdptCrvRslt") == 1
        header = curve_layout(705, CURVE_POINTS).header
        assert decode_point(header.point("DeptRef"), sim.curve_words(705)[1:2]) == 1  # VAR_MAX_PCT
        # unused points are "not implemented"
        words = sim.curve_words(706)
        at = curve_layout(706, CURVE_POINTS).header.length + 2 * 2
        assert words[at] == 0xFFFF
        await inverter.disable_volt_var()
        assert sim.get(705, "Ena") == 0 and sim.get(706, "Ena") == 1
        assert faults == []


async def test_bad_curve_changes_nothing() -> None:
    async with running() as (sim, inverter, _):
        before = sim.curve_words(705)
        too_long = DerCurve(1, DerUnit.PCT_MAX_VAR, tuple(CurvePoint(90 + i, 0) for i in range(5)))
        with pytest.raises(LocalInverterError, match=r"1\.\.4"):
            await inverter.write_volt_var(too_long)
        wrong_unit = DerCurve(1, DerUnit.PCT_VAR_AVAIL, VOLT_WATT.points)
        with pytest.raises(LocalInverterError, match="yUnit"):
            await inverter.write_volt_watt(wrong_unit)
        assert sim.curve_words(705) == before and sim.get(705, "Ena") == 0


async def test_wrong_read_back_is_a_fault() -> None:
    async with running() as (sim, inverter, faults):
        sim.inject_fault(SimFault.WRONG_READBACK)
        with pytest.raises(InverterFaultError):
            await inverter.write_volt_var(VOLT_VAR)
        assert [f.kind for f in faults] == [FaultKind.WRONG_READBACK]
        assert sim.get(705, "Ena") == 0  # left disabled
        assert inverter.fault is not None


@pytest.mark.parametrize(
    "spec", [SimInverterSpec(), SimInverterSpec(legacy=True, volt_curves=True)]
)
async def test_device_without_the_models(spec: SimInverterSpec) -> None:
    async with running(spec) as (_, inverter, faults):
        with pytest.raises(LocalInverterError, match="no model 705"):
            await inverter.write_volt_var(VOLT_VAR)
        with pytest.raises(LocalInverterError, match="no model 706"):
            await inverter.disable_volt_watt()
        assert faults == []


def test_supported_controls_need_the_flag() -> None:
    volt = {DerControlType.VOLT_VAR, DerControlType.VOLT_WATT}
    assert not volt & supported_controls(True)
    assert volt <= supported_controls(True, volt_curves=True)
    assert not volt & supported_controls(False, volt_curves=True)


@given(
    st.lists(
        st.tuples(
            st.floats(0, 6000, allow_nan=False).map(lambda v: round(v, 1)),
            st.floats(-3000, 3000, allow_nan=False).map(lambda v: round(v, 1)),
        ),
        min_size=1,
        max_size=CURVE_POINTS,
    )
)
def test_curve_values_round_trip(points: list[tuple[float, float]]) -> None:
    layout = curve_layout(706, CURVE_POINTS)
    curve = DerCurve(1, DerUnit.PCT_W_AVAIL, tuple(CurvePoint(x, y) for x, y in points))
    header, words = curve_values(layout, {"V_SF": -1, "DeptRef_SF": -1}, curve)
    assert header == {"ActPt": len(points), "DeptRef": 1}
    assert len(words) == CURVE_POINTS * 2
    for i, (x, y) in enumerate(points):
        v = decode_point(layout.point.point("V"), words[2 * i : 2 * i + 1])
        w = decode_point(layout.point.point("W"), words[2 * i + 1 : 2 * i + 2])
        assert v is not None and w is not None
        assert v / 10 == pytest.approx(x) and w / 10 == pytest.approx(y)


async def test_der_controls_reach_the_device() -> None:
    """DerVoltCurves: a VoltVar control set on the DER service is written to 705; on connect
    (``sync``) the active one is written; removing it disables the function."""
    work: list[Coroutine[Any, Any, None]] = []
    der = DerService(
        clock=CLOCK, spawn=work.append, supported=supported_controls(True, volt_curves=True)
    )
    async with running() as (sim, inverter, faults):
        port: list[SunSpecInverter] = []
        curves = DerVoltCurves(der, lambda: port[0] if port else None)
        request = SetRequest("vv", DerControlType.VOLT_VAR, True, {SettingKind.CURVE: VOLT_VAR})
        assert der.set_control(request).status is DerControlStatus.ACCEPTED
        assert work == []  # not connected: nothing to do
        await curves.sync(inverter)  # connect
        assert sim.get(705, "Ena") == 1 and sim.get(706, "Ena") == 0
        assert decoded_curve(sim, 705, "Var") == [(p.x, p.y) for p in VOLT_VAR.points]
        port.append(inverter)
        assert der.clear(is_default=True, control_id="vv") == ("vv",)
        assert len(work) == 1  # the listener spawned the write
        await work.pop()
        assert sim.get(705, "Ena") == 0
        der.cancel_timer()
        assert faults == []
