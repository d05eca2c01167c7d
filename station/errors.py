"""The station's exception tree.

Separate our errors from the peer's (STYLE.md A2.3, after h11/_util.py)::

    StationError
     ├── ConfigError                 the configuration file is unusable
     ├── StoreError                  the database could not be opened or upgraded
     └── OcppError
          ├── LocalOcppError         we were wrong (a bug, or a call we may not make now)
          └── RemoteOcppError        the CSMS was wrong, or did not answer
               ├── CallRejectedError the CSMS answered our CALL with a CALLERROR
               ├── CallTimeoutError  no response within MessageTimeout
               └── ConnectionLostError    the WebSocket closed while a CALL was waiting

Adapters translate third-party errors with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "CallRejectedError",
    "CallTimeoutError",
    "ConfigError",
    "ConnectionLostError",
    "LocalOcppError",
    "OcppError",
    "RemoteOcppError",
    "StationError",
    "StoreError",
]


class StationError(Exception):
    """Base of every error the station raises on purpose."""


class ConfigError(StationError):
    """The configuration is unusable.

    The message is one line naming the file, the key and the problem.
    """

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + problem)


class StoreError(StationError):
    """The database could not be opened, read or upgraded."""


class OcppError(StationError):
    """Something went wrong on the OCPP link."""


class LocalOcppError(OcppError):
    """We were wrong: a call we may not make now, or a payload we built badly."""


class RemoteOcppError(OcppError):
    """The CSMS was wrong: a CALLERROR, a malformed response, or no response."""


class CallTimeoutError(RemoteOcppError):
    """No response to our CALL within MessageTimeout."""


class CallRejectedError(RemoteOcppError):
    """The CSMS answered our CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        self.action = action
        self.code = code
        self.description = description
        super().__init__(f"{action}: CALLERROR {code}: {description}")


class ConnectionLostError(RemoteOcppError):
    """The WebSocket closed while a CALL waited for its response."""
