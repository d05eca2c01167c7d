"""The bidirectional inverter: SunSpec register maps, the Modbus adapter, the inverter port,
vendor register maps, grid protection and frequency droop.

:mod:`~station.inverter.sunspec` is the pure codec (model layouts from pysunspec2's model
definitions), :mod:`~station.inverter.modbus` the pymodbus adapter, :mod:`~station.inverter.device`
the :class:`InverterPort` and its SunSpec implementation, :mod:`~station.inverter.vendor` the
declarative register maps for non-SunSpec devices, :mod:`~station.inverter.protection` and
:mod:`~station.inverter.droop` the pure grid functions.

Names are imported lazily (PEP 562, as python-can's interface registry does): the pure grid
functions must not pay for importing pymodbus, and a station without an inverter never does.
Sibling packages import only the names in ``__all__`` (STYLE.md A2.12).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from station.inverter.device import (
        ControlScheme,
        DeviceIdentity,
        FaultCallback,
        FaultKind,
        FaultReport,
        InverterMeasurements,
        InverterMeter,
        InverterOptions,
        InverterPort,
        ModelLocation,
        SunSpecInverter,
        discover,
        meter_reading,
    )
    from station.inverter.droop import (
        DroopSettings,
        freq_watt_adjustment_w,
        freq_watt_target_w,
        next_power_w,
    )
    from station.inverter.errors import (
        InverterError,
        InverterFaultError,
        InverterLinkError,
        InverterRefusedError,
        InverterTimeoutError,
        LocalInverterError,
        RemoteInverterError,
        SunSpecError,
    )
    from station.inverter.modbus import ModbusLink, ModbusSerial, ModbusSettings, ModbusTcp
    from station.inverter.protection import (
        GridProtection,
        GridStatus,
        GridVerdict,
        ProtectionSettings,
        TripKind,
        TripPoint,
        to_grid_state,
    )
    from station.inverter.vendor import (
        RegisterMap,
        RegisterMapError,
        VendorInverter,
        VendorModbusLink,
        load_register_map,
    )

_WHERE = {
    "station.inverter.device": (
        "ControlScheme",
        "DeviceIdentity",
        "FaultCallback",
        "FaultKind",
        "FaultReport",
        "InverterMeasurements",
        "InverterMeter",
        "InverterOptions",
        "InverterPort",
        "ModelLocation",
        "SunSpecInverter",
        "discover",
        "meter_reading",
    ),
    "station.inverter.droop": (
        "DroopSettings",
        "freq_watt_adjustment_w",
        "freq_watt_target_w",
        "next_power_w",
    ),
    "station.inverter.errors": (
        "InverterError",
        "InverterFaultError",
        "InverterLinkError",
        "InverterRefusedError",
        "InverterTimeoutError",
        "LocalInverterError",
        "RemoteInverterError",
        "SunSpecError",
    ),
    "station.inverter.modbus": ("ModbusLink", "ModbusSerial", "ModbusSettings", "ModbusTcp"),
    "station.inverter.protection": (
        "GridProtection",
        "GridStatus",
        "GridVerdict",
        "ProtectionSettings",
        "TripKind",
        "TripPoint",
        "to_grid_state",
    ),
    "station.inverter.vendor": (
        "RegisterMap",
        "RegisterMapError",
        "VendorInverter",
        "VendorModbusLink",
        "load_register_map",
    ),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "ControlScheme",
    "DeviceIdentity",
    "DroopSettings",
    "FaultCallback",
    "FaultKind",
    "FaultReport",
    "GridProtection",
    "GridStatus",
    "GridVerdict",
    "InverterError",
    "InverterFaultError",
    "InverterLinkError",
    "InverterMeasurements",
    "InverterMeter",
    "InverterOptions",
    "InverterPort",
    "InverterRefusedError",
    "InverterTimeoutError",
    "LocalInverterError",
    "ModbusLink",
    "ModbusSerial",
    "ModbusSettings",
    "ModbusTcp",
    "ModelLocation",
    "ProtectionSettings",
    "RegisterMap",
    "RegisterMapError",
    "RemoteInverterError",
    "SunSpecError",
    "SunSpecInverter",
    "TripKind",
    "TripPoint",
    "VendorInverter",
    "VendorModbusLink",
    "discover",
    "freq_watt_adjustment_w",
    "freq_watt_target_w",
    "load_register_map",
    "meter_reading",
    "next_power_w",
    "to_grid_state",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'station.inverter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
