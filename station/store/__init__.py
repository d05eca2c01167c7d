"""Persistence: one SQLite file, its schema owned by the Alembic migrations in ``migrations/``.

The only package that imports ``sqlalchemy`` or ``alembic`` (STYLE.md A2.15). Everything else uses
the names below: :func:`open_database` (the station calls it on start; it upgrades to head), and
repositories that take and return frozen dataclasses and aware UTC datetimes, never ORM rows.
Errors come out as :class:`~station.errors.StoreError`.
"""

from __future__ import annotations

from station.store.auth import AuthCacheRepository, LocalAuthList, LocalListRepository
from station.store.db import (
    Database,
    current_revision,
    head_revision,
    open_database,
    upgrade,
)
from station.store.der import DerControlRepository
from station.store.profiles import ProfileRepository
from station.store.repositories import (
    ATTRIBUTE_TYPES,
    AvailabilityRepository,
    OutboundQueue,
    QueuedMessage,
    VariableKey,
    VariableRepository,
)
from station.store.reservations import ReservationRepository
from station.store.transactions import PendingMessage, QueueThinning, TransactionRepository

__all__ = [
    "ATTRIBUTE_TYPES",
    "AuthCacheRepository",
    "AvailabilityRepository",
    "Database",
    "DerControlRepository",
    "LocalAuthList",
    "LocalListRepository",
    "OutboundQueue",
    "PendingMessage",
    "ProfileRepository",
    "QueueThinning",
    "QueuedMessage",
    "ReservationRepository",
    "TransactionRepository",
    "VariableKey",
    "VariableRepository",
    "current_revision",
    "head_revision",
    "open_database",
    "upgrade",
]
