"""Grid protection: voltage and frequency trip points, ride-through, enter service (pure core).

Owns the decision "may the station exchange power with the grid now, and may it discharge". It
is sans-IO (STYLE.md A2.1, A2.5): :meth:`GridProtection.observe` takes one measurement and the
monotonic time ``now_s`` (seconds, from ``Clock.monotonic()``) and returns a
:class:`GridVerdict`; it must not read a clock, sleep, log or import protocol types. The shell
feeds it every inverter measurement, maps the verdict onto the energy manager's
:class:`~station.power.GridState` with :func:`to_grid_state`, and sends one NotifyDERAlarm (2.1)
or NotifyEvent (2.0.1) per entry of ``alarms_started`` / ``alarms_ended``.

Trip points (IEEE 1547-2018 cl. 6.4.1 voltage, cl. 6.5.1 frequency): each is a
``(kind, threshold, clearing_time_s)``; voltage thresholds are per unit of the nominal voltage,
frequency thresholds are in Hz. A point is *exceeded* while the measurement is strictly beyond
its threshold (``>`` for over-, ``<`` for under-). The DER shall trip (cease to energize and
disconnect) once a point has stayed exceeded for its clearing time. The defaults are the
Category II default settings of IEEE 1547-2018 (see :func:`category_ii_settings`):

=====  ===================  ===============  ==========================================
point  threshold            clearing time    source
=====  ===================  ===============  ==========================================
OV2    1.20 pu              0.16 s           IEEE 1547-2018 Table 12 (Category II)
OV1    1.10 pu              2.0 s            Table 12
UV1    0.70 pu              10.0 s           Table 12 (Category I: 2.0 s, Table 11)
UV2    0.45 pu              0.16 s           Table 12
OF2    62.0 Hz              0.16 s           Table 18 (all categories)
OF1    61.2 Hz              300.0 s          Table 18
UF1    58.5 Hz              300.0 s          Table 18
UF2    56.5 Hz              0.16 s           Table 18
=====  ===================  ===============  ==========================================

Enter service (cl. 4.10, Table 4 defaults): after a trip, and at start-up, the station enters
service only once voltage stays within 0.917-1.05 pu and frequency within 59.5-60.1 Hz
continuously for the enter-service delay (300 s), then ramps its power over the enter-service
period (300 s) from 0 to its rating.

Decisions (where the project's safety rule is stricter than the standard):

* **Discharge stops at once when the grid leaves its window.** The *normal window* is the region
  where no trip point is exceeded (between the innermost thresholds). While outside it and
  before any clearing time has elapsed the verdict is ``RIDE_THROUGH``: the station stays
  connected (charging may go on, as IEEE 1547 ride-through intends) but ``discharge_allowed``
  is False on that very observation, so no energy is pushed into a disturbed grid.
  ``tripped`` (cease to energize in both directions) follows the clearing times.
* A trip point with clearing time 0 trips on the observation that exceeds it.
* The protection only sees discrete observations. The excursion starts at the first
  observation beyond a threshold. ``observation_period_s`` (default 0) is the longest gap the
  shell leaves between observations; a point whose clearing time would run out before the next
  observation trips now (``now_s + observation_period_s >= start + clearing_time_s``), so a
  0.16 s point trips on its first observation when the shell samples once per second.
* Measurements that cannot be physical (None, NaN, infinity, a negative voltage or one above
  :data:`MAX_PLAUSIBLE_VOLTAGE_PU`, a frequency <= 0 Hz or above
  :data:`MAX_PLAUSIBLE_FREQUENCY_HZ`), and a ``now_s`` that is not finite, are a fault: the
  station trips at once (the safe state) with a reason; nothing raises. The alarm is
  ``LocalEmergency`` (the closest GridEventFaultEnum member; OCPP has no "measurement fault").
* The alarm kinds are :class:`station.der.GridEventFault` (OCPP 2.1 GridEventFaultEnumType, the
  station's own copy) and :data:`ALARM_CONTROL` names the ``controlType`` for NotifyDERAlarm.
* A trip is latched: the trip point that caused it stays in the verdict until the station
  enters service again. After a ride-through (no trip) the station resumes at once, without an
  enter-service delay: it never stopped energizing.
* Time that goes backwards is ignored (the last ``now_s`` is used), so a clock glitch can only
  make a trip come earlier, never later.
* For a nominal frequency other than 60 Hz, :func:`category_ii_settings` keeps the IEEE
  offsets from nominal (e.g. 50 Hz: OF2 52.0 Hz, UF1 48.5 Hz). That is a convenience, not a
  standard: configure the local grid code (e.g. EN 50549-1) explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from station.der import DerControlType, GridEventFault
from station.errors import ConfigError, StationError
from station.power import GridState

__all__ = [
    "ALARM_CONTROL",
    "MAX_PLAUSIBLE_FREQUENCY_HZ",
    "MAX_PLAUSIBLE_VOLTAGE_PU",
    "EnterServiceSettings",
    "GridEventFault",
    "GridProtection",
    "GridStatus",
    "GridVerdict",
    "ProtectionSettings",
    "ProtectionSettingsError",
    "TripKind",
    "TripPoint",
    "category_ii_settings",
    "protection_settings_from_table",
    "to_grid_state",
]

MAX_PLAUSIBLE_VOLTAGE_PU = 2.0
"""A voltage reading above this (per unit of nominal) is treated as a measurement fault."""

MAX_PLAUSIBLE_FREQUENCY_HZ = 100.0
"""A frequency reading above this (or at or below 0 Hz) is treated as a measurement fault."""


class ProtectionSettingsError(StationError, ValueError):
    """A protection setting is unusable (raised when the settings are built, naming the field)."""


class TripKind(StrEnum):
    """What a trip point watches; the values are the matching :class:`GridEventFault` names."""

    OVER_VOLTAGE = "OverVoltage"
    UNDER_VOLTAGE = "UnderVoltage"
    OVER_FREQUENCY = "OverFrequency"
    UNDER_FREQUENCY = "UnderFrequency"

    @property
    def is_voltage(self) -> bool:
        """True for the voltage kinds (threshold in per unit)."""
        return self in (TripKind.OVER_VOLTAGE, TripKind.UNDER_VOLTAGE)

    @property
    def is_over(self) -> bool:
        """True for the over- kinds (exceeded above the threshold)."""
        return self in (TripKind.OVER_VOLTAGE, TripKind.OVER_FREQUENCY)

    @property
    def fault(self) -> GridEventFault:
        """The alarm reported for an excursion beyond a point of this kind."""
        return GridEventFault(self.value)


ALARM_CONTROL: Mapping[GridEventFault, DerControlType] = {
    GridEventFault.OVER_VOLTAGE: DerControlType.HV_MUST_TRIP,
    GridEventFault.UNDER_VOLTAGE: DerControlType.LV_MUST_TRIP,
    GridEventFault.OVER_FREQUENCY: DerControlType.HF_MUST_TRIP,
    GridEventFault.UNDER_FREQUENCY: DerControlType.LF_MUST_TRIP,
}
"""The OCPP 2.1 DERControlEnumType for NotifyDERAlarm ``controlType`` per alarm (the must-trip
curve that watches it). ``LocalEmergency`` has no trip curve: the shell picks its own."""


class GridStatus(StrEnum):
    """Where the protection stands."""

    IN_SERVICE = "InService"
    """Inside the normal window and in service: charge and discharge allowed."""
    RIDE_THROUGH = "RideThrough"
    """Outside the normal window, no clearing time elapsed yet: connected, no discharge."""
    OUT_OF_SERVICE = "OutOfService"
    """Tripped (or not yet entered service): cease to energize, both directions."""
    ENTERING_SERVICE = "EnteringService"
    """Still ceased to energize; the enter-service window holds and its delay is running."""


# --- settings -----------------------------------------------------------------------------------


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtectionSettingsError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class TripPoint:
    """One must-trip setting: beyond ``threshold`` for ``clearing_time_s`` → cease to energize.

    Attributes:
        kind: what it watches.
        threshold: per unit of the nominal voltage for the voltage kinds, Hz for the frequency
            kinds; exceeded strictly beyond it.
        clearing_time_s: how long the excursion may last before the trip, >= 0; 0 = at once.
        name: a label for logs and alarms (e.g. "OV2").
    """

    kind: TripKind
    threshold: float
    clearing_time_s: float
    name: str = ""

    def __post_init__(self) -> None:
        try:
            kind = TripKind(self.kind)
        except ValueError:
            kinds = ", ".join(k.value for k in TripKind)
            raise ProtectionSettingsError(
                f"trip kind {self.kind!r} is not one of {kinds}"
            ) from None
        object.__setattr__(self, "kind", kind)
        _check_finite(f"{self.label}.threshold", self.threshold)
        if self.threshold <= 0:
            raise ProtectionSettingsError(f"{self.label}.threshold must be > 0")
        _check_finite(f"{self.label}.clearing_time_s", self.clearing_time_s)
        if self.clearing_time_s < 0:
            raise ProtectionSettingsError(f"{self.label}.clearing_time_s must be >= 0")

    @property
    def label(self) -> str:
        """``name`` or, when empty, the kind and threshold."""
        return self.name or f"{self.kind}@{self.threshold}"

    def exceeded(self, voltage_pu: float, frequency_hz: float) -> bool:
        """True while the measurement is strictly beyond the threshold."""
        value = voltage_pu if self.kind.is_voltage else frequency_hz
        return value > self.threshold if self.kind.is_over else value < self.threshold


@dataclass(frozen=True, slots=True)
class EnterServiceSettings:
    """IEEE 1547-2018 cl. 4.10 enter-service criteria (Table 4 defaults at 60 Hz).

    Attributes:
        low_voltage_pu, high_voltage_pu: the voltage window, per unit of nominal.
        low_frequency_hz, high_frequency_hz: the frequency window.
        delay_s: how long both must hold continuously before entering service (>= 0).
        ramp_s: the enter-service period over which power ramps from 0 to the rating (>= 0;
            0 = no ramp).
    """

    low_voltage_pu: float = 0.917
    high_voltage_pu: float = 1.05
    low_frequency_hz: float = 59.5
    high_frequency_hz: float = 60.1
    delay_s: float = 300.0
    ramp_s: float = 300.0

    def __post_init__(self) -> None:
        for name in (
            "low_voltage_pu",
            "high_voltage_pu",
            "low_frequency_hz",
            "high_frequency_hz",
            "delay_s",
            "ramp_s",
        ):
            _check_finite(f"enter_service.{name}", getattr(self, name))
        if not 0 <= self.low_voltage_pu < self.high_voltage_pu:
            raise ProtectionSettingsError(
                "enter_service voltage window must satisfy 0 <= low < high"
            )
        if not 0 < self.low_frequency_hz < self.high_frequency_hz:
            raise ProtectionSettingsError(
                "enter_service frequency window must satisfy 0 < low < high"
            )
        if self.delay_s < 0 or self.ramp_s < 0:
            raise ProtectionSettingsError("enter_service delay_s and ramp_s must be >= 0")

    def holds(self, voltage_pu: float, frequency_hz: float) -> bool:
        """True when the measurement lies inside the enter-service window (bounds included)."""
        return (
            self.low_voltage_pu <= voltage_pu <= self.high_voltage_pu
            and self.low_frequency_hz <= frequency_hz <= self.high_frequency_hz
        )


@dataclass(frozen=True, slots=True)
class ProtectionSettings:
    """Everything :class:`GridProtection` needs; built once from config.

    Attributes:
        nominal_voltage_v: the base of the per-unit voltages (> 0).
        nominal_frequency_hz: 50 or 60 (any value > 0).
        trip_points: the must-trip settings, any number of each kind (e.g. IEEE OV1/OV2 plus an
            outer 47-63 Hz window with clearing time 0).
        enter_service: the enter-service criteria.
        observation_period_s: the longest gap between two observations (>= 0); see the module
            docstring.
        start_in_service: True = the station is in service from its first valid observation
            in the enter-service window, without the delay (for simulations and tests only).

    Raises:
        ProtectionSettingsError: a value is not finite or out of range, an over- point lies at
            or below nominal (an under- point at or above), or the enter-service window holds
            points outside the normal window or does not hold nominal.
    """

    nominal_voltage_v: float
    nominal_frequency_hz: float
    trip_points: tuple[TripPoint, ...]
    enter_service: EnterServiceSettings = field(default_factory=EnterServiceSettings)
    observation_period_s: float = 0.0
    start_in_service: bool = False

    def __post_init__(self) -> None:
        _check_finite("nominal_voltage_v", self.nominal_voltage_v)
        _check_finite("nominal_frequency_hz", self.nominal_frequency_hz)
        _check_finite("observation_period_s", self.observation_period_s)
        if self.nominal_voltage_v <= 0 or self.nominal_frequency_hz <= 0:
            raise ProtectionSettingsError("nominal_voltage_v and nominal_frequency_hz must be > 0")
        if self.observation_period_s < 0:
            raise ProtectionSettingsError("observation_period_s must be >= 0")
        object.__setattr__(self, "trip_points", tuple(self.trip_points))
        for point in self.trip_points:
            if not isinstance(point, TripPoint):
                raise ProtectionSettingsError(f"trip point {point!r} is not a TripPoint")
            nominal = 1.0 if point.kind.is_voltage else self.nominal_frequency_hz
            if point.kind.is_over and point.threshold <= nominal:
                raise ProtectionSettingsError(
                    f"{point.label}: an over- threshold must lie above nominal ({nominal:g})"
                )
            if not point.kind.is_over and point.threshold >= nominal:
                raise ProtectionSettingsError(
                    f"{point.label}: an under- threshold must lie below nominal ({nominal:g})"
                )
        es = self.enter_service
        low_v, high_v = self.normal_voltage_pu
        low_f, high_f = self.normal_frequency_hz
        if es.low_voltage_pu < low_v or es.high_voltage_pu > high_v:
            raise ProtectionSettingsError(
                f"enter_service voltage window {es.low_voltage_pu:g}-{es.high_voltage_pu:g} pu "
                f"must lie within the normal window {low_v:g}-{high_v:g} pu"
            )
        if es.low_frequency_hz < low_f or es.high_frequency_hz > high_f:
            raise ProtectionSettingsError(
                f"enter_service frequency window {es.low_frequency_hz:g}-"
                f"{es.high_frequency_hz:g} Hz must lie within the normal window "
                f"{low_f:g}-{high_f:g} Hz"
            )
        if not es.holds(1.0, self.nominal_frequency_hz):
            raise ProtectionSettingsError("the enter_service window must hold nominal")

    @property
    def normal_voltage_pu(self) -> tuple[float, float]:
        """The innermost voltage thresholds ``(low, high)``; 0 / inf where there is none."""
        return (
            max(
                (p.threshold for p in self.trip_points if p.kind is TripKind.UNDER_VOLTAGE),
                default=0.0,
            ),
            min(
                (p.threshold for p in self.trip_points if p.kind is TripKind.OVER_VOLTAGE),
                default=math.inf,
            ),
        )

    @property
    def normal_frequency_hz(self) -> tuple[float, float]:
        """The innermost frequency thresholds ``(low, high)``; 0 / inf where there is none."""
        return (
            max(
                (p.threshold for p in self.trip_points if p.kind is TripKind.UNDER_FREQUENCY),
                default=0.0,
            ),
            min(
                (p.threshold for p in self.trip_points if p.kind is TripKind.OVER_FREQUENCY),
                default=math.inf,
            ),
        )


def category_ii_settings(
    nominal_voltage_v: float,
    nominal_frequency_hz: float = 60.0,
    *,
    extra_trip_points: Iterable[TripPoint] = (),
    enter_service_delay_s: float = 300.0,
    enter_service_ramp_s: float = 300.0,
    observation_period_s: float = 0.0,
) -> ProtectionSettings:
    """IEEE 1547-2018 Category II default settings (table in the module docstring).

    Args:
        nominal_voltage_v: the base voltage.
        nominal_frequency_hz: 60 gives the standard's values; other values keep the standard's
            offsets from nominal (module docstring).
        extra_trip_points: added to the defaults (e.g. an outer 47-63 Hz window).
        enter_service_delay_s: cl. 4.10.3 enter-service delay (default 300 s).
        enter_service_ramp_s: cl. 4.10.3 enter-service period (default 300 s).
        observation_period_s: see :class:`ProtectionSettings`.

    Returns:
        The settings.

    Raises:
        ProtectionSettingsError: a value is out of range.
    """
    f0 = nominal_frequency_hz
    points = (
        TripPoint(TripKind.OVER_VOLTAGE, 1.20, 0.16, "OV2"),
        TripPoint(TripKind.OVER_VOLTAGE, 1.10, 2.0, "OV1"),
        TripPoint(TripKind.UNDER_VOLTAGE, 0.70, 10.0, "UV1"),
        TripPoint(TripKind.UNDER_VOLTAGE, 0.45, 0.16, "UV2"),
        TripPoint(TripKind.OVER_FREQUENCY, f0 + 2.0, 0.16, "OF2"),
        TripPoint(TripKind.OVER_FREQUENCY, f0 + 1.2, 300.0, "OF1"),
        TripPoint(TripKind.UNDER_FREQUENCY, f0 - 1.5, 300.0, "UF1"),
        TripPoint(TripKind.UNDER_FREQUENCY, f0 - 3.5, 0.16, "UF2"),
    )
    enter = EnterServiceSettings(
        low_frequency_hz=f0 - 0.5,
        high_frequency_hz=f0 + 0.1,
        delay_s=enter_service_delay_s,
        ramp_s=enter_service_ramp_s,
    )
    return ProtectionSettings(
        nominal_voltage_v=nominal_voltage_v,
        nominal_frequency_hz=nominal_frequency_hz,
        trip_points=points + tuple(extra_trip_points),
        enter_service=enter,
        observation_period_s=observation_period_s,
    )


# --- the verdict --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridVerdict:
    """What one observation means.

    Attributes:
        status: where the protection stands after this observation.
        in_window: the measurement is valid and no trip point is exceeded.
        discharge_allowed: in service and inside the normal window (False at once on leaving).
        tripped: cease to energize, both directions (OUT_OF_SERVICE or ENTERING_SERVICE).
        trip_point: the point that caused the trip (latched until service resumes), or in
            RIDE_THROUGH the exceeded point whose clearing time runs out first; None otherwise.
        since_s: monotonic time the present status began.
        reason: one line for logs and alarms.
        power_fraction: the enter-service ramp, 0..1 of the rating the station may use now
            (0 while tripped).
        voltage_pu: the measured voltage in per unit (None when the measurement is invalid).
        frequency_hz: the measured frequency (None when invalid).
        alarms: the grid faults present now.
        alarms_started: faults that began on this observation (send NotifyDERAlarm).
        alarms_ended: faults that ended on this observation (send it with ``alarmEnded``).
    """

    status: GridStatus
    in_window: bool
    discharge_allowed: bool
    tripped: bool
    trip_point: TripPoint | None
    since_s: float
    reason: str
    power_fraction: float
    voltage_pu: float | None
    frequency_hz: float | None
    alarms: frozenset[GridEventFault]
    alarms_started: tuple[GridEventFault, ...]
    alarms_ended: tuple[GridEventFault, ...]


_FAULT_ORDER = {fault: index for index, fault in enumerate(GridEventFault)}


def _ordered(faults: Iterable[GridEventFault]) -> tuple[GridEventFault, ...]:
    return tuple(sorted(faults, key=_FAULT_ORDER.__getitem__))


class GridProtection:
    """The protection state machine; one per grid connection.

    Not thread-safe; call :meth:`observe` from one task, with non-decreasing ``now_s``.
    """

    def __init__(self, settings: ProtectionSettings) -> None:
        """Start out of service (IEEE 1547-2018 cl. 4.10: enter service applies at start-up).

        Args:
            settings: validated settings.
        """
        self.settings = settings
        self._status = GridStatus.OUT_OF_SERVICE
        self._status_since_s: float | None = None
        self._last_now_s: float | None = None
        self._exceeded_since: dict[int, float] = {}
        self._trip_point: TripPoint | None = None
        self._trip_reason = "not yet in service"
        self._enter_since_s: float | None = None
        self._in_service_since_s: float | None = None
        self._alarms: frozenset[GridEventFault] = frozenset()
        self._first_entry = True  # start_in_service applies to the first entry only

    @property
    def status(self) -> GridStatus:
        """The status after the last observation."""
        return self._status

    def update_settings(self, settings: ProtectionSettings) -> None:
        """Use new settings from the next observation on (OCPP 2.1 DER controls at run time).

        The status, a latched trip and a running enter-service delay are kept. A trip point
        that is in both the old and the new settings (same kind, threshold and clearing time)
        keeps its excursion timer, so an update during an excursion never postpones that
        point's trip; a new point starts its timer at the next observation that exceeds it.

        Args:
            settings: validated settings (build them first: an invalid set raises there and
                this protection is left unchanged).
        """
        old_points = self.settings.trip_points
        kept: dict[int, float] = {}
        for index, point in enumerate(settings.trip_points):
            for old_index, old_point in enumerate(old_points):
                if old_point == point and old_index in self._exceeded_since:
                    kept[index] = self._exceeded_since[old_index]
                    break
        self.settings = settings
        self._exceeded_since = kept

    def observe(
        self, voltage_v: float | None, frequency_hz: float | None, now_s: float
    ) -> GridVerdict:
        """Take one measurement and decide.

        Args:
            voltage_v: the grid voltage (RMS, the lowest phase on a three-phase connection as
                IEEE 1547 wants the worst phase); None = not measured.
            frequency_hz: the grid frequency; None = not measured.
            now_s: monotonic seconds (``Clock.monotonic()``).

        Returns:
            The verdict. Never raises: impossible input trips (module docstring).
        """
        now, time_fault = self._advance(now_s)
        fault = time_fault or self._measurement_fault(voltage_v, frequency_hz)
        if fault is not None:
            return self._fault(fault, now)
        assert voltage_v is not None and frequency_hz is not None  # _measurement_fault checked
        voltage_pu = voltage_v / self.settings.nominal_voltage_v
        exceeded = self._update_timers(voltage_pu, frequency_hz, now)
        in_window = not exceeded
        due = self._due(exceeded, now)
        if self._status in (GridStatus.IN_SERVICE, GridStatus.RIDE_THROUGH):
            if due is not None:
                self._trip_point = due
                started_s = self._exceeded_since[self.settings.trip_points.index(due)]
                self._trip_reason = (
                    f"{due.label} ({due.kind}) exceeded for {now - started_s:.3g} s "
                    f"(clearing time {due.clearing_time_s:g} s)"
                )
                self._first_entry = False
                self._enter(GridStatus.OUT_OF_SERVICE, now)
                self._in_service_since_s = None
                self._enter_since_s = None
            elif not in_window:
                self._enter(GridStatus.RIDE_THROUGH, now)
            else:
                self._enter(GridStatus.IN_SERVICE, now)
        else:
            es = self.settings.enter_service
            if in_window and es.holds(voltage_pu, frequency_hz):
                if self._enter_since_s is None:
                    self._enter_since_s = now
                immediate = self.settings.start_in_service and self._first_entry
                delay_s = 0.0 if immediate else es.delay_s
                if now - self._enter_since_s >= delay_s:
                    self._enter(GridStatus.IN_SERVICE, now)
                    self._in_service_since_s = None if immediate else now
                    self._first_entry = False
                    self._trip_point = None
                    self._trip_reason = ""
                else:
                    self._enter(GridStatus.ENTERING_SERVICE, now)
            else:
                self._enter_since_s = None
                self._enter(GridStatus.OUT_OF_SERVICE, now)
        active = frozenset(self.settings.trip_points[i].kind.fault for i in exceeded)
        return self._verdict(now, in_window, voltage_pu, frequency_hz, active, exceeded)

    # --- steps ------------------------------------------------------------------------------

    def _advance(self, now_s: float) -> tuple[float, str | None]:
        """The time to use (never before the last one) and a fault when ``now_s`` is unusable."""
        last = self._last_now_s
        if (
            isinstance(now_s, bool)
            or not isinstance(now_s, int | float)
            or not math.isfinite(now_s)
        ):
            return (last if last is not None else 0.0), f"time {now_s!r} is not a finite number"
        now = float(now_s) if last is None else max(float(now_s), last)
        self._last_now_s = now
        if self._status_since_s is None:
            self._status_since_s = now
        return now, None

    def _measurement_fault(self, voltage_v: float | None, frequency_hz: float | None) -> str | None:
        """Why the measurement cannot be physical, or None."""
        limit_v = MAX_PLAUSIBLE_VOLTAGE_PU * self.settings.nominal_voltage_v
        if voltage_v is None:
            return "no voltage measurement"
        if isinstance(voltage_v, bool) or not isinstance(voltage_v, int | float):
            return f"voltage {voltage_v!r} is not a number"
        if not math.isfinite(voltage_v) or not 0 <= voltage_v <= limit_v:
            return f"voltage {voltage_v!r} V is outside the physical range 0-{limit_v:g} V"
        if frequency_hz is None:
            return "no frequency measurement"
        if isinstance(frequency_hz, bool) or not isinstance(frequency_hz, int | float):
            return f"frequency {frequency_hz!r} is not a number"
        if not math.isfinite(frequency_hz) or not 0 < frequency_hz <= MAX_PLAUSIBLE_FREQUENCY_HZ:
            return (
                f"frequency {frequency_hz!r} Hz is outside the physical range "
                f"(0, {MAX_PLAUSIBLE_FREQUENCY_HZ:g}] Hz"
            )
        return None

    def _update_timers(self, voltage_pu: float, frequency_hz: float, now: float) -> list[int]:
        """Start, keep or clear each point's excursion timer; the exceeded point indexes."""
        exceeded: list[int] = []
        for index, point in enumerate(self.settings.trip_points):
            if point.exceeded(voltage_pu, frequency_hz):
                self._exceeded_since.setdefault(index, now)
                exceeded.append(index)
            else:
                self._exceeded_since.pop(index, None)
        return exceeded

    def _deadline(self, index: int) -> float:
        point = self.settings.trip_points[index]
        return self._exceeded_since[index] + point.clearing_time_s

    def _due(self, exceeded: list[int], now: float) -> TripPoint | None:
        """The exceeded point that must trip now (the earliest deadline), or None."""
        horizon = now + self.settings.observation_period_s
        due = [i for i in exceeded if horizon >= self._deadline(i)]
        if not due:
            return None
        return self.settings.trip_points[min(due, key=self._deadline)]

    def _enter(self, status: GridStatus, now: float) -> None:
        if status is not self._status:
            self._status = status
            self._status_since_s = now

    def _fault(self, reason: str, now: float) -> GridVerdict:
        self._first_entry = False
        self._exceeded_since.clear()
        self._enter_since_s = None
        self._in_service_since_s = None
        self._trip_point = None
        self._trip_reason = f"measurement fault: {reason}"
        self._enter(GridStatus.OUT_OF_SERVICE, now)
        active = frozenset({GridEventFault.LOCAL_EMERGENCY})
        return self._verdict(now, False, None, None, active, [])

    def _verdict(
        self,
        now: float,
        in_window: bool,
        voltage_pu: float | None,
        frequency_hz: float | None,
        active: frozenset[GridEventFault],
        exceeded: list[int],
    ) -> GridVerdict:
        started = _ordered(active - self._alarms)
        ended = _ordered(self._alarms - active)
        self._alarms = active
        status = self._status
        trip_point = self._trip_point
        if status is GridStatus.IN_SERVICE:
            reason = "in service"
        elif status is GridStatus.RIDE_THROUGH:
            index = min(exceeded, key=self._deadline)
            trip_point = self.settings.trip_points[index]
            reason = (
                f"riding through {trip_point.label} ({trip_point.kind}); trip in "
                f"{self._deadline(index) - now:.3g} s unless it clears; no discharge"
            )
        elif status is GridStatus.ENTERING_SERVICE:
            assert self._enter_since_s is not None
            left_s = self.settings.enter_service.delay_s - (now - self._enter_since_s)
            reason = f"entering service in {left_s:.3g} s ({self._trip_reason})"
        else:
            reason = f"ceased to energize: {self._trip_reason}"
        energized = status in (GridStatus.IN_SERVICE, GridStatus.RIDE_THROUGH)
        fraction = 0.0
        if energized:
            ramp_s = self.settings.enter_service.ramp_s
            since = self._in_service_since_s
            fraction = 1.0 if since is None or ramp_s == 0 else min(1.0, (now - since) / ramp_s)
        assert self._status_since_s is not None
        return GridVerdict(
            status=status,
            in_window=in_window,
            discharge_allowed=status is GridStatus.IN_SERVICE and in_window,
            tripped=not energized,
            trip_point=trip_point,
            since_s=self._status_since_s,
            reason=reason,
            power_fraction=fraction,
            voltage_pu=voltage_pu,
            frequency_hz=frequency_hz,
            alarms=active,
            alarms_started=started,
            alarms_ended=ended,
        )


