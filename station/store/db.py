"""The database: one SQLite file, opened with the pragmas the station relies on, kept at head.

This module owns the engine, its connection settings and running the Alembic migrations. It does
not know any table (that is ``models.py``) nor any domain type (that is ``repositories.py``).

Every connection gets (DESIGN.md, "Store"):

- ``PRAGMA journal_mode=WAL``: readers never block the writer;
- ``PRAGMA synchronous=FULL``: a commit is on disk when it returns, so a queued message survives a
  power cut, not only a crash of the process;
- ``PRAGMA foreign_keys=ON``.

The ``sqlite3`` driver's legacy transaction control is switched off and SQLAlchemy emits ``BEGIN``
itself (SQLAlchemy docs, "Enabling Non-Legacy SQLite Transactional Modes"), so every session
transaction is a real SQLite transaction and a migration's DDL is atomic.

The migrations live in the repository's top-level ``migrations/`` folder. The Alembic ``Config``
is built here in code, so this works from any working directory; ``alembic.ini`` is only for a
developer running ``alembic`` by hand.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

import station
from station.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest migration. Kept here so that a station whose database is already current never
#: imports Alembic (about 8 MB of RSS and 0.1 s of start-up); a test checks it equals the head
#: of ``migrations/``.
SCHEMA_HEAD = "0007"

__all__ = [
    "MEMORY",
    "MIGRATIONS_DIR",
    "Database",
    "create_sqlite_engine",
    "current_revision",
    "describe_error",
    "head_revision",
    "open_database",
    "upgrade",
]

log = logging.getLogger(__name__)

MEMORY = ":memory:"
"""The path that opens a private in-memory database (one shared connection)."""

MIGRATIONS_DIR = Path(station.__file__).resolve().parent.parent / "migrations"
"""The Alembic script directory: the repository's top-level ``migrations/`` folder."""


class Database:
    """An open SQLite database. Make one with :func:`open_database`.

    Use a session as a context manager with an explicit transaction::

        with db.session() as s, s.begin():
            s.add(...)

    The transaction commits when the ``with`` block ends without an exception.
    """

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._closed = False

    def session(self) -> Session:
        """A new ORM session on this database.

        Raises:
            StoreError: the database was closed.
        """
        if self._closed:
            raise StoreError(f"database {self.path} is closed")
        return self._sessions()

    def close(self) -> None:
        """Close every connection. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Database {str(self.path)!r}{' closed' if self._closed else ''}>"


def open_database(path: str | Path, *, upgrade: bool = True) -> Database:
    """Open (creating if needed) the database at ``path``.

    Args:
        path: the SQLite file; its parent directory is created if missing. ``":memory:"`` opens a
            private in-memory database.
        upgrade: run the migrations up to head (the station does this on every start).

    Returns:
        The open database. Close it with :meth:`Database.close`.

    Raises:
        StoreError: the file cannot be opened as a SQLite database, or cannot be upgraded.
    """
    db_path = Path(path)
    engine = _open_engine(db_path)
    try:
        if upgrade and _stored_revision(engine, db_path) != SCHEMA_HEAD:
            _upgrade_engine(engine, db_path)
    except BaseException:
        engine.dispose()
        raise
    return Database(db_path, engine)


def upgrade(path: str | Path) -> str:
    """Migrate the database at ``path`` to head, creating it if needed.

    Upgrading a database that is already at head changes nothing.

    Returns:
        The revision now current.

    Raises:
        StoreError: the file cannot be opened or upgraded.
    """
    db_path = Path(path)
    engine = _open_engine(db_path)
    try:
        return _upgrade_engine(engine, db_path)
    finally:
        engine.dispose()


def current_revision(path: str | Path) -> str | None:
    """The revision the database at ``path`` is at.

    Returns:
        The revision id, or ``None`` when the file does not exist or has never been migrated.
        A missing file is not created.

    Raises:
        StoreError: the file cannot be opened as a SQLite database.
    """
    db_path = Path(path)
    if str(db_path) != MEMORY and not db_path.exists():
        return None
    engine = _open_engine(db_path, create_parent=False)
    try:
        return _stored_revision(engine, db_path)
    finally:
        engine.dispose()


def _stored_revision(engine: Engine, path: Path) -> str | None:
    """The revision in Alembic's ``alembic_version`` table, read without importing Alembic."""
    with _translate(path, "cannot read the revision of"), engine.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
        ).first()
        if exists is None:
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:
        raise StoreError(f"database {path}: more than one schema revision recorded")
    return str(rows[0][0]) if rows else None


