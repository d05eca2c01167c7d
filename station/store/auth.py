"""Authorization's persistence: the Local Authorization List and the Authorization Cache.

Owns the rows of ``local_auth_list``, ``local_auth_list_version`` and ``auth_cache`` and their
translation to and from the authorization core's values (:class:`IdTokenInfo`,
:class:`CacheEntry`), keyed by :func:`~station.transactions.auth.token_key`. Each method is one
SQLite transaction, committed before it returns, so the shell answers the CSMS only once the
change is on disk (D01: the list survives a restart; C10: so does the cache). What goes into the
list or the cache is the core's decision, not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from station.errors import StoreError
from station.store.db import Database
from station.store.models import AuthCacheRow, LocalAuthListVersionRow, LocalAuthRow
from station.store.repositories import _from_db, _to_db, _transaction
from station.transactions.auth import (
    AuthorizationStatus,
    CacheEntry,
    IdTokenInfo,
    token_key,
)
from station.transactions.model import IdToken, IdTokenType

__all__ = ["AuthCacheRepository", "LocalAuthList", "LocalListRepository"]

TokenKey = tuple[str, str]
_VERSION_ROW = 1


@dataclass(frozen=True, slots=True)
class LocalAuthList:
    """The stored Local Authorization List: its version (0: none) and entries by token key."""

    version: int
    entries: Mapping[TokenKey, IdTokenInfo]


class LocalListRepository:
    """The Local Authorization List and its versionNumber."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> LocalAuthList:
        """The whole list.

        Raises:
            StoreError: the database could not be read, or a row is corrupt.
        """
        with _transaction(self._db, "cannot load the local authorization list") as s:
            version = s.get(LocalAuthListVersionRow, _VERSION_ROW)
            rows = s.scalars(select(LocalAuthRow)).all()
            entries = {(row.type, row.token_key): _info(row.id_token_info, row) for row in rows}
        return LocalAuthList(0 if version is None else version.version, entries)

    def replace(
        self,
        version: int,
        *,
        upserts: Iterable[tuple[IdToken, IdTokenInfo]] = (),
        removals: Iterable[IdToken] = (),
        full: bool = False,
    ) -> None:
        """Apply one SendLocalList in one transaction: ``full`` empties the list first; then
        ``removals`` go and ``upserts`` are written; the version becomes ``version``.

        Raises:
            StoreError: the database could not be written (nothing changed).
        """
        rows = [_list_row(token, info) for token, info in upserts]
        gone = [token_key(t) for t in removals]
        with _transaction(self._db, "cannot update the local authorization list") as s:
            if full:
                s.execute(delete(LocalAuthRow))
            for kind, key in gone:
                s.execute(
                    delete(LocalAuthRow).where(
                        LocalAuthRow.type == kind, LocalAuthRow.token_key == key
                    )
                )
            for row in rows:
                s.merge(row)
            s.merge(LocalAuthListVersionRow(id=_VERSION_ROW, version=version))

    def storage_bytes(self) -> int:
        """Bytes the list's entries take (LocalAuthListCtrlr.Storage).

        Raises:
            StoreError: the database could not be read.
        """
        size = func.length(LocalAuthRow.id_token) + func.length(LocalAuthRow.id_token_info)
        with _transaction(self._db, "cannot size the local authorization list") as s:
            return int(s.scalar(select(func.coalesce(func.sum(size), 0))) or 0)


