"""The composition root: builds the adapters, wires the cores, runs one task group.

Nothing else in the station creates long-lived tasks; follow-up work from the OCPP link is
spawned here (:meth:`Station.spawn`) so that a failure is logged and never silently lost
(STYLE.md A2.14). This is the only module allowed to ``except Exception`` (the supervisors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station import __version__
from station.availability import AvailabilityModel, ConnectorStatus
from station.clock import Clock, SystemClock
from station.config import Config, ConnectorKind, LinkKind
from station.der import DerControlType
from station.der.grid import supported_controls
from station.der.ramp import RampingPowerPort
from station.der.service import DerGridView, DerService
from station.inverter.protection import ALARM_CONTROL
from station.memory import release_free_memory
from station.ocpp.der_handlers import OcppDerPort
from station.ocpp.devicemodel import (
    CommDefaults,
    DeviceModel,
    EvseInfo,
    StationIdentity,
    TxDefaults,
    standard_definitions,
)
from station.ocpp.events import AC_DC_CONVERTER, ELECTRICAL_FEED, OcppEventPort
from station.ocpp.link import OcppLink, ResetRequest
from station.ocpp.msglog import MessageLog
from station.ocpp.sc_notify import OcppSmartChargingNotifier
from station.ocpp.tx_convert import OcppTransactionPort, service_settings
from station.power import EvseRating
from station.sim.control import ControlServer, endpoint_for
from station.sim.limits import register_limit_commands
from station.sim.vehicle import SimFleet, SimPeer, SimVehicle, autostart, register_commands
from station.smartcharging import (
    OcppVersion,
    RateUnit,
    SmartChargingLimits,
    TransactionInfo,
)
from station.smartcharging.service import (
    DEFAULT_ENTRIES_MAX,
    EvseElectrical,
    PowerPort,
    ProfileStore,
    SmartChargingService,
    TransactionView,
    VehicleView,
    dc_electrical,
)
from station.store import (
    AuthCacheRepository,
    AvailabilityRepository,
    Database,
    DerControlRepository,
    LocalListRepository,
    OutboundQueue,
    ProfileRepository,
    QueueThinning,
    ReservationRepository,
    TransactionRepository,
    VariableRepository,
    open_database,
)
from station.transactions import Authorized, State
from station.transactions.reservation_service import ReservationService
from station.transactions.reservations import EvseView
from station.transactions.service import EvsePort, TransactionService

if TYPE_CHECKING:  # pymodbus and python-can load only for a station that has these links
    from station.chademo_link import ChademoLink
    from station.inverter.device import FaultReport
    from station.inverter.supervisor import GridAlarm
    from station.links import InverterLinks

__all__ = [
    "RunResult",
    "Station",
    "TransactionsView",
    "build_device_model",
    "build_smart_charging",
    "run_station",
]

log = logging.getLogger(__name__)

_SETTLE_S = 1.0
"""After the connection is up, how long start-up work (first reports, schemas) may take before
the freed memory is returned (station/memory.py)."""

# ConnectorEnumType: CHAdeMO is "cG105" (JEVS G105), CCS combo 2 is "cCCS2".
_CONNECTOR_TYPES = {ConnectorKind.CHADEMO: "cG105", ConnectorKind.CCS: "cCCS2"}


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: stopped (``reset`` None) or reset by the CSMS."""

    reset: ResetRequest | None


def build_device_model(config: Config, database: Database) -> DeviceModel:
    """The device model: standard definitions from config, values persisted earlier on top."""
    csms = config.csms
    definitions = standard_definitions(
        evses=[
            EvseInfo(
                evse_id=e.id,
                connector_ids=(e.connector_id,),
                connector_type=_CONNECTOR_TYPES[e.connector],
                max_power_w=e.max_charge_power_w,
            )
            for e in config.evse
        ],
        identity=StationIdentity(
            vendor=config.station.vendor,
            model=config.station.model,
            serial_number=config.station.serial_number,
            firmware_version=__version__,
            security_profile=csms.security_profile,
            identity=config.station.id,
        ),
        comm=CommDefaults(
            heartbeat_interval_s=csms.heartbeat_interval_s,
            message_timeout_s=csms.message_timeout_s,
            ws_ping_interval_s=csms.websocket_ping_interval_s,
            retry_backoff_wait_minimum_s=csms.retry_backoff_wait_minimum_s,
            retry_backoff_random_range_s=csms.retry_backoff_random_range_s,
            retry_backoff_repeat_times=csms.retry_backoff_repeat_times,
            offline_threshold_s=csms.offline_threshold_s,
        ),
        tx_defaults=TxDefaults(
            resumption_timeout_s=config.transactions.resumption_timeout_s,
            allow_energy_transfer_resumption=config.transactions.allow_energy_transfer_resumption,
        ),
    )
    return DeviceModel(definitions, VariableRepository(database).load_all())