def head_revision() -> str:
    """The newest revision in ``migrations/``.

    Raises:
        StoreError: the migrations folder is missing or has no single head.
    """
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        head = ScriptDirectory.from_config(_alembic_config(MEMORY)).get_current_head()
    except CommandError as exc:
        raise StoreError(f"migrations in {MIGRATIONS_DIR}: {exc}") from exc
    if head is None:
        raise StoreError(f"migrations in {MIGRATIONS_DIR}: no revision found")
    return head


def create_sqlite_engine(url: str | URL) -> Engine:
    """An engine for a SQLite URL, with the station's pragmas and transaction control.

    Used by :func:`open_database` and by ``migrations/env.py`` when ``alembic`` runs by hand.
    An in-memory URL gets a single shared connection (``StaticPool``).
    """
    sa_url = make_url(url)
    if (sa_url.database or MEMORY) == MEMORY:
        engine = create_engine(
            sa_url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        engine = create_engine(sa_url)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def describe_error(exc: BaseException) -> str:
    """One line for a SQLAlchemy/driver error: the driver's message without SQL or links."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.splitlines()[0] if text else type(exc).__name__


# --- engine ---------------------------------------------------------------------------------


def _file_url(path: Path) -> URL:
    return URL.create("sqlite+pysqlite", database=str(path))


def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Configure every new DBAPI connection (see the module docstring)."""
    # Take transaction control away from the driver; _on_begin emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        row = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
    mode = str(row[0]).lower() if row else ""
    if mode not in ("wal", "memory"):
        # WAL needs shared memory; it is refused e.g. on some network file systems.
        raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode!r})")


def _on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _open_engine(path: Path, *, create_parent: bool = True) -> Engine:
    """An engine on ``path``, with one connection made to prove the file is usable."""
    is_memory = str(path) == MEMORY
    if not is_memory and create_parent:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open database {path}: {exc.strerror or exc}") from exc
    engine = create_sqlite_engine(_file_url(path))
    try:
        with engine.connect() as conn:
            # Reading the schema makes SQLite read the file header: a file that is not a
            # database fails here rather than at the first query.
            conn.exec_driver_sql("PRAGMA schema_version").scalar()
    except (SQLAlchemyError, sqlite3.Error) as exc:
        engine.dispose()
        raise StoreError(f"cannot open database {path}: {describe_error(exc)}") from exc
    return engine


# --- migrations -----------------------------------------------------------------------------


def _alembic_config(path: str | Path) -> Config:
    """An Alembic config built in code, independent of the working directory and alembic.ini."""
    from alembic.config import Config

    cfg = Config()
    # ConfigParser interpolation: a literal % must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    url = _file_url(Path(path)).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade_engine(engine: Engine, path: Path) -> str:
    """Run the migrations to head on ``engine``; return the revision now current."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    cfg = _alembic_config(path)
    with _translate(path, "cannot upgrade", CommandError), engine.connect() as conn:
        cfg.attributes["connection"] = conn
        before = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()  # end the autobegun read so env.py can switch foreign keys off
        command.upgrade(cfg, "head")
        after = MigrationContext.configure(conn).get_current_revision()
        conn.commit()
    if after is None:
        raise StoreError(f"cannot upgrade database {path}: no revision after upgrade")
    if before != after:
        log.info("database %s upgraded from %s to %s", path, before, after)
    return after


@contextmanager
def _translate(path: Path, what: str, *more: type[BaseException]) -> Iterator[None]:
    """Turn SQLAlchemy, driver (and ``more``, e.g. Alembic) errors into a one-line StoreError."""
    caught: tuple[type[BaseException], ...] = (SQLAlchemyError, sqlite3.Error, *more)
    try:
        yield
    except caught as exc:
        raise StoreError(f"{what} database {path}: {describe_error(exc)}") from exc
