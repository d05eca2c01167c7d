"""The DER control shell: the installed controls of one run, their store, their timer, the CSMS.

Owns the station's :class:`~station.der.DerControlSet` and everything that happens when it
changes: SetDERControl (validated by :func:`~station.der.build_control` against the capability
set, persisted **before** the CSMS is answered, loaded again at start), ClearDERControl, the
GetDERControl selection, NotifyDERStartStop when a scheduled control's window begins or ends (one
timer at :meth:`~station.der.DerControlSet.next_change_after`, from the injected clock; no
polling loop), NotifyDERAlarm for the grid protection (:meth:`DerService.alarm`), and telling its
listeners (the energy manager, the inverter) whenever the active controls change.

It must not import ``ocpp`` (``station/ocpp/der_convert.py`` translates) nor talk SQL.

Ports (each a ``Protocol`` with an in-process implementation, STYLE.md A2.8):

* :class:`DerStore`: where controls are kept (``station.store.DerControlRepository`` in the
  station; :class:`MemoryDerStore` in process).
* :class:`DerCsmsPort`: NotifyDERStartStop and NotifyDERAlarm (``station.ocpp.der_handlers.
  OcppDerPort`` in the station; :class:`RecordingDerCsms` records them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from station.clock import Clock
from station.der.grid import CONTROLS_WITH_INVERTER
from station.der.model import (
    DEFAULT_MAX_CONTROLS,
    DerAlarm,
    DerControl,
    DerControlSet,
    DerControlStatus,
    DerControlType,
    FreqDroop,
    GridEventFault,
    ReasonCode,
    Rejection,
    SetRequest,
    StartStop,
    build_control,
    limit_max_discharge_w,
)
from station.errors import StoreError
from station.power import GridState

__all__ = [
    "DerCsmsPort",
    "DerGridView",
    "DerService",
    "DerStore",
    "MemoryDerStore",
    "RecordingDerCsms",
    "SetOutcome",
]

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class DerStore(Protocol):
    """Where DER controls are kept across restarts; each call is committed on return."""

    def save(self, control: DerControl) -> None: ...

    def delete(self, control_ids: Iterable[str]) -> None: ...

    def set_running(self, control_ids: Iterable[str], running: bool) -> None: ...

    def load_all(self) -> list[DerControl]: ...

    def load_running(self) -> frozenset[str]: ...


class MemoryDerStore:
    """In-process :class:`DerStore` (tests; a service without a database)."""

    def __init__(self) -> None:
        self.controls: dict[str, DerControl] = {}
        self.running: set[str] = set()

    def save(self, control: DerControl) -> None:
        self.controls[control.control_id] = control
        self.running.discard(control.control_id)

    def delete(self, control_ids: Iterable[str]) -> None:
        for control_id in control_ids:
            self.controls.pop(control_id, None)
            self.running.discard(control_id)

    def set_running(self, control_ids: Iterable[str], running: bool) -> None:
        ids = {i for i in control_ids if i in self.controls}
        if running:
            self.running |= ids
        else:
            self.running -= ids

    def load_all(self) -> list[DerControl]:
        return [self.controls[i] for i in sorted(self.controls)]

    def load_running(self) -> frozenset[str]:
        return frozenset(self.running)


class DerCsmsPort(Protocol):
    """The CSMS as the DER service talks to it (OCPP 2.1 only; the port decides)."""

    async def notify_start_stop(self, event: StartStop) -> None: ...

    async def notify_alarm(self, alarm: DerAlarm) -> None: ...


class RecordingDerCsms:
    """In-process :class:`DerCsmsPort`: records what would be sent."""

    def __init__(self) -> None:
        self.start_stops: list[StartStop] = []
        self.alarms: list[DerAlarm] = []

    async def notify_start_stop(self, event: StartStop) -> None:
        self.start_stops.append(event)

    async def notify_alarm(self, alarm: DerAlarm) -> None:
        self.alarms.append(alarm)


@dataclass(frozen=True, slots=True)
class SetOutcome:
    """The answer to SetDERControl: Accepted with ``superseded_ids``, or a rejection."""

    status: DerControlStatus
    superseded_ids: tuple[str, ...] = ()
    rejection: Rejection | None = None


def _discard(work: Coroutine[Any, Any, None]) -> None:
    work.close()


class DerService:
    """Holds the DER controls of one run and keeps listeners and the CSMS in step with them.

    Args:
        clock: the station's clock.
        store: where controls are persisted; they are loaded from it here.
        csms: where NotifyDERStartStop and NotifyDERAlarm go.
        spawn: runs the sends as supervised tasks (the station's task group).
        supported: the control types the station can carry out (its capability set;
            :func:`station.der.grid.supported_controls`). Others are answered NotSupported.
        max_controls: how many controls it holds at once (beyond: Rejected, OutOfStorage).

    Raises:
        StoreError: the stored controls could not be read.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        store: DerStore | None = None,
        csms: DerCsmsPort | None = None,
        spawn: Spawn = _discard,
        supported: frozenset[DerControlType] = CONTROLS_WITH_INVERTER,
        max_controls: int = DEFAULT_MAX_CONTROLS,
    ) -> None:
        self.clock = clock
        self.store: DerStore = store or MemoryDerStore()
        self.csms: DerCsmsPort = csms or RecordingDerCsms()
        self.spawn = spawn
        self.supported = frozenset(supported)
        self.max_controls = max_controls
        #: Called (no arguments) whenever the active controls change.
        self.listeners: list[Callable[[], None]] = []
        #: Asked before a control is installed: a reason it cannot be carried out here (the
        #: request is then Rejected, ``InvalidValue``), or None. The part that carries a
        #: control out registers one (e.g. the grid protection: do the settings validate?).
        self.checks: list[Callable[[DerControl], str | None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.controls = DerControlSet(self.store.load_all())
        self._running = self.store.load_running() & {c.control_id for c in self.controls}
        self._active = self.controls.active(clock.now())
        if len(self.controls):
            log.info("%d DER control(s) loaded", len(self.controls))

    # ------------------------------------------------------------------------- requests

    def set_control(self, request: SetRequest) -> SetOutcome:
        """SetDERControl: validate, persist, install; listeners hear of a new active control.

        The caller runs :meth:`refresh` once the response is out (a control that starts at
        once sends its NotifyDERStartStop after the response).

        Raises:
            StoreError: the control could not be persisted (nothing is installed).
        """
        now = self.clock.now()
        built = build_control(request, supported=self.supported, now=now)
        if isinstance(built, Rejection):
            log.info(
                "DER control %r (%s) %s: %s %s",
                request.control_id,
                request.control_type,
                built.status,
                built.reason_code,
                built.additional_info,
            )
            return SetOutcome(built.status, rejection=built)
        for check in self.checks:
            problem = check(built)
            if problem is not None:
                rejection = Rejection(DerControlStatus.REJECTED, ReasonCode.INVALID_VALUE, problem)
                log.info(
                    "DER control %r (%s) rejected: %s",
                    built.control_id,
                    built.control_type,
                    problem,
                )
                return SetOutcome(rejection.status, rejection=rejection)
        replacing = built.control_id in self.controls
        if not replacing and len(self.controls) >= self.max_controls:
            rejection = Rejection(
                DerControlStatus.REJECTED,
                ReasonCode.OUT_OF_STORAGE,
                f"the station holds at most {self.max_controls} DER controls",
            )
            return SetOutcome(rejection.status, rejection=rejection)
        self.store.save(built)  # committed before the CSMS hears Accepted
        self.controls, superseded = self.controls.install(built)
        self._running = self._running - {built.control_id}  # a replaced control starts anew
        log.info(
            "DER control %r (%s, %s, priority %d) installed%s",
            built.control_id,
            built.control_type,
            "default" if built.is_default else "scheduled",
            built.priority,
            f"; supersedes {list(superseded)}" if superseded else "",
        )
        self._changed(now)
        return SetOutcome(DerControlStatus.ACCEPTED, superseded)

    def clear(
        self,
        *,
        is_default: bool,
        control_type: DerControlType | None = None,
        control_id: str | None = None,
    ) -> tuple[str, ...]:
        """ClearDERControl: the ids removed (none: NotFound).

        Raises:
            StoreError: the removal could not be persisted (nothing is removed).
        """
        controls, gone = self.controls.clear(
            is_default=is_default, control_type=control_type, control_id=control_id
        )
        if gone:
            self.store.delete(gone)
            self.controls = controls
            self._running = self._running - set(gone)
            log.info("DER controls %s cleared", list(gone))
            self._changed(self.clock.now())
            self._arm(self.clock.now())
        return gone

    def query(
        self,
        *,
        is_default: bool | None = None,
        control_type: DerControlType | None = None,
        control_id: str | None = None,
    ) -> tuple[DerControl, ...]:
        """GetDERControl: the matching controls."""
        return self.controls.query(is_default, control_type, control_id)

    def is_superseded(self, control: DerControl) -> bool:
        return self.controls.is_superseded(control)

    # ------------------------------------------------------------------------- the grid side

    def active(self, now: datetime | None = None) -> dict[DerControlType, DerControl]:
        """The control in force per type (at ``now``, default the clock's)."""
        return self.controls.active(self.clock.now() if now is None else now)

    def limit_max_discharge_w(self, rated_w: float, now: datetime | None = None) -> float | None:
        """The LimitMaxDischarge cap (magnitude, W) of ``rated_w`` in force, or None."""
        return limit_max_discharge_w(
            self.controls, rated_w, self.clock.now() if now is None else now
        )

    def alarm(
        self,
        control_type: DerControlType,
        grid_event_fault: GridEventFault | None = None,
        alarm_ended: bool = False,
        extra_info: str | None = None,
    ) -> None:
        """NotifyDERAlarm: a grid event of ``control_type`` began (or ended, ``alarm_ended``).

        Sent as a supervised task (the grid protection calls this from its own loop).

        Raises:
            DerValueError: ``extra_info`` longer than 200 characters.
        """
        alarm = DerAlarm(control_type, self.clock.now(), grid_event_fault, alarm_ended, extra_info)
        log.warning(
            "DER alarm %s %s%s",
            control_type,
            grid_event_fault or "",
            " ended" if alarm_ended else "",
        )
        self.spawn(self.csms.notify_alarm(alarm))

    # ------------------------------------------------------------------------- the timer

    def refresh(self) -> None:
        """Send the NotifyDERStartStop due now, drop ended controls, wake at the next change."""
        now = self.clock.now()
        events = self.controls.transitions(self._running, now)
        started = [e.control_id for e in events if e.started]
        stopped = [e.control_id for e in events if not e.started]
        expired = self.controls.expired(now)
        try:
            self.store.set_running(started, True)
            self.store.delete(expired)
        except StoreError:
            # Memory still moves on; after a restart a start may be announced again.
            log.exception("could not persist the DER controls' start/end")
        self._running = (self._running | set(started)) - set(stopped) - set(expired)
        if expired:
            self.controls = self.controls.remove(expired)
            log.info("DER controls %s ended and removed", list(expired))
        for event in events:
            log.info("DER control %r %s", event.control_id, "started" if event.started else "ended")
        if events:
            self.spawn(self._send_start_stops(events))
        self._changed(now)
        self._arm(now)

    async def _send_start_stops(self, events: tuple[StartStop, ...]) -> None:
        for event in events:
            await self.csms.notify_start_stop(event)

    def _arm(self, now: datetime) -> None:
        self.cancel_timer()
        wake = self.controls.next_change_after(now)
        if wake is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next event re-evaluates
            return
        self._timer = loop.call_later(max((wake - now).total_seconds(), 0.0), self.refresh)

    def cancel_timer(self) -> None:
        """Stop waiting for the next start or end (at the end of the run)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _changed(self, now: datetime) -> None:
        active = self.controls.active(now)
        if active == self._active:
            return
        self._active = active
        for listener in list(self.listeners):
            listener()


_SETTLED_PU = 1e-4
"""A droop response this close to its target is taken as there (0.01 % of the rating)."""


def _nominal_grid() -> GridState:
    return GridState(in_window=True)


class DerGridView:
    """The energy manager's grid view with the active DER controls applied.

    * LimitMaxDischarge: ``der_limit_max_discharge_w``, the cap in W.
    * FreqDroop: ``frequency_droop_pu``, the droop response at the measured ``frequency_hz``
      of the base view (:func:`station.der.grid.droop_pu`); none without a measured
      frequency or without ``nominal_frequency_hz``. The response follows its target with the
      control's ``responseTime`` (IEEE 1547-2018 open-loop response time: a first-order lag
      that reaches 90 % of a step in that time, :func:`station.inverter.droop.
      first_order_step_w`), starting from 0 pu when the control becomes active; 0 s = at
      once. While it moves, a timer calls ``listeners`` every ``step_s`` so the energy
      manager re-evaluates (the grid state changes with time alone).

    Args:
        service: the DER service.
        rated_discharge_w: the rated discharge power ``pctMaxDischargePower`` refers to.
        base: the grid state without DER (another view's ``grid_state``); nominal by default.
        nominal_frequency_hz: the grid's nominal frequency, the base of the per-unit droop;
            None = FreqDroop has no effect (a station without grid measurements).
        step_s: the re-evaluation period while the droop response moves (> 0).
    """

    def __init__(
        self,
        service: DerService,
        *,
        rated_discharge_w: float,
        base: Callable[[], GridState] = _nominal_grid,
        nominal_frequency_hz: float | None = None,
        step_s: float = 0.1,
    ) -> None:
        self.service = service
        self.rated_discharge_w = rated_discharge_w
        self.base = base
        self.nominal_frequency_hz = nominal_frequency_hz
        self.step_s = step_s
        #: Called (no arguments) while the droop response moves towards its target.
        self.listeners: list[Callable[[], None]] = []
        self._droop_problem: str | None = None
        self._response: tuple[str, float, float] | None = None  # control id, pu, monotonic s
        self._timer: asyncio.TimerHandle | None = None

    def grid_state(self) -> GridState:
        state = self.base()
        cap = self.service.limit_max_discharge_w(self.rated_discharge_w)
        if cap is not None:
            if state.der_limit_max_discharge_w is not None:
                cap = min(cap, state.der_limit_max_discharge_w)
            state = replace(state, der_limit_max_discharge_w=cap)
        droop = self._droop_pu(state.frequency_hz)
        if droop is not None:
            state = replace(state, frequency_droop_pu=droop)
        return state

    def _droop_pu(self, frequency_hz: float | None) -> float | None:
        from station.der.grid import droop_pu, droop_settings
        from station.inverter.droop import DroopValueError

        control = self.service.active().get(DerControlType.FREQ_DROOP)
        if (
            control is None
            or not isinstance(control.setting, FreqDroop)
            or frequency_hz is None
            or self.nominal_frequency_hz is None
        ):
            self._response = None
            return None
        try:
            target = droop_pu(
                frequency_hz, droop_settings(control.setting, self.nominal_frequency_hz)
            )
        except DroopValueError as exc:  # checked at SetDERControl; a stored one may not fit
            problem = f"FreqDroop {control.control_id!r} not applied: {exc}"
            if problem != self._droop_problem:
                log.error("%s", problem)
                self._droop_problem = problem
            return None
        return self._respond(control.control_id, target, control.setting.response_time_s)

    def _respond(self, control_id: str, target: float, response_time_s: float) -> float:
        """The response moved towards ``target`` for the time since the last evaluation."""
        from station.inverter.droop import first_order_step_w

        now_s = self.service.clock.monotonic()
        previous = self._response
        if previous is None or previous[0] != control_id:
            previous = (control_id, 0.0, now_s)  # a new control starts from no response
        value = first_order_step_w(
            previous[1], target, max(now_s - previous[2], 0.0), response_time_s
        )
        if abs(value - target) < _SETTLED_PU:
            value = target
        self._response = (control_id, value, now_s)
        if value != target:
            self._arm()
        return value

    def _arm(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next evaluation steps it
            return
        self._timer = loop.call_later(self.step_s, self._tick)

    def _tick(self) -> None:
        self._timer = None
        for listener in list(self.listeners):
            listener()

    def cancel_timer(self) -> None:
        """Stop re-evaluating (at the end of the run)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
