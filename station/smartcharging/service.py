"""The smart-charging shell: installed profiles, composite schedules, and the energy manager's loop.

Owns the station's :class:`~station.smartcharging.ProfileSet` for one run and everything that
happens when it changes: SetChargingProfile validation against the device model limits
(SmartChargingCtrlr), ClearChargingProfile, the GetChargingProfiles selection, composite schedules
per EVSE for GetCompositeSchedule, and the energy manager (:func:`station.power.compute_command`)
evaluated per EVSE **on every change** (profile installed or cleared, transaction, vehicle limits)
**and at the next period boundary** (:func:`~station.smartcharging.next_change_after`, one timer,
no polling loop). The commands go out through a :class:`PowerPort`.

It must not import ``ocpp`` (``station/ocpp/convert.py`` translates) nor talk SQL: profiles are
written through a :class:`ProfileStore` (``station.store.ProfileRepository`` in the station) and
committed **before** the CSMS is answered, and loaded again at start (K01: profiles survive a
restart). TxProfiles live as long as their transaction
(:meth:`SmartChargingService.transaction_ended`); at start only those of transactions still open
in the store are loaded (``open_transaction_ids``: a transaction may be resumed, OCPP 2.1
ResumptionTimeout; one that is ended with PowerLoss instead takes its TxProfiles with it).

Ports (each a ``Protocol`` with an in-process implementation, STYLE.md A2.8):

* :class:`TransactionView`: the running transaction per EVSE. The station plugs in an adapter
  over the transactions service (``app.py``); :class:`NoTransactions` and the settable
  :class:`StaticTransactions` are the in-process fakes.
* :class:`VehicleView`: the connected vehicle's limits per EVSE. The station uses its simulated
  vehicles (``station/sim/vehicle.py``); :class:`SimulatedVehicles` is the stand-alone fake.
* :class:`GridView`: grid window and limits (:class:`NominalGrid`: in window, no limits).
* :class:`PowerPort`: where commands go. The station's simulated vehicles take them;
  :class:`SimulatedPowerPort` only records the last one per EVSE.
* :class:`CsmsNotifier`: what the station tells the CSMS on its own about smart charging
  (NotifyChargingLimit / ClearedChargingLimit for external limits, K11-K13;
  PullDynamicScheduleUpdate, K29; NotifyEVChargingNeeds / NotifyEVChargingSchedule, K15-K17).
  Fire and forget: ``station/ocpp/sc_notify.py`` sends them and reports answers back through
  :meth:`SmartChargingService.dynamic_update_received` and
  :meth:`SmartChargingService.charging_needs_answered`; :class:`RecordingNotifier` is the fake.

Beyond the CSMS's profiles the service holds:

* **External limits** (K11-K14): :meth:`SmartChargingService.set_external_limit` /
  :meth:`~SmartChargingService.clear_external_limit` (an EMS, a grid function, the operator)
  install or remove a ChargingStationExternalConstraints profile (``external.py``) that the
  composite schedule stacks like any other, GetChargingProfiles reports with its source, and
  the CSMS cannot clear; a change beyond LimitChangeSignificance is notified.
* **Charging rate changes** (K12, K13.FR.03): when an external limit or the external
  set-point port changes the power command of an EVSE with an ongoing transaction by more than
  LimitChangeSignificance, the :attr:`SmartChargingService.rate_listeners` are told its EVSE id
  (the transactions service then sends TransactionEvent Updated, triggerReason
  ChargingRateChanged). Changes made by the CSMS's own profiles are not reported: errata
  2025-01 [776], "A trigger reason ChargingRateChanged must only be sent, when an external
  actor (not CSMS) changes the charging rate".
* **Dynamic profiles** (2.1 K28/K29): UpdateDynamicSchedule values, and a pull at every
  ``dynUpdateInterval`` (on the same timer as the period boundaries).
* **Offline validity** (2.1 maxOfflineDuration): :meth:`SmartChargingService.set_online` is told
  when the CSMS link goes down and up; a profile stops counting ``maxOfflineDuration`` after the
  link went down, and with ``invalidAfterOfflineDuration`` it is removed for good.
* **Vehicle needs and allowed energy transfer** (K15-K17, Q): needs go to the CSMS; the modes of
  NotifyAllowedEnergyTransfer gate discharge (no bidirectional mode allowed: the vehicle is
  treated as one that does not allow discharge) until the transaction ends.
* **The external set-point / limits port** (2.1 operation modes ExternalSetpoint and
  ExternalLimits): :meth:`SmartChargingService.set_external_inputs` /
  :meth:`~SmartChargingService.clear_external_inputs`, called by the external system (a site
  controller; ``station sim external`` in the simulation). The values are
  :class:`~station.power.ExternalInputs`: they apply only while the EVSE's period is in the
  matching mode (the energy manager's rule 3), and are held in memory: the external system
  supplies them again after a restart, and until it does its modes hold 0 W (ExternalSetpoint)
  or charge within the schedule alone (ExternalLimits).
* **AFRRSignal** (2.1 CentralFrequency): :meth:`SmartChargingService.afrr_signal` takes the
  signal only while some EVSE's period in force has a v2xSignalWattCurve (else reasonCode
  NoSignalWattCurve); a signal with a future ``timestamp`` waits for it on the same timer as the
  period boundaries. One signal is in force for the whole station (the request names no EVSE);
  it lapses when no period in force has a signal-watt curve any more, so a later
  CentralFrequency period starts from its baseline, not from a stale activation.

Electrical parameters for A <-> W (K01.FR.50), documented here because the composite schedule
depends on them: every EVSE of this station is DC, so ``W = A * V`` with ``V`` the EVSE's
nominal DC voltage, taken as the voltage at which its ratings meet
(``max_charge_power_w / max_current_a``, 400 V with the defaults). EVSE 0, the grid connection,
is AC at the nominal 230 V line-to-neutral, 3 phases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from station.clock import Clock
from station.errors import StoreError
from station.power import (
    EvseRating,
    ExternalInputs,
    GridState,
    PowerCommand,
    PowerInputs,
    PowerValueError,
    ScheduleNow,
    VehicleLimits,
    compute_command,
)
from station.smartcharging.composite import (
    CompositeSchedule,
    ElectricalParams,
    PeriodValue,
    composite_schedule,
    next_change_after,
)
from station.smartcharging.dynamic import ScheduleUpdate, apply_schedule_update, pulls_due
from station.smartcharging.external import (
    ExternalLimit,
    external_profile,
    significant_change,
)
from station.smartcharging.model import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingSchedule,
    OcppVersion,
    RateUnit,
    SmartChargingValueError,
    TransactionInfo,
)
from station.smartcharging.needs import (
    ChargingNeeds,
    ChargingNeedsStatus,
    EnergyTransferMode,
    discharge_permitted,
)
from station.smartcharging.store import (
    ClearCriteria,
    ProfileCriteria,
    ProfileSet,
)
from station.smartcharging.validation import (
    ReasonCode,
    Rejection,
    SmartChargingLimits,
    validate,
)

__all__ = [
    "NO_SIGNAL_WATT_CURVE",
    "AfrrRejection",
    "CsmsNotifier",
    "EvseElectrical",
    "GridView",
    "MemoryProfileStore",
    "NoTransactions",
    "NominalGrid",
    "PowerPort",
    "ProfileStore",
    "RecordingNotifier",
    "SimulatedPowerPort",
    "SimulatedVehicles",
    "SmartChargingService",
    "StaticTransactions",
    "TransactionView",
    "VehicleView",
    "dc_electrical",
    "schedule_now",
]

log = logging.getLogger(__name__)

GRID_NOMINAL_VOLTAGE_V = 230.0
"""Nominal line-to-neutral voltage of the grid connection (EVSE 0), for A <-> W (K01.FR.50)."""

DEFAULT_ENTRIES_MAX = 48
"""Profiles the station holds when the device model gives no Entries maxLimit."""

NO_SIGNAL_WATT_CURVE = "NoSignalWattCurve"
"""AFRRSignal reasonCode (appendix "Reason codes"): no period in force has a v2xSignalWattCurve."""

AFRR_PENDING_MAX = 64
"""AFRRSignals with a future ``timestamp`` the station holds at once (more are rejected)."""

_NO_EXTERNAL = ExternalInputs()


@dataclass(frozen=True, slots=True)
class AfrrRejection:
    """AFRRSignalResponse status Rejected with its statusInfo.

    Attributes:
        reason_code: ``NoSignalWattCurve`` or ``TooManyElements``.
        additional_info: what was wrong, for the CSMS's operator.
    """

    reason_code: str
    additional_info: str


# --- ports ---------------------------------------------------------------------------------------


class TransactionView(Protocol):
    """The running transactions, as smart charging needs them."""

    def active_transactions(self) -> Mapping[int, TransactionInfo]:
        """The transaction per EVSE id that has one now."""
        ...

    def energy_allowed(self, evse_id: int) -> bool:
        """Whether the EVSE may transfer energy now (authorized, power path closed)."""
        ...


class NoTransactions:
    """The default :class:`TransactionView` until the transactions service plugs in: none."""

    def active_transactions(self) -> Mapping[int, TransactionInfo]:
        return {}

    def energy_allowed(self, evse_id: int) -> bool:
        return False


def dc_electrical(max_charge_power_w: float, max_current_a: float) -> ElectricalParams:
    """A DC EVSE's electrical parameters for A <-> W (K01.FR.50): its nominal voltage is where
    its power and current ratings meet (``max_charge_power_w / max_current_a``)."""
    return ElectricalParams(max_charge_power_w / max_current_a, dc=True)


class StaticTransactions:
    """A settable :class:`TransactionView` (tests, demo). Call ``service.refresh()`` after a set."""

    def __init__(self, transactions: Mapping[int, TransactionInfo] | None = None) -> None:
        self.transactions: dict[int, TransactionInfo] = dict(transactions or {})

    def active_transactions(self) -> Mapping[int, TransactionInfo]:
        return dict(self.transactions)

    def energy_allowed(self, evse_id: int) -> bool:
        return evse_id in self.transactions


class VehicleView(Protocol):
    """The connected vehicle's present limits per EVSE."""

    def vehicle_limits(self, evse_id: int) -> VehicleLimits: ...


