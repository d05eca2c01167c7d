"""Security profiles 1-3 (OCPP 2.0.1 Part 2, A00) against a real CSMS on loopback.

A station connects only with the profile it is configured for: HTTP Basic authentication with the
right password (1), TLS with a CSMS certificate that its ``ca_file`` vouches for, for the host it
dialled (2), and mutual TLS with its client certificate (3). When the CSMS does not accept it, the
station keeps retrying with the same profile and never boots; it never falls back to a lower one.

Certificates come from :func:`station.certs.make_dev_pki`, made once per test session. Nothing of
the station is mocked: ``run_station`` talks to :class:`station.sim.csms.Csms` over real sockets.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from station.certs import DevPki, make_dev_pki
from station.errors import ConfigError
from station.sim.csms import Csms, StationLink
from tests.conftest import STATION_ID, RunningStation, station_config

PASSWORD = "correct-password-123"
WRONG_PASSWORD = "wrong-password-4567"
#: How long a refused station is watched: long enough for many retries (the test config has
#: no back-off), short enough to keep this file fast.
REFUSED_WINDOW_S = 1.5

StationFactory = Callable[..., RunningStation]


# --- certificates and servers -----------------------------------------------------------------


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """The PKI the CSMS and the station share (CSMS certificate for 127.0.0.1 and localhost)."""
    return make_dev_pki(tmp_path_factory.mktemp("pki"), station_id=STATION_ID)


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """An unrelated PKI: its CA has signed nothing the CSMS or the station uses."""
    return make_dev_pki(tmp_path_factory.mktemp("other-pki"), station_id=STATION_ID)


@pytest.fixture(scope="session")
def elsewhere_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A PKI whose CSMS certificate names another host only."""
    return make_dev_pki(
        tmp_path_factory.mktemp("elsewhere-pki"), station_id=STATION_ID, hosts=("csms.invalid",)
    )


class TlsServer:
    """A server-side TLS context that counts the ClientHellos it receives.

    The count is how a test sees a station retry a connection that never gets past TLS: the
    SNI callback runs once per handshake attempt, with or without a server name in it.
    """

    def __init__(self, pki: DevPki, *, client_ca: Path | None = None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        if client_ca is not None:
            # Profile 3 (A00.FR.4xx): the CSMS requires and verifies a client certificate.
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        self.hellos = 0
        self.context.sni_callback = self._hello

    def _hello(self, _ssl: object, _server_name: str | None, _context: object) -> None:
        self.hellos += 1


def _profile(
    profile: int,
    *,
    password: str | None = None,
    ca: Path | None = None,
    client: DevPki | None = None,
) -> str:
    """The ``[csms]`` lines of a security profile."""
    lines = [f"security_profile = {profile}"]
    if password is not None:
        lines.append(f'basic_auth_password = "{password}"')
    if ca is not None:
        lines.append(f'ca_file = "{ca}"')
    if client is not None:
        lines.append(f'client_cert_file = "{client.client_cert}"')
        lines.append(f'client_key_file = "{client.client_key}"')
    return "\n".join(lines) + "\n"


def _url(csms: Csms, host: str = "127.0.0.1", scheme: str = "wss") -> str:
    return f"{scheme}://{host}:{csms.port}/ocpp"


async def _boots(csms: Csms) -> StationLink:
    await csms.wait_action("BootNotification", STATION_ID, include_past=True, timeout_s=10)
    link = await csms.wait_connected(STATION_ID)
    assert link.station_id == STATION_ID
    return link


async def _never_boots(csms: Csms, station: RunningStation, attempts: Callable[[], int]) -> None:
    """No BootNotification within the window; the station retried, is still running, and stops.

    The station stops while the CSMS is still up, so that no TLS handshake of the CSMS is left
    half-way when the test's event loop closes (asyncio would report an unclosed transport).
    """
    with pytest.raises(TimeoutError):
        await csms.wait_action("BootNotification", STATION_ID, timeout_s=REFUSED_WINDOW_S)
    assert csms.received("BootNotification") == []
    assert STATION_ID not in csms.stations
    assert attempts() >= 2, "the station did not keep retrying"
    assert station.task is not None and not station.task.done(), "the station stopped"
    # A station stuck retrying stops promptly and cleanly (shutdown raises on a timeout).
    await station.shutdown()


def _authorization(link: StationLink) -> str | None:
    assert link.request_headers is not None
    return link.request_headers.get("Authorization")


# --- profile 0 (no security; tests only) ------------------------------------------------------


async def test_profile_0_sends_no_authorization(
    csms: Csms, station_factory: StationFactory
) -> None:
    station_factory(csms)
    link = await _boots(csms)
    assert _authorization(link) is None


# --- profile 1: Basic authentication over ws:// -----------------------------------------------


async def test_profile_1_right_password_boots(station_factory: StationFactory) -> None:
    async with Csms(basic_auth={STATION_ID: PASSWORD}) as csms:
        station_factory(csms, csms_extra=_profile(1, password=PASSWORD))
        link = await _boots(csms)
        # A00: user name = the station identity, password = BasicAuthPassword.
        expected = base64.b64encode(f"{STATION_ID}:{PASSWORD}".encode()).decode("ascii")
        assert _authorization(link) == f"Basic {expected}"
        assert csms.refused == []


async def test_profile_1_wrong_password_is_refused_and_retried(
    station_factory: StationFactory,
) -> None:
    async with Csms(basic_auth={STATION_ID: PASSWORD}) as csms:
        station = station_factory(csms, csms_extra=_profile(1, password=WRONG_PASSWORD))
        await _never_boots(csms, station, lambda: len(csms.refused))
        assert set(csms.refused) == {(STATION_ID, 401)}
        assert csms.connections_seen == 0


async def test_profile_1_new_password_is_used_on_reconnect(
    station_factory: StationFactory,
) -> None:
    """A01: after SetVariables SecurityCtrlr.BasicAuthPassword the station reconnects with it."""
    new_password = "rotated-password-7890"
    async with Csms(basic_auth={STATION_ID: PASSWORD}) as csms:
        station_factory(csms, csms_extra=_profile(1, password=PASSWORD))
        first = await _boots(csms)
        # The CSMS expects the new password from now on; the open connection stays authenticated.
        assert csms.basic_auth is not None
        csms.basic_auth[STATION_ID] = new_password
        reply = await csms.call(
            STATION_ID,
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "attributeValue": new_password,
                    }
                ]
            },
        )
        assert reply.payload["setVariableResult"][0]["attributeStatus"] == "Accepted", reply.raw
        second = await csms.wait_reconnected(STATION_ID, first)
        expected = base64.b64encode(f"{STATION_ID}:{new_password}".encode()).decode("ascii")
        assert _authorization(second) == f"Basic {expected}"
        assert csms.refused == []


