"""J01 clock alignment: the boundaries of AlignedDataCtrlr.Interval, counted from UTC midnight."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from station.transactions.machine import next_aligned


def at(hour: int, minute: int, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2025, 3, 1, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "interval_s", "expected"),
    [
        (at(12, 7, 31), 900, at(12, 15)),  # every 15 min: :00, :15, :30, :45
        (at(12, 15), 900, at(12, 30)),  # on a boundary: the next one, strictly after
        (at(12, 59, 59, 999_000), 900, at(13, 0)),
        (at(23, 50), 900, datetime(2025, 3, 2, tzinfo=UTC)),  # across midnight
        (at(12, 0, 0, 400_000), 1, at(12, 0, 1)),  # the tests' 1 s interval: whole seconds
        (at(12, 7), 3600, at(13, 0)),
    ],
)
def test_next_aligned(now: datetime, interval_s: float, expected: datetime) -> None:
    assert next_aligned(now, interval_s) == expected
