"""Reservations (OCPP 2.0.1 functional block H, H01-H04): a pure core.

Owns which reservations the station holds and the rules that decide on them: whether a
ReserveNow is Accepted, Faulted, Occupied, Unavailable or Rejected (H01), cancelling (H02), who may
start a session at an EVSE while reservations are held and which reservation that consumes
(H03, as corrected by errata 2025-01 §2.24), expiry (H04), and which EVSEs must show connector
status Reserved. It must not do I/O, read a clock or import ``ocpp``: the shell passes ``now`` and
an :class:`EvseView` of every EVSE in, sends ReservationStatusUpdate and StatusNotification, and
arms the expiry timer at :meth:`ReservationBook.next_expiry`.

Rules, each a decision where the spec leaves room:

- **Only an Available EVSE can be reserved** (errata §2.23: "Only available EVSEs can be
  reserved"). A specific EVSE answers, in this order, Faulted, Unavailable (inoperative), Occupied
  (a cable, a session, another reservation of that EVSE, or needed to keep a promise made to a
  reservation without EVSE), else Accepted.
- **A reservation without evseId** (H01, ReservationCtrlr.NonEvseSpecific) is accepted when every
  such reservation can still be given its own Available EVSE (of the requested connectorType):
  an assignment is searched for (bipartite matching), nothing is assigned for good. Refused, it
  answers Faulted when every candidate EVSE is faulted, Unavailable when every one is faulted or
  inoperative, else Occupied. With NonEvseSpecific off, or no EVSE of the connectorType, Rejected.
- **The same id replaces** the earlier reservation (H01: the new request is judged as if the old
  one did not exist); when the new request is refused, the old reservation stays.
- **Who may start** (:meth:`ReservationBook.admit`): at a specifically reserved EVSE only the
  reserved idToken, or a token of its groupIdToken (H03); elsewhere a token that holds a
  reservation without EVSE consumes it; any other token may start only where that leaves every
  reservation without EVSE an EVSE of its own. A RequestStartTransaction's token counts like a
  presented one (errata §2.24, H03.FR.09 note).
- **Reserved status** (G01): a specifically reserved EVSE, and an EVSE that cannot be given to
  anyone else without breaking a promise to a reservation without EVSE. With one such
  reservation and two free EVSEs both stay Available (errata §2.24 scenario S3). A cable plugged
  into a Reserved EVSE does not make it Occupied (G01.FR.09, errata §2.21).
- **Removal** (ReservationStatusUpdate Removed): a specific reservation whose EVSE became faulted
  or inoperative, and a reservation without EVSE when no candidate EVSE is operative and unfaulted.
- **Expiry** at expiryDateTime (H04: ReservationStatusUpdate Expired).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from station.transactions.model import IdToken

__all__ = [
    "Admission",
    "CancelStatus",
    "EvseView",
    "Reservation",
    "ReservationBook",
    "ReservationUpdate",
    "ReserveStatus",
]


class ReserveStatus(StrEnum):
    """ReserveNowStatusEnumType."""

    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"


class CancelStatus(StrEnum):
    """CancelReservationStatusEnumType."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class ReservationUpdate(StrEnum):
    """ReservationUpdateStatusEnumType: why the station ended a reservation on its own."""

    EXPIRED = "Expired"
    REMOVED = "Removed"


@dataclass(frozen=True, slots=True)
class Reservation:
    """One ReserveNowRequest, in domain form. ``evse_id`` None: any EVSE (NonEvseSpecific).

    ``connector_type`` is a ConnectorEnumType value, compared as text with
    :attr:`EvseView.connector_types`.
    """

    reservation_id: int
    id_token: IdToken
    expires_at: datetime
    evse_id: int | None = None
    group_id_token: IdToken | None = None
    connector_type: str | None = None

    def matches(self, token: IdToken, group_id_token: IdToken | None = None) -> bool:
        """H03: the reserved idToken (C01.FR.25 equality), or a token whose groupIdToken is the
        reservation's groupIdToken."""
        if self.id_token.matches(token):
            return True
        return (
            self.group_id_token is not None
            and group_id_token is not None
            and self.group_id_token.matches(group_id_token)
        )

    def fits(self, view: EvseView) -> bool:
        return self.connector_type is None or self.connector_type in view.connector_types


