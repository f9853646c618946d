"""The local cluster's certificates: one CA, the API server's serving certificate, one client certificate per identity.

Kubernetes authenticates a client certificate by its subject: the common name is the user, each organisation a group
(``system:masters`` is the admin group that RBAC never restricts, ``system:nodes`` the node agents'). Everything is
written once under one directory and reused by later starts of the same cluster.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPair", "Pki"]

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Pki:
    """Certificates under ``directory`` (created on first use, reused after). ``ca``, ``serving``, ``client(...)``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca = CertPair(self.directory / "ca.crt", self.directory / "ca.key")
        if not (self.ca.cert.exists() and self.ca.key.exists()):
            self._make_ca()
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        self._ca_key = ca_key
        self._ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())

    @property
    def service_account_key(self) -> Path:
        """The RSA key that signs service-account tokens (the API server verifies with the same file)."""
        path = self.directory / "service-account.key"
        if not path.exists():
            _write_key(path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return path

    def serving(self, hosts: Sequence[str]) -> CertPair:
        """The API server's certificate for ``hosts`` (IP addresses and DNS names)."""
        ips = [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts if _is_ip(h)]
        names = [x509.DNSName(h) for h in hosts if not _is_ip(h)]
        return self._issue("kube-apiserver", "kube-apiserver", (), [*ips, *names], ExtendedKeyUsageOID.SERVER_AUTH)

    def client(self, file_name: str, user: str, groups: Sequence[str] = ()) -> CertPair:
        """A client certificate that authenticates as ``user`` in ``groups``."""
        return self._issue(file_name, user, groups, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name("modelops-local-cluster-ca")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + 10 * _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(self.ca.key, key)
        self.ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _issue(
        self,
        file_name: str,
        common_name: str,
        groups: Sequence[str],
        alt_names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> CertPair:
        pair = CertPair(self.directory / f"{file_name}.crt", self.directory / f"{file_name}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, groups))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        _write_key(pair.key, key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
