"""The ORM models: one class per table, exactly as the Alembic migrations create them.

This module owns the shape of the tables and nothing else. The schema itself is owned by the
migrations in the top-level ``migrations/`` folder; every change here needs a migration, and
``tests/test_store.py`` fails when the two disagree (an autogenerate diff against the migrated
schema must be empty).

Rules for the columns:

- Datetimes are stored as naive UTC (``DateTime`` without time zone). The repositories convert to
  and from timezone-aware UTC; nothing outside ``station.store`` sees a naive datetime.
- Columns that take part in a unique key are ``NOT NULL`` with a sentinel (``""`` or ``0``) for
  "none", because SQLite never considers two NULLs equal, so a NULL in a unique key would let
  duplicates in.

ORM rows never leave ``station.store``: the repositories return frozen dataclasses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuthCacheRow",
    "Availability",
    "Base",
    "ChargingProfileRow",
    "DerControlRow",
    "DeviceVariable",
    "LocalAuthListVersionRow",
    "LocalAuthRow",
    "OpenTransactionRow",
    "OutboundMessage",
    "ReservationRow",
]

# Named constraints, so that Alembic batch mode (which recreates SQLite tables) can find and
# alter them later (alembic.sqlalchemy.org/en/latest/batch.html, "Dealing with Constraints").
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every table of the station's database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeviceVariable(Base):
    """One persisted device-model value (OCPP 2.0.1 Part 1, device model).

    The key is (component, component instance, EVSE, connector, variable, variable instance,
    attribute type). ``evse_id`` and ``connector_id`` are 0 when the component has no EVSE or
    connector (OCPP numbers real EVSEs and connectors from 1); the instances are ``""`` when
    absent.
    """

    __tablename__ = "device_variables"
    __table_args__ = (
        UniqueConstraint(
            "component",
            "component_instance",
            "evse_id",
            "connector_id",
            "variable",
            "variable_instance",
            "attribute",
            name="uq_device_variables_key",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component: Mapped[str] = mapped_column(String(50))
    component_instance: Mapped[str] = mapped_column(String(50), server_default=text("''"))
    evse_id: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    connector_id: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    variable: Mapped[str] = mapped_column(String(50))
    variable_instance: Mapped[str] = mapped_column(String(50), server_default=text("''"))
    attribute: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(2500))
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class Availability(Base):
    """Persisted operative/inoperative state (OCPP 2.0.1 G03 ChangeAvailability persists).

    ``evse_id`` 0 is the whole station; ``connector_id`` 0 is the whole EVSE.
    """

    __tablename__ = "availability"

    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    operative: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class OutboundMessage(Base):
    """A message the CSMS must receive, held until it is acknowledged.

    ``id`` is the order of delivery. ``sqlite_autoincrement`` makes SQLite never reuse an id,
    even after the newest row was deleted, so an id always names one message.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # JSON text
    transaction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class OpenTransactionRow(Base):
    """The open transaction of one EVSE, written in the same SQLite transaction as the queued
    TransactionEvent that changed it, so that a crash never separates the two (issue 3).

    ``last_reading`` is the last meter reading as JSON (or NULL); ``ended_measurands`` the
    comma-separated TxEndedMeasurands to report when the transaction is recovered. The session's
    tokens (NULL while it has none) and ``alive_at``, the last time the station was known to run
    the transaction (each event and a periodic keep-alive), let it be resumed after a restart.
    """

    __tablename__ = "open_transactions"

    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    transaction_id: Mapped[str] = mapped_column(String(36), unique=True)
    connector_id: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime())
    next_seq_no: Mapped[int] = mapped_column(Integer)
    last_reading: Mapped[str | None] = mapped_column(Text)
    ended_measurands: Mapped[str] = mapped_column(Text, server_default=text("''"))
    id_token: Mapped[str | None] = mapped_column(String(255))
    id_token_type: Mapped[str | None] = mapped_column(String(20))
    group_id_token: Mapped[str | None] = mapped_column(String(255))
    group_id_token_type: Mapped[str | None] = mapped_column(String(20))
    alive_at: Mapped[datetime | None] = mapped_column(DateTime())


