"""Frequency-watt (droop) response and ramp-rate limiting (pure).

Owns two small numeric rules the energy manager's shell applies to the power it commands:

* :func:`freq_watt_adjustment_w`, the frequency-droop response of IEEE 1547-2018 cl. 6.5.2.7
  (the OCPP 2.1 FreqDroop DER control: ``overFreq``/``underFreq`` start the droop, ``overDroop``/
  ``underDroop`` are the per-unit droops kOF/kUF, ``responseTime`` the open-loop response time);
  :func:`first_order_step_w` moves the output towards the droop target with that response time;
* :func:`next_power_w`, a ramp-rate limiter for set-point changes (OCPP 2.1 Gradients, the IEEE
  1547-2018 cl. 4.10.3 enter-service ramp).

No I/O, no clock, no state: ``dt_s`` is passed in. Sign (DESIGN.md): ``+`` = into the vehicle.

Frequency droop, IEEE 1547-2018 cl. 6.5.2.7.2 with output ``p`` positive for export, in per unit
of the rating ``P_rated``::

    f > f_N + db_OF:  p = max(p_pre - (f - (f_N + db_OF)) / (f_N * k_OF), p_min)
    f < f_N - db_UF:  p = min(p_pre + ((f_N - db_UF) - f) / (f_N * k_UF), p_avl)

Defaults (Table 24, Category II): db_OF = db_UF = 0.036 Hz, k_OF = k_UF = 0.05, open-loop
response time 5 s. Here ``f_N + db_OF`` and ``f_N - db_UF`` are ``over_start_hz`` and
``under_start_hz`` (OCPP's ``overFreq``/``underFreq``). In the station's sign the export
``p`` is ``-power_w``: over-frequency raises ``power_w`` (absorb more, discharge less),
under-frequency lowers it (discharge more, charge less). ``p_min`` and ``p_avl`` are the
rating in each direction: the response never goes past ``-rating_w`` / ``+rating_w`` and never
moves the other way (a pre-disturbance power already beyond the rating is left where it is).

Ramps (decision, safety beats ramps): the limiter slows only moves *away from* 0 W. A move
towards 0 W (a lower magnitude in the same direction, or 0) happens at once, because a lowered
limit or a trip must hold on the next command, not after a ramp. A change of direction goes to
0 W at once and ramps up from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from station.der import FreqDroop
from station.errors import StationError

__all__ = [
    "DroopSettings",
    "DroopValueError",
    "first_order_step_w",
    "freq_watt_adjustment_w",
    "freq_watt_target_w",
    "next_power_w",
    "ramp_rate_from_gradient",
]


class DroopValueError(StationError, ValueError):
    """A droop or ramp parameter is unusable (not finite, or out of range)."""


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise DroopValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class DroopSettings:
    """Frequency-droop parameters (IEEE 1547-2018 Table 24; OCPP 2.1 FreqDroopType).

    Attributes:
        nominal_frequency_hz: f_N, the base of the per-unit droop.
        over_start_hz: droop starts above this (f_N + db_OF; OCPP ``overFreq``).
        under_start_hz: droop starts below this (f_N - db_UF; OCPP ``underFreq``).
        k_over: kOF, per-unit frequency change for a 1 pu power change (OCPP ``overDroop``).
        k_under: kUF (OCPP ``underDroop``).
        response_time_s: open-loop response time (90 % of a step; OCPP ``responseTime``).
    """

    nominal_frequency_hz: float = 60.0
    over_start_hz: float = 60.036
    under_start_hz: float = 59.964
    k_over: float = 0.05
    k_under: float = 0.05
    response_time_s: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "nominal_frequency_hz",
            "over_start_hz",
            "under_start_hz",
            "k_over",
            "k_under",
            "response_time_s",
        ):
            _finite(name, getattr(self, name))
        if not 0 < self.under_start_hz <= self.nominal_frequency_hz <= self.over_start_hz:
            raise DroopValueError(
                "droop settings must satisfy 0 < under_start_hz <= nominal <= over_start_hz"
            )
        if self.k_over <= 0 or self.k_under <= 0:
            raise DroopValueError("k_over and k_under must be > 0")
        if self.response_time_s < 0:
            raise DroopValueError("response_time_s must be >= 0")

    @classmethod
    def ieee_default(cls, nominal_frequency_hz: float = 60.0) -> DroopSettings:
        """IEEE 1547-2018 Table 24 defaults (db 0.036 Hz, k 0.05, 5 s) around a nominal."""
        return cls(
            nominal_frequency_hz=nominal_frequency_hz,
            over_start_hz=nominal_frequency_hz + 0.036,
            under_start_hz=nominal_frequency_hz - 0.036,
        )

    @classmethod
    def from_der(cls, control: FreqDroop, nominal_frequency_hz: float) -> DroopSettings:
        """From an OCPP 2.1 FreqDroop DER control (:class:`station.der.FreqDroop`).

        Raises:
            DroopValueError: the control's values are out of range for this grid.
        """
        return cls(
            nominal_frequency_hz=nominal_frequency_hz,
            over_start_hz=control.over_freq_hz,
            under_start_hz=control.under_freq_hz,
            k_over=control.over_droop,
            k_under=control.under_droop,
            response_time_s=control.response_time_s,
        )


def freq_watt_adjustment_w(
    frequency_hz: float, pre_power_w: float, rating_w: float, settings: DroopSettings
) -> float:
    """The droop change to add to the pre-disturbance power, in W (station sign).

    Args:
        frequency_hz: the measured grid frequency.
        pre_power_w: the power before the disturbance (signed, ``+`` = into the vehicle).
        rating_w: the rating the per-unit droop refers to (magnitude, >= 0).
        settings: the droop parameters.

    Returns:
        0 inside ``[under_start_hz, over_start_hz]``; >= 0 above (more charge / less
        discharge), <= 0 below; non-decreasing in ``frequency_hz``; ``pre_power_w`` plus it
        stays within ``[-rating_w, rating_w]`` unless ``pre_power_w`` already lies beyond.

    Raises:
        DroopValueError: an argument is not finite or ``rating_w`` is negative.
    """
    _finite("frequency_hz", frequency_hz)
    _finite("pre_power_w", pre_power_w)
    _finite("rating_w", rating_w)
    if rating_w < 0:
        raise DroopValueError("rating_w must be >= 0")
    f_n = settings.nominal_frequency_hz
    if frequency_hz > settings.over_start_hz:
        raw_w = (frequency_hz - settings.over_start_hz) / (f_n * settings.k_over) * rating_w
        return max(0.0, min(raw_w, rating_w - pre_power_w))
    if frequency_hz < settings.under_start_hz:
        raw_w = (settings.under_start_hz - frequency_hz) / (f_n * settings.k_under) * rating_w
        return -max(0.0, min(raw_w, pre_power_w + rating_w))
    return 0.0


def freq_watt_target_w(
    frequency_hz: float, pre_power_w: float, rating_w: float, settings: DroopSettings
) -> float:
    """``pre_power_w + freq_watt_adjustment_w(...)``: the steady-state droop target."""
    return pre_power_w + freq_watt_adjustment_w(frequency_hz, pre_power_w, rating_w, settings)


def first_order_step_w(
    previous_w: float, target_w: float, dt_s: float, response_time_s: float
) -> float:
    """One step of a first-order response that reaches 90 % of a step in ``response_time_s``.

    IEEE 1547-2018 defines the open-loop response time as the time to 90 % of the change; a
    first-order lag with time constant ``response_time_s / ln(10)`` meets it exactly.

    Args:
        previous_w: the output so far.
        target_w: where the response is heading.
        dt_s: time since the previous step (>= 0).
        response_time_s: the open-loop response time (>= 0; 0 = at once).

    Returns:
        A value between ``previous_w`` and ``target_w`` (both included).

    Raises:
        DroopValueError: an argument is not finite, or a time is negative.
    """
    for name, value in (
        ("previous_w", previous_w),
        ("target_w", target_w),
        ("dt_s", dt_s),
        ("response_time_s", response_time_s),
    ):
        _finite(name, value)
    if dt_s < 0 or response_time_s < 0:
        raise DroopValueError("dt_s and response_time_s must be >= 0")
    if response_time_s == 0:
        return target_w
    share = 1.0 - math.exp(-dt_s * math.log(10.0) / response_time_s)
    value = previous_w + (target_w - previous_w) * share
    low, high = min(previous_w, target_w), max(previous_w, target_w)
    return min(high, max(low, value))


def ramp_rate_from_gradient(rating_w: float, ramp_time_s: float) -> float | None:
    """The ramp rate in W/s for an OCPP 2.1 Gradients ``gradient`` (a ramp time, in s).

    Args:
        rating_w: the power a full ramp covers (magnitude).
        ramp_time_s: the time from 0 to ``rating_w``; 0 = not applicable.

    Returns:
        ``rating_w / ramp_time_s``, or None (no ramp limit) when ``ramp_time_s`` is 0.

    Raises:
        DroopValueError: a value is not finite or is negative.
    """
    _finite("rating_w", rating_w)
    _finite("ramp_time_s", ramp_time_s)
    if rating_w < 0 or ramp_time_s < 0:
        raise DroopValueError("rating_w and ramp_time_s must be >= 0")
    if ramp_time_s == 0:
        return None
    return rating_w / ramp_time_s


def next_power_w(
    target_w: float, previous_w: float, dt_s: float, rate_w_per_s: float | None
) -> float:
    """The next set-point on the way from ``previous_w`` to ``target_w``.

    Args:
        target_w: where the energy manager wants to be (signed).
        previous_w: the set-point last sent (signed).
        dt_s: time since it was sent (>= 0).
        rate_w_per_s: the most the magnitude may grow per second (> 0); None = no limit.

    Returns:
        ``target_w`` whenever it lies between 0 and ``previous_w`` (a move towards 0 W, never
        delayed); on a change of direction the ramp starts from 0 W; otherwise a step of at
        most ``rate_w_per_s * dt_s`` away from 0 W towards ``target_w``. Never -0.0.

    Raises:
        DroopValueError: an argument is not finite, ``dt_s`` is negative or the rate is not
            positive.
    """
    _finite("target_w", target_w)
    _finite("previous_w", previous_w)
    _finite("dt_s", dt_s)
    if dt_s < 0:
        raise DroopValueError("dt_s must be >= 0")
    if rate_w_per_s is not None:
        _finite("rate_w_per_s", rate_w_per_s)
        if rate_w_per_s <= 0:
            raise DroopValueError("rate_w_per_s must be > 0 (None = no limit)")
    if rate_w_per_s is None or target_w == 0:
        return target_w + 0.0
    start_w = previous_w if previous_w * target_w > 0 else 0.0  # opposite sign: from 0 W
    if abs(target_w) <= abs(start_w):
        return target_w + 0.0  # towards 0 W: at once
    step_w = rate_w_per_s * dt_s
    if target_w > 0:
        return min(target_w, start_w + step_w) + 0.0
    return max(target_w, start_w - step_w) + 0.0
