"""The reservations shell: holds the :class:`ReservationBook`, times expiry, tells the world.

Owns *when* the reservation rules run and what follows from them (H01-H04): the expiry timer (one
deadline, the earliest expiryDateTime; woken when reservations change, never polling),
ReservationStatusUpdate Expired / Removed to the CSMS (through a :class:`ReservationPort`), and
the connector status Reserved (through ``on_reserved``, which the composition root turns into
StatusNotifications). The transactions service asks :meth:`ReservationService.admit` before it
authorizes a session and :meth:`ReservationService.consume` when it does.

Reservations are written through to a :class:`ReservationStore` (``station.store``) after every
change, before the CSMS gets its answer, and loaded at start: a restart keeps them (each still
blocks other tokens and expires at its expiryDateTime; one that expired while the station was down
expires, with its ReservationStatusUpdate, as soon as the shell runs). A ReserveNow or
CancelReservation that cannot be stored changes nothing and is Rejected. It must not import
``ocpp`` nor talk SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol

from station.clock import Clock
from station.errors import OcppError, StoreError
from station.transactions.model import IdToken
from station.transactions.reservations import (
    Admission,
    CancelStatus,
    EvseView,
    Reservation,
    ReservationBook,
    ReservationUpdate,
    ReserveStatus,
)

__all__ = ["ReservationPort", "ReservationService", "ReservationStore"]

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class ReservationPort(Protocol):
    """What the shell needs of the CSMS link (``station.ocpp.tx_convert``)."""

    async def send_reservation_status_update(
        self, reservation_id: int, status: ReservationUpdate
    ) -> None:
        """ReservationStatusUpdateRequest; raises :class:`~station.errors.OcppError`."""
        ...


class ReservationStore(Protocol):
    """Where the reservations persist (``station.store.ReservationRepository``); both methods
    raise :class:`~station.errors.StoreError`."""

    def load(self) -> list[Reservation]: ...

    def replace_all(self, reservations: Iterable[Reservation]) -> None: ...


class ReservationService:
    """The station's reservations.

    Args:
        csms: where ReservationStatusUpdate goes.
        clock: wall clock (expiryDateTime is wall time).
        views: every EVSE's :class:`EvseView`, now.
        enabled: ReservationCtrlr.Enabled, read at each request.
        non_evse_specific: ReservationCtrlr.NonEvseSpecific, read at each request.
        on_reserved: ``(evse_id, reserved)`` whenever an EVSE starts or stops showing Reserved.
        spawn: runs the ReservationStatusUpdate sends on the station's task group.
        store: where the reservations persist; None keeps them in memory only.

    Raises:
        StoreError: the stored reservations could not be read.
    """

    def __init__(
        self,
        *,
        csms: ReservationPort,
        clock: Clock,
        views: Callable[[], Mapping[int, EvseView]],
        enabled: Callable[[], bool] = lambda: True,
        non_evse_specific: Callable[[], bool] = lambda: True,
        on_reserved: Callable[[int, bool], None] = lambda evse, reserved: None,
        spawn: Spawn,
        store: ReservationStore | None = None,
    ) -> None:
        self.book = ReservationBook()
        self._store = store
        if store is not None:
            self.book.restore(store.load())
        self.csms = csms
        self.clock = clock
        self._views = views
        self._enabled = enabled
        self._non_evse_specific = non_evse_specific
        self._on_reserved = on_reserved
        self._spawn = spawn
        self._shown: frozenset[int] = frozenset()
        self._changed = asyncio.Event()

    # --- CSMS requests (H01/H02): answer now, :meth:`refresh` after the response ------------

    def reserve(self, request: Reservation) -> ReserveStatus:
        """ReserveNow; call :meth:`refresh` once the response is sent."""
        before = self.book.all()
        status = self.book.reserve(
            request,
            self._views(),
            self.clock.now(),
            enabled=self._enabled(),
            non_evse_specific=self._non_evse_specific(),
        )
        if status is ReserveStatus.ACCEPTED and not self._save():
            self.book.restore(before)  # not on disk: not held
            status = ReserveStatus.REJECTED
        log.info(
            "ReserveNow %d (evse %s, token %s): %s",
            request.reservation_id,
            request.evse_id,
            request.id_token.id_token,
            status.value,
        )
        self._changed.set()
        return status

    def cancel(self, reservation_id: int) -> CancelStatus:
        """CancelReservation; call :meth:`refresh` once the response is sent."""
        before = self.book.all()
        status = self.book.cancel(reservation_id)
        if status is CancelStatus.ACCEPTED and not self._save():
            self.book.restore(before)
            status = CancelStatus.REJECTED
        log.info("CancelReservation %d: %s", reservation_id, status.value)
        self._changed.set()
        return status

    # --- sessions (H03) --------------------------------------------------------------------

    def admit(self, evse_id: int, token: IdToken, group_id_token: IdToken | None) -> Admission:
        """May ``token`` start a session at ``evse_id``; the reservation it would use."""
        return self.book.admit(evse_id, token, group_id_token, self._views())

    def consume(self, reservation: Reservation) -> None:
        """A session was authorized with ``reservation`` (H03.FR.09); no ReservationStatusUpdate."""
        if self.book.consume(reservation.reservation_id) is not None:
            log.info("reservation %d used", reservation.reservation_id)
            self._save()
            self._changed.set()

    def _save(self) -> bool:
        """Write the book through to the store; False (logged) when it could not be written."""
        if self._store is None:
            return True
        try:
            self._store.replace_all(self.book.all())
        except StoreError:
            log.exception("reservations could not be stored")
            return False
        return True

    # --- consequences ----------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-evaluate after anything changed (a request, a session, availability): remove the
        reservations the station can no longer honour (Removed), update Reserved statuses."""
        views = self._views()
        removed = self.book.remove_unserviceable(views)
        for reservation in removed:
            log.info("reservation %d removed: its EVSE cannot serve it", reservation.reservation_id)
            self._notify(reservation, ReservationUpdate.REMOVED)
        if removed:
            self._save()
        self._show(self.book.reserved_evses(views))

    def _show(self, reserved: frozenset[int]) -> None:
        before, self._shown = self._shown, reserved
        for evse_id in sorted(before - reserved):
            self._on_reserved(evse_id, False)
        for evse_id in sorted(reserved - before):
            self._on_reserved(evse_id, True)

    def _notify(self, reservation: Reservation, status: ReservationUpdate) -> None:
        self._spawn(self._send(reservation.reservation_id, status))

    async def _send(self, reservation_id: int, status: ReservationUpdate) -> None:
        # Not a transaction message: offline it is dropped with a log line (issue 3: other
        # message kinds never block the queue).
        try:
            await self.csms.send_reservation_status_update(reservation_id, status)
        except OcppError as exc:
            log.warning(
                "ReservationStatusUpdate %d %s not delivered: %s", reservation_id, status, exc
            )

    async def run(self) -> None:
        """H04: end each reservation at its expiryDateTime, until cancelled."""
        if len(self.book):
            self.refresh()  # reservations restored from the store show Reserved again
        while True:
            self._changed.clear()
            now = self.clock.now()
            expired = self.book.expire(now)
            for reservation in expired:
                log.info("reservation %d expired", reservation.reservation_id)
                self._notify(reservation, ReservationUpdate.EXPIRED)
            if expired:
                self._save()
                self.refresh()
            due = self.book.next_expiry()
            if due is None:
                await self._changed.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, (due - now).total_seconds())):
                    await self._changed.wait()
