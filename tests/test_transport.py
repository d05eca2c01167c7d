"""Back-off (OCPP-J Part 4 §5.3) and the station URL, pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.ocpp.transport import MIN_RECONNECT_DELAY_S, backoff_delay, station_url


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 3.0), (1, 6.0), (2, 12.0), (3, 24.0), (4, 24.0), (50, 24.0)],
)
def test_backoff_doubles_then_stays(attempt: int, expected: float) -> None:
    delay = backoff_delay(
        attempt, wait_minimum_s=3, random_range_s=10, repeat_times=3, rand=lambda: 0.0
    )
    assert delay == expected


@given(
    attempt=st.integers(0, 100),
    wait=st.integers(0, 600),
    spread=st.integers(0, 600),
    repeat=st.integers(0, 10),
    r=st.floats(0, 1, exclude_max=True),
)
def test_backoff_bounds(attempt: int, wait: int, spread: int, repeat: int, r: float) -> None:
    delay = backoff_delay(
        attempt, wait_minimum_s=wait, random_range_s=spread, repeat_times=repeat, rand=lambda: r
    )
    base = wait * 2 ** min(attempt, repeat)
    assert max(base, MIN_RECONNECT_DELAY_S) <= delay <= max(base + spread, MIN_RECONNECT_DELAY_S)


def test_backoff_never_busy_loops() -> None:
    delay = backoff_delay(0, wait_minimum_s=0, random_range_s=0, repeat_times=5, rand=lambda: 0.0)
    assert delay == MIN_RECONNECT_DELAY_S


@pytest.mark.parametrize(
    ("base", "station_id", "url"),
    [
        ("ws://127.0.0.1:9000/ocpp", "CS-001", "ws://127.0.0.1:9000/ocpp/CS-001"),
        ("ws://127.0.0.1:9000/ocpp/", "CS-001", "ws://127.0.0.1:9000/ocpp/CS-001"),
        ("wss://csms.example/ocpp", "A B", "wss://csms.example/ocpp/A%20B"),
    ],
)
def test_station_url(base: str, station_id: str, url: str) -> None:
    assert station_url(base, station_id) == url
