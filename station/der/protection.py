"""DER controls that act on the grid protection: EnterService and the must-trip curves (shell).

Owns the link between the :class:`~station.der.service.DerService` and one
:class:`~station.inverter.protection.GridProtection`: before a control is installed it checks that
the protection settings it would give validate (else SetDERControl is Rejected, ``InvalidValue``,
and nothing changes), and whenever the active controls change it rebuilds the settings from the
configured ones (:func:`station.der.grid.protection_settings`) and hands them to the protection
(:meth:`GridProtection.update_settings`, used from the next measurement on). It also checks
FreqDroop controls against the grid's nominal frequency (the energy manager applies them).

A stored control that no longer validates (the configuration changed) is not applied: the
configured settings stay, with an error in the log. The random part of the enter-service delay
is drawn once per EnterService control, from the injected ``random_fraction``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from station.der.grid import droop_settings, protection_settings
from station.der.model import DerControl, DerControlType, FreqDroop
from station.der.service import DerService
from station.inverter.droop import DroopValueError
from station.inverter.protection import (
    GridProtection,
    ProtectionSettings,
    ProtectionSettingsError,
)

__all__ = ["DerProtection"]

log = logging.getLogger(__name__)


class DerProtection:
    """Keeps one grid protection's settings in step with the active DER controls.

    Args:
        der: the DER service; a check and a listener are registered on it here, and the
            controls active now (loaded from the store) are applied at once.
        protection: the grid protection.
        base: the configured settings (``[grid]``) the controls modify.
        random_fraction: 0..1 draws for EnterService ``randomDelay``.
    """

    def __init__(
        self,
        der: DerService,
        protection: GridProtection,
        base: ProtectionSettings,
        *,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        self.der = der
        self.protection = protection
        self.base = base
        self.random_fraction = random_fraction
        self._fraction: tuple[str, float] | None = None
        self._problem: str | None = None
        der.checks.append(self.check)
        der.listeners.append(self.apply)
        self.apply()

    def check(self, control: DerControl) -> str | None:
        """Why ``control`` cannot be carried out on this grid, or None."""
        if isinstance(control.setting, FreqDroop):
            try:
                droop_settings(control.setting, self.base.nominal_frequency_hz)
            except DroopValueError as exc:
                return f"freqDroop: {exc}"
        candidate = {**self.der.active(), control.control_type: control}
        try:
            protection_settings(self.base, candidate, 0.0)
        except ProtectionSettingsError as exc:
            return f"{control.control_type}: {exc}"
        return None

    def _fraction_for(self, control: DerControl | None) -> float:
        if control is None:
            return 0.0
        if self._fraction is None or self._fraction[0] != control.control_id:
            self._fraction = (control.control_id, min(1.0, max(0.0, self.random_fraction())))
        return self._fraction[1]

    def apply(self) -> None:
        """Rebuild the protection's settings from the active controls."""
        active = self.der.active()
        fraction = self._fraction_for(active.get(DerControlType.ENTER_SERVICE))
        try:
            settings = protection_settings(self.base, active, fraction)
            problem = None
        except ProtectionSettingsError as exc:
            settings = self.base
            problem = f"DER controls not applied to the grid protection: {exc}"
        if problem != self._problem:
            if problem is not None:
                log.error("%s; the configured settings stay", problem)
            self._problem = problem
        if settings != self.protection.settings:
            self.protection.update_settings(settings)
            log.info(
                "grid protection: %d trip point(s), enter service %s",
                len(settings.trip_points),
                settings.enter_service,
            )
