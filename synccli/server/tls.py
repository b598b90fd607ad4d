"""The server's TLS context (``--tls-cert``/``--tls-key``): wss:// and https:// on one port."""

from __future__ import annotations

import ssl

from synccli.errors import ConfigError


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the certificate chain ``cert`` and its ``key``; a file
    that cannot be read or does not match is a start-up error (one sentence)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot read the TLS file {exc.filename}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {cert} with key {key}: {exc.strerror or exc}; "
            "both must be PEM and belong together"
        ) from None
    return context
