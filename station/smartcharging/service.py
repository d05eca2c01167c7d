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
(:meth:`SmartChargingService.transaction_ended`); since no transaction survives a restart (issue 3
ends them with PowerLoss), none is loaded.

Ports (each a ``Protocol`` with an in-process implementation, STYLE.md A2.8):

* :class:`TransactionView`: the running transaction per EVSE. The station plugs in an adapter
  over the transactions service (``app.py``); :class:`NoTransactions` and the settable
  :class:`StaticTransactions` are the in-process fakes.
* :class:`VehicleView`: the connected vehicle's limits per EVSE. The station uses its simulated
  vehicles (``station/sim/vehicle.py``); :class:`SimulatedVehicles` is the stand-alone fake.
* :class:`GridView`: grid window and limits (:class:`NominalGrid`: in window, no limits).
* :class:`PowerPort`: where commands go. The station's simulated vehicles take them;
  :class:`SimulatedPowerPort` only records the last one per EVSE.

Electrical parameters for A <-> W (K01.FR.50), documented here because the composite schedule
depends on them: every EVSE of this station is DC, so ``W = A * V`` with ``V`` the EVSE's
nominal DC voltage, taken as the voltage at which its ratings meet
(``max_charge_power_w / max_current_a``, 400 V with the defaults). EVSE 0, the grid connection,
is AC at the nominal 230 V line-to-neutral, 3 phases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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
from station.smartcharging.model import (
    ChargingProfile,
    ChargingProfilePurpose,
    OcppVersion,
    RateUnit,
    TransactionInfo,
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
    "EvseElectrical",
    "GridView",
    "MemoryProfileStore",
    "NoTransactions",
    "NominalGrid",
    "PowerPort",
    "ProfileStore",
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
    ) -> None:
        self.evses = {e.evse_id: e for e in evses}
        self.clock = clock
        self.limits_for = limits_for
        self.transactions: TransactionView = transactions or NoTransactions()
        self.vehicles: VehicleView = vehicles or SimulatedVehicles()
        self.grid: GridView = grid or NominalGrid()
        self.power: PowerPort = power or SimulatedPowerPort()
        self.operative = operative
        self.on_count = on_count
        self.store: ProfileStore = store or MemoryProfileStore()
        self.profiles = ProfileSet()
        self._timer: asyncio.TimerHandle | None = None
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
        transaction, K01), also the unbound ones of a remote start on the same EVSE."""
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
        """Install the stored profiles; drop stored TxProfiles: their transactions are over."""
        stored = self.store.load_all()
        stale = [p.id for p in stored if p.purpose == ChargingProfilePurpose.TX_PROFILE]
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
        if expired:
            self._forget(expired)
            self.profiles = profiles
            self.on_count(len(profiles))
        transactions = self._transactions()
        grid = self.grid.grid_state()
        for evse_id, evse in self.evses.items():
            command = compute_command(
                PowerInputs(
                    evse_id=evse_id,
                    schedule=self._schedule_now(evse, transactions.get(evse_id), now),
                    rating=evse.rating,
                    vehicle=self.vehicles.vehicle_limits(evse_id),
                    grid=grid,
                    external=ExternalInputs(),
                    operative=self.operative(evse_id),
                    energy_allowed=self.transactions.energy_allowed(evse_id),
                    operator_limit_w=None,
                )
            )
            log.debug(
                "EVSE %d: %.1f W (%s, %s)", evse_id, command.power_w, command.mode, command.reason
            )
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
        )
        return schedule_now(schedule.periods[0].value)

    def _schedule_wakeup(self, now: datetime, transactions: Mapping[int, TransactionInfo]) -> None:
        self.cancel_timer()
        boundary = next_change_after(self.profiles, now, transactions=transactions)
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
