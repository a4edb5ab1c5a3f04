"""SSL contexts for listeners (optionally mutual TLS) and for MLLP destinations."""

from __future__ import annotations

import ssl

from engine.config.settings import ClientTls, ListenerTls


def server_context(settings: ListenerTls) -> ssl.SSLContext:
    """TLS 1.2+ server; with `client_ca`, a client certificate signed by it is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.cert, settings.key)
    if settings.client_ca:
        context.load_verify_locations(settings.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(settings: ClientTls) -> ssl.SSLContext:
    """TLS 1.2+ client verifying the server; presents a certificate when one is set."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert and settings.key:
        context.load_cert_chain(settings.cert, settings.key)
    return context
