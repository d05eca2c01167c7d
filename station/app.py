"""The composition root: builds the adapters, wires the cores, runs one task group.

Nothing else in the station creates long-lived tasks; follow-up work from the OCPP link is
spawned here (:meth:`Station.spawn`) so that a failure is logged and never silently lost
(STYLE.md A2.14). This is the only module allowed to ``except Exception`` (the supervisors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from station import __version__
from station.availability import AvailabilityModel
from station.clock import Clock, SystemClock
from station.config import Config, ConnectorKind
from station.ocpp.devicemodel import (
    CommDefaults,
    DeviceModel,
    EvseInfo,
    StationIdentity,
    standard_definitions,
)
from station.ocpp.link import OcppLink, ResetRequest
from station.ocpp.msglog import MessageLog
from station.sim.control import ControlServer, endpoint_for
from station.store import AvailabilityRepository, Database, VariableRepository, open_database

__all__ = ["RunResult", "Station", "build_device_model", "run_station"]

log = logging.getLogger(__name__)

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
    )
    return DeviceModel(definitions, VariableRepository(database).load_all())


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
        #: Per-EVSE status fields contributed by the services (``station sim status``).
        self.status_providers: list[Callable[[int], dict[str, Any]]] = []
        self.control: ControlServer | None = None
        if config.any_simulated:
            self.control = ControlServer(endpoint_for(config))
            self.control.register("status", lambda _: self.status(), "the station's view as JSON")

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
        return {
            "station": self.config.station.id,
            "csms": {
                "connected": link.connected,
                "ocpp": link.version,
                "registration": link.registration.value,
            },
            "evses": evses,
        }

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
            async with asyncio.TaskGroup() as group:
                self._group = group
                link_task = group.create_task(self.link.run())
                waiting: set[asyncio.Future[Any]] = {stopper, self._reset}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                self.link.stop()
                link_task.cancel()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            stopper.cancel()
            self._group = None
            if self.control is not None:
                await self.control.stop()
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
