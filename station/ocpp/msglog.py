"""The OCPP message log: every frame in and out, one JSON object per line.

Each line is ``{"time": "...Z", "direction": "in"|"out", "message": <frame>}``. A frame that is
not valid JSON is logged as a string, never dropped. The log is written next to the database unless
configured otherwise (``[storage] message_log``, ``message_log_file``) and can be switched off.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import IO, Any, Literal

from station.clock import Clock, format_ocpp_time

__all__ = ["MessageLog"]

log = logging.getLogger(__name__)

Direction = Literal["in", "out"]


class MessageLog:
    """Appends frames to a JSON-lines file; a ``None`` path makes it a no-op."""

    def __init__(self, path: Path | None, clock: Clock) -> None:
        self._clock = clock
        self._file: IO[str] | None = None
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # backslashreplace: a lone surrogate (a peer's "\\ud800" escape) is written back
            # as that same JSON escape instead of failing the write.
            self._file = path.open("a", encoding="utf-8", errors="backslashreplace")

    def write(self, direction: Direction, raw: str | bytes) -> None:
        """Record one frame as it crossed the wire."""
        if self._file is None:
            return
        stamp = format_ocpp_time(self._clock.now())
        if direction == "out" and isinstance(raw, str):
            # Our own frames are JSON the session serialised itself, on one line: embedded as
            # they are, not parsed and serialised again (the replay hot path).
            text = f'{{"time":"{stamp}","direction":"out","message":{raw}}}\n'
        else:
            message: Any
            try:
                message = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly deep
                message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            line = {"time": stamp, "direction": direction, "message": message}
            text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:  # a full disk must not stop the station
            log.warning("message log %s: %s", self.path, exc)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
