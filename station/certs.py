"""A development PKI for OCPP security profiles 2 and 3: development and test certificates only.

This module owns the creation of one throw-away certificate hierarchy on disk:

* a self-signed root CA (the "CSMS root certificate" that the station trusts),
* a CSMS server certificate for TLS (security profiles 2 and 3, A00.FR.306 / A00.FR.410),
* a Charging Station client certificate for mutual TLS (security profile 3, A00.FR.401/402).

It follows OCPP 2.0.1 Part 2, Functional Block A, "Certificate Properties": ECDSA on P-256
(A00.FR.503: an elliptic-curve key of at least 224 bits), ECDSA signatures (A00.FR.505) with
SHA-256 (A00.FR.506), PEM files (A00.FR.507). The client certificate's subject carries the
operator's name in O (A00.FR.404) and the station's identity in CN (A00.FR.405); the server
certificate's CN is the CSMS host name (A00.FR.308 / A00.FR.412), with every host also in the
SubjectAlternativeName, which is what TLS clients actually check.

What it must not do: this is not a CA for the field. Keys are written unencrypted, there is no
revocation, no intermediate CA and no key ceremony; production stations get their certificate
from the operator's PKI (A02/A03, SignCertificate / CertificateSigned). Nothing here is imported
by the running station; only the ``station certs dev`` command and the tests use it.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_CERT_NAME",
    "CLIENT_CERT_NAME",
    "CLIENT_KEY_NAME",
    "DEFAULT_HOSTS",
    "DEFAULT_ORGANIZATION",
    "SERVER_CERT_NAME",
    "SERVER_KEY_NAME",
    "DevPki",
    "load_certificate",
    "load_certificate_chain",
    "make_dev_pki",
]

CA_CERT_NAME = "csms-root-ca.pem"
SERVER_CERT_NAME = "csms-server.pem"
SERVER_KEY_NAME = "csms-server.key"
CLIENT_CERT_NAME = "station-client.pem"
CLIENT_KEY_NAME = "station-client.key"

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
DEFAULT_ORGANIZATION = "Station Dev"

#: Certificates start this long before ``now``, so that a peer whose clock is a little behind
#: still accepts a PKI made a moment ago.
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)

_KEY_FILE_MODE = 0o600
_CERT_FILE_MODE = 0o644
_DIRECTORY_MODE = 0o700
# X.520 ub-common-name: a CN holds at most 64 characters.
_MAX_COMMON_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class DevPki:
    """Where :func:`make_dev_pki` wrote the development PKI.

    Certificate files are PEM; the server and client files hold the chain, leaf first, then the
    CA. Key files are unencrypted PKCS#8 PEM, readable by the owner only.
    """

    directory: Path
    ca_cert: Path
    """``csms-root-ca.pem``: the CSMS root the station verifies the server against."""
    server_cert: Path
    """``csms-server.pem``: the CSMS TLS certificate chain (leaf, then CA)."""
    server_key: Path
    """``csms-server.key``: the CSMS TLS private key."""
    client_cert: Path
    """``station-client.pem``: the station's client certificate chain (leaf, then CA)."""
    client_key: Path
    """``station-client.key``: the station's client private key."""