# --- profile 2: TLS + Basic authentication -----------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_profile_2_boots_over_tls(
    host: str, pki: DevPki, station_factory: StationFactory
) -> None:
    server = TlsServer(pki)
    async with Csms(basic_auth={STATION_ID: PASSWORD}, ssl_context=server.context) as csms:
        station_factory(_url(csms, host), csms_extra=_profile(2, password=PASSWORD, ca=pki.ca_cert))
        link = await _boots(csms)
        assert _authorization(link) is not None
        assert link.tls_subject is None  # no client certificate on profile 2
        assert link.connection.transport.get_extra_info("ssl_object") is not None


async def test_profile_2_wrong_password_over_tls_is_refused(
    pki: DevPki, station_factory: StationFactory
) -> None:
    server = TlsServer(pki)
    async with Csms(basic_auth={STATION_ID: PASSWORD}, ssl_context=server.context) as csms:
        station = station_factory(
            _url(csms), csms_extra=_profile(2, password=WRONG_PASSWORD, ca=pki.ca_cert)
        )
        await _never_boots(csms, station, lambda: len(csms.refused))
        assert set(csms.refused) == {(STATION_ID, 401)}


async def test_profile_2_untrusted_csms_certificate_never_boots(
    pki: DevPki, other_pki: DevPki, station_factory: StationFactory
) -> None:
    """The station's ca_file is another CA: the TLS handshake fails, over and over."""
    server = TlsServer(pki)
    async with Csms(basic_auth={STATION_ID: PASSWORD}, ssl_context=server.context) as csms:
        station = station_factory(
            _url(csms), csms_extra=_profile(2, password=PASSWORD, ca=other_pki.ca_cert)
        )
        await _never_boots(csms, station, lambda: server.hellos)
        # The handshake never got as far as HTTP: no request, so no credentials were sent.
        assert csms.connections_seen == 0
        assert csms.refused == []