_NO_VEHICLE = VehicleLimits(
    connected=False, max_charge_power_w=0.0, max_discharge_power_w=0.0, discharge_allowed=False
)


class SimulatedVehicles:
    """In-process :class:`VehicleView`: no vehicle unless :meth:`set` says so.

    Listeners (the service) are told of every change, so the energy manager re-evaluates.
    """

    def __init__(self) -> None:
        self._limits: dict[int, VehicleLimits] = {}
        self._listeners: list[Callable[[], None]] = []

    def vehicle_limits(self, evse_id: int) -> VehicleLimits:
        return self._limits.get(evse_id, _NO_VEHICLE)

    def set(self, evse_id: int, limits: VehicleLimits | None) -> None:
        """Plug a vehicle with these limits in (``None``: unplug it)."""
        if limits is None:
            self._limits.pop(evse_id, None)
        else:
            self._limits[evse_id] = limits
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)


class GridView(Protocol):
    """The grid connection: protection window and limits."""

    def grid_state(self) -> GridState: ...


class NominalGrid:
    """In-process :class:`GridView`: the grid is in its window and imposes no limit."""

    def grid_state(self) -> GridState:
        return GridState(in_window=True)


class PowerPort(Protocol):
    """Where the energy manager's commands go (vehicle session and inverter)."""

    def apply(self, command: PowerCommand) -> None: ...


class SimulatedPowerPort:
    """In-process :class:`PowerPort`: records the last command per EVSE and every change."""

    def __init__(self) -> None:
        self.last: dict[int, PowerCommand] = {}
        self.history: list[PowerCommand] = []

    def apply(self, command: PowerCommand) -> None:
        if self.last.get(command.evse_id) != command:
            self.history.append(command)
        self.last[command.evse_id] = command