def make_dev_pki(
    directory: str | Path,
    *,
    station_id: str,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 365,
    now: datetime | None = None,
    organization: str = DEFAULT_ORGANIZATION,
) -> DevPki:
    """Create a root CA, a CSMS server certificate and a station client certificate.

    Existing files of the same names in ``directory`` are replaced, each one atomically.

    Args:
        directory: where to write the files; created (mode 0o700) if missing.
        station_id: the Charging Station identity (its serial number), which becomes the client
            certificate's CN (A00.FR.405). 1 to 64 characters.
        hosts: the names and addresses the CSMS is reached at. Each becomes a SubjectAltName
            entry: IP addresses as ``IPAddress``, anything else as ``DNSName``. The first name
            that is not an address becomes the server certificate's CN.
        days: how long every certificate stays valid after ``now``.
        now: the start of validity (tz-aware); the wall clock if ``None``. Certificates are
            valid from ``now`` minus :data:`CLOCK_SKEW_ALLOWANCE`, at whole seconds.
        organization: the O of every subject, standing in for the CSO name (A00.FR.404).

    Returns:
        The paths of the files written.

    Raises:
        ValueError: an empty or over-long ``station_id`` or ``organization``, no ``hosts`` or a
            host that is neither an IP address nor an ASCII DNS name, ``days`` below 1, or a
            naive ``now``.
        OSError: the directory or a file could not be written.
    """
    _check_name("station_id", station_id)
    _check_name("organization", organization)
    san = _subject_alt_names(hosts)
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    not_before = now.astimezone(UTC).replace(microsecond=0) - CLOCK_SKEW_ALLOWANCE
    not_after = not_before + CLOCK_SKEW_ALLOWANCE + timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organization} Root CA", organization)
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _leaf_builder(
            _name(_server_common_name(hosts), organization),
            ca_cert,
            ca_key,
            server_key.public_key(),
            not_before,
            not_after,
        )
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = (
        _leaf_builder(
            _name(station_id, organization),
            ca_cert,
            ca_key,
            client_key.public_key(),
            not_before,
            not_after,
        )
        # Only the subject identifies the station (A00.FR.405). The SubjectAltName repeats the
        # subject as a directoryName because some verifiers (cryptography's web-PKI client
        # verifier among them) refuse an end-entity certificate without the extension.
        .add_extension(
            x509.SubjectAlternativeName([x509.DirectoryName(_name(station_id, organization))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    root = Path(directory)
    root.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)
    pki = DevPki(
        directory=root,
        ca_cert=root / CA_CERT_NAME,
        server_cert=root / SERVER_CERT_NAME,
        server_key=root / SERVER_KEY_NAME,
        client_cert=root / CLIENT_CERT_NAME,
        client_key=root / CLIENT_KEY_NAME,
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_atomically(pki.ca_cert, ca_pem, _CERT_FILE_MODE)
    _write_atomically(pki.server_key, _key_pem(server_key), _KEY_FILE_MODE)
    _write_atomically(
        pki.server_cert,
        server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem,
        _CERT_FILE_MODE,
    )
    _write_atomically(pki.client_key, _key_pem(client_key), _KEY_FILE_MODE)
    _write_atomically(
        pki.client_cert,
        client_cert.public_bytes(serialization.Encoding.PEM) + ca_pem,
        _CERT_FILE_MODE,
    )
    return pki


def load_certificate(path: str | Path) -> x509.Certificate:
    """Load the first certificate of a PEM file: the leaf of a chain file.

    Raises:
        ValueError: the file holds no PEM certificate.
        OSError: the file could not be read.
    """
    return load_certificate_chain(path)[0]


def load_certificate_chain(path: str | Path) -> list[x509.Certificate]:
    """Load every certificate of a PEM file, in file order (leaf first for a chain file).

    Raises:
        ValueError: the file holds no PEM certificate.
        OSError: the file could not be read.
    """
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def _check_name(what: str, value: str) -> None:
    if not value or value != value.strip():
        raise ValueError(f"{what} must be non-empty without surrounding spaces, got {value!r}")
    if len(value) > _MAX_COMMON_NAME_CHARS:
        raise ValueError(f"{what} must be at most {_MAX_COMMON_NAME_CHARS} characters")


def _subject_alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    if isinstance(hosts, str):
        # A bare string is a Sequence[str] too; "localhost" would become nine one-letter names.
        raise ValueError(f"hosts must be a sequence of host names, not the string {hosts!r}")
    if not hosts:
        raise ValueError("hosts must name at least one host name or IP address")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not host or not host.isascii() or any(c.isspace() or c == "/" for c in host):
            raise ValueError(f"host {host!r} is neither an IP address nor an ASCII DNS name")
        names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _server_common_name(hosts: Sequence[str]) -> str:
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return host
    return hosts[0]


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _leaf_builder(
    subject: x509.Name,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        _builder(subject, ca_cert.subject, public_key, not_before, not_after)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode``, never exposing a partial or wider-open file.

    The temporary file is created 0o600 by :func:`tempfile.mkstemp`, so a key is never readable
    by others, not even for a moment, and replacing an old key file also replaces its mode.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
