"""The console's TLS certificate, made once at install (`edge-verify console init-cert`).

A self-signed certificate (ECDSA P-256, valid VALID_DAYS) for the console's address
and the machine's name. The browser warns about it once; the installer compares the
SHA-256 fingerprint printed here with the one the browser shows, and accepts it. The
private key is written mode 0600 and never leaves the machine.
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.exc import ConfigError
from edge.gallery.files import write_private

VALID_DAYS = 825  # the longest validity browsers accept for a server certificate


def make_certificate(certificate: Path, private_key: Path, names: list[str], overwrite: bool = False) -> str:
    """Write a new key and self-signed certificate for ``names`` (addresses or host names); returns the
    certificate's SHA-256 fingerprint."""
    certificate, private_key = Path(certificate), Path(private_key)
    for path in (certificate, private_key):
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} exists; pass --force to replace the console's certificate and key")
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        raise ConfigError("a certificate needs at least one address or host name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edge-verify console {names[0]}"[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    built = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
             .add_extension(x509.SubjectAlternativeName([alternative_name(name) for name in names]), critical=False)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .sign(key, hashes.SHA256()))
    private_key.parent.mkdir(parents=True, exist_ok=True)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    write_private(private_key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    certificate.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    return fingerprint(certificate)


def alternative_name(name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def fingerprint(certificate: Path) -> str:
    loaded = x509.load_pem_x509_certificate(Path(certificate).read_bytes())
    digest = loaded.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[index:index + 2] for index in range(0, len(digest), 2))


def default_names(listen: str) -> list[str]:
    """The console's address, the machine's name and localhost."""
    return [listen, socket.gethostname(), "localhost", "127.0.0.1"]
