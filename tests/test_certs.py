"""The development PKI: certificate contents, path validation, and real TLS handshakes.

The handshake tests are the interface test: a TLS server on 127.0.0.1 configured as a CSMS for
security profile 3 (server certificate, client certificate required) and a TLS client configured as
the station (trusts the CSMS root, presents its certificate), over a real socket.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from hypothesis import given, settings
from hypothesis import strategies as st

from station.certs import (
    CLOCK_SKEW_ALLOWANCE,
    DevPki,
    load_certificate,
    load_certificate_chain,
    make_dev_pki,
)

STATION_ID = "CS-0042"
NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
SOCKET_TIMEOUT_S = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    return make_dev_pki(tmp_path / "pki", station_id=STATION_ID)


def _common_name(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def _organization(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attribute.value)


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _store(pki: DevPki) -> Store:
    return Store([load_certificate(pki.ca_cert)])


# --- files ---------------------------------------------------------------------------------------


def test_writes_the_five_files_into_a_new_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    pki = make_dev_pki(str(directory), station_id=STATION_ID)

    assert pki == DevPki(
        directory=directory,
        ca_cert=directory / "csms-root-ca.pem",
        server_cert=directory / "csms-server.pem",
        server_key=directory / "csms-server.key",
        client_cert=directory / "station-client.pem",
        client_key=directory / "station-client.key",
    )
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [
            "csms-root-ca.pem",
            "csms-server.pem",
            "csms-server.key",
            "station-client.pem",
            "station-client.key",
        ]
    )


def test_key_files_are_owner_only_unencrypted_pkcs8_p256(pki: DevPki) -> None:
    for key_path, cert_path in [
        (pki.server_key, pki.server_cert),
        (pki.client_key, pki.client_cert),
    ]:
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        pem = key_path.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not encrypted
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert key.public_key() == load_certificate(cert_path).public_key()


def test_chain_files_hold_the_leaf_then_the_ca(pki: DevPki) -> None:
    ca = load_certificate(pki.ca_cert)
    assert load_certificate_chain(pki.ca_cert) == [ca]
    for chain_path in (pki.server_cert, pki.client_cert):
        leaf, issuer = load_certificate_chain(chain_path)
        assert issuer == ca
        leaf.verify_directly_issued_by(ca)


def test_regenerating_replaces_files_and_tightens_a_loose_key_mode(tmp_path: Path) -> None:
    first = make_dev_pki(tmp_path, station_id=STATION_ID)
    old_key = first.client_key.read_bytes()
    first.client_key.chmod(0o644)

    second = make_dev_pki(tmp_path, station_id=STATION_ID)

    assert second == first
    assert second.client_key.read_bytes() != old_key
    assert stat.S_IMODE(second.client_key.stat().st_mode) == 0o600
    assert len(list(tmp_path.iterdir())) == 5  # no temporary files left behind


# --- certificate contents ------------------------------------------------------------------------


def test_every_certificate_is_ecdsa_p256_sha256(pki: DevPki) -> None:
    for path in (pki.ca_cert, pki.server_cert, pki.client_cert):
        cert = load_certificate(path)
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert isinstance(public_key.curve, ec.SECP256R1)
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        assert cert.version is x509.Version.v3


def test_root_ca_is_a_self_signed_ca(pki: DevPki) -> None:
    ca = load_certificate(pki.ca_cert)
    ca.verify_directly_issued_by(ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign


def test_leaves_are_not_cas(pki: DevPki) -> None:
    for path in (pki.server_cert, pki.client_cert):
        cert = load_certificate(path)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_server_certificate_names_every_host(pki: DevPki) -> None:
    server = load_certificate(pki.server_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    # A00.FR.308 / A00.FR.412: the CN carries the CSMS host name.
    assert _common_name(server) == "localhost"
    assert _eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_server_certificate_for_custom_hosts(tmp_path: Path) -> None:
    pki = make_dev_pki(tmp_path, station_id=STATION_ID, hosts=["10.1.2.3", "csms.example.org"])
    server = load_certificate(pki.server_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [
        x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
        x509.DNSName("csms.example.org"),
    ]
    assert _common_name(server) == "csms.example.org"


def test_client_certificate_identifies_the_station(pki: DevPki) -> None:
    client = load_certificate(pki.client_cert)
    assert _common_name(client) == STATION_ID  # A00.FR.405
    assert _organization(client) == "Station Dev"  # A00.FR.404
    assert _eku(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_organization_can_be_chosen(tmp_path: Path) -> None:
    pki = make_dev_pki(tmp_path, station_id=STATION_ID, organization="Example CSO")
    assert _organization(load_certificate(pki.client_cert)) == "Example CSO"


@settings(max_examples=20, deadline=None)
@given(
    station_id=st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=64
    )
)
def test_any_station_id_round_trips_into_the_client_cn(station_id: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        pki = make_dev_pki(directory, station_id=station_id)
        assert _common_name(load_certificate(pki.client_cert)) == station_id


def test_validity_follows_the_injected_clock(tmp_path: Path) -> None:
    pki = make_dev_pki(tmp_path, station_id=STATION_ID, now=NOW, days=30)
    start = NOW.replace(microsecond=0) - CLOCK_SKEW_ALLOWANCE
    for path in (pki.ca_cert, pki.server_cert, pki.client_cert):
        cert = load_certificate(path)
        assert cert.not_valid_before_utc == start
        assert cert.not_valid_after_utc == NOW.replace(microsecond=0) + timedelta(days=30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"station_id": ""}, "station_id"),
        ({"station_id": " CS-1"}, "station_id"),
        ({"station_id": "x" * 65}, "station_id"),
        ({"organization": ""}, "organization"),
        ({"hosts": ()}, "hosts"),
        ({"hosts": "localhost"}, "hosts"),
        ({"hosts": ("bad host",)}, "bad host"),
        ({"hosts": ("csms.exämple.org",)}, "exämple"),
        ({"days": 0}, "days"),
        ({"now": datetime(2025, 1, 1)}, "timezone"),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"station_id": STATION_ID, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_dev_pki(tmp_path, **arguments)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# --- path validation (cryptography's RFC 5280 / web-PKI verifier) --------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ],
)
def test_server_certificate_verifies_against_the_ca(
    pki: DevPki, subject: x509.DNSName | x509.IPAddress
) -> None:
    leaf, *intermediates = load_certificate_chain(pki.server_cert)
    verifier = PolicyBuilder().store(_store(pki)).build_server_verifier(subject)
    chain = verifier.verify(leaf, intermediates)
    assert chain == [leaf, load_certificate(pki.ca_cert)]


def test_server_certificate_does_not_verify_for_another_host(pki: DevPki) -> None:
    verifier = PolicyBuilder().store(_store(pki)).build_server_verifier(x509.DNSName("csms.test"))
    with pytest.raises(VerificationError):
        verifier.verify(load_certificate(pki.server_cert), [])


def test_client_certificate_verifies_against_the_ca(pki: DevPki) -> None:
    leaf = load_certificate(pki.client_cert)
    verified = PolicyBuilder().store(_store(pki)).build_client_verifier().verify(leaf, [])
    assert verified.chain == [leaf, load_certificate(pki.ca_cert)]


def test_verification_at_the_injected_time(tmp_path: Path) -> None:
    pki = make_dev_pki(tmp_path, station_id=STATION_ID, now=NOW, days=30)
    leaf = load_certificate(pki.client_cert)
    valid = PolicyBuilder().store(_store(pki)).time(NOW + timedelta(days=29))
    valid.build_client_verifier().verify(leaf, [])
    expired = PolicyBuilder().store(_store(pki)).time(NOW + timedelta(days=31))
    with pytest.raises(VerificationError):
        expired.build_client_verifier().verify(leaf, [])


def test_extended_key_usages_are_not_interchangeable(pki: DevPki) -> None:
    store = _store(pki)
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_client_verifier().verify(
            load_certificate(pki.server_cert), []
        )
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("localhost")).verify(
            load_certificate(pki.client_cert), []
        )


def test_a_different_ca_does_not_verify_the_server(pki: DevPki, tmp_path: Path) -> None:
    other = make_dev_pki(tmp_path / "other", station_id=STATION_ID)
    verifier = PolicyBuilder().store(_store(other)).build_server_verifier(x509.DNSName("localhost"))
    with pytest.raises(VerificationError):
        verifier.verify(load_certificate(pki.server_cert), [])


# --- TLS over a real socket ----------------------------------------------------------------------

TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def _csms_context(pki: DevPki, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A CSMS for security profile 3: its chain, and a client certificate from our CA required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = version  # A00.FR.416: TLS 1.2 or above
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=pki.ca_cert)
    return context


def _station_context(ca_file: Path, pki: DevPki | None = None) -> ssl.SSLContext:
    """The station: trusts ``ca_file`` only, checks host names, presents ``pki``'s client cert."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if pki is not None:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def _serve_one(listener: socket.socket, context: ssl.SSLContext) -> str:
    """Accept one connection, complete the handshake and answer with the client's CN."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(SOCKET_TIMEOUT_S)
        with context.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            assert peer is not None
            # getpeercert()["subject"]: a tuple of RDNs, each a tuple of (name, value) pairs.
            rdns = cast(tuple[tuple[tuple[str, str], ...], ...], peer["subject"])
            common_name = dict(pair for rdn in rdns for pair in rdn)["commonName"]
            tls.sendall(common_name.encode() + b"\n")
            return common_name


@contextmanager
def _csms(context: ssl.SSLContext) -> Iterator[tuple[int, Future[str]]]:
    """A one-connection TLS server on 127.0.0.1; yields its port and the server's outcome."""
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        ThreadPoolExecutor(max_workers=1) as executor,
    ):
        listener.settimeout(SOCKET_TIMEOUT_S)
        outcome = executor.submit(_serve_one, listener, context)
        try:
            yield listener.getsockname()[1], outcome
        finally:
            outcome.exception(timeout=SOCKET_TIMEOUT_S)  # wait for the server side to finish


