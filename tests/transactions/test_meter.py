"""Meter readings as sampled values, and the domain values' own validation."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from station.transactions import (
    UNITS,
    IdToken,
    IdTokenType,
    Location,
    Measurand,
    MeterReading,
    ReadingContext,
    SignedMeterValue,
    TxConfig,
    TxPoint,
    meter_value,
    parse_measurands,
    parse_tx_points,
    sampled_values,
)
from tests.transactions.support import T0

M = Measurand


def reading(**changes: object) -> MeterReading:
    values: dict[str, object] = {
        "timestamp": T0,
        "energy_import_wh": 12_345.0,
        "energy_export_wh": 678.0,
        "power_w": 0.0,
        "current_a": 0.0,
        "voltage_v": 398.5,
        "soc_pct": 64.0,
        "frequency_hz": 50.01,
        "power_offered_w": 50_000.0,
        "current_offered_a": 125.0,
    }
    values.update(changes)
    return MeterReading(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measurand", "changes", "value", "unit"),
    [
        (M.ENERGY_ACTIVE_IMPORT_REGISTER, {}, 12_345.0, "Wh"),
        (M.ENERGY_ACTIVE_EXPORT_REGISTER, {}, 678.0, "Wh"),
        # charging: + into the vehicle is Import (DESIGN.md "Sign")
        (M.POWER_ACTIVE_IMPORT, {"power_w": 7_400.0}, 7_400.0, "W"),
        (M.POWER_ACTIVE_EXPORT, {"power_w": 7_400.0}, 0.0, "W"),
        # discharging: - out of the vehicle is Export, as a positive number
        (M.POWER_ACTIVE_IMPORT, {"power_w": -9_000.0}, 0.0, "W"),
        (M.POWER_ACTIVE_EXPORT, {"power_w": -9_000.0}, 9_000.0, "W"),
        (M.CURRENT_IMPORT, {"current_a": 20.5}, 20.5, "A"),
        (M.CURRENT_EXPORT, {"current_a": 20.5}, 0.0, "A"),
        (M.CURRENT_IMPORT, {"current_a": -22.0}, 0.0, "A"),
        (M.CURRENT_EXPORT, {"current_a": -22.0}, 22.0, "A"),
        (M.VOLTAGE, {}, 398.5, "V"),
        (M.SOC, {}, 64.0, "Percent"),
        (M.FREQUENCY, {}, 50.01, "Hz"),
        (M.POWER_OFFERED, {}, 50_000.0, "W"),
        (M.CURRENT_OFFERED, {}, 125.0, "A"),
    ],
)
def test_each_measurand(
    measurand: Measurand, changes: dict[str, object], value: float, unit: str
) -> None:
    (sampled,) = sampled_values(reading(**changes), [measurand], ReadingContext.SAMPLE_PERIODIC)
    assert sampled.measurand is measurand
    assert sampled.value == value
    assert sampled.unit == unit == UNITS[measurand]
    assert sampled.context is ReadingContext.SAMPLE_PERIODIC
    assert sampled.location is (Location.EV if measurand is M.SOC else Location.OUTLET)
    assert sampled.phase is None  # an overall value
    assert sampled.signed_meter_value is None


def test_units_cover_every_measurand() -> None:
    assert set(UNITS) == set(Measurand)
    assert set(UNITS.values()) == {"Wh", "W", "A", "V", "Percent", "Hz"}


def test_order_duplicates_and_missing_values() -> None:
    partial = MeterReading(timestamp=T0, energy_import_wh=1.0, energy_export_wh=2.0, power_w=3.0)
    values = sampled_values(
        partial,
        [M.SOC, M.ENERGY_ACTIVE_EXPORT_REGISTER, M.POWER_ACTIVE_IMPORT, M.SOC, M.VOLTAGE],
        ReadingContext.TRANSACTION_BEGIN,
    )
    # SoC and Voltage are not measured: left out, not reported as 0
    assert [v.measurand for v in values] == [M.ENERGY_ACTIVE_EXPORT_REGISTER, M.POWER_ACTIVE_IMPORT]
    assert meter_value(partial, [M.SOC], ReadingContext.TRIGGER) is None
    value = meter_value(partial, [M.POWER_ACTIVE_EXPORT], ReadingContext.TRIGGER)
    assert value is not None
    assert value.timestamp == T0
    assert value.sampled_values[0].value == 0.0


def test_signed_values_go_with_their_measurand() -> None:
    signed = SignedMeterValue(
        M.ENERGY_ACTIVE_IMPORT_REGISTER, "T0NNRg==", "ECDSA-secp256r1", "OCMF"
    )
    values = sampled_values(
        reading(signed=(signed,)),
        [M.ENERGY_ACTIVE_IMPORT_REGISTER, M.ENERGY_ACTIVE_EXPORT_REGISTER],
        ReadingContext.TRANSACTION_END,
    )
    assert values[0].signed_meter_value == signed
    assert values[1].signed_meter_value is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timestamp": datetime(2025, 1, 1)}, "timezone"),
        ({"energy_import_wh": -1.0}, "negative"),
        ({"energy_export_wh": math.inf}, "finite"),
        ({"power_w": math.nan}, "finite"),
        ({"soc_pct": 100.5}, "0..100"),
        (
            {
                "signed": (
                    SignedMeterValue(M.SOC, "a", "m", "e"),
                    SignedMeterValue(M.SOC, "b", "m", "e"),
                )
            },
            "twice|two",
        ),
    ],
)
def test_meter_reading_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reading(**changes)


def test_id_token_rules() -> None:
    assert IdToken("", IdTokenType.NO_AUTHORIZATION).id_token == ""  # "SHALL be left empty"
    with pytest.raises(ValueError, match="empty"):
        IdToken("", IdTokenType.ISO14443)
    with pytest.raises(ValueError, match="255"):
        IdToken("x" * 256, IdTokenType.CENTRAL)
    assert IdToken("AbC", IdTokenType.LOCAL).matches(IdToken("aBc", IdTokenType.LOCAL))
    assert not IdToken("AbC", IdTokenType.LOCAL).matches(IdToken("AbC", IdTokenType.CENTRAL))


def test_parse_member_lists() -> None:
    assert parse_tx_points("EVConnected, Authorized,") == {TxPoint.EV_CONNECTED, TxPoint.AUTHORIZED}
    with pytest.raises(ValueError, match="'Plugged'"):
        parse_tx_points("EVConnected,Plugged")
    assert parse_measurands("SoC,Energy.Active.Import.Register,SoC") == (
        M.SOC,
        M.ENERGY_ACTIVE_IMPORT_REGISTER,
    )
    with pytest.raises(ValueError, match=r"Power\.Factor"):
        parse_measurands("Power.Factor")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tx_start_points": frozenset()}, "TxStartPoint"),
        ({"tx_stop_points": frozenset()}, "TxStopPoint"),
        ({"ev_connection_timeout_s": -1}, "negative"),
        ({"tx_ended_interval_s": -1}, "negative"),
        ({"number_of_phases_used": 4}, "phases"),
    ],
)
def test_config_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TxConfig(**changes)  # type: ignore[arg-type]


def test_config_normalizes_collections() -> None:
    config = TxConfig(
        tx_start_points={TxPoint.AUTHORIZED},
        tx_updated_measurands=[M.SOC, M.SOC, M.VOLTAGE],
    )
    assert config.tx_start_points == frozenset({TxPoint.AUTHORIZED})
    assert config.tx_updated_measurands == (M.SOC, M.VOLTAGE)
    hash(config)  # frozen and hashable
