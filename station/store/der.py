"""DER controls' persistence: the controls the CSMS set survive a restart (OCPP 2.1 R01-R05).

Owns the rows of ``der_controls`` and their translation to and from the DER core's
:class:`~station.der.DerControl` (stored whole as JSON text in the core's own encoding,
:func:`~station.der.control_to_json`), plus each control's ``running`` flag (its
NotifyDERStartStop ``started`` was due). Each method is one SQLite transaction, committed before it
returns, so the shell can answer the CSMS after it. What is installed, replaced or removed is the
core's decision (:class:`~station.der.DerControlSet`), not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import delete, select, update

from station.der import DerControl, DerValueError, control_from_json, control_to_json
from station.errors import StoreError
from station.store.db import Database
from station.store.models import DerControlRow
from station.store.repositories import _to_db, _transaction

__all__ = ["DerControlRepository"]

_CONTROL_ID_MAX = 36  # controlId: identifierString[36]


class DerControlRepository:
    """The installed DER controls, by control id.

    Args:
        db: the station's database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, control: DerControl) -> None:
        """Install or replace (by id) ``control``, not running, in one committed transaction.

        Raises:
            ValueError: a control id longer than 36 characters, or a value the encoding cannot
                hold (a non-finite number).
            StoreError: the database could not be written (nothing was written).
        """
        if len(control.control_id) > _CONTROL_ID_MAX:
            raise ValueError(f"DER control id longer than {_CONTROL_ID_MAX} characters")
        row = DerControlRow(
            control_id=control.control_id,
            control_type=control.control_type.value,
            is_default=control.is_default,
            priority=control.priority,
            control=json.dumps(
                control_to_json(control), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ),
            received_at=_to_db(control.received_at),
            running=False,
        )
        with _transaction(self._db, "cannot save a DER control") as s:
            s.merge(row)

    def delete(self, control_ids: Iterable[str]) -> None:
        """Remove these controls (ids that are not stored are ignored), in one transaction.

        Raises:
            StoreError: the database could not be written (nothing was deleted).
        """
        ids = sorted(set(control_ids))
        if not ids:
            return
        with _transaction(self._db, "cannot delete DER controls") as s:
            s.execute(delete(DerControlRow).where(DerControlRow.control_id.in_(ids)))

    def set_running(self, control_ids: Iterable[str], running: bool) -> None:
        """Mark controls as started (``running``) or not; unknown ids are ignored.

        Raises:
            StoreError: the database could not be written (nothing was changed).
        """
        ids = sorted(set(control_ids))
        if not ids:
            return
        with _transaction(self._db, "cannot mark DER controls") as s:
            s.execute(
                update(DerControlRow)
                .where(DerControlRow.control_id.in_(ids))
                .values(running=running)
            )

    def load_all(self) -> list[DerControl]:
        """Every stored control, in id order.

        Raises:
            StoreError: the database could not be read, or a row is corrupt.
        """
        query = select(DerControlRow).order_by(DerControlRow.control_id)
        with _transaction(self._db, "cannot load DER controls") as s:
            return [_control(row) for row in s.scalars(query)]

    def load_running(self) -> frozenset[str]:
        """The ids of the controls marked running.

        Raises:
            StoreError: the database could not be read.
        """
        query = select(DerControlRow.control_id).where(DerControlRow.running.is_(True))
        with _transaction(self._db, "cannot load DER controls") as s:
            return frozenset(s.scalars(query))


def _control(row: DerControlRow) -> DerControl:
    try:
        control = control_from_json(json.loads(row.control))
    except (ValueError, DerValueError) as exc:
        raise StoreError(f"DER control {row.control_id!r} is corrupt: {exc}") from exc
    if control.control_id != row.control_id:
        raise StoreError(
            f"DER control {row.control_id!r} is corrupt: it holds {control.control_id!r}"
        )
    return control
