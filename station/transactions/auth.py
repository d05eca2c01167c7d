"""Who may charge: the authorization decision for a presented token, as a pure function.

Owns the rules of OCPP 2.0.1 functional block C that decide, for one token at one EVSE, whether
the station accepts it on its own, rejects it, or must ask the CSMS (an Authorize request): the
Local Authorization List (D01/D02) before the Authorization Cache (C10), cache expiry (C10.FR.10 and
C10.FR.13, as corrected by errata 2025-01 §2.16), idTokenInfo.evseId restrictions, and the AuthCtrlr
switches LocalPreAuthorize, LocalAuthorizeOffline, OfflineTxForUnknownIdEnabled (C15),
DisableRemoteAuthorization and AuthCacheCtrlr/LocalAuthListCtrlr.DisablePostAuthorize.

It must not store anything: the list and the cache live in ``store/`` and are passed in as
mappings keyed by :func:`token_key`; :func:`cache_entry` says what to write back. When the verdict
is :attr:`Verdict.ASK_CSMS` the shell sends :class:`AuthorizationRequest` as an Authorize, and
feeds the answer to :func:`decide_on_authorize_response`. An accepted decision becomes an
:class:`~station.transactions.events.Authorized` event for the EVSE's machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from station.transactions.model import IdToken, IdTokenType

__all__ = [
    "AuthConfig",
    "AuthDecision",
    "AuthSource",
    "AuthorizationRequest",
    "AuthorizationStatus",
    "CacheEntry",
    "IdTokenInfo",
    "Verdict",
    "cache_entry",
    "cache_evictions",
    "decide_authorization",
    "decide_on_authorize_response",
    "token_key",
]


class AuthorizationStatus(StrEnum):
    """AuthorizationStatusEnumType (2.0.1)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    CONCURRENT_TX = "ConcurrentTx"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    NO_CREDIT = "NoCredit"
    NOT_ALLOWED_TYPE_EVSE = "NotAllowedTypeEVSE"
    NOT_AT_THIS_LOCATION = "NotAtThisLocation"
    NOT_AT_THIS_TIME = "NotAtThisTime"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class IdTokenInfo:
    """IdTokenInfoType, the parts that decide: ``evse_ids`` empty means every EVSE."""

    status: AuthorizationStatus
    cache_expiry: datetime | None = None
    group_id_token: IdToken | None = None
    evse_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """An Authorization Cache entry: the info, when it was last updated (AuthCacheLifeTime) and
    when it last decided an authorization (AuthCacheCtrlr.Policy LRU; None: never, since the
    update)."""

    info: IdTokenInfo
    updated_at: datetime
    last_used_at: datetime | None = None

    @property
    def recency(self) -> datetime:
        """When the entry was last written or used, whichever is later."""
        if self.last_used_at is None or self.last_used_at < self.updated_at:
            return self.updated_at
        return self.last_used_at


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """AuthCtrlr, AuthCacheCtrlr and LocalAuthListCtrlr variables (defaults: device model's)."""

    local_pre_authorize: bool = False
    local_authorize_offline: bool = True
    offline_tx_for_unknown_id_enabled: bool = False
    disable_remote_authorization: bool = False
    cache_enabled: bool = True
    cache_lifetime_s: float | None = None  # AuthCacheCtrlr.LifeTime; None: no limit
    cache_disable_post_authorize: bool = False
    cache_storage_max_b: int | None = None  # AuthCacheCtrlr.Storage maxLimit; None: no limit
    local_list_enabled: bool = True
    local_list_disable_post_authorize: bool = False


class Verdict(StrEnum):
    ACCEPT = "Accept"
    REJECT = "Reject"
    ASK_CSMS = "AskCsms"


