"""The OCPP 2.1 Gradients DER control: a ramp-rate limit on the power commands (shell).

Owns one decision: how fast each EVSE's power command may move away from 0 W while a Gradients
control is active. It wraps the energy manager's power port, so what the vehicle sessions get and
what the inverter is told (the sum of the EVSE commands, ``station.links.InverterFollowingPort``)
are always the same ramped values: the ramp is applied once, before the two part ways.

Rules (the numeric step is :func:`station.inverter.droop.next_power_w`):

* The rate is the EVSE's rating (``max`` of its charge and discharge ratings) per ``gradient``
  seconds; a ramp that starts from 0 W uses ``softGradient`` when it is set (soft start,
  :func:`station.der.grid.gradient_ramp_s`). No Gradients control, or 0 s: no limit.
* **Safety beats ramps**: a move towards 0 W (a lower limit, a trip, the end of a session) is
  passed on at once, never ramped; a change of direction goes to 0 W at once and ramps from
  there. So the ramped command always lies between 0 W and the energy manager's command, inside
  its ceilings.
* A ramped command keeps the energy manager's mode, reason and ceilings; only ``power_w`` is
  the ramp's (``targets`` holds what the energy manager asked for).
* While a ramp is under way a timer steps it every ``step_s`` (on the running event loop); each
  step covers the time since the last one, at most ``step_s``, so a burst of new commands cannot
  speed a ramp up.

It must not compute commands (that is :func:`station.power.compute_command`) nor read the
wall clock: it uses ``Clock.monotonic()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace

from station.clock import Clock
from station.der.grid import gradient_ramp_s
from station.der.model import DerControlType, Gradient
from station.der.service import DerService
from station.inverter.droop import next_power_w
from station.power import PowerCommand
from station.smartcharging.service import PowerPort

__all__ = ["RampingPowerPort"]

log = logging.getLogger(__name__)


class RampingPowerPort:
    """A :class:`PowerPort` that ramps each EVSE's command per the active Gradients control.

    Args:
        inner: where the (ramped) commands go: the EVSE sessions and the inverter.
        der: the DER service (its active Gradients control).
        clock: the station's clock (monotonic time).
        ratings_w: each EVSE's rating the ramp time refers to (magnitude, W).
        step_s: the ramp's step period while a ramp is under way (> 0).
    """

    def __init__(
        self,
        inner: PowerPort,
        *,
        der: DerService,
        clock: Clock,
        ratings_w: Mapping[int, float],
        step_s: float = 0.1,
    ) -> None:
        if not step_s > 0:
            raise ValueError("step_s must be > 0")
        self.inner = inner
        self.der = der
        self.clock = clock
        self.ratings_w = dict(ratings_w)
        self.step_s = step_s
        #: The newest command of the energy manager per EVSE (the ramp's target).
        self.targets: dict[int, PowerCommand] = {}
        #: What was passed on per EVSE (the ramped command).
        self.last: dict[int, PowerCommand] = {}
        self._stepped_at: dict[int, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def apply(self, command: PowerCommand) -> None:
        """Take the energy manager's command; pass on the next ramp step of it."""
        self.targets[command.evse_id] = command
        self._step(command.evse_id)
        self._arm()

    def ramping(self) -> bool:
        """A ramp is under way (some EVSE has not reached its command yet)."""
        return any(self.last.get(i) != c for i, c in self.targets.items())

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _gradient(self) -> Gradient | None:
        control = self.der.active().get(DerControlType.GRADIENTS)
        if control is None or not isinstance(control.setting, Gradient):
            return None
        return control.setting

    def _step(self, evse_id: int) -> None:
        target = self.targets[evse_id]
        now_s = self.clock.monotonic()
        previous = self.last.get(evse_id)
        previous_w = 0.0 if previous is None else previous.power_w
        # The time since the last step, at most one step period (the first step too).
        since_s = now_s - self._stepped_at.get(evse_id, now_s - self.step_s)
        dt_s = min(max(since_s, 0.0), self.step_s)
        rate_w_per_s: float | None = None
        gradient = self._gradient()
        rating_w = self.ratings_w.get(evse_id, 0.0)
        if gradient is not None and rating_w > 0:
            ramp_s = gradient_ramp_s(gradient, from_zero=previous_w == 0.0)
            if ramp_s is not None:
                rate_w_per_s = rating_w / ramp_s
        power_w = next_power_w(target.power_w, previous_w, dt_s, rate_w_per_s)
        command = target if power_w == target.power_w else replace(target, power_w=power_w)
        self._stepped_at[evse_id] = now_s
        if command != previous:
            self.last[evse_id] = command
            self.inner.apply(command)

    def _tick(self) -> None:
        self._timer = None
        for evse_id in list(self.targets):
            if self.last.get(evse_id) != self.targets[evse_id]:
                self._step(evse_id)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None or not self.ramping():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next apply steps again
            return
        self._timer = loop.call_later(self.step_s, self._tick)