class CsmsNotifier(Protocol):
    """Messages the station sends the CSMS about smart charging (each returns at once)."""

    def charging_limit_set(self, limit: ExternalLimit, schedule: ChargingSchedule) -> None:
        """NotifyChargingLimit (K11/K12): an external limit was set or changed significantly."""
        ...

    def charging_limit_cleared(self, evse_id: int, source: str) -> None:
        """ClearedChargingLimit (K13): the external limit of ``source`` was released."""
        ...

    def pull_dynamic_update(self, profile_id: int) -> None:
        """PullDynamicScheduleUpdate (2.1 K29); the answer comes back through
        :meth:`SmartChargingService.dynamic_update_received`."""
        ...

    def ev_charging_needs(self, evse_id: int, needs: ChargingNeeds, at: datetime) -> None:
        """NotifyEVChargingNeeds (K15-K17, Q); the status comes back through
        :meth:`SmartChargingService.charging_needs_answered`."""
        ...

    def ev_charging_schedule(
        self, evse_id: int, time_base: datetime, schedule: ChargingSchedule
    ) -> None:
        """NotifyEVChargingSchedule (K15): the schedule the EV chose."""
        ...


class RecordingNotifier:
    """In-process :class:`CsmsNotifier`: records ``(message, arguments...)`` tuples."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []

    def charging_limit_set(self, limit: ExternalLimit, schedule: ChargingSchedule) -> None:
        self.sent.append(("NotifyChargingLimit", limit, schedule))

    def charging_limit_cleared(self, evse_id: int, source: str) -> None:
        self.sent.append(("ClearedChargingLimit", evse_id, source))

    def pull_dynamic_update(self, profile_id: int) -> None:
        self.sent.append(("PullDynamicScheduleUpdate", profile_id))

    def ev_charging_needs(self, evse_id: int, needs: ChargingNeeds, at: datetime) -> None:
        self.sent.append(("NotifyEVChargingNeeds", evse_id, needs, at))

    def ev_charging_schedule(
        self, evse_id: int, time_base: datetime, schedule: ChargingSchedule
    ) -> None:
        self.sent.append(("NotifyEVChargingSchedule", evse_id, time_base, schedule))


class ProfileStore(Protocol):
    """Where installed profiles are kept across restarts; each call is committed on return."""

    def save(self, profiles: Iterable[ChargingProfile]) -> None:
        """Install or replace (by id) these profiles."""
        ...

    def delete(self, profile_ids: Iterable[int]) -> None:
        """Remove these profiles."""
        ...

    def load_all(self) -> list[ChargingProfile]:
        """Every stored profile."""
        ...


class MemoryProfileStore:
    """In-process :class:`ProfileStore` (tests; a service without a database)."""

    def __init__(self, profiles: Iterable[ChargingProfile] = ()) -> None:
        self.profiles: dict[int, ChargingProfile] = {p.id: p for p in profiles}

    def save(self, profiles: Iterable[ChargingProfile]) -> None:
        self.profiles.update((p.id, p) for p in profiles)

    def delete(self, profile_ids: Iterable[int]) -> None:
        for profile_id in profile_ids:
            self.profiles.pop(profile_id, None)

    def load_all(self) -> list[ChargingProfile]:
        return [self.profiles[i] for i in sorted(self.profiles)]


# --- the service ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvseElectrical:
    """One EVSE's ratings and the parameters its composite schedule is converted with."""

    evse_id: int
    rating: EvseRating
    electrical: ElectricalParams