class ChargingProfileRow(Base):
    """One installed charging profile (K01: profiles persist and survive a restart; issue 4).

    ``id`` is the profile id (unique within the station, K01.FR.05; external constraints may use
    negative ids). ``profile`` is the whole profile as JSON text in the smart-charging core's
    own encoding (:func:`station.smartcharging.profile_to_json`); the other columns repeat what
    queries and humans select by. ``transaction_id`` is set for a TxProfile bound to its
    transaction, so that the transaction's end can remove it.
    """

    __tablename__ = "charging_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    evse_id: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(40))
    stack_level: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    profile: Mapped[str] = mapped_column(Text)  # JSON text
    received_at: Mapped[datetime] = mapped_column(DateTime())


class LocalAuthRow(Base):
    """One entry of the Local Authorization List (D01: it persists and survives a restart).

    The key is the token's type and its id case-folded (C01.FR.25, ``auth.token_key``);
    ``id_token`` keeps the id as the CSMS sent it, ``id_token_info`` the IdTokenInfo as JSON in
    the store's own encoding.
    """

    __tablename__ = "local_auth_list"

    type: Mapped[str] = mapped_column(String(20), primary_key=True)
    token_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    id_token: Mapped[str] = mapped_column(String(255))
    id_token_info: Mapped[str] = mapped_column(Text)  # JSON text


class LocalAuthListVersionRow(Base):
    """The Local Authorization List's versionNumber (D01/D02); one row, ``id`` 1."""

    __tablename__ = "local_auth_list_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)


class AuthCacheRow(Base):
    """One Authorization Cache entry (C10: it persists and survives a restart).

    Keyed like :class:`LocalAuthRow`. ``updated_at`` is when the CSMS last sent the info
    (AuthCacheCtrlr.LifeTime counts from there), ``expires_at`` its cacheExpiryDateTime (or
    NULL), ``last_used_at`` when it last decided (for the replacement policy).
    """

    __tablename__ = "auth_cache"

    type: Mapped[str] = mapped_column(String(20), primary_key=True)
    token_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    id_token_info: Mapped[str] = mapped_column(Text)  # JSON text
    updated_at: Mapped[datetime] = mapped_column(DateTime())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime())
    last_used_at: Mapped[datetime] = mapped_column(DateTime())


class DerControlRow(Base):
    """One installed OCPP 2.1 DER control (SetDERControl; they persist and survive a restart).

    ``control_id`` is the controlId (identifierString[36]). ``control`` is the whole control as
    JSON text in the DER core's own encoding (:func:`station.der.control_to_json`); the other
    columns repeat what queries and humans select by. ``running`` is set once its
    NotifyDERStartStop ``started`` was due (a scheduled control in its window), so that a restart
    does not announce it again.
    """

    __tablename__ = "der_controls"

    control_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    control_type: Mapped[str] = mapped_column(String(30))
    is_default: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[int] = mapped_column(Integer)
    control: Mapped[str] = mapped_column(Text)  # JSON text
    received_at: Mapped[datetime] = mapped_column(DateTime())
    running: Mapped[bool] = mapped_column(Boolean, server_default=text("0"))


class ReservationRow(Base):
    """One reservation the station holds (H01; it survives a restart, so a reserved EVSE stays
    reserved and the reservation still expires at its expiryDateTime).

    ``id`` is the reservation id; ``evse_id`` NULL for a reservation without EVSE. The idToken and
    the optional groupIdToken are stored as the CSMS sent them (id and type).
    """

    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    evse_id: Mapped[int | None] = mapped_column(Integer)
    id_token: Mapped[str] = mapped_column(String(255))
    id_token_type: Mapped[str] = mapped_column(String(20))
    group_id_token: Mapped[str | None] = mapped_column(String(255))
    group_id_token_type: Mapped[str | None] = mapped_column(String(20))
    connector_type: Mapped[str | None] = mapped_column(String(50))
    expires_at: Mapped[datetime] = mapped_column(DateTime())
