"""VoltVar and VoltWatt controls carried out by the inverter's own SunSpec 705/706 curves (shell).

Owns the link between the :class:`~station.der.service.DerService` and the connected inverter:
whenever the active controls change (a listener), and whenever a device connects
(:meth:`DerVoltCurves.sync`), the active VoltVar / VoltWatt curve is written to the device
(:meth:`SunSpecInverter.write_volt_var` / ``write_volt_watt``) or, with none active, the function
is disabled. The writes run as tasks on the DER service's ``spawn``.

A device without 705/706 cannot carry the controls out: that is logged as an ERROR (the station
should not have announced VoltVar/VoltWatt as supported: see ``supported_controls(volt_curves=)``)
and nothing else happens. A write the device does not take is a fault of the inverter port
(0 W commanded, ``on_fault`` told, see ``station.inverter.device``); it is logged here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from station.der.model import DerControlType, DerCurve
from station.der.service import DerService
from station.inverter.device import SunSpecInverter
from station.inverter.errors import InverterError

__all__ = ["DerVoltCurves"]

log = logging.getLogger(__name__)


class DerVoltCurves:
    """Keeps the inverter's 705/706 curves in step with the active VoltVar / VoltWatt controls.

    Args:
        der: the DER service; a listener is registered on it here.
        port: returns the connected inverter port now (None while not connected).
    """

    def __init__(self, der: DerService, port: Callable[[], object | None]) -> None:
        self.der = der
        self.port = port
        der.listeners.append(self.apply)

    def wanted(self) -> tuple[DerCurve | None, DerCurve | None]:
        """The active VoltVar and VoltWatt curves (None: the function is to be off)."""
        active = self.der.active()
        out: list[DerCurve | None] = []
        for kind in (DerControlType.VOLT_VAR, DerControlType.VOLT_WATT):
            control = active.get(kind)
            setting = None if control is None else control.setting
            out.append(setting if isinstance(setting, DerCurve) else None)
        return out[0], out[1]

    def apply(self) -> None:
        """The DER listener: write the curves to the connected device (as a task)."""
        port = self.port()
        if port is not None:
            self.der.spawn(self.sync(port))

    async def sync(self, port: object) -> None:
        """Write the active curves to ``port`` (call it when a device connects)."""
        volt_var, volt_watt = self.wanted()
        if not isinstance(port, SunSpecInverter):
            if volt_var is not None or volt_watt is not None:
                log.error("der: VoltVar/VoltWatt active but the inverter is not a SunSpec device")
            return
        jobs = (
            (705, volt_var, port.write_volt_var, port.disable_volt_var),
            (706, volt_watt, port.write_volt_watt, port.disable_volt_watt),
        )
        for model_id, curve, write, disable in jobs:
            if model_id not in port.models:
                if curve is not None:
                    log.error(
                        "der: a %s control is active but the inverter has no model %d",
                        "VoltVar" if model_id == 705 else "VoltWatt",
                        model_id,
                    )
                continue
            try:
                if curve is None:
                    await disable()
                else:
                    await write(curve)
            except InverterError as exc:
                log.error("der: model %d curve not applied: %s", model_id, exc)