class AuthCacheRepository:
    """The Authorization Cache."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> dict[TokenKey, CacheEntry]:
        """Every cached entry.

        Raises:
            StoreError: the database could not be read, or a row is corrupt.
        """
        with _transaction(self._db, "cannot load the authorization cache") as s:
            rows = s.scalars(select(AuthCacheRow)).all()
            return {
                (row.type, row.token_key): CacheEntry(
                    _info(row.id_token_info, row),
                    _from_db(row.updated_at),
                    _from_db(row.last_used_at),
                )
                for row in rows
            }

    def put(self, token: IdToken, entry: CacheEntry) -> None:
        """Store (or replace) the entry of ``token``.

        Raises:
            ValueError: a naive datetime.
            StoreError: the database could not be written.
        """
        kind, key = token_key(token)
        row = AuthCacheRow(
            type=kind,
            token_key=key,
            id_token_info=_info_json(entry.info),
            updated_at=_to_db(entry.updated_at),
            expires_at=None if entry.info.cache_expiry is None else _to_db(entry.info.cache_expiry),
            last_used_at=_to_db(entry.recency),
        )
        with _transaction(self._db, "cannot write the authorization cache") as s:
            s.merge(row)

    def touch(self, token: IdToken, when: datetime) -> None:
        """Record that the entry of ``token`` decided an authorization at ``when`` (LRU).

        Raises:
            ValueError: a naive datetime.
            StoreError: the database could not be written.
        """
        kind, key = token_key(token)
        stmt = (
            update(AuthCacheRow)
            .where(AuthCacheRow.type == kind, AuthCacheRow.token_key == key)
            .values(last_used_at=_to_db(when))
        )
        with _transaction(self._db, "cannot write the authorization cache") as s:
            s.execute(stmt)

    def sizes(self) -> dict[TokenKey, int]:
        """The bytes each entry takes (its key and its info), by token key; their sum is
        AuthCacheCtrlr.Storage.

        Raises:
            StoreError: the database could not be read.
        """
        size = (
            func.length(AuthCacheRow.type)
            + func.length(AuthCacheRow.token_key)
            + func.length(AuthCacheRow.id_token_info)
        )
        query = select(AuthCacheRow.type, AuthCacheRow.token_key, size)
        with _transaction(self._db, "cannot size the authorization cache") as s:
            return {(kind, key): int(n) for kind, key, n in s.execute(query)}

    def remove_keys(self, keys: Iterable[TokenKey]) -> None:
        """Forget the entries under ``keys`` (eviction), in one transaction.

        Raises:
            StoreError: the database could not be written (nothing was removed).
        """
        with _transaction(self._db, "cannot write the authorization cache") as s:
            for kind, key in keys:
                s.execute(
                    delete(AuthCacheRow).where(
                        AuthCacheRow.type == kind, AuthCacheRow.token_key == key
                    )
                )

    def remove(self, token: IdToken) -> None:
        """Forget ``token`` (absent: nothing happens).

        Raises:
            StoreError: the database could not be written.
        """
        kind, key = token_key(token)
        with _transaction(self._db, "cannot write the authorization cache") as s:
            s.execute(
                delete(AuthCacheRow).where(AuthCacheRow.type == kind, AuthCacheRow.token_key == key)
            )

    def clear(self) -> None:
        """C11 ClearCache: remove every entry.

        Raises:
            StoreError: the database could not be written.
        """
        with _transaction(self._db, "cannot clear the authorization cache") as s:
            s.execute(delete(AuthCacheRow))


# --- encoding -------------------------------------------------------------------------------


def _list_row(token: IdToken, info: IdTokenInfo) -> LocalAuthRow:
    kind, key = token_key(token)
    return LocalAuthRow(
        type=kind, token_key=key, id_token=token.id_token, id_token_info=_info_json(info)
    )


def _info_json(info: IdTokenInfo) -> str:
    data: dict[str, Any] = {"status": info.status.value}
    if info.cache_expiry is not None:
        data["cacheExpiry"] = info.cache_expiry.isoformat()
    if info.group_id_token is not None:
        data["groupIdToken"] = [info.group_id_token.id_token, info.group_id_token.type.value]
    if info.evse_ids:
        data["evseIds"] = list(info.evse_ids)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _info(text: str, row: LocalAuthRow | AuthCacheRow) -> IdTokenInfo:
    try:
        data = json.loads(text)
        expiry = data.get("cacheExpiry")
        group = data.get("groupIdToken")
        return IdTokenInfo(
            status=AuthorizationStatus(data["status"]),
            cache_expiry=None if expiry is None else datetime.fromisoformat(expiry),
            group_id_token=None if group is None else IdToken(group[0], IdTokenType(group[1])),
            evse_ids=tuple(int(e) for e in data.get("evseIds", ())),
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise StoreError(
            f"{row.__tablename__} entry {row.type}/{row.token_key} is corrupt: {exc}"
        ) from exc
