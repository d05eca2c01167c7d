"""The WebSocket transport to the CSMS: security profiles, subprotocols, back-off.

This is the only module that imports ``websockets`` on the station side. It opens one connection
per call of :func:`open_connection`; deciding when to reconnect is the link's job, and the delay
is the pure :func:`backoff_delay`.

Security profiles (OCPP 2.0.1 Part 2, A00 "Security profiles"):

====  =========================  ==============================================
 0    none (local tests only)    ``ws://``, no authentication
 1    Basic authentication       ``ws://``, HTTP Basic (user = station identity)
 2    TLS + Basic authentication ``wss://``, CSMS certificate checked against ``ca_file``
 3    TLS + client certificate   ``wss://``, mutual TLS, no Basic authentication
====  =========================  ==============================================

A connection is never attempted with a lower profile than configured (A00.FR.?: "fall back" is
forbidden); the configuration refuses a ``ws://`` URL for profiles 2 and 3.
"""

from __future__ import annotations

import base64
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from station.errors import RemoteOcppError

__all__ = [
    "VERSIONS",
    "ConnectError",
    "TransportSettings",
    "backoff_delay",
    "open_connection",
    "station_url",
]

#: The shortest wait between two connection attempts, whatever the back-off variables say.
MIN_RECONNECT_DELAY_S = 0.25

#: Subprotocol → OCPP version string as the ``ocpp`` library names it.
VERSIONS: dict[str, str] = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}


class ConnectError(RemoteOcppError):
    """The connection to the CSMS could not be opened."""


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Everything needed to open one connection."""

    url: str
    station_id: str
    security_profile: int
    subprotocols: Sequence[str]
    basic_auth_password: str | None = None
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    ping_interval_s: float = 60.0
    open_timeout_s: float = 10.0


def station_url(base: str, station_id: str) -> str:
    """The CSMS URL with the station identity as the last path segment (Part 4 §3.1.1)."""
    return base.rstrip("/") + "/" + quote(station_id, safe="")


def backoff_delay(
    attempt: int,
    *,
    wait_minimum_s: float,
    random_range_s: float,
    repeat_times: int,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0 = the first retry).

    OCPP-J Part 4 §5.3: the first retry after RetryBackOffWaitMinimum plus a random part of at
    most RetryBackOffRandomRange; the back-off doubles after each failure, at most
    RetryBackOffRepeatTimes times, then stays; every attempt adds a fresh random part.
    """
    doublings = min(max(attempt, 0), repeat_times)
    delay = wait_minimum_s * (2**doublings) + rand() * random_range_s
    # Never a busy loop, even with both variables at 0 (which the device model allows).
    return float(max(delay, MIN_RECONNECT_DELAY_S))


def _ssl_context(settings: TransportSettings) -> ssl.SSLContext | None:
    if settings.security_profile < 2:
        return None
    # A00.FR.3xx: TLS 1.2 or higher, and the CSMS certificate verified against the CSMS root.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if settings.security_profile == 3:
        assert settings.client_cert_file is not None and settings.client_key_file is not None
        context.load_cert_chain(settings.client_cert_file, settings.client_key_file)
    return context


def _headers(settings: TransportSettings) -> dict[str, str]:
    if settings.security_profile not in (1, 2):
        return {}
    # A00: user name = the Charging Station identity, password = SecurityCtrlr.BasicAuthPassword.
    user_pass = f"{settings.station_id}:{settings.basic_auth_password or ''}"
    token = base64.b64encode(user_pass.encode("utf-8")).decode("ascii")
    return {"Authorization": f"Basic {token}"}


async def open_connection(settings: TransportSettings) -> tuple[ClientConnection, str]:
    """Open a WebSocket to the CSMS and return it with the negotiated OCPP version.

    Raises:
        ConnectError: refused, unreachable, TLS failure, bad credentials, or no common subprotocol.
    """
    url = station_url(settings.url, settings.station_id)
    try:
        context = _ssl_context(settings)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(f"TLS set-up failed: {exc}") from exc
    try:
        connection = await connect(
            url,
            subprotocols=[Subprotocol(p) for p in settings.subprotocols],
            additional_headers=_headers(settings),
            ssl=context,
            proxy=None,  # talk to the configured CSMS only, never through an environment proxy
            compression=None,
            open_timeout=settings.open_timeout_s,
            ping_interval=settings.ping_interval_s or None,  # WebSocketPingInterval 0 disables
            ping_timeout=settings.ping_interval_s or None,
            close_timeout=2,
            max_size=4 * 1024 * 1024,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise ConnectError(f"CSMS refused the connection: HTTP {status}") from exc
    except (InvalidHandshake, WebSocketException) as exc:
        raise ConnectError(f"WebSocket handshake failed: {exc}") from exc
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake failed: {exc.reason or exc}") from exc
    except (OSError, TimeoutError) as exc:
        # str() is empty for some (a ConnectionResetError from a peer that is not TLS).
        reason = str(exc) or type(exc).__name__
        raise ConnectError(f"cannot reach {url}: {reason}") from exc
    chosen = connection.subprotocol
    if chosen not in VERSIONS or chosen not in settings.subprotocols:
        # Part 4 §3.1.2: without an agreed OCPP version the station must not go on.
        await connection.close()
        raise ConnectError(f"CSMS selected no offered subprotocol (got {chosen!r})")
    return connection, VERSIONS[chosen]