# --- to the energy manager ----------------------------------------------------------------------


def _min_optional(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def to_grid_state(
    verdict: GridVerdict,
    *,
    rating_w: float | None = None,
    max_import_w: float | None = None,
    max_export_w: float | None = None,
    der_limit_max_discharge_w: float | None = None,
    site_power_w: float | None = None,
    site_limit_w: float | None = None,
) -> GridState:
    """The energy manager's view of a verdict.

    Args:
        verdict: the latest :meth:`GridProtection.observe` result.
        rating_w: the power the enter-service ramp scales (magnitude); None = no ramp ceiling.
        max_import_w, max_export_w, der_limit_max_discharge_w, site_power_w, site_limit_w:
            the other grid constraints, passed through (the ramp and the discharge rule only
            ever tighten them).

    Returns:
        ``in_window`` False while tripped (0 W both ways); ``max_export_w`` 0 whenever
        discharge is not allowed; both caps at most ``power_fraction * rating_w`` during the
        enter-service ramp; ``frequency_hz`` the measured value.

    Raises:
        PowerValueError: a passed-through value is negative or not finite.
    """
    ramp_w = None if rating_w is None else verdict.power_fraction * rating_w
    export_w = _min_optional(max_export_w, ramp_w)
    if not verdict.discharge_allowed:
        export_w = 0.0
    return GridState(
        in_window=not verdict.tripped,
        max_import_w=_min_optional(max_import_w, ramp_w),
        max_export_w=export_w,
        frequency_hz=verdict.frequency_hz,
        der_limit_max_discharge_w=der_limit_max_discharge_w,
        site_power_w=site_power_w,
        site_limit_w=site_limit_w,
    )


# --- from config ----------------------------------------------------------------------------------

_GRID_KEYS = {
    "nominal_voltage_v",
    "nominal_frequency_hz",
    "defaults",
    "trip",
    "enter_service_voltage_pu",
    "enter_service_frequency_hz",
    "enter_service_delay_s",
    "enter_service_ramp_s",
    "observation_period_s",
}
_TRIP_KEYS = {"kind", "threshold", "clearing_time_s", "name"}
_DEFAULTS = ("ieee1547-2018-cat-ii", "none")


def _pair(value: Any, source: str, key: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(source, key, "must be a list of two numbers [low, high]")
    return float(value[0]), float(value[1])


def protection_settings_from_table(
    table: Mapping[str, Any], source: str, prefix: str = "grid"
) -> ProtectionSettings:
    """Build settings from the ``[grid]`` table of the config file (keys in README.md).

    Args:
        table: the parsed TOML table.
        source: the file name, for errors.
        prefix: the table's key, for errors.

    Returns:
        The settings: IEEE 1547-2018 Category II defaults (unless ``defaults = "none"``) plus
        every ``[[grid.trip]]`` entry, with the enter-service keys applied.

    Raises:
        ConfigError: naming the file, the key and the problem.
    """
    unknown = sorted(set(table) - _GRID_KEYS)
    if unknown:
        raise ConfigError(source, f"{prefix}.{unknown[0]}", "unknown key")

    def number(key: str, default: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, f"{prefix}.{key}", f"must be a number, got {value!r}")
        return float(value)

    try:
        nominal_v = number("nominal_voltage_v", 230.0)
        nominal_hz = number("nominal_frequency_hz", 60.0)
        defaults = table.get("defaults", _DEFAULTS[0])
        if defaults not in _DEFAULTS:
            raise ConfigError(
                source, f"{prefix}.defaults", f"must be one of {', '.join(_DEFAULTS)}"
            )
        raw_trips = table.get("trip", [])
        if not isinstance(raw_trips, list):
            raise ConfigError(source, f"{prefix}.trip", "must be an array of tables [[grid.trip]]")
        extra: list[TripPoint] = []
        for index, raw in enumerate(raw_trips):
            key = f"{prefix}.trip[{index}]"
            if not isinstance(raw, dict):
                raise ConfigError(source, key, "must be a table")
            bad = sorted(set(raw) - _TRIP_KEYS)
            if bad:
                raise ConfigError(source, f"{key}.{bad[0]}", "unknown key")
            missing = sorted({"kind", "threshold", "clearing_time_s"} - set(raw))
            if missing:
                raise ConfigError(source, f"{key}.{missing[0]}", "missing")
            try:
                extra.append(
                    TripPoint(
                        raw["kind"], raw["threshold"], raw["clearing_time_s"], raw.get("name", "")
                    )
                )
            except ProtectionSettingsError as exc:
                raise ConfigError(source, key, str(exc)) from None
        base = category_ii_settings(
            nominal_v,
            nominal_hz,
            enter_service_delay_s=number("enter_service_delay_s", 300.0),
            enter_service_ramp_s=number("enter_service_ramp_s", 300.0),
            observation_period_s=number("observation_period_s", 0.0),
        )
        points = (base.trip_points if defaults == _DEFAULTS[0] else ()) + tuple(extra)
        enter = base.enter_service
        if "enter_service_voltage_pu" in table:
            low, high = _pair(
                table["enter_service_voltage_pu"], source, f"{prefix}.enter_service_voltage_pu"
            )
            enter = replace(enter, low_voltage_pu=low, high_voltage_pu=high)
        if "enter_service_frequency_hz" in table:
            low, high = _pair(
                table["enter_service_frequency_hz"], source, f"{prefix}.enter_service_frequency_hz"
            )
            enter = replace(enter, low_frequency_hz=low, high_frequency_hz=high)
        return replace(base, trip_points=points, enter_service=enter)
    except ProtectionSettingsError as exc:
        raise ConfigError(source, prefix, str(exc)) from None
