"""The authorization decision (functional block C), table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from station.transactions import (
    AuthConfig,
    AuthorizationRequest,
    AuthorizationStatus,
    AuthSource,
    CacheEntry,
    IdToken,
    IdTokenInfo,
    IdTokenType,
    Verdict,
    cache_entry,
    decide_authorization,
    decide_on_authorize_response,
    token_key,
)
from tests.transactions.support import GROUP, T0, TOKEN

A = AuthorizationStatus
ACCEPTED = IdTokenInfo(A.ACCEPTED, group_id_token=GROUP)
BLOCKED = IdTokenInfo(A.BLOCKED)
KEY = token_key(TOKEN)

ASK, ACCEPT, REJECT = Verdict.ASK_CSMS, Verdict.ACCEPT, Verdict.REJECT
LIST, CACHE, CSMS = AuthSource.LOCAL_LIST, AuthSource.CACHE, AuthSource.CSMS


@pytest.mark.parametrize(
    ("where", "info", "online", "config", "verdict", "source"),
    [
        # unknown token
        (None, None, True, AuthConfig(), ASK, CSMS),
        (None, None, False, AuthConfig(), REJECT, AuthSource.NONE),
        # C15 Unknown Offline Authorization
        (
            None,
            None,
            False,
            AuthConfig(offline_tx_for_unknown_id_enabled=True),
            ACCEPT,
            AuthSource.UNKNOWN_OFFLINE,
        ),
        (None, None, True, AuthConfig(disable_remote_authorization=True), REJECT, AuthSource.NONE),
        # known and Accepted
        ("list", ACCEPTED, True, AuthConfig(), ASK, CSMS),
        ("list", ACCEPTED, True, AuthConfig(local_pre_authorize=True), ACCEPT, LIST),
        ("cache", ACCEPTED, True, AuthConfig(local_pre_authorize=True), ACCEPT, CACHE),
        ("cache", ACCEPTED, False, AuthConfig(), ACCEPT, CACHE),
        ("list", ACCEPTED, False, AuthConfig(local_authorize_offline=False), REJECT, LIST),
        ("list", ACCEPTED, True, AuthConfig(disable_remote_authorization=True), ACCEPT, LIST),
        # disabled stores are not consulted
        ("list", ACCEPTED, False, AuthConfig(local_list_enabled=False), REJECT, AuthSource.NONE),
        ("cache", ACCEPTED, False, AuthConfig(cache_enabled=False), REJECT, AuthSource.NONE),
        # known, not Accepted: post-authorize online unless disabled
        ("cache", BLOCKED, True, AuthConfig(), ASK, CSMS),
        ("cache", BLOCKED, True, AuthConfig(cache_disable_post_authorize=True), REJECT, CACHE),
        ("list", BLOCKED, True, AuthConfig(local_list_disable_post_authorize=True), REJECT, LIST),
        ("list", BLOCKED, False, AuthConfig(), REJECT, LIST),
    ],
)
def test_decision_table(
    where: str | None,
    info: IdTokenInfo | None,
    online: bool,
    config: AuthConfig,
    verdict: Verdict,
    source: AuthSource,
) -> None:
    local_list = {KEY: info} if where == "list" and info else {}
    cache = {KEY: CacheEntry(info, T0)} if where == "cache" and info else {}
    decision = decide_authorization(
        TOKEN, 1, online=online, now=T0, local_list=local_list, cache=cache, config=config
    )
    assert (decision.verdict, decision.source) == (verdict, source)
    if verdict is ASK:
        assert decision.request == AuthorizationRequest(TOKEN, 1)
    else:
        assert decision.request is None


def test_local_list_takes_precedence_over_the_cache() -> None:
    decision = decide_authorization(
        TOKEN,
        1,
        online=False,
        now=T0,
        local_list={KEY: BLOCKED},
        cache={KEY: CacheEntry(ACCEPTED, T0)},
        config=AuthConfig(),
    )
    assert (decision.verdict, decision.source) == (REJECT, LIST)


def test_token_key_is_case_insensitive_per_type() -> None:
    assert token_key(IdToken("abc", IdTokenType.LOCAL)) == token_key(
        IdToken("ABC", IdTokenType.LOCAL)
    )
    assert token_key(IdToken("abc", IdTokenType.LOCAL)) != token_key(
        IdToken("abc", IdTokenType.CENTRAL)
    )


@pytest.mark.parametrize(
    ("info", "updated_ago_s", "lifetime_s", "valid"),
    [
        (ACCEPTED, 10, None, True),
        (ACCEPTED, 3600, 3599, False),  # C10.FR.10: older than AuthCacheLifeTime
        (replace(ACCEPTED, cache_expiry=T0 + timedelta(seconds=1)), 10**6, 1, True),  # C10.FR.13
        (replace(ACCEPTED, cache_expiry=T0 - timedelta(seconds=1)), 0, None, False),
    ],
)
def test_cache_expiry(
    info: IdTokenInfo, updated_ago_s: float, lifetime_s: float | None, valid: bool
) -> None:
    entry = CacheEntry(info, T0 - timedelta(seconds=updated_ago_s))
    decision = decide_authorization(
        TOKEN,
        1,
        online=False,
        now=T0,
        local_list={},
        cache={KEY: entry},
        config=AuthConfig(cache_lifetime_s=lifetime_s),
    )
    assert decision.verdict is (ACCEPT if valid else REJECT)


def test_evse_restrictions() -> None:
    only_2 = replace(ACCEPTED, evse_ids=(2,))
    config = AuthConfig(local_pre_authorize=True)
    for evse_id, verdict in ((1, REJECT), (2, ACCEPT)):
        decision = decide_authorization(
            TOKEN, evse_id, online=True, now=T0, local_list={KEY: only_2}, cache={}, config=config
        )
        assert decision.verdict is verdict
        assert decide_on_authorize_response(only_2, evse_id).verdict is verdict


def test_no_authorization_tokens_and_csms_answers() -> None:
    free = IdToken("", IdTokenType.NO_AUTHORIZATION)
    decision = decide_authorization(
        free, 1, online=False, now=T0, local_list={}, cache={}, config=AuthConfig()
    )
    assert (decision.verdict, decision.source) == (ACCEPT, AuthSource.NO_AUTHORIZATION)
    answer = decide_on_authorize_response(ACCEPTED, 1)
    assert (answer.verdict, answer.source, answer.group_id_token) == (ACCEPT, CSMS, GROUP)
    assert decide_on_authorize_response(IdTokenInfo(A.EXPIRED), 1).verdict is REJECT


def test_what_the_cache_keeps() -> None:
    config = AuthConfig()
    assert cache_entry(ACCEPTED, T0, config) == CacheEntry(ACCEPTED, T0)
    assert cache_entry(BLOCKED, T0, config) == CacheEntry(BLOCKED, T0)  # statuses are cached too
    past = replace(ACCEPTED, cache_expiry=T0 - timedelta(seconds=1))
    assert cache_entry(past, T0, config) is None  # errata §2.16: not stored / removed
    assert cache_entry(ACCEPTED, T0, AuthConfig(cache_enabled=False)) is None