class AuthSource(StrEnum):
    """Where a decision came from."""

    NO_AUTHORIZATION = "NoAuthorization"
    LOCAL_LIST = "LocalList"
    CACHE = "Cache"
    CSMS = "Csms"
    UNKNOWN_OFFLINE = "UnknownOffline"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Ask the CSMS: AuthorizeRequest(idToken) for a session at ``evse_id``."""

    id_token: IdToken
    evse_id: int


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """The verdict, what it rests on, and (for ASK_CSMS) the request to send."""

    verdict: Verdict
    source: AuthSource
    info: IdTokenInfo | None = None
    request: AuthorizationRequest | None = None

    @property
    def group_id_token(self) -> IdToken | None:
        return self.info.group_id_token if self.info is not None else None


def token_key(token: IdToken) -> tuple[str, str]:
    """The key of a token in the list and the cache: its type, and its id case-folded (C01.FR.25;
    the idToken is case insensitive)."""
    return (token.type.value, token.id_token.casefold())


def _cache_valid(entry: CacheEntry, now: datetime, config: AuthConfig) -> bool:
    """C10.FR.13: cacheExpiryDateTime decides when present; else C10.FR.10: AuthCacheLifeTime."""
    if entry.info.cache_expiry is not None:
        return now <= entry.info.cache_expiry
    if config.cache_lifetime_s is None:
        return True
    return now - entry.updated_at <= timedelta(seconds=config.cache_lifetime_s)


def _allowed_here(info: IdTokenInfo, evse_id: int) -> bool:
    return not info.evse_ids or evse_id in info.evse_ids


def decide_authorization(
    token: IdToken,
    evse_id: int,
    *,
    online: bool,
    now: datetime,
    local_list: Mapping[tuple[str, str], IdTokenInfo],
    cache: Mapping[tuple[str, str], CacheEntry],
    config: AuthConfig,
) -> AuthDecision:
    """Decide on a token presented at ``evse_id``.

    Args:
        token: the presented token.
        evse_id: where the session would run.
        online: whether the CSMS link is up.
        now: timezone-aware UTC, for cache expiry.
        local_list: the Local Authorization List, by :func:`token_key`.
        cache: the Authorization Cache, by :func:`token_key`.
        config: the switches.

    Returns:
        ACCEPT (start now), REJECT, or ASK_CSMS with the AuthorizationRequest to send.
    """
    request = AuthorizationRequest(token, evse_id)
    ask = AuthDecision(Verdict.ASK_CSMS, AuthSource.CSMS, request=request)
    if token.type is IdTokenType.NO_AUTHORIZATION:
        # "Transaction is started and no authorization possible" (IdTokenEnumType).
        return AuthDecision(Verdict.ACCEPT, AuthSource.NO_AUTHORIZATION)
    key = token_key(token)
    found: tuple[AuthSource, IdTokenInfo, bool] | None = None
    # The Local Authorization List takes precedence over the cache.
    if config.local_list_enabled and key in local_list:
        found = (AuthSource.LOCAL_LIST, local_list[key], config.local_list_disable_post_authorize)
    elif config.cache_enabled and key in cache and _cache_valid(cache[key], now, config):
        found = (AuthSource.CACHE, cache[key].info, config.cache_disable_post_authorize)
    can_ask = online and not config.disable_remote_authorization
    if found is None:
        if can_ask:
            return ask
        if not online and config.offline_tx_for_unknown_id_enabled:
            return AuthDecision(Verdict.ACCEPT, AuthSource.UNKNOWN_OFFLINE)  # C15
        return AuthDecision(Verdict.REJECT, AuthSource.NONE)
    source, info, disable_post_authorize = found
    if info.status is AuthorizationStatus.ACCEPTED:
        if not _allowed_here(info, evse_id):
            return AuthDecision(Verdict.REJECT, source, info)
        if not online:
            verdict = Verdict.ACCEPT if config.local_authorize_offline else Verdict.REJECT
            return AuthDecision(verdict, source, info)
        if config.local_pre_authorize or not can_ask:
            return AuthDecision(Verdict.ACCEPT, source, info)
        return ask
    # Known but not Accepted: ask again unless post-authorization is disabled.
    if can_ask and not disable_post_authorize:
        return ask
    return AuthDecision(Verdict.REJECT, source, info)


def decide_on_authorize_response(info: IdTokenInfo, evse_id: int) -> AuthDecision:
    """The verdict on the CSMS's AuthorizeResponse.idTokenInfo."""
    accepted = info.status is AuthorizationStatus.ACCEPTED and _allowed_here(info, evse_id)
    return AuthDecision(Verdict.ACCEPT if accepted else Verdict.REJECT, AuthSource.CSMS, info)


def cache_entry(info: IdTokenInfo, now: datetime, config: AuthConfig) -> CacheEntry | None:
    """What the cache holds for a token after the CSMS sent ``info`` (Authorize or
    TransactionEvent response); None: remove it (or do not store it).

    A cacheExpiryDateTime in the past "will prevent an idToken from being stored in the
    authorization cache, or remove it" (errata 2025-01 §2.16, C10.FR.13 note).
    """
    if not config.cache_enabled:
        return None
    if info.cache_expiry is not None and info.cache_expiry < now:
        return None
    return CacheEntry(info, now)


def cache_evictions(
    cache: Mapping[tuple[str, str], CacheEntry],
    sizes_b: Mapping[tuple[str, str], int],
    limit_b: int,
    now: datetime,
    config: AuthConfig,
) -> list[tuple[str, str]]:
    """The entries to remove so that the cache takes at most ``limit_b`` bytes (AuthCacheCtrlr
    Storage: "MaxLimit indicates the maximum number of bytes that can be used by the
    Authorization Cache").

    Order (AuthCacheCtrlr.Policy LRU, the station's only policy): entries that can no longer
    decide anything first (past their cacheExpiryDateTime or AuthCacheCtrlr.LifeTime, C10.FR.10
    / C10.FR.13), oldest first; then valid entries, least recently used (written or used) first.

    Args:
        cache: the Authorization Cache, by :func:`token_key`.
        sizes_b: the bytes each entry takes in the store (a missing key counts 0).
        limit_b: the bound, in bytes.
        now: timezone-aware UTC.
        config: for LifeTime.

    Returns:
        The keys to remove, in removal order; empty when the cache fits.
    """
    total_b = sum(sizes_b.get(key, 0) for key in cache)
    if total_b <= limit_b:
        return []
    order = sorted(
        cache,
        key=lambda key: (_cache_valid(cache[key], now, config), cache[key].recency, key),
    )
    evicted: list[tuple[str, str]] = []
    for key in order:
        if total_b <= limit_b:
            break
        evicted.append(key)
        total_b -= sizes_b.get(key, 0)
    return evicted
