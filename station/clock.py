"""Time, injected (STYLE.md A2.5).

Pure cores take ``now`` as an argument; shells ask a :class:`Clock`. Wall-clock time is a
timezone-aware UTC ``datetime``; deadlines and durations use the monotonic clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "format_ocpp_time", "parse_ocpp_time"]


class Clock(Protocol):
    """Where the station gets its time."""

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for deadlines)."""
        ...


class SystemClock:
    """The real clock, with an offset the CSMS can correct (B01: currentTime)."""

    def __init__(self) -> None:
        self._offset_s = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self._offset_s, tz=UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def set_now(self, now: datetime) -> None:
        """Adjust the wall clock so that it reads ``now`` (clock sync from the CSMS)."""
        self._offset_s = now.timestamp() - time.time()


def format_ocpp_time(when: datetime) -> str:
    """UTC with millisecond precision and ``Z``.

    Some CSMSs refuse more than three fractional digits (DESIGN.md, CitrineOS).
    """
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ocpp_time(text: str) -> datetime:
    """Parse an OCPP dateTime (RFC 3339) into an aware UTC ``datetime``.

    Raises:
        ValueError: the text is not a date-time with a time zone.
    """
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"date-time without time zone: {text!r}")
    return value.astimezone(UTC)