@dataclass(frozen=True, slots=True)
class EvseView:
    """What the reservation rules need to know of one EVSE now.

    ``occupied``: not Available for a new reservation (a cable plugged, a session or a
    transaction). ``in_use``: the EVSE cannot take a new authorization (a session is authorized
    there, or is winding down); a cable alone does not make it in use, since the driver who
    plugged in may be the one who holds the reservation (errata §2.24, scenario #2).
    """

    operative: bool = True
    faulted: bool = False
    occupied: bool = False
    in_use: bool = False
    connector_types: frozenset[str] = field(default_factory=frozenset)

    @property
    def usable(self) -> bool:
        return self.operative and not self.faulted and not self.in_use

    @property
    def free(self) -> bool:
        return self.usable and not self.occupied


@dataclass(frozen=True, slots=True)
class Admission:
    """May a token start a session at an EVSE, and which reservation does it consume."""

    allowed: bool
    reservation: Reservation | None = None


def _assignable(
    reservations: Iterable[Reservation], pool: Iterable[int], views: Mapping[int, EvseView]
) -> bool:
    """Whether each reservation can be given its own EVSE from ``pool`` (that it fits):
    Kuhn's augmenting paths; a station has a handful of EVSEs."""
    evses = sorted(pool)
    owner: dict[int, int] = {}  # EVSE → index of the reservation it is given to
    wanted = list(reservations)

    def place(index: int, seen: set[int]) -> bool:
        for evse_id in evses:
            if evse_id in seen or not wanted[index].fits(views[evse_id]):
                continue
            seen.add(evse_id)
            if evse_id not in owner or place(owner[evse_id], seen):
                owner[evse_id] = index
                return True
        return False

    return all(place(i, set()) for i in range(len(wanted)))