def smart_charging_limits(
    device_model: DeviceModel, config: Config, version: OcppVersion
) -> SmartChargingLimits:
    """SetChargingProfile validation limits from the device model (SmartChargingCtrlr)."""
    sm = "SmartChargingCtrlr"
    entries_max = DEFAULT_ENTRIES_MAX
    for definition in device_model.definitions:
        found = definition.component == sm and definition.variable == "Entries"
        if found and definition.max_limit is not None:
            entries_max = int(definition.max_limit)
    units = device_model.value(sm, "RateUnit").split(",")
    return SmartChargingLimits(
        version=version,
        entries_max=entries_max,
        periods_per_schedule_max=device_model.int_value(sm, "PeriodsPerSchedule"),
        stack_level_max=device_model.int_value(sm, "ProfileStackLevel"),
        supported_rate_units=frozenset(RateUnit(u) for u in units if u),
        dc_evse_ids=frozenset(e.id for e in config.evse),  # CHAdeMO and CCS: all DC
    )


def sim_state_file(config: Config, evse_id: int) -> Path | None:
    """Where EVSE ``evse_id``'s simulated vehicle and meter persist: beside the database
    (``<database stem>.sim-evse<N>.json``), none for an in-memory database."""
    database = config.storage.database
    if str(database) == ":memory:":
        return None
    return database.with_name(f"{database.stem}.sim-evse{evse_id}.json")


def build_smart_charging(
    config: Config,
    device_model: DeviceModel,
    clock: Clock,
    availability: AvailabilityModel,
    *,
    vehicles: VehicleView,
    power: PowerPort,
    transactions: TransactionView | None = None,
    store: ProfileStore | None = None,
    open_transaction_ids: Collection[str] = (),
) -> SmartChargingService:
    """The smart-charging service, with the EVSE ratings from config and the given ports.

    A DC EVSE's nominal voltage (for A <-> W, K01.FR.50) is where its power and current ratings
    meet: ``max_charge_power_w / max_current_a``.
    """
    connector_of = {e.id: e.connector_id for e in config.evse}

    def on_count(count: int) -> None:
        device_model.set_internal(
            "SmartChargingCtrlr", "Entries", str(count), instance="ChargingProfiles"
        )

    return SmartChargingService(
        tuple(
            EvseElectrical(
                e.id,
                EvseRating(e.max_charge_power_w, e.max_discharge_power_w, e.max_current_a),
                dc_electrical(e.max_charge_power_w, e.max_current_a),
            )
            for e in config.evse
        ),
        clock=clock,
        limits_for=lambda version: smart_charging_limits(device_model, config, version),
        transactions=transactions,
        vehicles=vehicles,
        power=power,
        operative=lambda evse_id: availability.is_operative(evse_id, connector_of[evse_id]),
        on_count=on_count,
        store=store,
        open_transaction_ids=open_transaction_ids,
    )


class TransactionsView:
    """The transactions service as smart charging's :class:`TransactionView`.

    An EVSE's transaction (id and start, which anchors Relative profiles) is the one its machine
    holds open. Energy is allowed while the session is authorized and the power path is closed
    (the machine closes it only then); that does not wait for a transaction, because with
    TxStartPoint EnergyTransfer the transaction starts only once energy flows.
    """

    def __init__(self, service: TransactionService) -> None:
        self.service = service

    def active_transactions(self) -> Mapping[int, TransactionInfo]:
        active: dict[int, TransactionInfo] = {}
        for evse_id, machine in self.service.machines.items():
            open_tx = machine.open_transaction
            if open_tx is not None:
                active[evse_id] = TransactionInfo(open_tx.transaction_id, open_tx.started_at)
        return active

    def energy_allowed(self, evse_id: int) -> bool:
        machine = self.service.machines.get(evse_id)
        return (
            machine is not None and machine.authorization is not None and machine.power_path_closed
        )


