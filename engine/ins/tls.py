"""Mutual TLS towards INSi: the organisation certificate, its key and the server CA.

A PKCS#12 bundle's password comes from an environment variable, never from the config file.
`ssl` only loads keys from files, so a PKCS#12 key is written to a private temporary file
re-encrypted with a one-time password held in memory, and deleted at once.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from engine.ins.errors import InsiConfigurationError
from engine.ins.settings import InsiSettings


@dataclass(frozen=True)
class TlsSetup:
    """What TLS gives the client: the SSL context and the certificate's OU (default emitter)."""

    context: ssl.SSLContext
    organisation_unit: str | None
    expires_at: float | None  # the client certificate's notAfter (Unix time)


def build_tls(settings: InsiSettings) -> TlsSetup:
    """SSL context trusting `ca` (or the system store), presenting the client certificate."""
    try:
        context = ssl.create_default_context(cafile=settings.ca)
    except (OSError, ssl.SSLError) as error:
        raise InsiConfigurationError(
            f"[insi] ca: cannot load the CA bundle ({_why(error)})", code="tls_ca"
        ) from None
    certificate: x509.Certificate | None = None
    if settings.cert and settings.key:
        certificate = _load_pem_certificate(settings.cert)
        _load_chain(context, settings.cert, settings.key, None, "cert")
    elif settings.pkcs12:
        certificate = _load_pkcs12(context, settings.pkcs12, settings.pkcs12_password_env)
    if certificate is None:
        return TlsSetup(context, None, None)
    expires_at = certificate.not_valid_after_utc.timestamp()
    return TlsSetup(context, certificate_ou(certificate), expires_at)


def certificate_ou(certificate: x509.Certificate) -> str | None:
    """The subject's OU: INSi clients send it as `Emetteur` in certificate mode."""
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(units[0].value) if units else None


def _load_pem_certificate(path: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise InsiConfigurationError(
            f"[insi] cert: cannot read a PEM certificate ({_why(error)})", code="tls_cert"
        ) from None


def _load_pkcs12(context: ssl.SSLContext, path: str, password_env: str) -> x509.Certificate:
    password = os.environ.get(password_env)
    if password is None:
        raise InsiConfigurationError(
            f"[insi] pkcs12: set the password in environment variable {password_env}",
            code="tls_pkcs12",
        )
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(
            Path(path).read_bytes(), password.encode()
        )
    except (OSError, ValueError) as error:
        raise InsiConfigurationError(
            f"[insi] pkcs12: cannot open the bundle (wrong password or file?) ({_why(error)})",
            code="tls_pkcs12",
        ) from None
    if key is None or certificate is None:
        raise InsiConfigurationError(
            "[insi] pkcs12: the bundle holds no key and certificate", code="tls_pkcs12"
        )
    one_time = secrets.token_urlsafe(32)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time.encode()),
    )
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (certificate, *extra))
    with tempfile.TemporaryDirectory(prefix="ins-engine-tls-") as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(chain_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        _load_chain(context, str(cert_file), str(key_file), one_time, "pkcs12")
    return certificate


def _load_chain(
    context: ssl.SSLContext, cert: str, key: str, password: str | None, setting: str
) -> None:
    try:
        context.load_cert_chain(cert, key, password=password)
    except (OSError, ssl.SSLError) as error:
        raise InsiConfigurationError(
            f"[insi] {setting}: cannot load the client certificate and key ({_why(error)})",
            code="tls_cert",
        ) from None


def _why(error: Exception) -> str:
    """The error class and, for OS errors, the reason (file paths are configuration, not data)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__