class SmartChargingService:
    """Holds the profiles of one run and keeps the power commands in step with them.

    Args:
        evses: the EVSEs with their ratings and electrical parameters.
        clock: the station's clock.
        limits_for: the device model limits for a negotiated version (SmartChargingCtrlr).
        transactions: running transactions (replaceable attribute: the transactions service
            plugs in its own and calls :meth:`refresh` when one starts or ends).
        vehicles: vehicle limits per EVSE.
        grid: grid state.
        power: where commands go.
        operative: whether an EVSE is Operative (G03/G04).
        on_count: told the number of installed profiles after every change (for
            SmartChargingCtrlr.Entries).
        store: where profiles are persisted; they are loaded from it here.
        notifier: where messages to the CSMS go (replaceable attribute, like
            ``transactions``: the OCPP link plugs in after construction).
        limit_change_significance_pct: SmartChargingCtrlr.LimitChangeSignificance, read at
            each external limit change.

    Raises:
        StoreError: the stored profiles could not be read.
    """

    def __init__(
        self,
        evses: tuple[EvseElectrical, ...],
        *,
        clock: Clock,
        limits_for: Callable[[OcppVersion], SmartChargingLimits],
        transactions: TransactionView | None = None,
        vehicles: VehicleView | None = None,
        grid: GridView | None = None,
        power: PowerPort | None = None,
        operative: Callable[[int], bool] = lambda evse_id: True,
        on_count: Callable[[int], None] = lambda count: None,
        store: ProfileStore | None = None,
        notifier: CsmsNotifier | None = None,
        limit_change_significance_pct: Callable[[], float] = lambda: 1.0,
        open_transaction_ids: Collection[str] = (),
    ) -> None:
        self.evses = {e.evse_id: e for e in evses}
        self._open_at_start = frozenset(open_transaction_ids)
        self.clock = clock
        self.limits_for = limits_for
        self.transactions: TransactionView = transactions or NoTransactions()
        self.vehicles: VehicleView = vehicles or SimulatedVehicles()
        self.grid: GridView = grid or NominalGrid()
        self.power: PowerPort = power or SimulatedPowerPort()
        self.operative = operative
        self.on_count = on_count
        self.store: ProfileStore = store or MemoryProfileStore()
        self.notifier: CsmsNotifier = notifier or RecordingNotifier()
        self.limit_change_significance_pct = limit_change_significance_pct
        self.profiles = ProfileSet()
        #: When the CSMS link went down; None while it is up (maxOfflineDuration).
        self.offline_since: datetime | None = None
        #: Last (limit, isGridCritical) notified per (EVSE, source) of an external limit.
        self._notified_limits: dict[tuple[int, str], tuple[float, bool]] = {}
        #: When a PullDynamicScheduleUpdate was last asked for, per profile id.
        self._last_pulls: dict[int, datetime] = {}
        #: NotifyAllowedEnergyTransfer per EVSE: (transaction id, allowed modes).
        self._allowed: dict[int, tuple[str, frozenset[EnergyTransferMode]]] = {}
        #: The last needs each EVSE's vehicle reported, and the CSMS's answer to them.
        self.needs: dict[int, ChargingNeeds] = {}
        self.needs_status: dict[int, ChargingNeedsStatus] = {}
        #: What the external system (site controller) supplies per EVSE (no afrr_signal here).
        self._external: dict[int, ExternalInputs] = {}
        #: The AFRRSignal in force: (its timestamp, signal); and those waiting for their time.
        self._afrr: tuple[datetime, int] | None = None
        self._afrr_pending: dict[datetime, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: The last command computed per EVSE (its ``power_w`` is the EVSE's charging rate).
        self._commands: dict[int, PowerCommand] = {}
        #: Subscribers told the EVSE id whose ongoing transaction's charging rate an external
        #: actor changed by more than LimitChangeSignificance (K13.FR.03). Append to subscribe.
        self.rate_listeners: list[Callable[[int], None]] = []
        self._load()
        self.grid_electrical = ElectricalParams(GRID_NOMINAL_VOLTAGE_V, phases=3)
        subscribe = getattr(self.vehicles, "subscribe", None)
        if subscribe is not None:
            subscribe(self.refresh)

    # ------------------------------------------------------------------------ profiles (K01)

    def set_profile(self, profile: ChargingProfile, version: OcppVersion) -> Rejection | None:
        """SetChargingProfile: validate and install; the commands follow at once.

        Returns:
            None when installed, else the rejection to send (nothing is installed).

        Raises:
            StoreError: the profile could not be persisted (nothing is installed).
        """
        now = self.clock.now()
        running = {e: tx.transaction_id for e, tx in self._transactions().items()}
        rejection = validate(
            profile,
            evse_ids=tuple(self.evses),
            active_transactions=running,
            installed=self.profiles,
            limits=self.limits_for(version),
            now=now,
        )
        if rejection is not None:
            log.info(
                "charging profile %d on EVSE %d rejected: %s %s",
                profile.id,
                profile.evse_id,
                rejection.reason_code,
                rejection.additional_info,
            )
            return rejection
        self.store.save([profile])  # committed before the CSMS hears Accepted
        self._replace(self.profiles.install(profile))
        log.info(
            "charging profile %d (%s, stack %d) installed on EVSE %d",
            profile.id,
            profile.purpose,
            profile.stack_level,
            profile.evse_id,
        )
        return None

    def set_start_profile(self, profile: ChargingProfile, version: OcppVersion) -> Rejection | None:
        """RequestStartTransaction ``chargingProfile`` (F01/K05): validate and install it.

        The profile (a TxProfile on the EVSE chosen for the remote start) has no transaction
        yet; :meth:`transaction_started` binds it to the one that starts on its EVSE, and
        :meth:`transaction_ended` removes it.

        Returns:
            None when installed, else the rejection (RequestStartTransaction is Rejected).

        Raises:
            StoreError: the profile could not be persisted (nothing is installed).
        """
        rejection = validate(
            profile,
            evse_ids=tuple(self.evses),
            active_transactions={},
            installed=self.profiles,
            limits=self.limits_for(version),
            now=self.clock.now(),
            from_request_start_transaction=True,
        )
        if rejection is None and profile.transaction_id is not None:
            # The transaction does not exist yet: no transactionId can name it.
            rejection = Rejection(
                ReasonCode.INVALID_PROFILE,
                "a RequestStartTransaction profile cannot have a transactionId (K05)",
            )
        if rejection is not None:
            log.info(
                "charging profile %d of RequestStartTransaction on EVSE %d rejected: %s %s",
                profile.id,
                profile.evse_id,
                rejection.reason_code,
                rejection.additional_info,
            )
            return rejection
        self.store.save([profile])
        self._replace(self.profiles.install(profile))
        log.info(
            "charging profile %d (TxProfile of a remote start) installed on EVSE %d",
            profile.id,
            profile.evse_id,
        )
        return None

    def clear(self, *, profile_id: int | None, criteria: ClearCriteria | None) -> tuple[int, ...]:
        """ClearChargingProfile (K10): the ids removed (none = Unknown).

        Raises:
            StoreError: the removal could not be persisted (nothing is removed).
        """
        profiles, gone = self.profiles.clear(profile_id=profile_id, criteria=criteria)
        if gone:
            self.store.delete(gone)
            log.info("charging profiles %s cleared", list(gone))
            self._replace(profiles)
        return gone

    # ------------------------------------------------------- transactions (K01, K05, F01)

    def transaction_started(self, evse_id: int, transaction_id: str) -> None:
        """A transaction started on ``evse_id``: a TxProfile that came with its
        RequestStartTransaction now belongs to it (K05)."""
        profiles = self.profiles.bind_transaction(evse_id, transaction_id)
        if profiles is self.profiles:
            return
        bound = [p for p in profiles if p != self.profiles.get(p.id)]
        log.info(
            "charging profiles %s bound to transaction %s on EVSE %d",
            [p.id for p in bound],
            transaction_id,
            evse_id,
        )
        try:
            self.store.save(bound)
        except StoreError:
            # Memory still binds them; after a restart no TxProfile is loaded anyway.
            log.exception("EVSE %d: could not persist the binding of %s", evse_id, transaction_id)
        self._replace(profiles)

    def transaction_ended(self, evse_id: int, transaction_id: str) -> None:
        """A transaction ended: its TxProfiles go with it (a TxProfile lives as long as its
        transaction, K01), also the unbound ones of a remote start on the same EVSE. What the
        CSMS allowed for it (NotifyAllowedEnergyTransfer) and the vehicle's needs go too."""
        allowed = self._allowed.get(evse_id)
        if allowed is not None and allowed[0] == transaction_id:
            del self._allowed[evse_id]
        self.needs.pop(evse_id, None)
        self.needs_status.pop(evse_id, None)
        profiles, gone = self.profiles.remove_transaction(transaction_id, evse_id)
        if not gone:
            return
        log.info(
            "EVSE %d: transaction %s ended; TxProfiles %s removed",
            evse_id,
            transaction_id,
            list(gone),
        )
        self._forget(gone)
        self._replace(profiles)

    def _forget(self, gone: Iterable[int]) -> None:
        """Delete profiles the station dropped on its own; a store failure is only logged
        (they are dropped again after a restart: expired, or TxProfiles)."""
        try:
            self.store.delete(gone)
        except StoreError:
            log.exception("could not delete charging profiles %s from the store", list(gone))

    def _load(self) -> None:
        """Install the stored profiles; drop stored TxProfiles whose transactions are over (those
        of transactions still open in the store stay: the transactions service resumes them, or
        ends them with PowerLoss and :meth:`transaction_ended` removes them)."""
        stored = self.store.load_all()
        stale = [
            p.id
            for p in stored
            if p.purpose == ChargingProfilePurpose.TX_PROFILE
            and p.transaction_id not in self._open_at_start
        ]
        if stale:
            log.info("TxProfiles %s dropped at start: their transactions ended", stale)
            self._forget(stale)
        self.profiles = ProfileSet(p for p in stored if p.id not in stale)
        if stored:
            log.info("%d charging profile(s) loaded", len(self.profiles))
        self.on_count(len(self.profiles))

    def query(self, criteria: ProfileCriteria) -> tuple[ChargingProfile, ...]:
        """GetChargingProfiles (K09): the matching profiles."""
        return self.profiles.query(criteria)

    def _replace(self, profiles: ProfileSet) -> None:
        self.profiles = profiles
        self.on_count(len(profiles))
        self.refresh()

    def _transactions(self) -> Mapping[int, TransactionInfo]:
        return self.transactions.active_transactions()

    # -------------------------------------------------------- external limits (K11-K14)

    def set_external_limit(self, limit: ExternalLimit) -> bool:
        """An external system sets (or changes) its limit on the station or one EVSE.

        The limit replaces the one of the same source on the same EVSE, applies at once, and
        is reported by GetChargingProfiles with its source. NotifyChargingLimit goes to the
        CSMS when it is the first of its (EVSE, source), when it changed by more than
        LimitChangeSignificance since the last one notified, or when its grid criticality
        changed (K11/K12 step 4).

        Returns:
            Whether the CSMS is notified.

        Raises:
            SmartChargingValueError: the EVSE is unknown (nothing changes).
            StoreError: the limit could not be persisted (nothing changes).
        """
        if limit.evse_id != 0 and limit.evse_id not in self.evses:
            raise SmartChargingValueError(
                f"the station has no EVSE {limit.evse_id} (EVSEs: {sorted(self.evses)}; 0 is "
                "the whole station)"
            )
        profile = external_profile(limit, self.clock.now())
        rates = self._rates()
        self.store.save([profile])
        log.info(
            "external limit from %s on EVSE %d: %.1f W (discharge %s W)",
            limit.source,
            limit.evse_id,
            limit.power_w,
            limit.discharge_limit_w,
        )
        self._replace(self.profiles.install(profile))
        self._rates_changed(rates)
        key = (limit.evse_id, str(limit.source))
        previous = self._notified_limits.get(key)
        significant = significant_change(
            None if previous is None else previous[0],
            limit.power_w,
            self.limit_change_significance_pct(),
        )
        if not significant and (previous is None or previous[1] == limit.is_grid_critical):
            return False
        self._notified_limits[key] = (limit.power_w, limit.is_grid_critical)
        self.notifier.charging_limit_set(limit, profile.schedule)
        return True

    def clear_external_limit(self, evse_id: int, source: str) -> bool:
        """The external system releases its limit (K13): ClearedChargingLimit follows.

        Returns:
            Whether there was such a limit (False: nothing changes, nothing is sent).

        Raises:
            StoreError: the removal could not be persisted (nothing changes).
        """
        profiles, gone = self.profiles.clear_limit_source(source, evse_id)
        if not gone:
            return False
        rates = self._rates()
        self.store.delete(gone)
        log.info("external limit from %s on EVSE %d released", source, evse_id)
        self._replace(profiles)
        self._rates_changed(rates)
        self._notified_limits.pop((evse_id, source), None)
        self.notifier.charging_limit_cleared(evse_id, source)
        return True

    # ------------------------------------------------------ dynamic profiles (2.1 K28/K29)

    def update_dynamic_schedule(self, profile_id: int, update: ScheduleUpdate) -> Rejection | None:
        """UpdateDynamicSchedule: new values for a Dynamic profile; the commands follow.

        Returns:
            None when applied, else the rejection to send (nothing changes).

        Raises:
            StoreError: the profile could not be persisted (nothing changes).
        """
        now = self.clock.now()
        result = apply_schedule_update(self.profiles.get(profile_id), update, now)
        if not isinstance(result, Rejection):
            # The new values must be as valid as SetChargingProfile's (e.g. a setpoint needs an
            # operationMode that follows one); Dynamic profiles exist in 2.1 only.
            running = {e: tx.transaction_id for e, tx in self._transactions().items()}
            result = (
                validate(
                    result,
                    evse_ids=tuple(self.evses),
                    active_transactions=running,
                    installed=self.profiles,
                    limits=self.limits_for(OcppVersion.V2_1),
                    now=now,
                )
                or result
            )
        if isinstance(result, Rejection):
            log.info(
                "dynamic update of profile %d rejected: %s", profile_id, result.additional_info
            )
            return result
        self.store.save([result])
        log.info("dynamic profile %d updated", profile_id)
        self._replace(self.profiles.install(result))
        return None

    def dynamic_update_received(self, profile_id: int, update: ScheduleUpdate | None) -> None:
        """The answer to a PullDynamicScheduleUpdate: apply its values (None: none given)."""
        if update is None:
            return
        try:
            self.update_dynamic_schedule(profile_id, update)
        except StoreError:
            log.exception("dynamic profile %d: the pulled update could not be stored", profile_id)

    def _pull_dynamic(self, now: datetime) -> datetime | None:
        """Ask for the Dynamic profiles whose interval ran out; the next time one does."""
        self._last_pulls = {k: v for k, v in self._last_pulls.items() if k in self.profiles}
        due, later = pulls_due(self.profiles, self._last_pulls, now)
        for profile_id in due:
            self._last_pulls[profile_id] = now
            self.notifier.pull_dynamic_update(profile_id)
        return later

    # ----------------------------------------------------- offline (2.1 maxOfflineDuration)

    def set_online(self, online: bool) -> None:
        """The CSMS link went up (True) or down (False); profiles with maxOfflineDuration
        stop counting that long after it went down."""
        if online == (self.offline_since is None):
            return
        self.offline_since = None if online else self.clock.now()
        log.info("smart charging: CSMS %s", "online" if online else "offline")
        self.refresh()

    # ----------------------------------------------- vehicle needs, allowed transfer (K15-K17)

    def ev_charging_needs(self, evse_id: int, needs: ChargingNeeds) -> None:
        """A vehicle session reports what its vehicle needs: NotifyEVChargingNeeds follows."""
        self.needs[evse_id] = needs
        self.needs_status.pop(evse_id, None)
        log.info("EVSE %d: vehicle needs %s reported", evse_id, needs.requested_energy_transfer)
        self.notifier.ev_charging_needs(evse_id, needs, self.clock.now())

    def charging_needs_answered(self, evse_id: int, status: ChargingNeedsStatus) -> None:
        """The CSMS's answer to NotifyEVChargingNeeds. Accepted / Processing: a profile is
        coming; Rejected / NoChargingProfile: the installed profiles keep applying (K15)."""
        self.needs_status[evse_id] = status
        log.info("EVSE %d: NotifyEVChargingNeeds answered %s", evse_id, status)

    def ev_charging_schedule(
        self, evse_id: int, time_base: datetime, schedule: ChargingSchedule
    ) -> None:
        """A vehicle session reports the schedule its vehicle chose: NotifyEVChargingSchedule."""
        self.notifier.ev_charging_schedule(evse_id, time_base, schedule)

    def allowed_energy_transfer(
        self, transaction_id: str, modes: Iterable[EnergyTransferMode]
    ) -> bool:
        """NotifyAllowedEnergyTransfer: the modes the CSMS allows for a transaction.

        Without a bidirectional mode among them the vehicle does not discharge, whatever the
        schedule says, until the transaction ends.

        Returns:
            False (Rejected) when no running transaction has this id; nothing changes then.
        """
        running = self._transactions()
        evse_id = next(
            (e for e, tx in running.items() if tx.transaction_id == transaction_id), None
        )
        if evse_id is None:
            return False
        allowed = frozenset(modes)
        self._allowed[evse_id] = (transaction_id, allowed)
        log.info(
            "EVSE %d: CSMS allows %s for transaction %s",
            evse_id,
            sorted(allowed),
            transaction_id,
        )
        self.refresh()
        return True

    def discharge_allowed_by_csms(self, evse_id: int) -> bool:
        """False when NotifyAllowedEnergyTransfer left out every bidirectional mode for the
        EVSE's running transaction (for status displays)."""
        allowed = self._allowed.get(evse_id)
        return allowed is None or discharge_permitted(allowed[1])

    # ------------------------------- external set-point / limits (ExternalSetpoint/Limits)

    def _targets(self, evse_id: int) -> tuple[int, ...]:
        """The EVSEs ``evse_id`` names (0: every EVSE); raises for an unknown one."""
        if evse_id == 0:
            return tuple(self.evses)
        if evse_id not in self.evses:
            raise SmartChargingValueError(
                f"the station has no EVSE {evse_id} (EVSEs: {sorted(self.evses)}; 0 is every EVSE)"
            )
        return (evse_id,)

    def set_external_inputs(
        self,
        evse_id: int,
        *,
        setpoint_w: float | None = None,
        limit_w: float | None = None,
        discharge_limit_w: float | None = None,
    ) -> None:
        """The external system (a site controller) supplies its set-point and limits.

        The call states everything the external system supplies for the EVSE: it replaces
        what was set before, and a value left out (None) is no longer set. The values apply
        only while the EVSE's period is in the matching mode: ``setpoint_w`` under
        ExternalSetpoint (clamped to every limit), ``limit_w`` and ``discharge_limit_w`` under
        ExternalLimits. The commands follow at once.

        Args:
            evse_id: the EVSE; 0 sets the same values on every EVSE.
            setpoint_w: signed target, W (+ charge, - discharge).
            limit_w: charge cap, W, >= 0 (0: no charging).
            discharge_limit_w: discharge cap, W, <= 0 as OCPP's ``dischargeLimit`` (0: no
                discharging).

        Raises:
            SmartChargingValueError: an unknown EVSE, or a value that is not finite or has the
                wrong sign (nothing changes).
        """
        targets = self._targets(evse_id)
        try:
            inputs = ExternalInputs(
                setpoint_w=setpoint_w, limit_w=limit_w, discharge_limit_w=discharge_limit_w
            )
        except (PowerValueError, TypeError) as exc:
            raise SmartChargingValueError(f"external inputs for EVSE {evse_id}: {exc}") from None
        rates = self._rates()
        for target in targets:
            self._external[target] = inputs
        log.info(
            "EVSE %d: external set-point %s W, limit %s W, discharge limit %s W",
            evse_id,
            setpoint_w,
            limit_w,
            discharge_limit_w,
        )
        self.refresh()
        self._rates_changed(rates)

    def clear_external_inputs(self, evse_id: int) -> bool:
        """The external system withdraws its set-point and limits (0: from every EVSE).

        Returns:
            Whether any were set (False: nothing changes).

        Raises:
            SmartChargingValueError: an unknown EVSE (nothing changes).
        """
        rates = self._rates()
        gone = [e for e in self._targets(evse_id) if self._external.pop(e, None) is not None]
        if not gone:
            return False
        log.info("EVSEs %s: external set-point and limits withdrawn", gone)
        self.refresh()
        self._rates_changed(rates)
        return True

    # ------------------------------------------------ charging rate changes (K12, K13.FR.03)

    def charging_rate_w(self, evse_id: int) -> float | None:
        """The EVSE's charging rate as last commanded (W, signed as in DESIGN.md); None before
        the first evaluation."""
        command = self._commands.get(evse_id)
        return None if command is None else command.power_w

    def _rates(self) -> dict[int, float]:
        """The commanded rate of every EVSE with an ongoing transaction, before a change."""
        transactions = self._transactions()
        return {
            evse_id: command.power_w
            for evse_id, command in self._commands.items()
            if evse_id in transactions
        }

    def _rates_changed(self, before: Mapping[int, float]) -> None:
        """K12 / K13.FR.03: tell the rate listeners each EVSE whose ongoing transaction's rate
        changed by more than LimitChangeSignificance since ``before`` (an EVSE that had no
        ongoing transaction before the change has no rate to compare with)."""
        after = self._rates()
        significance_pct = self.limit_change_significance_pct()
        for evse_id, rate_w in after.items():
            previous_w = before.get(evse_id)
            if previous_w is None or not significant_change(previous_w, rate_w, significance_pct):
                continue
            log.info(
                "EVSE %d: charging rate changed by an external actor: %.1f W -> %.1f W",
                evse_id,
                previous_w,
                rate_w,
            )
            for listener in list(self.rate_listeners):
                listener(evse_id)

    def external_inputs(self, evse_id: int) -> ExternalInputs:
        """What the external system supplies for an EVSE now, with the AFRRSignal in force."""
        signal = None if self._afrr is None else float(self._afrr[1])
        return replace(self._external.get(evse_id, _NO_EXTERNAL), afrr_signal=signal)

    # ------------------------------------------------------------ AFRRSignal (2.1 Q, aFRR)

    def afrr_signal(self, timestamp: datetime, signal: int) -> AfrrRejection | None:
        """AFRRSignal: the activation signal for CentralFrequency, from ``timestamp`` on.

        Under CentralFrequency each EVSE's target is its period's ``v2xBaseline`` plus the
        period's v2xSignalWattCurve at ``signal`` (the energy manager's rule 3). A signal
        whose ``timestamp`` is not later than now applies at once (unless a signal with a
        later timestamp is already in force: then it is stale and only acknowledged); a later
        one waits for its time on the station's timer.

        Args:
            timestamp: when the signal becomes active (tz-aware).
            signal: the value on the x axis of v2xSignalWattCurve.

        Returns:
            None when accepted, else the rejection to send: reasonCode NoSignalWattCurve when
            no EVSE's period in force has a v2xSignalWattCurve, TooManyElements when
            :data:`AFRR_PENDING_MAX` future signals already wait (nothing changes).

        Raises:
            SmartChargingValueError: a naive ``timestamp`` or a ``signal`` that is not an
                integer (a bug at the edge; nothing changes).
        """
        if timestamp.tzinfo is None:
            raise SmartChargingValueError("the AFRRSignal timestamp must be timezone-aware")
        if isinstance(signal, bool) or not isinstance(signal, int):
            raise SmartChargingValueError(f"the AFRRSignal signal must be an integer: {signal!r}")
        now = self.clock.now()
        transactions = self._transactions()
        with_curve = [
            evse_id
            for evse_id, evse in self.evses.items()
            if self._schedule_now(evse, transactions.get(evse_id), now).signal_watt_curve
        ]
        if not with_curve:
            log.info("AFRRSignal %d rejected: no period in force has a v2xSignalWattCurve", signal)
            return AfrrRejection(
                NO_SIGNAL_WATT_CURVE,
                "no charging schedule period in force has a v2xSignalWattCurve",
            )
        if timestamp > now:
            if timestamp not in self._afrr_pending and len(self._afrr_pending) >= AFRR_PENDING_MAX:
                log.info(
                    "AFRRSignal %d rejected: %d signals already wait", signal, AFRR_PENDING_MAX
                )
                return AfrrRejection(
                    "TooManyElements",
                    f"{AFRR_PENDING_MAX} AFRRSignals with a future timestamp already wait",
                )
            self._afrr_pending[timestamp] = signal
            log.info("AFRRSignal %d accepted for %s (EVSEs %s)", signal, timestamp, with_curve)
        elif self._afrr is not None and timestamp < self._afrr[0]:
            log.info(
                "AFRRSignal %d of %s is older than the one in force (%s): ignored",
                signal,
                timestamp,
                self._afrr[0],
            )
            return None
        else:
            self._afrr = (timestamp, signal)
            log.info("AFRRSignal %d in force (EVSEs %s)", signal, with_curve)
        self.refresh()
        return None

    def _afrr_in_force(self, now: datetime, schedules: Mapping[int, ScheduleNow]) -> float | None:
        """The AFRRSignal in force now: waiting ones whose time came replace it; it lapses
        when no period in force has a signal-watt curve."""
        for timestamp in sorted(t for t in self._afrr_pending if t <= now):
            signal = self._afrr_pending.pop(timestamp)
            if self._afrr is None or timestamp >= self._afrr[0]:
                self._afrr = (timestamp, signal)
                log.info("AFRRSignal %d of %s in force", signal, timestamp)
        if self._afrr is not None and not any(s.signal_watt_curve for s in schedules.values()):
            log.info(
                "AFRRSignal %d lapsed: no period in force has a v2xSignalWattCurve", self._afrr[1]
            )
            self._afrr = None
        return None if self._afrr is None else float(self._afrr[1])

    # --------------------------------------------------------------- composite schedule (K08)

    def electrical(self, evse_id: int) -> ElectricalParams | None:
        """A <-> W parameters of an EVSE (0: the grid connection); None for an unknown EVSE."""
        if evse_id == 0:
            return self.grid_electrical
        evse = self.evses.get(evse_id)
        return None if evse is None else evse.electrical

    def composite(
        self, evse_id: int, duration_s: int, rate_unit: RateUnit
    ) -> CompositeSchedule | None:
        """GetCompositeSchedule: from now, for ``duration_s``; None for an unknown EVSE."""
        electrical = self.electrical(evse_id)
        if electrical is None:
            return None
        now = self.clock.now()
        return composite_schedule(
            self.profiles,
            evse_id=evse_id,
            start=now,
            duration_s=duration_s,
            rate_unit=rate_unit,
            electrical=electrical,
            now=now,
            transaction=self._transactions().get(evse_id) if evse_id else None,
            offline_since=self.offline_since,
        )

    def rating_limit(self, evse_id: int, rate_unit: RateUnit) -> float:
        """The limit where no profile limits: the EVSE's rating (all EVSEs' for EVSE 0)."""
        evses = list(self.evses.values()) if evse_id == 0 else [self.evses[evse_id]]
        power_w = sum(e.rating.max_charge_power_w for e in evses)
        if rate_unit == RateUnit.W:
            return power_w
        if evse_id != 0:
            return evses[0].rating.max_current_a
        grid = self.grid_electrical
        return power_w / (grid.nominal_voltage_v * grid.phases)

    # -------------------------------------------------------------------- the energy manager

    def refresh(self) -> None:
        """Re-evaluate every EVSE now, push the commands, and wake at the next boundary."""
        now = self.clock.now()
        profiles, expired = self.profiles.remove_expired(now)
        if self.offline_since is not None:
            profiles, invalid = profiles.remove_invalid_after_offline(self.offline_since, now)
            if invalid:
                log.info(
                    "charging profiles %s invalid for good: offline longer than their "
                    "maxOfflineDuration",
                    list(invalid),
                )
            expired += invalid
        if expired:
            self._forget(expired)
            self.profiles = profiles
            self.on_count(len(profiles))
        transactions = self._transactions()
        grid = self.grid.grid_state()
        schedules = {
            evse_id: self._schedule_now(evse, transactions.get(evse_id), now)
            for evse_id, evse in self.evses.items()
        }
        signal = self._afrr_in_force(now, schedules)
        for evse_id, evse in self.evses.items():
            command = compute_command(
                PowerInputs(
                    evse_id=evse_id,
                    schedule=schedules[evse_id],
                    rating=evse.rating,
                    vehicle=self._vehicle_limits(evse_id, transactions),
                    grid=grid,
                    external=replace(self._external.get(evse_id, _NO_EXTERNAL), afrr_signal=signal),
                    operative=self.operative(evse_id),
                    energy_allowed=self.transactions.energy_allowed(evse_id),
                    operator_limit_w=None,
                )
            )
            log.debug(
                "EVSE %d: %.1f W (%s, %s)", evse_id, command.power_w, command.mode, command.reason
            )
            self._commands[evse_id] = command
            self.power.apply(command)
        self._schedule_wakeup(now, transactions)

    def _schedule_now(
        self, evse: EvseElectrical, transaction: TransactionInfo | None, now: datetime
    ) -> ScheduleNow:
        schedule = composite_schedule(
            self.profiles,
            evse_id=evse.evse_id,
            start=now,
            duration_s=0,
            rate_unit=RateUnit.W,
            electrical=evse.electrical,
            now=now,
            transaction=transaction,
            offline_since=self.offline_since,
        )
        return schedule_now(schedule.periods[0].value)

    def _vehicle_limits(
        self, evse_id: int, transactions: Mapping[int, TransactionInfo]
    ) -> VehicleLimits:
        """The vehicle's limits, without discharge when the CSMS allowed no bidirectional mode
        for the running transaction (NotifyAllowedEnergyTransfer)."""
        vehicle = self.vehicles.vehicle_limits(evse_id)
        allowed = self._allowed.get(evse_id)
        if allowed is None:
            return vehicle
        transaction = transactions.get(evse_id)
        if transaction is None or transaction.transaction_id != allowed[0]:
            return vehicle  # not (yet, or no longer) the transaction the CSMS named
        if discharge_permitted(allowed[1]) or not vehicle.discharge_allowed:
            return vehicle
        return replace(
            vehicle,
            discharge_allowed=False,
            max_discharge_power_w=0.0,
            max_discharge_current_a=None if vehicle.max_discharge_current_a is None else 0.0,
        )

    def _schedule_wakeup(self, now: datetime, transactions: Mapping[int, TransactionInfo]) -> None:
        self.cancel_timer()
        boundary = next_change_after(
            self.profiles, now, transactions=transactions, offline_since=self.offline_since
        )
        pull_at = self._pull_dynamic(now)
        if pull_at is not None and (boundary is None or pull_at < boundary):
            boundary = pull_at
        if self._afrr_pending:  # the next AFRRSignal waiting for its timestamp
            signal_at = min(self._afrr_pending)
            if boundary is None or signal_at < boundary:
                boundary = signal_at
        if boundary is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next event re-evaluates
            return
        delay_s = max((boundary - now).total_seconds(), 0.0)
        self._timer = loop.call_later(delay_s, self.refresh)

    def cancel_timer(self) -> None:
        """Stop waiting for the next boundary (at the end of the run)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _total(base: float | None, l2: float | None, l3: float | None) -> float | None:
    """One value for the whole EVSE: the per-phase forms (when given) add up."""
    if base is None or (l2 is None and l3 is None):
        return base
    return base + (l2 or 0.0) + (l3 or 0.0)


def schedule_now(value: PeriodValue) -> ScheduleNow:
    """A composite value in W as the energy manager's :class:`ScheduleNow` (signs unchanged)."""
    limit = _total(value.limit, value.limit_l2, value.limit_l3)
    discharge = _total(value.discharge_limit, value.discharge_limit_l2, value.discharge_limit_l3)
    return ScheduleNow(
        limit_w=None if limit is None else max(limit, 0.0),
        discharge_limit_w=None if discharge is None else min(discharge, 0.0),
        setpoint_w=_total(value.setpoint, value.setpoint_l2, value.setpoint_l3),
        mode=value.operation_mode,
        freq_watt_curve=tuple(
            sorted((p.frequency_hz, p.power_w) for p in value.v2x_freq_watt_curve)
        ),
        signal_watt_curve=tuple(
            sorted((float(p.signal), p.power_w) for p in value.v2x_signal_watt_curve)
        ),
        baseline_w=value.v2x_baseline,
    )
