"""A local CA and a server certificate for 127.0.0.1/localhost, made on first start and kept.

Clients trust the stand-in through the CA file (connection_verify / REQUESTS_CA_BUNDLE), exactly as
they would a corporate proxy's CA: no client has to switch TLS off.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(path, 0o600)


def ensure_certificates(state_dir: Path) -> dict[str, str]:
    """Paths of ca.pem, server.pem, server-key.pem, creating them when missing."""
    paths = {
        "ca": state_dir / "ca.pem",
        "cert": state_dir / "server.pem",
        "key": state_dir / "server-key.pem",
    }
    if all(p.exists() for p in paths.values()):
        return {k: str(v) for k, v in paths.items()}

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Azure stand-in local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = _key()
    srv_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_key(state_dir / "ca-key.pem", ca_key)
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(paths["key"], srv_key)
    paths["cert"].write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    return {k: str(v) for k, v in paths.items()}


def ensure_signing_key(state_dir: Path):
    """RSA key the token issuer signs JWTs with (RS256, as Entra ID does)."""
    path = state_dir / "token-signing-key.pem"
    if not path.exists():
        _write_key(path, _key())
    return serialization.load_pem_private_key(path.read_bytes(), password=None)
