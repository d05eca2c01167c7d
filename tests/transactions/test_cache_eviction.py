"""Authorization Cache eviction at its storage limit (C10, AuthCacheCtrlr Storage / Policy LRU):
the pure rule, table-driven and with hypothesis; and the store it runs on, on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.store import AuthCacheRepository, open_database
from station.transactions import (
    AuthConfig,
    AuthorizationStatus,
    CacheEntry,
    IdToken,
    IdTokenInfo,
    IdTokenType,
    cache_evictions,
    token_key,
)
from tests.transactions.support import T0

ACCEPTED = IdTokenInfo(AuthorizationStatus.ACCEPTED)
LIFETIME = AuthConfig(cache_lifetime_s=3600)


def key(n: int) -> tuple[str, str]:
    return token_key(IdToken(f"TOKEN-{n}", IdTokenType.ISO14443))


def entry(updated_min: int, used_min: int | None = None, **info: object) -> CacheEntry:
    used = None if used_min is None else T0 + timedelta(minutes=used_min)
    return CacheEntry(
        IdTokenInfo(AuthorizationStatus.ACCEPTED, **info), T0 + timedelta(minutes=updated_min), used
    )  # type: ignore[arg-type]


NOW = T0 + timedelta(minutes=100)


@pytest.mark.parametrize(
    ("cache", "limit_b", "evicted"),
    [
        # fits: nothing goes
        ({key(1): entry(90), key(2): entry(95)}, 20, []),
        # least recently written first
        ({key(1): entry(95), key(2): entry(90), key(3): entry(99)}, 20, [key(2)]),
        # use counts as recent: 2 was written first but used last
        ({key(1): entry(95), key(2): entry(90, 99), key(3): entry(97)}, 10, [key(1), key(3)]),
        # expired first (LifeTime 1 h: written 61 min ago), even when more recent than the LRU
        ({key(1): entry(80), key(2): entry(39, 99), key(3): entry(90)}, 20, [key(2)]),
        # a cacheExpiryDateTime in the past expires it too
        (
            {key(1): entry(80), key(2): entry(99, cache_expiry=T0), key(3): entry(90)},
            20,
            [key(2)],
        ),
        # a limit below one entry empties the cache
        ({key(1): entry(80), key(2): entry(90)}, 5, [key(1), key(2)]),
    ],
)
def test_eviction_order(
    cache: dict[tuple[str, str], CacheEntry], limit_b: int, evicted: list[tuple[str, str]]
) -> None:
    sizes = dict.fromkeys(cache, 10)
    assert cache_evictions(cache, sizes, limit_b, NOW, LIFETIME) == evicted


@given(
    st.lists(
        st.tuples(st.integers(0, 99), st.none() | st.integers(0, 99), st.integers(1, 50)),
        max_size=30,
    ),
    st.integers(0, 600),
)
def test_eviction_fits_and_keeps_the_most_valuable(
    rows: list[tuple[int, int | None, int]], limit_b: int
) -> None:
    cache = {key(n): entry(updated, used) for n, (updated, used, _) in enumerate(rows)}
    sizes = {key(n): size for n, (_, _, size) in enumerate(rows)}
    evicted = cache_evictions(cache, sizes, limit_b, NOW, LIFETIME)

    kept = set(cache) - set(evicted)
    assert len(set(evicted)) == len(evicted) and set(evicted) <= set(cache)
    assert sum(sizes[k] for k in kept) <= limit_b
    if evicted:  # no more than needed: without the last one evicted it would not fit
        assert sum(sizes[k] for k in kept) + sizes[evicted[-1]] > limit_b

    def rank(k: tuple[str, str]) -> tuple[bool, object]:
        valid = NOW - cache[k].updated_at <= timedelta(hours=1)
        return (valid, cache[k].recency)

    for gone in evicted:  # everything evicted ranks at or below everything kept
        assert all(rank(gone) <= rank(k) for k in kept)


def test_the_store_keeps_use_times_and_sizes(tmp_path: Path) -> None:
    repo = AuthCacheRepository(open_database(tmp_path / "station.db"))
    one, two = IdToken("AA01", IdTokenType.ISO14443), IdToken("BB02", IdTokenType.CENTRAL)
    repo.put(one, CacheEntry(ACCEPTED, T0))
    repo.put(two, CacheEntry(ACCEPTED, T0))
    repo.touch(one, T0 + timedelta(minutes=5))

    again = AuthCacheRepository(open_database(tmp_path / "station.db")).load()
    assert again[token_key(one)].recency == T0 + timedelta(minutes=5)
    assert again[token_key(two)].recency == T0
    sizes = repo.sizes()
    assert set(sizes) == {token_key(one), token_key(two)}
    assert all(size > len(k[0]) + len(k[1]) for k, size in sizes.items())

    repo.remove_keys([token_key(one)])
    assert set(repo.load()) == {token_key(two)}
