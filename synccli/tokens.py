"""Signed per-user tokens (JWT): their claims, and minting them.

Claims: ``sub`` (the user, recorded as the actor of every write), ``exp``, ``channels``
(date patterns such as ``"2026-11-*"`` or ``"*"``) and ``write`` (bool). The server verifies
them (``synccli.server.auth``); ``synccli token``, the harness and the simulated clients mint
them (``TokenSource`` mints a fresh one for every connection attempt).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt

from synccli.errors import ConfigError
from synccli.protocol.authz import check_pattern

#: HS256 keys shorter than the hash are guessable offline from one captured token (RFC 7518).
MIN_SECRET_BYTES = 32
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
HMAC_ALGORITHM = "HS256"


def hmac_key(secret: str) -> bytes:
    """The HS256 key of ``secret``; too short is a start-up error."""
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long "
            f"(got {len(key)}); generate one with `openssl rand -hex 32`"
        )
    return key


def mint_token(
    key: str,
    sub: str,
    channels: Iterable[str],
    write: bool,
    ttl_s: float,
    algorithm: str = HMAC_ALGORITHM,
    now: float | None = None,
) -> str:
    """A signed token for ``sub``; ``key`` is the HS256 secret or a PEM private key."""
    if not sub:
        raise ConfigError("the token needs a subject (--sub NAME)")
    if ttl_s <= 0:
        raise ConfigError(f"the token's lifetime must be more than 0 seconds (got {ttl_s:g})")
    try:
        patterns = [check_pattern(c) for c in channels]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    issued = time.time() if now is None else now
    claims = {
        "sub": sub,
        "channels": patterns,
        "write": write,
        "iat": int(issued),
        "exp": int(issued + ttl_s),
    }
    signing: Any = hmac_key(key) if algorithm == HMAC_ALGORITHM else key
    try:
        return jwt.encode(claims, signing, algorithm=algorithm)
    except (ValueError, TypeError, jwt.InvalidKeyError) as exc:
        raise ConfigError(f"cannot sign a {algorithm} token with that key: {exc}") from None


_TTL = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """``90``, ``30s``, ``15m``, ``8h``, ``7d`` as seconds."""
    found = _TTL.match(text.strip())
    if not found:
        raise ConfigError(f"lifetime {text!r} must be a number with s, m, h or d (like 8h)")
    return float(found.group(1)) * _UNITS[found.group(2)]


@dataclass(frozen=True, slots=True)
class TokenSource:
    """Mints a fresh token for ``sub`` on each call: a client that was closed 4003 (token
    expired) reconnects with a new one. Picklable, for the fleet's worker processes."""

    key: str = field(repr=False)
    sub: str
    channels: tuple[str, ...] = ("*",)
    write: bool = True
    ttl_s: float = 3600.0
    algorithm: str = HMAC_ALGORITHM

    def token(self) -> str:
        return mint_token(self.key, self.sub, self.channels, self.write, self.ttl_s, self.algorithm)

    def for_sub(self, sub: str) -> TokenSource:
        """The same rights for another user."""
        return TokenSource(self.key, sub, self.channels, self.write, self.ttl_s, self.algorithm)