class ReservationBook:
    """The reservations the station holds, by id (in memory: they do not survive a restart)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Reservation] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, reservation_id: int) -> Reservation | None:
        return self._by_id.get(reservation_id)

    def all(self) -> tuple[Reservation, ...]:
        return tuple(self._by_id.values())

    def restore(self, reservations: Iterable[Reservation]) -> None:
        """Hold exactly ``reservations`` (as stored before a restart, or a snapshot from
        :meth:`all`), without judging them again; expired ones go at the next :meth:`expire`."""
        self._by_id = {r.reservation_id: r for r in reservations}

    # --- H01 / H02 --------------------------------------------------------------------------

    def reserve(
        self,
        request: Reservation,
        views: Mapping[int, EvseView],
        now: datetime,
        *,
        enabled: bool = True,
        non_evse_specific: bool = True,
    ) -> ReserveStatus:
        """ReserveNow: the answer, and on Accepted the reservation is held (replacing one with
        the same id).

        Args:
            request: the reservation asked for.
            views: every EVSE of the station, by id.
            now: timezone-aware UTC; a reservation that has already expired is Rejected.
            enabled: ReservationCtrlr.Enabled; false rejects every request.
            non_evse_specific: ReservationCtrlr.NonEvseSpecific; false rejects a request
                without evseId.
        """
        if not enabled or request.expires_at <= now:
            return ReserveStatus.REJECTED
        others = [r for r in self._by_id.values() if r.reservation_id != request.reservation_id]
        taken = {r.evse_id for r in others if r.evse_id is not None}
        floating = [r for r in others if r.evse_id is None]
        free = {e for e, v in views.items() if v.free and e not in taken}
        if request.evse_id is not None:
            view = views.get(request.evse_id)
            if view is None or not request.fits(view):
                return ReserveStatus.REJECTED
            if view.faulted:
                return ReserveStatus.FAULTED
            if not view.operative:
                return ReserveStatus.UNAVAILABLE
            if request.evse_id not in free or not _assignable(
                floating, free - {request.evse_id}, views
            ):
                return ReserveStatus.OCCUPIED
        else:
            candidates = [v for v in views.values() if request.fits(v)]
            if not non_evse_specific or not candidates:
                return ReserveStatus.REJECTED
            if not _assignable([*floating, request], free, views):
                if all(v.faulted for v in candidates):
                    return ReserveStatus.FAULTED
                if all(v.faulted or not v.operative for v in candidates):
                    return ReserveStatus.UNAVAILABLE
                return ReserveStatus.OCCUPIED
        self._by_id[request.reservation_id] = request
        return ReserveStatus.ACCEPTED

    def cancel(self, reservation_id: int) -> CancelStatus:
        """CancelReservation (H02): Accepted and removed when held, else Rejected."""
        if self._by_id.pop(reservation_id, None) is None:
            return CancelStatus.REJECTED
        return CancelStatus.ACCEPTED

    # --- H03 ------------------------------------------------------------------------------

    def admit(
        self,
        evse_id: int,
        token: IdToken,
        group_id_token: IdToken | None,
        views: Mapping[int, EvseView],
    ) -> Admission:
        """May ``token`` (with its groupIdToken) start a session at ``evse_id`` now? The
        reservation it would consume, if any (call :meth:`consume` when the session starts)."""
        for reservation in self._by_id.values():
            if reservation.evse_id == evse_id:
                allowed = reservation.matches(token, group_id_token)
                return Admission(allowed, reservation if allowed else None)
        view = views.get(evse_id)
        floating = self._floating()
        for reservation in floating:
            fits = view is not None and reservation.fits(view)
            if fits and reservation.matches(token, group_id_token):
                return Admission(True, reservation)
        pool = self._usable(views) - {evse_id}
        return Admission(_assignable(floating, pool, views))

    def consume(self, reservation_id: int) -> Reservation | None:
        """The reservation was used (H03.FR.09): it ends without a ReservationStatusUpdate (the
        TransactionEvent carries its id)."""
        return self._by_id.pop(reservation_id, None)

    # --- H04 and removal ------------------------------------------------------------------

    def next_expiry(self) -> datetime | None:
        """When the earliest reservation expires (the shell's timer), or None."""
        return min((r.expires_at for r in self._by_id.values()), default=None)

    def expire(self, now: datetime) -> list[Reservation]:
        """Remove and return the reservations whose expiryDateTime has come (H04)."""
        expired = [r for r in self._by_id.values() if r.expires_at <= now]
        for reservation in expired:
            del self._by_id[reservation.reservation_id]
        return expired

    def remove_unserviceable(self, views: Mapping[int, EvseView]) -> list[Reservation]:
        """Remove and return the reservations the station can no longer honour: a specific
        EVSE faulted, inoperative or gone; no operative, unfaulted EVSE for one without EVSE."""
        removed: list[Reservation] = []
        for reservation in list(self._by_id.values()):
            if reservation.evse_id is not None:
                view = views.get(reservation.evse_id)
                ok = view is not None and view.operative and not view.faulted
            else:
                ok = any(
                    v.operative and not v.faulted and reservation.fits(v) for v in views.values()
                )
            if not ok:
                del self._by_id[reservation.reservation_id]
                removed.append(reservation)
        return removed

    # --- G01 -------------------------------------------------------------------------------

    def reserved_evses(self, views: Mapping[int, EvseView]) -> frozenset[int]:
        """The EVSEs whose connectors report Reserved (see the module docstring)."""
        reserved = {r.evse_id for r in self._by_id.values() if r.evse_id in views}
        floating = self._floating()
        if floating:
            usable = self._usable(views)
            reserved |= {e for e in usable if not _assignable(floating, usable - {e}, views)}
        return frozenset(e for e in reserved if e is not None)

    def _floating(self) -> list[Reservation]:
        return sorted(
            (r for r in self._by_id.values() if r.evse_id is None),
            key=lambda r: (r.expires_at, r.reservation_id),
        )

    def _usable(self, views: Mapping[int, EvseView]) -> set[int]:
        taken = {r.evse_id for r in self._by_id.values() if r.evse_id is not None}
        return {e for e, v in views.items() if v.usable and e not in taken}
