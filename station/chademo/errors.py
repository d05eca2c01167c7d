"""The CHAdeMO package's exceptions, under the station's tree (STYLE.md A2.3, after h11/_util.py)::

    StationError                      (station/errors.py)
     └── ChademoError
          ├── LocalChademoError       we were wrong: a frame built with an out-of-range value, an
          │                           input the session may not take now, a bug in a transition
          └── RemoteChademoError      the vehicle was wrong
               ├── FrameError         bytes from the bus that do not decode (wrong length,
               │                      out-of-range field)
               └── ChademoBusError    the CAN bus itself failed (raised by the bus adapter,
                                      translated from ``can.CanError`` with ``raise ... from``)

After any exception inside a transition the
:class:`~station.chademo.session.ChargerSession` is in ``ERROR``: contactors open, output 0, and it
refuses all input until :meth:`~station.chademo.session.ChargerSession.reset`.
"""

from __future__ import annotations

from station.errors import StationError

__all__ = [
    "ChademoBusError",
    "ChademoError",
    "FrameError",
    "LocalChademoError",
    "RemoteChademoError",
]


class ChademoError(StationError):
    """Something went wrong on a CHAdeMO connector."""


class LocalChademoError(ChademoError, ValueError):
    """We were wrong: a value out of range for its frame field, or an input the session refuses.

    Also a :class:`ValueError`, so a frame built with a bad value fails like any bad argument.
    """


class RemoteChademoError(ChademoError):
    """The vehicle (or the bus towards it) was wrong."""


class FrameError(RemoteChademoError):
    """Bytes from the bus do not decode: wrong length or a field out of range."""


class ChademoBusError(RemoteChademoError):
    """The CAN bus failed (bus-off, send error, interface gone)."""
