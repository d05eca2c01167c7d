"""Meter readings as OCPP sampled values: pure functions, no state.

Owns the mapping from a :class:`~station.transactions.model.MeterReading` (signed as seen from the
vehicle, DESIGN.md "Sign") to the measurands of MeasurandEnumType, with their units from the
Standardized Units of Measure (OCPP 2.0.1 Part 2 Appendices; ``units_of_measure.csv``: Wh, W, A, V,
Percent, Hz). This is the one place where the sign is split: a positive ``power_w`` is
Power.Active.Import (into the vehicle), a negative one Power.Active.Export, and the other one of
the pair is reported as 0; likewise for current. Energy is never split here: the meter keeps two
registers that only count up, Energy.Active.Import.Register (delivered to the vehicle) and
Energy.Active.Export.Register (taken from it, billed separately).

It does not decide *when* to sample; the machine does (contexts Transaction.Begin/End,
Sample.Periodic, Sample.Clock, Trigger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from station.transactions.model import (
    Location,
    Measurand,
    MeterReading,
    MeterValue,
    ReadingContext,
    SampledValue,
)

__all__ = ["UNITS", "meter_value", "sampled_values"]

UNITS: Final[dict[Measurand, str]] = {
    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER: "Wh",
    Measurand.ENERGY_ACTIVE_EXPORT_REGISTER: "Wh",
    Measurand.POWER_ACTIVE_IMPORT: "W",
    Measurand.POWER_ACTIVE_EXPORT: "W",
    Measurand.POWER_OFFERED: "W",
    Measurand.CURRENT_IMPORT: "A",
    Measurand.CURRENT_EXPORT: "A",
    Measurand.CURRENT_OFFERED: "A",
    Measurand.VOLTAGE: "V",
    Measurand.SOC: "Percent",
    Measurand.FREQUENCY: "Hz",
}
"""Unit of each measurand, spelled as in the Standardized Units of Measure."""


def _import(value: float | None) -> float | None:
    return None if value is None else max(value, 0.0)


def _export(value: float | None) -> float | None:
    return None if value is None else max(-value, 0.0)


# Where each measurand comes from in a reading. Import/Export split the vehicle-side sign.
_SOURCES: Final[dict[Measurand, Callable[[MeterReading], float | None]]] = {
    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER: lambda r: r.energy_import_wh,
    Measurand.ENERGY_ACTIVE_EXPORT_REGISTER: lambda r: r.energy_export_wh,
    Measurand.POWER_ACTIVE_IMPORT: lambda r: _import(r.power_w),
    Measurand.POWER_ACTIVE_EXPORT: lambda r: _export(r.power_w),
    Measurand.POWER_OFFERED: lambda r: r.power_offered_w,
    Measurand.CURRENT_IMPORT: lambda r: _import(r.current_a),
    Measurand.CURRENT_EXPORT: lambda r: _export(r.current_a),
    Measurand.CURRENT_OFFERED: lambda r: r.current_offered_a,
    Measurand.VOLTAGE: lambda r: r.voltage_v,
    Measurand.SOC: lambda r: r.soc_pct,
    Measurand.FREQUENCY: lambda r: r.frequency_hz,
}

# The state of charge is the vehicle's own figure (it arrives over CHAdeMO / ISO 15118); every
# other value is measured by the EVSE's meter at its outlet (LocationEnumType default "Outlet").
_LOCATIONS: Final[dict[Measurand, Location]] = {Measurand.SOC: Location.EV}


def sampled_values(
    reading: MeterReading, measurands: Iterable[Measurand], context: ReadingContext
) -> tuple[SampledValue, ...]:
    """The sampled values of ``measurands`` in ``reading``, in the order given.

    A measurand the reading does not carry (``None``: the meter does not measure it) is left out,
    rather than reported as 0.

    Args:
        reading: one meter reading.
        measurands: the configured measurands (e.g. SampledDataCtrlr.TxStartedMeasurands).
        context: the ReadingContext of every value.

    Returns:
        One SampledValue per available measurand, each with its unit, location and, when the meter
        signed it, its SignedMeterValue.
    """
    values: list[SampledValue] = []
    for measurand in dict.fromkeys(measurands):
        value = _SOURCES[measurand](reading)
        if value is None:
            continue
        values.append(
            SampledValue(
                value=float(value),
                measurand=measurand,
                context=context,
                unit=UNITS[measurand],
                location=_LOCATIONS.get(measurand, Location.OUTLET),
                signed_meter_value=reading.signed_for(measurand),
            )
        )
    return tuple(values)


def meter_value(
    reading: MeterReading, measurands: Iterable[Measurand], context: ReadingContext
) -> MeterValue | None:
    """``reading`` as one MeterValue, or None when no configured measurand is available.

    OCPP requires at least one sampledValue per meterValue (minItems 1), hence None rather than an
    empty MeterValue.
    """
    values = sampled_values(reading, measurands, context)
    return MeterValue(reading.timestamp, values) if values else None
