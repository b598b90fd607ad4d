"""TLS for clients: the context a ``wss://`` URL is opened with (``--ca`` trusts a private CA)."""

from __future__ import annotations

import functools
import ssl

from synccli.errors import ConfigError


@functools.cache
def _context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise ConfigError(f"cannot read the CA file {ca_file}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA file {ca_file}: {exc}") from None


def client_context(url: str, ca_file: str | None = None) -> ssl.SSLContext | None:
    """The context for ``url``: None for ws:// and http://, else one that verifies the
    server's certificate and name against the system store or ``ca_file``. One context per
    CA file per process (a fleet shares it)."""
    if not url.startswith(("wss://", "https://")):
        return None
    return _context(ca_file)
