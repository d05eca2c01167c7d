"""Charging profiles' persistence: the installed profiles survive a restart (issue 4, K01).

Owns the rows of ``charging_profiles`` and their translation to and from the smart-charging
core's :class:`~station.smartcharging.ChargingProfile` (stored whole as JSON text in the core's
own encoding, :func:`~station.smartcharging.profile_to_json`). Each method is one SQLite
transaction, committed before it returns, so the shell can answer the CSMS after it.
What is installed, replaced or removed is the core's decision (:class:`ProfileSet`), not this
module's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import delete, select

from station.clock import Clock, SystemClock
from station.errors import StoreError
from station.smartcharging import (
    ChargingProfile,
    SmartChargingValueError,
    profile_from_json,
    profile_to_json,
)
from station.store.db import Database
from station.store.models import ChargingProfileRow
from station.store.repositories import _from_db, _to_db, _transaction

__all__ = ["ProfileRepository"]

_TRANSACTION_ID_MAX = 36  # OCPP 2.0.1 ChargingProfileType.transactionId: identifierString[36]


class ProfileRepository:
    """The installed charging profiles, by profile id.

    Args:
        db: the station's database.
        clock: stamps ``received_at`` of a profile that carries none.
    """

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock: Clock = clock or SystemClock()

    def save(self, profiles: Iterable[ChargingProfile]) -> None:
        """Install or replace (by id) ``profiles``, all in one committed transaction.

        Raises:
            ValueError: a transaction id longer than 36 characters, or a profile the encoding
                cannot hold (a non-finite number).
            StoreError: the database could not be written (nothing was written).
        """
        rows = [self._row(p) for p in profiles]
        if not rows:
            return
        with _transaction(self._db, "cannot save charging profiles") as s:
            for row in rows:
                s.merge(row)

    def delete(self, profile_ids: Iterable[int]) -> None:
        """Remove these profiles (ids that are not stored are ignored), in one transaction.

        Raises:
            StoreError: the database could not be written (nothing was deleted).
        """
        ids = sorted(set(profile_ids))
        if not ids:
            return
        with _transaction(self._db, "cannot delete charging profiles") as s:
            s.execute(delete(ChargingProfileRow).where(ChargingProfileRow.id.in_(ids)))

    def load_all(self) -> list[ChargingProfile]:
        """Every stored profile, in id order.

        Raises:
            StoreError: the database could not be read, or a row is corrupt.
        """
        query = select(ChargingProfileRow).order_by(ChargingProfileRow.id)
        with _transaction(self._db, "cannot load charging profiles") as s:
            return [_profile(row) for row in s.scalars(query)]

    def _row(self, profile: ChargingProfile) -> ChargingProfileRow:
        if profile.transaction_id is not None and len(profile.transaction_id) > _TRANSACTION_ID_MAX:
            raise ValueError(
                f"charging profile {profile.id}: transaction id longer than "
                f"{_TRANSACTION_ID_MAX} characters"
            )
        received_at = profile.received_at or self._clock.now()
        return ChargingProfileRow(
            id=profile.id,
            evse_id=profile.evse_id,
            purpose=profile.purpose.value,
            stack_level=profile.stack_level,
            transaction_id=profile.transaction_id,
            profile=json.dumps(
                profile_to_json(profile),
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            ),
            received_at=_to_db(received_at),
        )


def _profile(row: ChargingProfileRow) -> ChargingProfile:
    try:
        profile = profile_from_json(json.loads(row.profile))
    except (ValueError, SmartChargingValueError) as exc:
        raise StoreError(f"charging profile {row.id} is corrupt: {exc}") from exc
    if profile.id != row.id:
        raise StoreError(f"charging profile {row.id} is corrupt: it holds profile {profile.id}")
    if profile.received_at is None:
        # Saved without one: the row's stamp is when the station accepted it.
        profile = replace(profile, received_at=_from_db(row.received_at))
    return profile
