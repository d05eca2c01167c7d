"""What a vehicle session reports it needs, and which energy transfer the CSMS allows (K15-K17, Q).

Owns the station's form of OCPP ``ChargingNeedsType`` (2.0.1 DC/AC parameters, 2.1
``v2xChargingParameters``) and of NotifyAllowedEnergyTransfer's modes. Vehicle sessions
(CHAdeMO, ISO 15118, the simulated vehicle) build a :class:`ChargingNeeds` and hand it to the
smart-charging service (``SmartChargingService.ev_charging_needs``); ``station/ocpp/`` turns it
into NotifyEVChargingNeeds. Pure: no I/O, no clock, no ``ocpp`` import.

Conventions: power in W and current in A as magnitudes, exactly as the OCPP fields carry them
("Value >= 0" for the discharge fields); the direction is in the name (``*_charge_*`` into
the vehicle, ``*_discharge_*`` out of it). Energy in Wh, SoC in percent, times aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from station.smartcharging.model import SmartChargingValueError

__all__ = [
    "BIDIRECTIONAL_MODES",
    "ChargingNeeds",
    "ChargingNeedsStatus",
    "EnergyTransferMode",
    "discharge_permitted",
]


class EnergyTransferMode(StrEnum):
    """EnergyTransferModeEnumType; 2.0.1 knows only DC and the three AC modes."""

    AC_SINGLE_PHASE = "AC_single_phase"
    AC_TWO_PHASE = "AC_two_phase"
    AC_THREE_PHASE = "AC_three_phase"
    DC = "DC"
    AC_BPT = "AC_BPT"
    AC_BPT_DER = "AC_BPT_DER"
    AC_DER = "AC_DER"
    DC_BPT = "DC_BPT"
    DC_ACDP = "DC_ACDP"
    DC_ACDP_BPT = "DC_ACDP_BPT"
    WPT = "WPT"


BIDIRECTIONAL_MODES = frozenset(
    {
        EnergyTransferMode.AC_BPT,
        EnergyTransferMode.AC_BPT_DER,
        EnergyTransferMode.DC_BPT,
        EnergyTransferMode.DC_ACDP_BPT,
    }
)
"""The modes with bidirectional power transfer (BPT): only these let a vehicle discharge."""


class ChargingNeedsStatus(StrEnum):
    """NotifyEVChargingNeedsStatusEnumType: what the CSMS said about the needs (K15-K17)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    PROCESSING = "Processing"
    NO_CHARGING_PROFILE = "NoChargingProfile"


def discharge_permitted(allowed: Iterable[EnergyTransferMode]) -> bool:
    """Whether a set of allowed modes (NotifyAllowedEnergyTransfer) lets the vehicle discharge."""
    return any(mode in BIDIRECTIONAL_MODES for mode in allowed)


_PERCENT_FIELDS = ("soc_pct", "full_soc_pct", "bulk_soc_pct", "target_soc_pct")
_SIGNED_FIELDS = frozenset(
    {"ev_min_v2x_energy_request_wh", "ev_max_v2x_energy_request_wh"}
)  # "Positive value means that current state of charge is below V2X range" and vice versa


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingNeeds:
    """ChargingNeedsType: the vehicle's parameters for this session.

    Attributes:
        requested_energy_transfer: the mode the EV asks for (e.g. DC, or DC_BPT for V2X).
        available_energy_transfer: 2.1: every mode the EV offers.
        departure_time: when the driver plans to leave.
        max_schedule_tuples: how many schedule entries the EV can take.
        ev_max_current_a, ev_max_voltage_v, ev_max_power_w: DC parameters of the EV.
        energy_capacity_wh: battery capacity.
        energy_amount_wh: energy requested.
        soc_pct, full_soc_pct, bulk_soc_pct: SoC now, SoC counted as full, end of bulk charge.
        min_charge_power_w ... max_discharge_current_a: 2.1 V2X parameters (magnitudes).
        min_voltage_v, max_voltage_v: 2.1 V2X voltage range.
        target_soc_pct: 2.1 targetSoC at departure.
        ev_*_energy_request_wh: 2.1 energy requests (the V2X ones are signed, see OCPP).

    Raises:
        SmartChargingValueError: a value out of range; the message names it.
    """

    requested_energy_transfer: EnergyTransferMode
    available_energy_transfer: tuple[EnergyTransferMode, ...] = ()
    departure_time: datetime | None = None
    max_schedule_tuples: int | None = None
    ev_max_current_a: float | None = None
    ev_max_voltage_v: float | None = None
    ev_max_power_w: float | None = None
    energy_capacity_wh: float | None = None
    energy_amount_wh: float | None = None
    soc_pct: int | None = None
    full_soc_pct: int | None = None
    bulk_soc_pct: int | None = None
    min_charge_power_w: float | None = None
    max_charge_power_w: float | None = None
    min_discharge_power_w: float | None = None
    max_discharge_power_w: float | None = None
    min_charge_current_a: float | None = None
    max_charge_current_a: float | None = None
    min_discharge_current_a: float | None = None
    max_discharge_current_a: float | None = None
    min_voltage_v: float | None = None
    max_voltage_v: float | None = None
    target_soc_pct: int | None = None
    ev_target_energy_request_wh: float | None = None
    ev_min_energy_request_wh: float | None = None
    ev_max_energy_request_wh: float | None = None
    ev_min_v2x_energy_request_wh: float | None = None
    ev_max_v2x_energy_request_wh: float | None = None

    def __post_init__(self) -> None:
        if self.departure_time is not None and self.departure_time.utcoffset() is None:
            raise SmartChargingValueError("departure_time must be a timezone-aware datetime")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("requested_energy_transfer", "available_energy_transfer"):
                continue
            if value is None or isinstance(value, datetime):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SmartChargingValueError(f"{f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise SmartChargingValueError(f"{f.name} must be finite, got {value!r}")
            if f.name in _PERCENT_FIELDS and not 0 <= value <= 100:
                raise SmartChargingValueError(f"{f.name} must be 0..100, got {value!r}")
            if f.name not in _SIGNED_FIELDS and value < 0:
                raise SmartChargingValueError(f"{f.name} must be >= 0, got {value!r}")

    @property
    def bidirectional(self) -> bool:
        """The EV asks for (or offers) a mode in which it can discharge."""
        modes = {self.requested_energy_transfer, *self.available_energy_transfer}
        return discharge_permitted(modes)