class Station:
    """One run of the station, from start until stop or reset.

    Args:
        config: the validated configuration.
        clock: the station's clock (a :class:`SystemClock` unless a test injects one).
        boot_reason: BootReasonEnumType for this run's BootNotification.
    """

    def __init__(
        self, config: Config, *, clock: Clock | None = None, boot_reason: str = "PowerUp"
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.database = open_database(config.storage.database)
        self.device_model = build_device_model(config, self.database)
        self.availability_store = AvailabilityRepository(self.database)
        self.availability = AvailabilityModel(
            [(e.id, e.connector_id) for e in config.evse], self.availability_store.load_all()
        )
        storage = config.storage
        self.message_log = MessageLog(
            storage.message_log_path if storage.message_log else None, self.clock
        )
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reset: asyncio.Future[ResetRequest] | None = None
        self.link = OcppLink(
            config,
            device_model=self.device_model,
            variables=VariableRepository(self.database),
            availability=self.availability,
            availability_store=self.availability_store,
            clock=self.clock,
            message_log=self.message_log,
            spawn=self.spawn,
            boot_reason=boot_reason,
            on_reset=self._on_reset,
        )
        # The simulated world: one vehicle (and meter) per EVSE until the hardware links exist.
        # It is the transactions' EVSE port, and the energy manager's vehicle view and power
        # port (the vehicle follows the PowerCommand); tests and ``station sim`` drive it.
        # A CHAdeMO EVSE with an ``[evse.chademo]`` table runs the protocol (issue 5): the
        # session on a CAN bus, the simulated CHAdeMO vehicle on the same bus, the simulated
        # hardware (insulation monitor, contactors, lock, emergency stop).
        self.chademo: dict[int, ChademoLink] = {}
        peers: dict[int, SimPeer] = {}
        for e in config.evse:
            if e.chademo is not None:
                from station.chademo_link import open_chademo_link

                # vehicle = "hardware": the field link (real vehicle, GPIO, inverter DC stage).
                link = open_chademo_link(e, self.clock, channel=f"station-{id(self):x}-evse{e.id}")
                link.on_faulted = self._faulted_callback(e.id, e.connector_id)
                self.chademo[e.id] = link
                peers[e.id] = link
                continue
            peers[e.id] = SimVehicle(
                e.id,
                connector_id=e.connector_id,
                max_charge_power_w=e.max_charge_power_w,
                max_discharge_power_w=e.max_discharge_power_w,
                clock=self.clock,
                state_file=sim_state_file(config, e.id),
            )
        self.sim_vehicles = SimFleet(peers)
        self.power_port: PowerPort = self.sim_vehicles
        evse_ports: dict[int, EvsePort] = dict(self.sim_vehicles)
        # The inverter (issue 6), when there is one: it follows the sum of the EVSE commands,
        # its measurements feed the grid protection (the energy manager's grid view below),
        # and with a single EVSE its energy registers are that EVSE's meter.
        self.events = OcppEventPort(self.link)
        self.inverter: InverterLinks | None = None
        if config.inverter.link is not LinkKind.NONE:
            from station.links import InverterFollowingPort, InverterLinks, InverterMeteredEvse

            self.inverter = InverterLinks(config, self.clock)
            supervisor = self.inverter.supervisor
            supervisor.on_grid_change = self._refresh_power
            supervisor.on_alarm = self._grid_alarm
            supervisor.on_fault = self._inverter_fault
            self.power_port = InverterFollowingPort(self.sim_vehicles, supervisor)
            for chademo_link in self.chademo.values():
                chademo_link.bind_inverter(self.inverter, self.power_port)
            # (A hardware CHAdeMO EVSE meters at its DC output: the inverter's DC registers.)
            if len(config.evse) == 1 and config.evse[0].vehicle is not LinkKind.HARDWARE:
                evse_id = config.evse[0].id
                evse_ports[evse_id] = InverterMeteredEvse(evse_ports[evse_id], supervisor)
        # Transactions (issue 3).
        self.transactions = TransactionService(
            evse_ports,
            csms=OcppTransactionPort(self.link),
            transactions=TransactionRepository(self.database),
            queue=OutboundQueue(self.database),
            clock=self.clock,
            settings=lambda: service_settings(self.device_model),
            spawn=self.spawn,
            connector_ids={e.id: e.connector_id for e in config.evse},
            on_occupied=self._connector_occupied,
            on_transaction_ended=self._transaction_ended,
            on_settled=self._settled,
            local_list=LocalListRepository(self.database),
            auth_cache=AuthCacheRepository(self.database),
            on_local_list_changed=self._local_list_changed,
            queue_max_messages=config.storage.queue_max_messages,
            on_auth_cache_changed=self._auth_cache_changed,
        )
        self._auth_cache_changed(self.transactions.auth_cache_storage_b())
        self.transactions.queue_thinned_listeners.append(self._queue_thinned)
        self._local_list_changed(*self.transactions.local_list_size())
        for vehicle in self.sim_vehicles.values():
            vehicle.attach(self.transactions)
        # Smart charging (issue 4): re-evaluated on every profile change (by itself), every
        # transaction change (on_settled above) and every vehicle-limit change; no polling.
        self._refreshing = False
        self._refresh_again = False
        self.smart_charging = build_smart_charging(
            config,
            self.device_model,
            self.clock,
            self.availability,
            vehicles=self.sim_vehicles,
            power=self.power_port,
            transactions=TransactionsView(self.transactions),
            store=ProfileRepository(self.database, clock=self.clock),
            open_transaction_ids=[
                t.transaction_id for t in self.transactions.transactions.open_transactions()
            ],
        )
        # K01/K05: a TxProfile is bound to its transaction when it starts and goes when it ends.
        self.transactions.started_listeners.append(self.smart_charging.transaction_started)
        self.transactions.ended_listeners.append(self.smart_charging.transaction_ended)
        self.transactions.ended_listeners.append(self.link.transaction_ended)
        # K13.FR.03: an external change of an EVSE's rate is reported in its transaction.
        self.smart_charging.rate_listeners.append(self.transactions.charging_rate_changed)
        self.sim_vehicles.on_change(self._refresh_power)
        self.link.smart_charging = self.smart_charging
        if self.inverter is not None:
            self.smart_charging.grid = self.inverter.supervisor
        # DER control (OCPP 2.1 R01-R05): persisted controls; the active LimitMaxDischarge
        # caps discharge in the energy manager's grid view (percent of the smallest EVSE
        # discharge rating), and every change of the active controls re-evaluates the power.
        self.der = DerService(
            clock=self.clock,
            store=DerControlRepository(self.database),
            csms=OcppDerPort(self.link),
            spawn=self.spawn,
            supported=supported_controls(
                self.inverter is not None,
                frozenset(DerControlType(n) for n in config.inverter.der_controls)
                if config.inverter.der_controls
                else None,
                # SunSpec 705/706: the simulated inverter has them; a real device when the
                # config says so (discovery comes after the DER service is built).
                volt_curves=config.inverter.volt_curves
                or (config.inverter.link is LinkKind.SIMULATED and not config.inverter.sim_legacy),
            ),
        )
        self.der_grid = DerGridView(
            self.der,
            rated_discharge_w=min((e.max_discharge_power_w for e in config.evse), default=0.0),
            base=self.smart_charging.grid.grid_state,
            nominal_frequency_hz=(
                config.grid.nominal_frequency_hz if self.inverter is not None else None
            ),
        )
        self.smart_charging.grid = self.der_grid
        self.der.listeners.append(self._refresh_power)
        self.der_grid.listeners.append(self._refresh_power)  # FreqDroop responseTime steps
        if self.inverter is not None:
            self.inverter.attach_der(self.der)  # EnterService, the must-trip curves
        # Gradients: one ramp for each EVSE's command, so the sessions and the inverter's
        # set-point (their sum) move together.
        self.ramp = RampingPowerPort(
            self.power_port,
            der=self.der,
            clock=self.clock,
            ratings_w={
                e.id: max(e.max_charge_power_w, e.max_discharge_power_w) for e in config.evse
            },
        )
        self.smart_charging.power = self.ramp  # self.power_port: what the ramp passes on
        self.link.der = self.der
        # K11-K17, K28/K29: what smart charging tells the CSMS on its own; maxOfflineDuration
        # follows the link's state; the simulated vehicles at ccs EVSEs report their needs as
        # an ISO 15118 vehicle does, and CHAdeMO sessions from 0x100-0x102/0x200
        # (NotifyEVChargingNeeds).
        self.smart_charging.notifier = OcppSmartChargingNotifier(self.link)
        self.smart_charging.limit_change_significance_pct = lambda: float(
            self.device_model.value("SmartChargingCtrlr", "LimitChangeSignificance")
        )
        self.link.online_listeners.append(self.smart_charging.set_online)
        self.link.availability_listeners.append(self._refresh_power)
        self.sim_vehicles.on_needs(
            self.smart_charging.ev_charging_needs,
            frozenset(
                e.id
                for e in config.evse
                if e.connector is ConnectorKind.CCS or e.chademo is not None
            ),
        )
        self.link.transactions = self.transactions
        self.link.busy_evses = self.transactions.busy_evses
        # Reservations (H01-H04), in memory: re-evaluated after every request, session change
        # and availability change; expiry runs on its own timer.
        self.reservations = ReservationService(
            csms=OcppTransactionPort(self.link),
            clock=self.clock,
            views=self._reservation_views,
            enabled=lambda: self.device_model.bool_value("ReservationCtrlr", "Enabled"),
            non_evse_specific=lambda: self.device_model.bool_value(
                "ReservationCtrlr", "NonEvseSpecific"
            ),
            on_reserved=self._connector_reserved,
            spawn=self.spawn,
            store=ReservationRepository(self.database),
        )
        self.transactions.reservations = self.reservations
        self.link.reservations = self.reservations
        #: Per-EVSE status fields contributed by the services (``station sim status``).
        self.status_providers: list[Callable[[int], dict[str, Any]]] = []
        self.status_providers.append(self._power_status)
        self.status_providers.append(self.transactions.status)
        # Last: the live meter and vehicle (the transactions report the last sampled reading).
        self.status_providers.append(lambda evse_id: self.sim_vehicles[evse_id].status())
        self.control: ControlServer | None = None
        if config.any_simulated:
            self.control = ControlServer(endpoint_for(config))
            self.control.register("status", lambda _: self.status(), "the station's view as JSON")
            register_commands(self.control, self.sim_vehicles)
            register_limit_commands(self.control, self.smart_charging)
            if self.inverter is not None:
                self.inverter.register_commands(self.control)
            if self.chademo:
                from station.chademo_link import register_chademo_commands

                register_chademo_commands(self.control, self.chademo)

    def status(self) -> dict[str, Any]:
        """The station's view: the CSMS link, and per EVSE what the services report."""
        link = self.link.status
        evses = []
        for evse in self.config.evse:
            item: dict[str, Any] = {
                "evse": evse.id,
                "connector": evse.connector.value,
                "connector_status": self.availability.status(evse.id, evse.connector_id).value,
                "operative": self.availability.is_operative(evse.id, evse.connector_id),
            }
            for provider in self.status_providers:
                item.update(provider(evse.id))
            evses.append(item)
        status: dict[str, Any] = {
            "station": self.config.station.id,
            "csms": {
                "connected": link.connected,
                "ocpp": link.version,
                "registration": link.registration.value,
            },
            "evses": evses,
        }
        if self.inverter is not None:
            status["inverter"] = self.inverter.status()
        return status

    def _power_status(self, evse_id: int) -> dict[str, Any]:
        command = self.sim_vehicles.last.get(evse_id)
        if command is None:
            return {}
        return {
            "power_command_w": command.power_w,
            "operation_mode": command.mode.value,
            "power_reason": command.reason.value,
            "profiles": len(self.smart_charging.profiles),
        }

    def _refresh_power(self) -> None:
        """Re-evaluate the power commands; a request made while one runs (the vehicle
        reporting that energy flows, say) is coalesced into one more pass after it."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            self._refresh_again = True
            while self._refresh_again:
                self._refresh_again = False
                self.smart_charging.refresh()
        finally:
            self._refreshing = False

    def _local_list_changed(self, entries: int, size_b: int) -> None:
        """LocalAuthListCtrlr.Entries and Storage follow the list (D01)."""
        self.device_model.set_internal("LocalAuthListCtrlr", "Entries", str(entries))
        self.device_model.set_internal("LocalAuthListCtrlr", "Storage", str(size_b))

    def _auth_cache_changed(self, size_b: int) -> None:
        """AuthCacheCtrlr.Storage follows the cache (C10)."""
        self.device_model.set_internal("AuthCacheCtrlr", "Storage", str(size_b))

    def _queue_thinned(self, thinning: QueueThinning) -> None:
        """Issue 3: a thinned queue is reported to the CSMS as a MemoryExhaustion security
        event (OCPP 2.0.1 Part 2 appendices, security events: "The Flash or RAM memory of the
        Charging Station is getting full"), sent once the link is up."""
        port = self.transactions.csms
        if isinstance(port, OcppTransactionPort):
            info = f"TransactionEvent queue at its bound {thinning.limit}: dropped {thinning.count}"
            self.spawn(port.send_security_event("MemoryExhaustion", info))

    def _grid_alarm(self, alarm: GridAlarm) -> None:
        """A grid fault began or ended: NotifyDERAlarm over 2.1, NotifyEvent over 2.0.1."""
        self.spawn(self._send_grid_alarm(alarm))

    async def _send_grid_alarm(self, alarm: GridAlarm) -> None:
        await OcppTransactionPort(self.link).wait_online()
        session = self.link.session
        if session is not None and session.version == "2.1":
            # LocalEmergency (an impossible measurement) has no trip curve of its own: it is
            # reported against the power-monitoring trip.
            control = ALARM_CONTROL.get(alarm.fault, DerControlType.POWER_MONITORING_MUST_TRIP)
            self.der.alarm(control, alarm.fault, alarm.ended, alarm.reason[:200])
            return
        await self.events.problem(
            ELECTRICAL_FEED,
            active=not alarm.ended,
            tech_info=f"{alarm.fault.value}: {alarm.reason}",
            tech_code=alarm.fault.value,
        )

    def _inverter_fault(self, report: FaultReport | None) -> None:
        """The inverter declared a fault (it holds 0 W) or it was cleared: a NotifyEvent."""
        if report is None:
            self.spawn(self.events.problem(AC_DC_CONVERTER, active=False, tech_info="cleared"))
            return
        info = f"{report.kind.value} at set-point {report.setpoint_w:.0f} W: {report.detail}"
        self.spawn(
            self.events.problem(
                AC_DC_CONVERTER, active=True, tech_info=info, tech_code=report.kind.value
            )
        )

    def _settled(self) -> None:
        """The transactions are consistent again: power commands and reservations follow."""
        self._refresh_power()
        self.reservations.refresh()

    def _reservation_views(self) -> dict[int, EvseView]:
        """Each EVSE as the reservation rules see it (availability core and its machine)."""
        views: dict[int, EvseView] = {}
        for evse in self.config.evse:
            key = (evse.id, evse.connector_id)
            machine = self.transactions.machines[evse.id]
            views[evse.id] = EvseView(
                operative=self.availability.is_operative(*key),
                faulted=self.availability.status(*key) is ConnectorStatus.FAULTED,
                occupied=machine.state is not State.AVAILABLE or machine.transaction_id is not None,
                in_use=not machine.accepts(Authorized) or machine.authorization is not None,
                connector_types=frozenset({_CONNECTOR_TYPES[evse.connector]}),
            )
        return views

    def _connector_reserved(self, evse_id: int, reserved: bool) -> None:
        """G01/H01: Reserved while a reservation holds the EVSE, the status beneath after."""
        connector_id = next(e.connector_id for e in self.config.evse if e.id == evse_id)
        if self.availability.set_reserved(evse_id, connector_id, reserved):
            self.spawn(self.link.send_statuses([(evse_id, connector_id)]))

    def _faulted_callback(self, evse_id: int, connector_id: int) -> Callable[[bool], None]:
        """G01: a connector whose session latched a fault is Faulted until it is reset."""

        def faulted(on: bool) -> None:
            if self.availability.set_faulted(evse_id, connector_id, on):
                self.spawn(self.link.send_statuses([(evse_id, connector_id)]))

        return faulted

    def _connector_occupied(self, evse_id: int, connector_id: int, occupied: bool) -> None:
        """G01: Occupied while a cable is plugged, Available again after."""
        if self.availability.set_occupied(evse_id, connector_id, occupied):
            self.spawn(self.link.send_statuses([(evse_id, connector_id)]))

    def _transaction_ended(self, evse_id: int) -> None:
        """G03.FR.?/G04.FR.?: availability changes scheduled during the transaction apply now."""
        changed = self.availability.transaction_ended(evse_id)
        if changed:
            self.spawn(self.link.send_statuses(changed))
            self._refresh_power()

    async def _settle_memory(self) -> None:
        """Once the CSMS accepted the station, return start-up's freed heap to the OS."""
        await OcppTransactionPort(self.link).wait_online()
        await asyncio.sleep(_SETTLE_S)
        release_free_memory()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run follow-up work as a supervised task of this run."""
        if self._group is None:
            work.close()
            return
        task = self._group.create_task(self._supervised(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _supervised(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:  # a supervisor: log, keep the station running
            log.exception("background task failed")

    def _on_reset(self, request: ResetRequest) -> None:
        if request.evse_id is not None:
            # B12: an EVSE reset ends that EVSE's sessions; nothing else restarts.
            log.info("reset of EVSE %d (%s) done", request.evse_id, request.kind)
            return
        log.info("station reset (%s) requested by the CSMS", request.kind)
        if self._reset is not None and not self._reset.done():
            self._reset.set_result(request)

    async def run(self, stop: asyncio.Event) -> RunResult:
        """Run until ``stop`` is set or the CSMS resets the station."""
        self._reset = asyncio.get_running_loop().create_future()
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            if self.control is not None:
                await self.control.start()
            if self.inverter is not None:
                await self.inverter.start()
            async with asyncio.TaskGroup() as group:
                self._group = group
                self.smart_charging.refresh()  # the first commands: 0 W until told otherwise
                self.der.refresh()  # DER controls that started or ended while stopped; timer
                link_task = group.create_task(self.link.run())
                self.transactions.recover()
                tx_task = group.create_task(self.transactions.run())
                reservation_task = group.create_task(self.reservations.run())
                if self.inverter is not None:
                    inverter_task = group.create_task(self.inverter.supervisor.run())
                chademo_tasks = [
                    group.create_task(link.run(), name=f"chademo-{evse_id}")
                    for evse_id, link in self.chademo.items()
                ]
                self.spawn(self._settle_memory())
                for evse in self.config.evse:
                    if evse.sim_autostart:
                        vehicle = self.sim_vehicles[evse.id]
                        machine = self.transactions.machines[evse.id]
                        if machine.authorization is None:  # not a resumed, authorized session
                            self.spawn(autostart(vehicle, self.transactions.csms.wait_online))
                waiting: set[asyncio.Future[Any]] = {stopper, self._reset}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                self.link.stop()
                link_task.cancel()
                tx_task.cancel()
                reservation_task.cancel()
                if self.inverter is not None:
                    inverter_task.cancel()
                for task in chademo_tasks:
                    task.cancel()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            stopper.cancel()
            self.smart_charging.cancel_timer()
            self.der.cancel_timer()
            self.ramp.cancel_timer()
            self.der_grid.cancel_timer()
            self.sim_vehicles.close()
            self._group = None
            if self.control is not None:
                await self.control.stop()
            if self.inverter is not None:
                await self.inverter.stop()
            self.close()
        reset = self._reset.result() if self._reset.done() else None
        return RunResult(reset)

    def close(self) -> None:
        """Flush and close the store and the message log."""
        self.message_log.close()
        self.database.close()


async def run_station(config: Config, stop: asyncio.Event, *, clock: Clock | None = None) -> None:
    """Run the station until ``stop``; a CSMS Reset restarts it in-process (B11)."""
    reason = "PowerUp"
    while True:
        station = Station(config, clock=clock, boot_reason=reason)
        result = await station.run(stop)
        if result.reset is None:
            return
        log.info("restarting after %s reset", result.reset.kind)
        reason = "RemoteReset"