async def test_profile_2_csms_certificate_for_another_host_never_boots(
    elsewhere_pki: DevPki, station_factory: StationFactory
) -> None:
    """A trusted certificate that does not name 127.0.0.1: host name check fails (A00.FR.3xx)."""
    server = TlsServer(elsewhere_pki)
    async with Csms(basic_auth={STATION_ID: PASSWORD}, ssl_context=server.context) as csms:
        station = station_factory(
            _url(csms), csms_extra=_profile(2, password=PASSWORD, ca=elsewhere_pki.ca_cert)
        )
        await _never_boots(csms, station, lambda: server.hellos)
        assert csms.connections_seen == 0


async def test_profile_2_never_falls_back_to_plain_websocket(
    pki: DevPki, station_factory: StationFactory
) -> None:
    """A wss:// URL at a CSMS that only speaks ws://: no TLS, no connection, no ws:// retry."""
    async with Csms() as csms:
        station = station_factory(
            _url(csms, scheme="wss"), csms_extra=_profile(2, password=PASSWORD, ca=pki.ca_cert)
        )
        with pytest.raises(TimeoutError):
            await csms.wait_for(lambda f: f.station_id == STATION_ID, timeout_s=REFUSED_WINDOW_S)
        assert csms.connections_seen == 0
        assert csms.frames == []
        assert station.task is not None and not station.task.done()
        await station.shutdown()


@pytest.mark.parametrize(
    ("scheme", "profile"),
    [("ws", 2), ("ws", 3), ("wss", 0), ("wss", 1)],
)
def test_config_refuses_a_url_that_does_not_match_the_profile(
    scheme: str, profile: int, pki: DevPki, tmp_path: Path
) -> None:
    """Profiles 2 and 3 need wss://, 0 and 1 need ws://: a mismatch never starts (A00)."""
    extra = _profile(
        profile,
        password=PASSWORD if profile in (1, 2) else None,
        ca=pki.ca_cert if profile >= 2 else None,
        client=pki if profile == 3 else None,
    )
    expected = "needs wss://" if profile >= 2 else "needs ws://"
    with pytest.raises(ConfigError, match=expected):
        station_config(tmp_path, f"{scheme}://127.0.0.1:9/ocpp", csms_extra=extra)


# --- profile 3: mutual TLS --------------------------------------------------------------------


async def test_profile_3_boots_with_client_certificate(
    pki: DevPki, station_factory: StationFactory
) -> None:
    server = TlsServer(pki, client_ca=pki.ca_cert)
    async with Csms(ssl_context=server.context) as csms:
        station_factory(_url(csms), csms_extra=_profile(3, ca=pki.ca_cert, client=pki))
        link = await _boots(csms)
        # A00.FR.405: the client certificate's CN is the station identity.
        assert csms.stations[STATION_ID].tls_subject == STATION_ID
        # Profile 3 authenticates by certificate only: no Basic authentication header.
        assert _authorization(link) is None


async def test_profile_3_never_sends_authorization_even_with_a_password(
    pki: DevPki, station_factory: StationFactory
) -> None:
    """A basic_auth_password left in the config must not leak onto a profile 3 connection."""
    server = TlsServer(pki, client_ca=pki.ca_cert)
    async with Csms(ssl_context=server.context) as csms:
        station_factory(
            _url(csms), csms_extra=_profile(3, password=PASSWORD, ca=pki.ca_cert, client=pki)
        )
        link = await _boots(csms)
        assert _authorization(link) is None


async def test_profile_3_csms_refuses_station_without_client_certificate(
    pki: DevPki, station_factory: StationFactory
) -> None:
    """A profile 2 station (no client certificate) at a CSMS that requires one never boots."""
    server = TlsServer(pki, client_ca=pki.ca_cert)
    async with Csms(ssl_context=server.context) as csms:
        station = station_factory(
            _url(csms), csms_extra=_profile(2, password=PASSWORD, ca=pki.ca_cert)
        )
        await _never_boots(csms, station, lambda: server.hellos)
        assert csms.connections_seen == 0


async def test_profile_3_csms_refuses_client_certificate_from_another_ca(
    pki: DevPki, other_pki: DevPki, station_factory: StationFactory
) -> None:
    server = TlsServer(pki, client_ca=pki.ca_cert)
    async with Csms(ssl_context=server.context) as csms:
        station = station_factory(
            _url(csms), csms_extra=_profile(3, ca=pki.ca_cert, client=other_pki)
        )
        await _never_boots(csms, station, lambda: server.hellos)
        assert csms.connections_seen == 0
