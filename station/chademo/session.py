"""The charger side of one CHAdeMO connector: a sans-IO state machine (like h11/_state.py).

It owns the charging sequence of the connector: when to lock, test the insulation, close and open
the contactors, which output to command, what the cyclic 0x108/0x109 (and V2H 0x208/0x209) frames
say, and why a session stopped. It must not do I/O, sleep, read a clock, log or import ``can``:
the shell (the bus adapter and the hardware loop) passes ``now`` (monotonic seconds) in, carries
the hardware commands out, sends :meth:`ChargerSession.charger_frames` every 100 ms and logs.

Using it
--------

::

    session = ChargerSession(SessionConfig(max_voltage_v=500, max_current_a=125,
                                           max_discharge_current_a=30))
    outputs = session.receive(frame, now)        # each decoded vehicle frame (0x100..0x201)
    outputs = session.tick(now)                  # at least every 100 ms: timeouts
    outputs = session.authorize(now)             # the station's authorization (OCPP side)
    outputs = session.set_power_command(7_000, now)   # W; + charge, - discharge (vehicle's view)
    outputs = session.insulation_result(True, now, test_id=cmd.test_id)
    outputs = session.measured(voltage_v, current_a, now)   # DC output; current + into vehicle
    outputs = session.stop(now, StopReason.REMOTE_STOP)     # station-initiated stop
    outputs = session.emergency_stop(now)
    outputs = session.bus_error(now, "bus-off")
    outputs = session.reset(now)                 # leave FAULT / ERROR (also a no-op when idle)
    f108, f109, *v2h = session.charger_frames(now)

Every input returns the :data:`Output` list to carry out in order: hardware commands
(:class:`LockConnector`, :class:`UnlockConnector`, :class:`StartInsulationTest`,
:class:`CloseContactors`, :class:`OpenContactors`, :class:`SetOutput`) and reports for the
transaction/OCPP side (:class:`VehicleConnected`, :class:`ChargingNeeds`,
:class:`EnergyFlowStarted`, :class:`EnergyFlowStopped`, :class:`SessionStopped`,
:class:`FaultDetected`, :class:`SessionEnded`). Bad input (a NaN, time going backwards, an
insulation result nobody asked for, a charger frame) raises
:class:`~station.chademo.errors.LocalChademoError` and changes nothing.

Theory of operation
-------------------

**Rule 1: transitions are data.** Inputs only update what the session knows (the newest vehicle
frames, authorization, power command, measurements, hardware results). Then the session settles:
it derives internal events from what it knows (``_next_event``) and fires them through
:data:`TRANSITIONS` until none is due, like h11's state-triggered transitions. A missing key is a
bug and raises :class:`~station.chademo.errors.LocalChademoError` inside the transition.

**Rule 2: after an exception inside a transition the session is ERROR.** The call returns
``[OpenContactors(), SetOutput(0, 0), FaultDetected(INTERNAL_ERROR, ...)]`` instead of whatever
it had computed, :attr:`ChargerSession.error` holds the exception for the shell to log, and every
further input except :meth:`~ChargerSession.reset` raises (h11 ``_process_error``; STYLE.md A2.2).

**Rule 3: interlocks are checked twice**, once where a decision is made and once over the outputs
of every call (``_check_interlocks``; a violation is an exception, hence ERROR):

- CloseContactors only after an insulation test *of this session* passed. Each
  :class:`StartInsulationTest` carries a ``test_id``; a result outside INSULATION_TEST or for
  another test is rejected.
- Charging current never exceeds ``min(vehicle request 0x102 b3, power command / V, station
  max_current_a)``; discharging current never exceeds ``min(vehicle max discharge current 0x200
  b0, |power command| / V, station max_discharge_current_a)``, where ``V`` is
  :meth:`~ChargerSession.power_basis_voltage_v` (the larger of the last measured output voltage
  and the vehicle's target voltage, so the power never exceeds the command).
- Discharge only while the newest 0x102 has b5 bit7 (discharge compatible) set and 0x200 arrived.
- A limit of 0 means no power: power command 0 keeps the contactors closed with output 0 A.

The sequence (reference step numbers from the project's shared reference/chademo.md "Sequence"):

=================  ===========================================================================
state              meaning
=================  ===========================================================================
IDLE               no vehicle frames
VEHICLE_DETECTED   vehicle frames arrive (step 1); waiting for 0x100, 0x101 and 0x102
PARAMETER_CHECK    parameters checked (step 2; target voltage <= available voltage), waiting
                   for permission: authorize() and 0x102 b5 bit0 "charging enabled" (step 3)
CONNECTOR_LOCKED   LockConnector sent (passes straight on to INSULATION_TEST)
INSULATION_TEST    StartInsulationTest sent (step 4), waiting for insulation_result()
CONTACTORS_CLOSED  CloseContactors sent (step 5); output 0 until a power command and the vehicle's
                   contactors (0x102 b5 bit3 clear) allow a flow
CHARGING           SetOutput(+) following the vehicle's request within the bound (step 5)
DISCHARGING        SetOutput(-) within the V2H bound (step 6)
STOPPING           output 0 (step 7); OpenContactors once current <= 5 A, UnlockConnector once
                   the output is <= 10 V after that (welding check); both measured after the
                   stop began
UNLOCKED           session over, connector free; back to IDLE when the vehicle goes silent
FAULT              safety stop (emergency stop, insulation failure, stop timeout): contactors
                   open and output 0 at once; unlocks when the output is <= 10 V; latched until
                   reset()
ERROR              a bug: contactors open, output 0, refuses input until reset()
=================  ===========================================================================

Stops: any 0x102 fault flag or b5 bit2, b5 bit4 (normal stop request), b5 bit0 cleared after
permission, b5 bit1 (shift lever), target voltage above the station's, no vehicle frame for
``vehicle_timeout_s``, the handshake not reaching CONTACTORS_CLOSED within
``handshake_timeout_s`` (counted from detection and restarted by authorize(); not counted while
PARAMETER_CHECK waits for the authorization), stop() and bus_error() lead to STOPPING;
emergency_stop(), a failed or timed-out insulation test and a STOPPING that does not reach a safe
output within ``stop_timeout_s`` lead to FAULT. :data:`OCPP_STOPPED_REASON` maps each
:class:`StopReason` to the OCPP ``stoppedReason`` (ReasonEnumType) the transaction side reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias

from station.chademo.errors import LocalChademoError
from station.chademo.frames import (
    Charger108,
    Charger109,
    Charger208,
    Charger209,
    ChargerStatus,
    Frame,
    Quirks,
    Vehicle100,
    Vehicle101,
    Vehicle102,
    Vehicle200,
    Vehicle201,
    VehicleFault,
    VehicleStatus,
)

__all__ = [
    "OCPP_STOPPED_REASON",
    "SAFE_CURRENT_A",
    "SAFE_VOLTAGE_V",
    "TRANSITIONS",
    "ChargerFrames",
    "ChargerSession",
    "ChargingNeeds",
    "CloseContactors",
    "EnergyFlowStarted",
    "EnergyFlowStopped",
    "FaultDetected",
    "FlowDirection",
    "LockConnector",
    "OpenContactors",
    "Output",
    "SessionConfig",
    "SessionEnded",
    "SessionState",
    "SessionStopped",
    "SetOutput",
    "StartInsulationTest",
    "StopReason",
    "UnlockConnector",
    "VehicleConnected",
    "VehicleParameters",
]

SAFE_CURRENT_A: Final = 5.0
"""Contactors may open once the output current is at most this (reference "Sequence" step 7)."""

SAFE_VOLTAGE_V: Final = 10.0
"""The connector may unlock once the output voltage is at most this (welding check, step 7)."""

_MAX_SETTLE_STEPS: Final = 32


class SessionState(StrEnum):
    """Where the charging sequence is (see the module docstring's table)."""

    IDLE = "Idle"
    VEHICLE_DETECTED = "VehicleDetected"
    PARAMETER_CHECK = "ParameterCheck"
    CONNECTOR_LOCKED = "ConnectorLocked"
    INSULATION_TEST = "InsulationTest"
    CONTACTORS_CLOSED = "ContactorsClosed"
    CHARGING = "Charging"
    DISCHARGING = "Discharging"
    STOPPING = "Stopping"
    UNLOCKED = "Unlocked"
    FAULT = "Fault"
    ERROR = "Error"


class StopReason(StrEnum):
    """Why a session stopped; :data:`OCPP_STOPPED_REASON` gives the OCPP stoppedReason."""

    BATTERY_INCOMPATIBLE = "BatteryIncompatible"
    VEHICLE_FAULT = "VehicleFault"
    VEHICLE_STOP_REQUEST = "VehicleStopRequest"
    SHIFT_LEVER = "ShiftLever"
    VEHICLE_TIMEOUT = "VehicleTimeout"
    HANDSHAKE_TIMEOUT = "HandshakeTimeout"
    INSULATION_FAILURE = "InsulationFailure"
    EMERGENCY_STOP = "EmergencyStop"
    STATION_STOP = "StationStop"
    REMOTE_STOP = "RemoteStop"
    DEAUTHORIZED = "Deauthorized"
    BUS_ERROR = "BusError"
    STOP_TIMEOUT = "StopTimeout"
    INTERNAL_ERROR = "InternalError"


OCPP_STOPPED_REASON: Final[Mapping[StopReason, str]] = {
    StopReason.BATTERY_INCOMPATIBLE: "Other",
    StopReason.VEHICLE_FAULT: "StoppedByEV",
    StopReason.VEHICLE_STOP_REQUEST: "StoppedByEV",
    StopReason.SHIFT_LEVER: "StoppedByEV",
    StopReason.VEHICLE_TIMEOUT: "EVDisconnected",
    StopReason.HANDSHAKE_TIMEOUT: "Timeout",
    StopReason.INSULATION_FAILURE: "GroundFault",
    StopReason.EMERGENCY_STOP: "EmergencyStop",
    StopReason.STATION_STOP: "Local",
    StopReason.REMOTE_STOP: "Remote",
    StopReason.DEAUTHORIZED: "DeAuthorized",
    StopReason.BUS_ERROR: "Other",
    StopReason.STOP_TIMEOUT: "Other",
    StopReason.INTERNAL_ERROR: "Other",
}
"""StopReason → OCPP 2.0.1/2.1 ReasonEnumType value (TransactionEventRequest stoppedReason)."""


class FlowDirection(StrEnum):
    """Which way energy flows, seen from the vehicle."""

    CHARGE = "Charge"
    DISCHARGE = "Discharge"


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The station's ratings for one CHAdeMO connector, and the session's timeouts.

    Attributes:
        max_voltage_v: available output voltage (0x108 b1-2, and 0x208 b1-2).
        max_current_a: available output (charge) current (0x108 b3), at most 255.
        max_discharge_current_a: V2H input current the station can take (0x208 b3); 0 = no V2H.
        threshold_voltage_v: 0x108 b4-5; None = ``max_voltage_v``.
        discharge_threshold_voltage_v: 0x208 b6-7 (lower threshold voltage) [BE] 250 V.
        welding_detection_supported: 0x108 b0.
        protocol_number: 0x109 b0 ([BE] sends 2).
        vehicle_timeout_s: stop when no vehicle frame arrives for this long (10 missed cycles).
        handshake_timeout_s: stop when CONTACTORS_CLOSED is not reached in this time.
        insulation_timeout_s: fault when the insulation test gives no result in this time.
        stop_timeout_s: fault when STOPPING does not reach a safe output in this time.
        quirks: per-vehicle decoding options for the bus adapter.
    """

    max_voltage_v: int = 500
    max_current_a: int = 125
    max_discharge_current_a: int = 0
    threshold_voltage_v: int | None = None
    discharge_threshold_voltage_v: int = 250
    welding_detection_supported: bool = True
    protocol_number: int = 2
    vehicle_timeout_s: float = 1.0
    handshake_timeout_s: float = 20.0
    insulation_timeout_s: float = 10.0
    stop_timeout_s: float = 10.0
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self) -> None:
        for name, value, high in (
            ("max_voltage_v", self.max_voltage_v, 0xFFFF),
            ("max_current_a", self.max_current_a, 0xFF),
            ("max_discharge_current_a", self.max_discharge_current_a, 0xFF),
            ("discharge_threshold_voltage_v", self.discharge_threshold_voltage_v, 0xFFFF),
            ("protocol_number", self.protocol_number, 0xFF),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise LocalChademoError(f"SessionConfig.{name} = {value!r} is outside 0..{high}")
        if self.threshold_voltage_v is not None and not (
            0 <= self.threshold_voltage_v <= self.max_voltage_v
        ):
            raise LocalChademoError(
                f"SessionConfig.threshold_voltage_v = {self.threshold_voltage_v!r} is outside "
                f"0..max_voltage_v ({self.max_voltage_v})"
            )
        for name, seconds in (
            ("vehicle_timeout_s", self.vehicle_timeout_s),
            ("handshake_timeout_s", self.handshake_timeout_s),
            ("insulation_timeout_s", self.insulation_timeout_s),
            ("stop_timeout_s", self.stop_timeout_s),
        ):
            if not (math.isfinite(seconds) and seconds > 0):
                raise LocalChademoError(f"SessionConfig.{name} = {seconds!r} must be > 0")

    @property
    def v2h(self) -> bool:
        """Whether the station offers discharge (V2H) at all."""
        return self.max_discharge_current_a > 0


# --------------------------------------------------------------------------------------------
# outputs: hardware commands


@dataclass(frozen=True, slots=True)
class LockConnector:
    """Lock the connector (step 3)."""


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    """Unlock the connector; only ever sent with the output at most 10 V."""


@dataclass(frozen=True, slots=True)
class StartInsulationTest:
    """Test the DC output's insulation at ``voltage_v`` (step 4).

    Answer with :meth:`ChargerSession.insulation_result` passing ``test_id``.
    """

    test_id: int
    voltage_v: int


@dataclass(frozen=True, slots=True)
class CloseContactors:
    """Close the station's DC contactors (step 5)."""


@dataclass(frozen=True, slots=True)
class OpenContactors:
    """Open the station's DC contactors."""


@dataclass(frozen=True, slots=True)
class SetOutput:
    """Command the DC output.

    Attributes:
        voltage_v: the voltage limit: the upper limit while charging (the vehicle's target
            voltage), the lower limit while discharging; 0 with no flow.
        current_a: the current set-point, + into the vehicle, - out of it; 0 = no power.
    """

    voltage_v: float
    current_a: float


# --------------------------------------------------------------------------------------------
# outputs: reports


@dataclass(frozen=True, slots=True)
class VehicleParameters:
    """What the vehicle told the station in 0x100/0x101/0x102 (and 0x200 if sent)."""

    protocol_number: int
    minimum_battery_voltage_v: int
    maximum_battery_voltage_v: int
    target_voltage_v: int
    minimum_charge_current_a: int
    capacity_kwh: float
    max_charging_time_s: int
    discharge_compatible: bool


@dataclass(frozen=True, slots=True)
class VehicleConnected:
    """The vehicle's parameters arrived and were checked (PARAMETER_CHECK entered)."""

    session_id: int
    parameters: VehicleParameters


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """The vehicle's needs and limits for the energy manager; sent again when they change.

    CHAdeMO sends no maximum charge current of the vehicle's own: ``max_charge_current_a`` is the
    station's, the vehicle's request (0x102 b3) caps it later. Powers use the target voltage.
    """

    session_id: int
    capacity_kwh: float
    soc_pct: int
    target_voltage_v: int
    min_voltage_v: int
    max_voltage_v: int
    min_charge_current_a: int
    max_charge_current_a: int
    min_charge_power_w: float
    max_charge_power_w: float
    discharge_compatible: bool
    max_discharge_current_a: int
    max_discharge_power_w: float
    min_discharge_voltage_v: int


@dataclass(frozen=True, slots=True)
class EnergyFlowStarted:
    """Energy started to flow (CHARGING or DISCHARGING entered)."""

    session_id: int
    direction: FlowDirection


@dataclass(frozen=True, slots=True)
class EnergyFlowStopped:
    """Energy stopped flowing (output commanded to 0)."""

    session_id: int


@dataclass(frozen=True, slots=True)
class SessionStopped:
    """The session is stopping; ``reason`` is the first cause (sent once per session)."""

    session_id: int
    reason: StopReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultDetected:
    """FAULT or ERROR entered: contactors open, output 0; latched until reset()."""

    session_id: int
    reason: StopReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over and the session is back in IDLE."""

    session_id: int


Output: TypeAlias = (
    LockConnector
    | UnlockConnector
    | StartInsulationTest
    | CloseContactors
    | OpenContactors
    | SetOutput
    | VehicleConnected
    | ChargingNeeds
    | EnergyFlowStarted
    | EnergyFlowStopped
    | SessionStopped
    | FaultDetected
    | SessionEnded
)
"""Anything an input can return: hardware commands and reports."""

ChargerFrames: TypeAlias = (
    tuple[Charger108, Charger109] | tuple[Charger108, Charger109, Charger208, Charger209]
)
"""The newest cyclic frames: 0x108, 0x109 and, for a V2H station, 0x208 and 0x209."""


# --------------------------------------------------------------------------------------------
# internal events and the transition table


@dataclass(frozen=True, slots=True)
class _VehicleAppeared:
    pass


@dataclass(frozen=True, slots=True)
class _ParametersReceived:
    pass


@dataclass(frozen=True, slots=True)
class _PermissionGranted:
    pass


@dataclass(frozen=True, slots=True)
class _ConnectorLocked:
    pass


@dataclass(frozen=True, slots=True)
class _InsulationPassed:
    pass


@dataclass(frozen=True, slots=True)
class _ChargeStarted:
    pass


@dataclass(frozen=True, slots=True)
class _DischargeStarted:
    pass


@dataclass(frozen=True, slots=True)
class _FlowStopped:
    pass


@dataclass(frozen=True, slots=True)
class _StopBegun:
    reason: StopReason
    detail: str


@dataclass(frozen=True, slots=True)
class _OutputSafe:
    pass


@dataclass(frozen=True, slots=True)
class _VehicleLeft:
    pass


@dataclass(frozen=True, slots=True)
class _Faulted:
    reason: StopReason
    detail: str


@dataclass(frozen=True, slots=True)
class _Reset:
    pass


_Event: TypeAlias = (
    _VehicleAppeared
    | _ParametersReceived
    | _PermissionGranted
    | _ConnectorLocked
    | _InsulationPassed
    | _ChargeStarted
    | _DischargeStarted
    | _FlowStopped
    | _StopBegun
    | _OutputSafe
    | _VehicleLeft
    | _Faulted
    | _Reset
)

S = SessionState
_ACTIVE_EXITS: Final[dict[type[_Event], SessionState]] = {
    _StopBegun: S.STOPPING,
    _Faulted: S.FAULT,
}

TRANSITIONS: Final[Mapping[SessionState, Mapping[type[_Event], SessionState]]] = {
    S.IDLE: {_VehicleAppeared: S.VEHICLE_DETECTED, _Faulted: S.FAULT, _Reset: S.IDLE},
    S.VEHICLE_DETECTED: {_ParametersReceived: S.PARAMETER_CHECK, **_ACTIVE_EXITS},
    S.PARAMETER_CHECK: {_PermissionGranted: S.CONNECTOR_LOCKED, **_ACTIVE_EXITS},
    S.CONNECTOR_LOCKED: {_ConnectorLocked: S.INSULATION_TEST, **_ACTIVE_EXITS},
    S.INSULATION_TEST: {_InsulationPassed: S.CONTACTORS_CLOSED, **_ACTIVE_EXITS},
    S.CONTACTORS_CLOSED: {
        _ChargeStarted: S.CHARGING,
        _DischargeStarted: S.DISCHARGING,
        **_ACTIVE_EXITS,
    },
    S.CHARGING: {_FlowStopped: S.CONTACTORS_CLOSED, **_ACTIVE_EXITS},
    S.DISCHARGING: {_FlowStopped: S.CONTACTORS_CLOSED, **_ACTIVE_EXITS},
    S.STOPPING: {_OutputSafe: S.UNLOCKED, _Faulted: S.FAULT},
    S.UNLOCKED: {_VehicleLeft: S.IDLE, _Reset: S.IDLE, _Faulted: S.FAULT},
    S.FAULT: {_Reset: S.IDLE},
    S.ERROR: {_Reset: S.IDLE},
}
"""state → internal event type → next state (STYLE.md A2.2). Anything else is a bug."""

_ACTIVE: Final = frozenset(
    {
        S.VEHICLE_DETECTED,
        S.PARAMETER_CHECK,
        S.CONNECTOR_LOCKED,
        S.INSULATION_TEST,
        S.CONTACTORS_CLOSED,
        S.CHARGING,
        S.DISCHARGING,
    }
)
"""States with a session under way that a stop or a fault ends."""

_HANDSHAKE: Final = frozenset(
    {S.VEHICLE_DETECTED, S.PARAMETER_CHECK, S.CONNECTOR_LOCKED, S.INSULATION_TEST}
)
_PERMITTED: Final = frozenset(
    {S.CONNECTOR_LOCKED, S.INSULATION_TEST, S.CONTACTORS_CLOSED, S.CHARGING, S.DISCHARGING}
)
_FLOWING: Final = frozenset({S.CHARGING, S.DISCHARGING})
_RESETTABLE: Final = frozenset({S.IDLE, S.UNLOCKED, S.FAULT, S.ERROR})
_NO_OUTPUT: Final = SetOutput(0.0, 0.0)

_VEHICLE_FRAMES: Final = (Vehicle100, Vehicle101, Vehicle102, Vehicle200, Vehicle201)


def _check_now(now: float) -> None:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise LocalChademoError(f"now must be a finite number of seconds, got {now!r}")


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LocalChademoError(f"{name} must be a finite number, got {value!r}")


def _u8(value: float) -> int:
    return max(0, min(0xFF, math.floor(value)))


def _u16(value: float) -> int:
    return max(0, min(0xFFFF, round(value)))


# --------------------------------------------------------------------------------------------
# the machine


class ChargerSession:
    """The charger side of one CHAdeMO connector (see the module docstring).

    Attributes:
        config: the station's ratings and timeouts.
        state: the current :class:`SessionState`.
        session_id: increases by one per session (when a vehicle appears in IDLE).
        error: the exception that put the session in ERROR, for the shell to log; else None.
        stop_reason: the first cause of the current session's stop, or None.
    """

    def __init__(self, config: SessionConfig | None = None) -> None:
        """Start in IDLE with nothing known.

        Args:
            config: the station's ratings; the defaults when None.
        """
        self.config = config if config is not None else SessionConfig()
        self.state = SessionState.IDLE
        self.session_id = 0
        self.error: BaseException | None = None
        self.stop_reason: StopReason | None = None
        self._now: float | None = None
        self._v100: Vehicle100 | None = None
        self._v101: Vehicle101 | None = None
        self._v102: Vehicle102 | None = None
        self._v200: Vehicle200 | None = None
        self._v201: Vehicle201 | None = None
        self._last_frame_at: float | None = None
        self._authorized = False
        self._power_w = 0.0
        self._measured_v = 0.0
        self._measured_a = 0.0
        self._measured_at: float | None = None
        self._pending_stop: tuple[StopReason, str] | None = None
        self._pending_fault: tuple[StopReason, str] | None = None
        self._insulation: tuple[int, bool] | None = None
        self._clear_session()

    def _clear_session(self) -> None:
        self._handshake_started_at: float | None = None
        self._state_entered_at = 0.0
        self._locked = False
        self._contactors_closed = False
        self._contactors_opened_at: float | None = None
        self._stop_started_at: float | None = None
        self._fault_at: float | None = None
        self._setpoint = _NO_OUTPUT
        self._needs: ChargingNeeds | None = None
        self._insulation_passed_for: int | None = None
        self._stopped_reported = False
        self._incompatible = False

    # ------------------------------------------------------------------ public inputs

    def receive(self, frame: Frame, now: float) -> list[Output]:
        """Take one decoded vehicle frame (0x100, 0x101, 0x102, 0x200 or 0x201).

        Args:
            frame: the frame the bus adapter decoded with ``config.quirks``.
            now: monotonic seconds.

        Returns:
            The outputs to carry out, in order.

        Raises:
            LocalChademoError: a charger frame, a bad ``now``, or the session is in ERROR.
        """
        self._accept(now)
        if not isinstance(frame, _VEHICLE_FRAMES):
            raise LocalChademoError(f"{type(frame).__name__} is not a vehicle frame")

        def update() -> None:
            self._last_frame_at = now
            if isinstance(frame, Vehicle100):
                self._v100 = frame
            elif isinstance(frame, Vehicle101):
                self._v101 = frame
            elif isinstance(frame, Vehicle102):
                self._v102 = frame
            elif isinstance(frame, Vehicle200):
                self._v200 = frame
            else:
                self._v201 = frame

        return self._process(now, update)

    def tick(self, now: float) -> list[Output]:
        """Let time pass: vehicle, handshake, insulation and stop timeouts.

        Raises:
            LocalChademoError: a bad ``now``, or the session is in ERROR.
        """
        self._accept(now)
        return self._process(now, None)

    def authorize(self, now: float) -> list[Output]:
        """The station authorized charging (OCPP side); restarts the handshake timer.

        Raises:
            LocalChademoError: a bad ``now``, or the session is in ERROR.
        """
        self._accept(now)

        def update() -> None:
            if self.state in (S.UNLOCKED, S.STOPPING, S.FAULT):
                return
            self._authorized = True
            if self.state in _HANDSHAKE:
                self._handshake_started_at = now

        return self._process(now, update)

    def set_power_command(self, power_w: float, now: float) -> list[Output]:
        """The energy manager's set-point: + charge, - discharge (W, vehicle's view); 0 = none.

        Raises:
            LocalChademoError: ``power_w`` not finite, a bad ``now``, or the session is in ERROR.
        """
        _check_finite("power_w", power_w)
        self._accept(now)

        def update() -> None:
            self._power_w = float(power_w)

        return self._process(now, update)

    def stop(self, now: float, reason: StopReason = StopReason.STATION_STOP) -> list[Output]:
        """Stop the session from the station's side (0x109 b5 bit5); also withdraws authorization.

        Raises:
            LocalChademoError: a bad ``now``, or the session is in ERROR.
        """
        self._accept(now)

        def update() -> None:
            self._authorized = False
            if self.state in _ACTIVE:
                self._pending_stop = (reason, "station stop")

        return self._process(now, update)

    def insulation_result(
        self, passed: bool, now: float, test_id: int | None = None
    ) -> list[Output]:
        """The insulation monitor's answer to the running :class:`StartInsulationTest`.

        Args:
            passed: whether the insulation test passed.
            now: monotonic seconds.
            test_id: the ``test_id`` of the command; None means "the running test".

        Raises:
            LocalChademoError: no test is running, or ``test_id`` names another test (a stale
                result); nothing changes.
        """
        self._accept(now)
        if self.state is not S.INSULATION_TEST:
            raise LocalChademoError(f"no insulation test is running (state {self.state})")
        if test_id is not None and test_id != self.session_id:
            raise LocalChademoError(
                f"insulation result for test {test_id}, but test {self.session_id} is running"
            )

        def update() -> None:
            self._insulation = (self.session_id, bool(passed))

        return self._process(now, update)

    def measured(self, voltage_v: float, current_a: float, now: float) -> list[Output]:
        """The DC output's measurement: voltage and current (+ into the vehicle).

        Raises:
            LocalChademoError: a value not finite, a bad ``now``, or the session is in ERROR.
        """
        _check_finite("voltage_v", voltage_v)
        _check_finite("current_a", current_a)
        self._accept(now)

        def update() -> None:
            self._measured_v = float(voltage_v)
            self._measured_a = float(current_a)
            self._measured_at = now

        return self._process(now, update)

    def emergency_stop(self, now: float) -> list[Output]:
        """The emergency stop was pressed: FAULT at once (contactors open, output 0).

        Raises:
            LocalChademoError: a bad ``now``, or the session is in ERROR.
        """
        self._accept(now)

        def update() -> None:
            if self.state is not S.FAULT:
                self._pending_fault = (StopReason.EMERGENCY_STOP, "emergency stop")

        return self._process(now, update)

    def bus_error(self, now: float, detail: str = "") -> list[Output]:
        """The CAN bus failed (reported by the bus adapter): stop the session.

        Raises:
            LocalChademoError: a bad ``now``, or the session is in ERROR.
        """
        self._accept(now)

        def update() -> None:
            if self.state in _ACTIVE:
                self._pending_stop = (StopReason.BUS_ERROR, detail)

        return self._process(now, update)

    def reset(self, now: float) -> list[Output]:
        """Return to IDLE from FAULT or ERROR (idempotent in IDLE and UNLOCKED).

        Always commands the safe state again (OpenContactors, SetOutput(0, 0)); unlocks a connector
        the session still holds locked. Call it from FAULT/ERROR only once the output is known to
        be dead (the operator or the hardware confirmed it).

        Returns:
            The outputs: OpenContactors, SetOutput(0, 0), maybe UnlockConnector and SessionEnded.

        Raises:
            LocalChademoError: a session is under way (stop() it first) or a bad ``now``.
        """
        _check_now(now)
        if self.state not in _RESETTABLE:
            raise LocalChademoError(f"cannot reset in {self.state}; stop() the session first")
        outputs: list[Output] = [OpenContactors(), _NO_OUTPUT]
        if self._locked:
            outputs.append(UnlockConnector())
        if self.state is not S.IDLE:
            outputs.append(SessionEnded(self.session_id))
        self._go(S.IDLE, now)
        self.error = None
        self._pending_fault = None
        self._pending_stop = None
        self._now = now
        return outputs

    # ------------------------------------------------------------------ queries

    def power_basis_voltage_v(self) -> float:
        """The voltage used to turn the power command into a current.

        The larger of the last measured output voltage and the vehicle's target voltage, at
        least 1 V: the larger the voltage the smaller the current, so the power stays within
        the command.
        """
        target = self._v102.target_voltage_v if self._v102 is not None else 0
        return max(self._measured_v, float(target), 1.0)

    def charge_current_bound_a(self) -> float:
        """The largest charging current the session may command now.

        min(vehicle request 0x102 b3, power command / V, station max_current_a); 0 unless the
        power command is positive.
        """
        if self._power_w > 0:
            request = self._v102.charging_current_request_a if self._v102 is not None else 0
            return max(
                0.0,
                min(
                    float(request),
                    self._power_w / self.power_basis_voltage_v(),
                    float(self.config.max_current_a),
                ),
            )
        return 0.0

    def discharge_current_bound_a(self) -> float:
        """The largest discharging current (a magnitude) the session may command now.

        min(vehicle max discharge current 0x200 b0, |power command| / V, station
        max_discharge_current_a); 0 unless the power command is negative and the newest 0x102
        declares discharge compatible (b5 bit7) and 0x200 arrived.
        """
        if self._power_w < 0 and self._discharge_allowed() and self._v200 is not None:
            return max(
                0.0,
                min(
                    float(self._v200.max_discharge_current_a),
                    -self._power_w / self.power_basis_voltage_v(),
                    float(self.config.max_discharge_current_a),
                ),
            )
        return 0.0

    def charger_frames(self, now: float) -> ChargerFrames:
        """The newest data for the cyclic 100 ms frames (0x108, 0x109, and 0x208/0x209 for V2H).

        Args:
            now: monotonic seconds (unused for now; the frames carry no time of their own).
        """
        cfg = self.config
        state = self.state
        before_flow = state in _HANDSHAKE or state in (S.IDLE, S.UNLOCKED)
        if before_flow:
            available_a = cfg.max_current_a
            available_in_a = cfg.max_discharge_current_a
        else:
            basis = self.power_basis_voltage_v()
            power = self._power_w if state in (S.CONTACTORS_CLOSED, *_FLOWING) else 0.0
            available_a = _u8(min(cfg.max_current_a, max(power, 0.0) / basis))
            available_in_a = _u8(min(cfg.max_discharge_current_a, max(-power, 0.0) / basis))
        status = ChargerStatus(0)
        if state in (S.CONTACTORS_CLOSED, *_FLOWING):
            status |= ChargerStatus.CHARGING
        else:
            status |= ChargerStatus.STOP_CONTROL
        if self._locked:
            status |= ChargerStatus.CONNECTOR_LOCKED
        if self._incompatible:
            status |= ChargerStatus.BATTERY_INCOMPATIBLE
        if state in (S.FAULT, S.ERROR):
            status |= ChargerStatus.CHARGER_MALFUNCTION
        f108 = Charger108(
            welding_detection_supported=cfg.welding_detection_supported,  # 0x108 b0 [BE]
            available_output_voltage_v=cfg.max_voltage_v,  # 0x108 b1-2 [BE]
            available_output_current_a=available_a,  # 0x108 b3 [BE]
            threshold_voltage_v=(
                cfg.threshold_voltage_v
                if cfg.threshold_voltage_v is not None
                else cfg.max_voltage_v
            ),  # 0x108 b4-5 [BE]
        )
        f109 = Charger109(
            protocol_number=cfg.protocol_number,  # 0x109 b0 [BE]
            present_output_voltage_v=_u16(self._measured_v),  # 0x109 b1-2 [BE]
            present_output_current_a=_u8(round(max(self._measured_a, 0.0))),  # 0x109 b3 [BE]
            discharge_compatible=cfg.v2h,  # 0x109 b4 [BE]
            status=status,  # 0x109 b5 [BE][EV]
            remaining_charging_time_10s=None,  # 0x109 b6 0xFF: use b7 [BE]
            remaining_charging_time_min=0xFF,  # 0x109 b7 [BE]
        )
        if not cfg.v2h:
            return (f108, f109)
        f208 = Charger208(
            present_discharge_current_a=_u8(round(max(-self._measured_a, 0.0))),  # b0 [RS][BE]
            available_input_voltage_v=cfg.max_voltage_v,  # b1-2 [RS][BE]
            available_input_current_a=available_in_a,  # b3 [RS][BE]
            lower_threshold_voltage_v=cfg.discharge_threshold_voltage_v,  # b6-7 [RS][BE]
        )
        f209 = Charger209(
            sequence_control_number=cfg.protocol_number,  # b0 [BE]
            remaining_discharge_time_raw=0,  # b1-2 [BE]
        )
        return (f108, f109, f208, f209)

    # ------------------------------------------------------------------ machinery

    def _accept(self, now: float) -> None:
        """Refuse input in ERROR and bad times, before anything changes."""
        _check_now(now)
        if self.state is S.ERROR:
            raise LocalChademoError("the session is in ERROR; reset() it first")
        if self._now is not None and now < self._now:
            raise LocalChademoError(f"time went backwards: {now} < {self._now}")

    def _process(self, now: float, update: Callable[[], None] | None) -> list[Output]:
        """Apply one input and settle; any exception → ERROR with the safe outputs."""
        try:
            self._now = now
            if update is not None:
                update()
            outputs = self._settle(now)
        except Exception as exc:  # Rule 2: any bug in a transition ends in ERROR (h11)
            return self._enter_error(exc, now)
        return outputs

    def _enter_error(self, exc: BaseException, now: float) -> list[Output]:
        self.error = exc
        self.state = S.ERROR
        self._state_entered_at = now
        self._contactors_closed = False
        self._setpoint = _NO_OUTPUT
        return [
            OpenContactors(),
            _NO_OUTPUT,
            FaultDetected(self.session_id, StopReason.INTERNAL_ERROR, repr(exc)),
        ]

    def _go(self, state: SessionState, now: float) -> None:
        self.state = state
        self._state_entered_at = now
        if state is S.IDLE:
            self._v100 = self._v101 = self._v102 = None
            self._v200 = self._v201 = None
            self._last_frame_at = None
            self._authorized = False
            self._power_w = 0.0
            self._insulation = None
            self.stop_reason = None
            self._clear_session()

    def _fire(self, event: _Event, now: float) -> list[Output]:
        row = TRANSITIONS[self.state]
        target = row.get(type(event))
        if target is None:
            raise LocalChademoError(f"{type(event).__name__} is not valid in {self.state}")
        previous = self.state
        self._go(target, now)
        outputs = self._on_enter(target, event, now, previous)
        self._check_interlocks(outputs)
        return outputs

    def _settle(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for _ in range(_MAX_SETTLE_STEPS):
            event = self._next_event(now)
            if event is not None:
                outputs += self._fire(event, now)
                continue
            actions = self._in_state(now)
            if not actions:
                return outputs
            self._check_interlocks(actions)
            outputs += actions
        raise LocalChademoError(f"the session did not settle in {_MAX_SETTLE_STEPS} steps")

    def _discharge_allowed(self) -> bool:
        return (
            self.config.v2h
            and self._v102 is not None
            and VehicleStatus.DISCHARGE_COMPATIBLE in self._v102.status
        )

    def _vehicle_silent(self, now: float) -> bool:
        return (
            self._last_frame_at is None or now - self._last_frame_at > self.config.vehicle_timeout_s
        )

    def _stop_condition(self, now: float) -> tuple[StopReason, str] | None:
        """Why the session under way must stop now, if it must (reference "Sequence")."""
        if self._pending_stop is not None:
            return self._pending_stop
        v102 = self._v102
        if v102 is not None:
            if v102.faults != VehicleFault(0) or VehicleStatus.CHARGING_SYSTEM_FAULT in v102.status:
                return (
                    StopReason.VEHICLE_FAULT,
                    f"0x102 faults {int(v102.faults):#04x} status {int(v102.status):#04x}",
                )
            if VehicleStatus.SHIFT_LEVER_NOT_PARK in v102.status:
                return StopReason.SHIFT_LEVER, "shift lever not in park"
            if VehicleStatus.NORMAL_STOP_REQUEST in v102.status:
                return StopReason.VEHICLE_STOP_REQUEST, "0x102 b5 bit4 stop request"
            if self.state in _PERMITTED and VehicleStatus.CHARGING_ENABLED not in v102.status:
                return StopReason.VEHICLE_STOP_REQUEST, "0x102 b5 bit0 charging enabled cleared"
            if v102.target_voltage_v > self.config.max_voltage_v:
                self._incompatible = True
                return (
                    StopReason.BATTERY_INCOMPATIBLE,
                    f"target {v102.target_voltage_v} V > available {self.config.max_voltage_v} V",
                )
        if self._vehicle_silent(now):
            timeout_s = self.config.vehicle_timeout_s
            return StopReason.VEHICLE_TIMEOUT, f"no vehicle frame for {timeout_s} s"
        if (
            self.state in _HANDSHAKE
            and self._handshake_started_at is not None
            and not (self.state is S.PARAMETER_CHECK and not self._authorized)
            and now - self._handshake_started_at > self.config.handshake_timeout_s
        ):
            return StopReason.HANDSHAKE_TIMEOUT, f"{self.config.handshake_timeout_s} s"
        return None

    def _fault_condition(self, now: float) -> tuple[StopReason, str] | None:
        if self._pending_fault is not None:
            return self._pending_fault
        if self.state is S.INSULATION_TEST:
            if self._insulation is not None and self._insulation == (self.session_id, False):
                return StopReason.INSULATION_FAILURE, "insulation test failed"
            if now - self._state_entered_at > self.config.insulation_timeout_s:
                return StopReason.INSULATION_FAILURE, "no insulation result in time"
        if (
            self.state is S.STOPPING
            and self._stop_started_at is not None
            and now - self._stop_started_at > self.config.stop_timeout_s
        ):
            return StopReason.STOP_TIMEOUT, "output not safe in time (welding suspected)"
        return None

    def _fresh(self, since: float | None) -> bool:
        return self._measured_at is not None and since is not None and self._measured_at >= since

    def _next_event(self, now: float) -> _Event | None:
        state = self.state
        if state is S.ERROR:
            return None
        if state is not S.FAULT:
            fault = self._fault_condition(now)
            if fault is not None:
                self._pending_fault = None
                return _Faulted(*fault)
        if state in _ACTIVE:
            stop = self._stop_condition(now)
            if stop is not None:
                self._pending_stop = None
                return _StopBegun(*stop)
        if state is S.IDLE:
            if self._last_frame_at is not None and not self._vehicle_silent(now):
                return _VehicleAppeared()
        elif state is S.VEHICLE_DETECTED:
            if None not in (self._v100, self._v101, self._v102):
                return _ParametersReceived()
        elif state is S.PARAMETER_CHECK:
            assert self._v102 is not None
            if self._authorized and VehicleStatus.CHARGING_ENABLED in self._v102.status:
                return _PermissionGranted()
        elif state is S.CONNECTOR_LOCKED:
            return _ConnectorLocked()
        elif state is S.INSULATION_TEST:
            if self._insulation == (self.session_id, True):
                return _InsulationPassed()
        elif state is S.CONTACTORS_CLOSED:
            assert self._v102 is not None
            vehicle_closed = VehicleStatus.VEHICLE_CONTACTOR_OPEN not in self._v102.status
            if vehicle_closed and self._power_w > 0:
                return _ChargeStarted()
            if (
                vehicle_closed
                and self._power_w < 0
                and self._discharge_allowed()
                and self._v200 is not None
            ):
                return _DischargeStarted()
        elif state is S.CHARGING:
            if self._power_w <= 0:
                return _FlowStopped()
        elif state is S.DISCHARGING:
            if self._power_w >= 0 or not self._discharge_allowed():
                return _FlowStopped()
        elif state is S.STOPPING:
            if not self._contactors_closed and (
                not self._locked or self._safe_voltage(self._contactors_opened_at)
            ):
                return _OutputSafe()
        elif state is S.UNLOCKED and self._vehicle_silent(now):
            return _VehicleLeft()
        return None

    def _safe_voltage(self, since: float | None) -> bool:
        return self._fresh(since) and abs(self._measured_v) <= SAFE_VOLTAGE_V

    def _in_state(self, now: float) -> list[Output]:
        """Actions inside a state: set-point updates, needs updates, stop and fault steps."""
        outputs: list[Output] = []
        state = self.state
        if state in _ACTIVE and state is not S.VEHICLE_DETECTED:
            needs = self._charging_needs()
            if needs is not None and needs != self._needs:
                self._needs = needs
                outputs.append(needs)
        if state in _FLOWING:
            outputs += self._update_setpoint()
        elif state is S.STOPPING:
            if (
                self._contactors_closed
                and self._fresh(self._stop_started_at)
                and abs(self._measured_a) <= SAFE_CURRENT_A
            ):
                self._contactors_closed = False
                self._contactors_opened_at = now
                outputs.append(OpenContactors())
        elif state is S.FAULT and self._locked and self._safe_voltage(self._fault_at):
            self._locked = False
            outputs.append(UnlockConnector())
        return outputs

    def _update_setpoint(self) -> list[Output]:
        assert self._v102 is not None
        if self.state is S.CHARGING:
            bound = self.charge_current_bound_a()
            setpoint = SetOutput(float(self._v102.target_voltage_v), bound)
        else:
            assert self._v200 is not None
            floor_v = max(
                self._v200.min_discharge_voltage_v, self.config.discharge_threshold_voltage_v
            )
            setpoint = SetOutput(float(floor_v), -self.discharge_current_bound_a())
        if setpoint == self._setpoint:
            return []
        self._setpoint = setpoint
        return [setpoint]

    def _charging_needs(self) -> ChargingNeeds | None:
        v100, v101, v102 = self._v100, self._v101, self._v102
        if v100 is None or v101 is None or v102 is None:
            return None
        compatible = self._discharge_allowed() and self._v200 is not None
        max_discharge_a = (
            min(self._v200.max_discharge_current_a, self.config.max_discharge_current_a)
            if compatible and self._v200 is not None
            else 0
        )
        max_charge_a = self.config.max_current_a
        return ChargingNeeds(
            session_id=self.session_id,
            capacity_kwh=v101.capacity_kwh,
            soc_pct=v102.soc_pct,
            target_voltage_v=v102.target_voltage_v,
            min_voltage_v=v100.minimum_battery_voltage_v,
            max_voltage_v=v100.maximum_battery_voltage_v,
            min_charge_current_a=v100.minimum_charge_current_a,
            max_charge_current_a=max_charge_a,
            min_charge_power_w=float(v100.minimum_charge_current_a * v102.target_voltage_v),
            max_charge_power_w=float(max_charge_a * v102.target_voltage_v),
            discharge_compatible=compatible,
            max_discharge_current_a=max_discharge_a,
            max_discharge_power_w=float(max_discharge_a * v102.target_voltage_v),
            min_discharge_voltage_v=(
                self._v200.min_discharge_voltage_v if self._v200 is not None else 0
            ),
        )

    def _on_enter(
        self, state: SessionState, event: _Event, now: float, previous: SessionState
    ) -> list[Output]:
        was_flowing = previous in _FLOWING
        sid = self.session_id
        outputs: list[Output] = []
        if isinstance(event, _VehicleAppeared):
            self.session_id += 1
            self._handshake_started_at = now
        elif isinstance(event, _ParametersReceived):
            v100, v101, v102 = self._v100, self._v101, self._v102
            assert v100 is not None and v101 is not None and v102 is not None
            params = VehicleParameters(
                protocol_number=v102.protocol_number,
                minimum_battery_voltage_v=v100.minimum_battery_voltage_v,
                maximum_battery_voltage_v=v100.maximum_battery_voltage_v,
                target_voltage_v=v102.target_voltage_v,
                minimum_charge_current_a=v100.minimum_charge_current_a,
                capacity_kwh=v101.capacity_kwh,
                max_charging_time_s=v101.max_charging_time_s,
                discharge_compatible=VehicleStatus.DISCHARGE_COMPATIBLE in v102.status,
            )
            outputs.append(VehicleConnected(sid, params))
        elif isinstance(event, _PermissionGranted):
            self._locked = True
            outputs.append(LockConnector())
        elif isinstance(event, _ConnectorLocked):
            assert self._v100 is not None
            test_v = min(self._v100.maximum_battery_voltage_v, self.config.max_voltage_v)
            self._insulation = None
            outputs.append(StartInsulationTest(test_id=sid, voltage_v=test_v))
        elif isinstance(event, _InsulationPassed):
            self._insulation_passed_for = sid
            self._contactors_closed = True
            outputs.append(CloseContactors())
        elif isinstance(event, _ChargeStarted | _DischargeStarted):
            direction = (
                FlowDirection.CHARGE
                if isinstance(event, _ChargeStarted)
                else FlowDirection.DISCHARGE
            )
            outputs.append(EnergyFlowStarted(sid, direction))
        elif isinstance(event, _FlowStopped):
            self._setpoint = _NO_OUTPUT
            outputs += [_NO_OUTPUT, EnergyFlowStopped(sid)]
        elif isinstance(event, _StopBegun):
            self._stop_started_at = now
            self._setpoint = _NO_OUTPUT
            outputs.append(_NO_OUTPUT)
            if was_flowing:
                outputs.append(EnergyFlowStopped(sid))
            outputs += self._report_stop(event.reason, event.detail)
        elif isinstance(event, _OutputSafe):
            if self._locked:
                self._locked = False
                outputs.append(UnlockConnector())
        elif isinstance(event, _Faulted):
            self._fault_at = now
            self._contactors_closed = False
            self._setpoint = _NO_OUTPUT
            outputs += [OpenContactors(), _NO_OUTPUT]
            if was_flowing:
                outputs.append(EnergyFlowStopped(sid))
            if previous in _ACTIVE:
                outputs += self._report_stop(event.reason, event.detail)
            outputs.append(FaultDetected(sid, event.reason, event.detail))
        elif isinstance(event, _VehicleLeft):
            outputs.append(SessionEnded(sid))
        return outputs

    def _report_stop(self, reason: StopReason, detail: str) -> list[Output]:
        if self._stopped_reported:
            return []
        self._stopped_reported = True
        self.stop_reason = reason
        return [SessionStopped(self.session_id, reason, detail)]

    def _check_interlocks(self, outputs: list[Output]) -> None:
        """Rule 3: re-check the interlocks over what is about to go out; a breach is a bug."""
        for output in outputs:
            if isinstance(output, CloseContactors) and self._insulation_passed_for != (
                self.session_id
            ):
                raise LocalChademoError("CloseContactors without a passed insulation test")
            if isinstance(output, SetOutput) and output.current_a != 0:
                if self.state not in _FLOWING:
                    raise LocalChademoError(f"{output} outside CHARGING/DISCHARGING")
                if output.current_a < 0 and not self._discharge_allowed():
                    raise LocalChademoError(f"{output} without the discharge compatible bit")
                bound = (
                    self.charge_current_bound_a()
                    if output.current_a > 0
                    else self.discharge_current_bound_a()
                )
                if abs(output.current_a) > bound + 1e-9:
                    raise LocalChademoError(f"{output} exceeds the bound {bound} A")