def _connect(port: int, context: ssl.SSLContext, server_hostname: str = "localhost") -> bytes:
    """Connect as the station, complete the handshake and read the server's greeting."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S) as sock,
        context.wrap_socket(sock, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(1024)


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_mutual_tls_handshake_and_the_csms_sees_the_station_id(
    pki: DevPki, version: ssl.TLSVersion, server_hostname: str
) -> None:
    with _csms(_csms_context(pki, version)) as (port, outcome):
        greeting = _connect(port, _station_context(pki.ca_cert, pki), server_hostname)

    assert outcome.result(timeout=SOCKET_TIMEOUT_S) == STATION_ID
    assert greeting == STATION_ID.encode() + b"\n"


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=["tls1.2", "tls1.3"])
def test_csms_refuses_a_station_without_a_client_certificate(
    pki: DevPki, version: ssl.TLSVersion
) -> None:
    # Under TLS 1.3 the client's handshake completes before the server has checked the client
    # certificate; the refusal arrives as an alert on the first read.
    with (
        _csms(_csms_context(pki, version)) as (port, outcome),
        pytest.raises(ssl.SSLError),
    ):
        _connect(port, _station_context(pki.ca_cert))

    assert isinstance(outcome.exception(), ssl.SSLError)


def test_csms_refuses_a_station_certificate_from_another_ca(pki: DevPki, tmp_path: Path) -> None:
    other = make_dev_pki(tmp_path / "other", station_id=STATION_ID)
    with (
        _csms(_csms_context(pki, ssl.TLSVersion.TLSv1_3)) as (port, outcome),
        pytest.raises(ssl.SSLError),
    ):
        _connect(port, _station_context(pki.ca_cert, other))

    assert isinstance(outcome.exception(), ssl.SSLError)


def test_station_refuses_a_csms_from_another_ca(pki: DevPki, tmp_path: Path) -> None:
    other = make_dev_pki(tmp_path / "other", station_id=STATION_ID)
    with (
        _csms(_csms_context(pki, ssl.TLSVersion.TLSv1_3)) as (port, outcome),
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        _connect(port, _station_context(other.ca_cert, pki))

    assert isinstance(outcome.exception(), ssl.SSLError)


def test_station_refuses_a_csms_certificate_for_another_host(pki: DevPki) -> None:
    with (
        _csms(_csms_context(pki, ssl.TLSVersion.TLSv1_3)) as (port, outcome),
        pytest.raises(ssl.SSLCertVerificationError, match=re.escape("csms.example.org")),
    ):
        _connect(port, _station_context(pki.ca_cert, pki), "csms.example.org")

    assert isinstance(outcome.exception(), ssl.SSLError)
