"""Alembic environment for the station's SQLite database.

Owns how migrations run, not what they do (that is ``versions/``):

- The station (``station.store.db``) passes its own connection in
  ``config.attributes["connection"]``; it is used as is, and logging is left alone. Only a
  developer running ``alembic`` by hand gets a fresh engine (from ``-x db=PATH`` or
  ``sqlalchemy.url``) and the logging set up in ``alembic.ini``.
- Batch mode (``render_as_batch=True``): SQLite cannot ALTER most things, so Alembic recreates the
  table (alembic.sqlalchemy.org/en/latest/batch.html).
- The whole upgrade is one transaction: the station's engine emits ``BEGIN`` itself, so SQLite's
  DDL is transactional and a failed migration leaves the previous schema intact.
- Foreign keys are switched off while a migration runs, because batch mode drops and recreates
  tables, and checked (``PRAGMA foreign_key_check``) before the transaction commits. This is the
  procedure of sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes".
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from station.store.db import create_sqlite_engine
from station.store.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str | URL:
    db = context.get_x_argument(as_dictionary=True).get("db")
    if db:
        return URL.create("sqlite+pysqlite", database=db)
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise CommandError("no database: set sqlalchemy.url or pass -x db=PATH")
    return url


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        transactional_ddl=True,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Print the SQL (``alembic upgrade --sql``) instead of running it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    # PRAGMA foreign_keys is a no-op inside a transaction, so it is set on the driver connection
    # before Alembic begins one; a caller that is already in a transaction keeps its setting.
    raw = None if connection.in_transaction() else connection.connection.driver_connection
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise CommandError(f"migration broke foreign keys: {broken[:5]!r}")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_sqlite_engine(_url())
    try:
        with engine.connect() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
