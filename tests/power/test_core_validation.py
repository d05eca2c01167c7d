"""Invalid inputs are rejected when built, naming the field, so compute_command never raises."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

import pytest

from station.errors import StationError
from station.power import (
    EvseRating,
    ExternalInputs,
    GridState,
    OperationMode,
    PowerCommand,
    PowerValueError,
    Reason,
    ScheduleNow,
    VehicleLimits,
)
from tests.power.test_core_table import make

BASE = make()
OBJECTS: dict[str, Any] = {
    "schedule": BASE.schedule,
    "rating": BASE.rating,
    "vehicle": BASE.vehicle,
    "grid": BASE.grid,
    "external": BASE.external,
    "inputs": BASE,
}
NUMBER_FIELDS = [
    (part, f.name)
    for part, obj in OBJECTS.items()
    for f in fields(obj)
    if "float" in str(f.type) and "tuple" not in str(f.type)
]


def test_every_number_field_is_covered() -> None:
    assert len(NUMBER_FIELDS) == 28


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    ("part", "name"), NUMBER_FIELDS, ids=[f"{p}.{n}" for p, n in NUMBER_FIELDS]
)
def test_non_finite_numbers_are_rejected(part: str, name: str, bad: float) -> None:
    with pytest.raises(PowerValueError, match=name):
        replace(OBJECTS[part], **{name: bad})


WRONG_SIGN = [
    (ScheduleNow, {"limit_w": -1.0, "discharge_limit_w": None, "setpoint_w": None}, "limit_w"),
    (ScheduleNow, {"limit_w": None, "discharge_limit_w": 1.0, "setpoint_w": None}, "discharge"),
    (
        EvseRating,
        {"max_charge_power_w": 1, "max_discharge_power_w": -1, "max_current_a": 1},
        "disch",
    ),
    (
        EvseRating,
        {"max_charge_power_w": 1, "max_discharge_power_w": 1, "max_current_a": -1},
        "curr",
    ),
    (
        VehicleLimits,
        {
            "connected": True,
            "max_charge_power_w": 1,
            "max_discharge_power_w": 1,
            "discharge_allowed": True,
            "soc_pct": 101.0,
        },
        "soc_pct",
    ),
    (
        VehicleLimits,
        {
            "connected": True,
            "max_charge_power_w": 1,
            "max_discharge_power_w": 1,
            "discharge_allowed": True,
            "min_soc_pct": -1.0,
        },
        "min_soc_pct",
    ),
    (GridState, {"in_window": True, "max_export_w": -1.0}, "max_export_w"),
    (GridState, {"in_window": True, "der_limit_max_discharge_w": -1.0}, "der_limit"),
    (GridState, {"in_window": True, "frequency_droop_pu": 2.5}, "frequency_droop_pu"),
    (GridState, {"in_window": True, "frequency_droop_pu": -2.5}, "frequency_droop_pu"),
    (ExternalInputs, {"limit_w": -1.0}, "limit_w"),
    (ExternalInputs, {"discharge_limit_w": 5.0}, "discharge_limit_w"),
]


@pytest.mark.parametrize(("cls", "kwargs", "field"), WRONG_SIGN)
def test_wrong_signs_are_rejected(cls: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(PowerValueError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize(
    "curve",
    [
        ((50.0, 0.0), (49.0, 1.0)),
        ((50.0, 0.0), (50.0, 1.0)),
        ((50.0, math.nan),),
        ((math.inf, 0.0),),
    ],
    ids=["decreasing", "duplicate-x", "nan-power", "inf-x"],
)
def test_bad_curves_are_rejected(curve: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(PowerValueError, match="freq_watt_curve"):
        replace(BASE.schedule, freq_watt_curve=curve)
    with pytest.raises(PowerValueError, match="signal_watt_curve"):
        replace(BASE.schedule, signal_watt_curve=curve)


def test_unknown_mode_and_evse_zero_are_rejected() -> None:
    with pytest.raises(PowerValueError, match="mode"):
        replace(BASE.schedule, mode="Turbo")  # type: ignore[arg-type]
    with pytest.raises(PowerValueError, match="evse_id"):
        replace(BASE, evse_id=0)


def test_the_error_is_a_value_error_and_a_station_error() -> None:
    assert issubclass(PowerValueError, ValueError)
    assert issubclass(PowerValueError, StationError)


def test_a_command_outside_its_own_ceilings_cannot_be_built() -> None:
    with pytest.raises(PowerValueError, match="outside"):
        PowerCommand(1, -1.0, OperationMode.CENTRAL_SETPOINT, Reason.SETPOINT, 10.0, 0.0)
