"""Reservations' persistence: the reservations the station holds (H01-H04).

Owns the rows of ``reservations`` and their translation to and from the reservation core's
:class:`~station.transactions.reservations.Reservation`. The shell writes the whole set after
every change, in one committed SQLite transaction, before it answers the CSMS, so a reservation
survives a restart: the EVSE stays reserved for its token and the reservation still expires at its
expiryDateTime. Which reservations are held is the core's decision, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from station.errors import StoreError
from station.store.db import Database
from station.store.models import ReservationRow
from station.store.repositories import _from_db, _to_db, _transaction
from station.transactions.model import IdToken, IdTokenType
from station.transactions.reservations import Reservation

__all__ = ["ReservationRepository"]


class ReservationRepository:
    """The reservations the station holds, by reservation id."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> list[Reservation]:
        """Every stored reservation, by id (expired ones too: the shell expires them).

        Raises:
            StoreError: the database could not be read, or a row is corrupt.
        """
        with _transaction(self._db, "cannot load reservations") as s:
            rows = s.scalars(select(ReservationRow).order_by(ReservationRow.id)).all()
            return [_reservation(row) for row in rows]

    def replace_all(self, reservations: Iterable[Reservation]) -> None:
        """Store exactly ``reservations``, in one transaction.

        Raises:
            ValueError: a naive expiry time.
            StoreError: the database could not be written (nothing changed).
        """
        rows = [_row(r) for r in reservations]
        with _transaction(self._db, "cannot store reservations") as s:
            s.execute(delete(ReservationRow))
            s.add_all(rows)


def _row(reservation: Reservation) -> ReservationRow:
    group = reservation.group_id_token
    return ReservationRow(
        id=reservation.reservation_id,
        evse_id=reservation.evse_id,
        id_token=reservation.id_token.id_token,
        id_token_type=reservation.id_token.type.value,
        group_id_token=None if group is None else group.id_token,
        group_id_token_type=None if group is None else group.type.value,
        connector_type=reservation.connector_type,
        expires_at=_to_db(reservation.expires_at),
    )


def _reservation(row: ReservationRow) -> Reservation:
    try:
        group = None
        if row.group_id_token is not None and row.group_id_token_type is not None:
            group = IdToken(row.group_id_token, IdTokenType(row.group_id_token_type))
        return Reservation(
            reservation_id=row.id,
            id_token=IdToken(row.id_token, IdTokenType(row.id_token_type)),
            expires_at=_from_db(row.expires_at),
            evse_id=row.evse_id,
            group_id_token=group,
            connector_type=row.connector_type,
        )
    except ValueError as exc:
        raise StoreError(f"reservation {row.id} is corrupt: {exc}") from exc
