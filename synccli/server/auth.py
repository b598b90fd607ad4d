"""Who may connect and what they may do: credentials, origins, and secrets kept out of logs.

A credential comes as ``Authorization: Bearer T`` or, for browsers (which cannot set headers
on a WebSocket), as ``?token=T``. It is checked once, at the handshake, by the server's
``Authenticator``:

* ``NoAuth``: nothing to check (only sensible on loopback; the server warns otherwise);
* ``StaticToken``: one shared secret, compared in constant time; full access, no actor;
* ``JwtAuth``: a signed token (HS256 with ``--jwt-secret``, RS256/ES256 with
  ``--jwt-public-key``) with the claims ``sub`` (the user, recorded with every write),
  ``exp``, ``channels`` (date patterns) and ``write``.

The result is a ``Grant`` (wall-clock expiry), which the connection turns into the pure
``protocol.authz.Authorisation`` its session applies to every request. ``Gate`` is what the
HTTP router asks: the origin check, the handshake, the token for metrics, health details and
fault hooks. ``Redactor`` removes credentials from every log record, at every level.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import jwt
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from synccli.errors import ConfigError
from synccli.protocol.authz import Authorisation, check_pattern
from synccli.server.logs import own_handlers
from synccli.tokens import HMAC_ALGORITHM, PUBLIC_KEY_ALGORITHMS, hmac_key


class AuthFailed(Exception):
    """A credential that does not authenticate (its message is safe to show the client)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified credential allows; ``expires_at`` is Unix time (None: never)."""

    actor: str | None = None
    channels: tuple[str, ...] = ("*",)
    write: bool = True
    expires_at: float | None = None

    def authorisation(self, now: float, wall: float) -> Authorisation:
        """The session's ``Authorisation``, its expiry moved to the session clock ``now``
        (``wall`` is the Unix time at that moment)."""
        expires = None if self.expires_at is None else now + (self.expires_at - wall)
        return Authorisation(self.actor, self.channels, self.write, expires)

    @property
    def admin(self) -> bool:
        """May use the fault hooks: writes to every date."""
        return self.write and "*" in self.channels


FULL_GRANT = Grant()
#: Nothing at all, already expired (a connection that somehow skipped the handshake check).
NO_GRANT = Grant(channels=(), write=False, expires_at=0.0)


class Authenticator(Protocol):
    """Turns an offered credential into a ``Grant``, or raises ``AuthFailed``."""

    enabled: bool

    def verify(self, credential: str) -> Grant: ...


class NoAuth:
    enabled = False

    def verify(self, credential: str) -> Grant:
        return FULL_GRANT


class StaticToken:
    """One shared token: full access (the single-user set-up)."""

    enabled = True

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def verify(self, credential: str) -> Grant:
        if not hmac.compare_digest(credential.encode(), self._token):
            raise AuthFailed("missing or wrong bearer token")
        return FULL_GRANT


class JwtAuth:
    """Signed per-user tokens."""

    enabled = True

    def __init__(self, key: Any, algorithms: Sequence[str], leeway_s: float) -> None:
        self._key = key
        self._algorithms = list(algorithms)
        self._leeway = leeway_s

    def verify(self, credential: str) -> Grant:
        if not credential:
            raise AuthFailed("missing bearer token")
        try:
            claims = jwt.decode(
                credential,
                self._key,
                algorithms=self._algorithms,
                options={"require": ["exp", "sub"]},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("the token has expired; get a fresh one") from None
        except jwt.InvalidTokenError:
            raise AuthFailed("invalid token") from None
        return grant_of(claims, self._leeway)


def grant_of(claims: dict[str, Any], leeway_s: float = 0.0) -> Grant:
    """The ``Grant`` of verified claims, valid until ``exp`` plus the clock-skew leeway the
    handshake allowed too; claims of the wrong shape raise ``AuthFailed``."""
    sub, channels, write = claims.get("sub"), claims.get("channels"), claims.get("write", False)
    if not isinstance(sub, str) or not sub:
        raise AuthFailed("the token's sub must be a non-empty string")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise AuthFailed("the token's channels must be a list of date patterns")
    if not isinstance(write, bool):
        raise AuthFailed("the token's write claim must be true or false")
    try:
        patterns = tuple(check_pattern(c) for c in channels)
    except ValueError as exc:
        raise AuthFailed(str(exc)) from None
    return Grant(sub, patterns, write, float(claims["exp"]) + leeway_s)


def check_secret(value: str | None, what: str) -> None:
    """An empty secret is a start-up error, never "auth off"."""
    if value is not None and not value.strip():
        raise ConfigError(f"the {what} is empty; give a real one or leave the option out")


def public_key(pem: str) -> Any:
    """The RS256/ES256 verification key in ``pem``; unreadable is a start-up error."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(pem.encode())
    except ValueError:
        raise ConfigError(
            "the JWT public key is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None


def authenticator_for(
    token: str | None,
    jwt_secret: str | None,
    jwt_public_key: str | None,
    leeway_s: float = 30.0,
) -> Authenticator:
    """The server's authenticator from its configuration (validated by ``ServerConfig``)."""
    if jwt_secret is not None:
        return JwtAuth(hmac_key(jwt_secret), [HMAC_ALGORITHM], leeway_s)
    if jwt_public_key is not None:
        return JwtAuth(public_key(jwt_public_key), PUBLIC_KEY_ALGORITHMS, leeway_s)
    if token is not None:
        return StaticToken(token)
    return NoAuth()


def offered(request: Request) -> str:
    """The credential a request carries: the bearer header, else ``?token=``."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :]
    for part in urlsplit(request.path).query.split("&"):
        name, _, value = part.partition("=")
        if name == "token":
            return unquote(value)
    return ""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which browser pages may open a WebSocket: the server's own origin and ``allowed``.
    A request without ``Origin`` is not from a browser page and passes; ``check`` False
    lets every origin pass (no list given and bound to loopback)."""

    allowed: frozenset[str]
    check: bool

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or not self.check or origin in self.allowed:
            return True
        own = urlsplit(origin).netloc.lower()
        return bool(own) and host is not None and own == host.lower()


def origin_policy(allowed: Sequence[str], host: str) -> OriginPolicy:
    """Checked unless no list is given and the server is bound to loopback."""
    origins = frozenset(o.rstrip("/") for o in allowed)
    return OriginPolicy(origins, bool(origins) or not is_loopback(host))


class Gate:
    """What the HTTP router checks before it answers or upgrades a request."""

    def __init__(self, auth: Authenticator, origins: OriginPolicy) -> None:
        self.auth = auth
        self.origins = origins
        self._grants: weakref.WeakKeyDictionary[ServerConnection, Grant] = (
            weakref.WeakKeyDictionary()
        )

    def origin_allowed(self, request: Request) -> bool:
        return self.origins.allows(request.headers.get("Origin"), request.headers.get("Host"))

    def grant(self, request: Request) -> Grant:
        """The request's ``Grant``, or ``AuthFailed``."""
        return self.auth.verify(offered(request))

    def admit(self, connection: ServerConnection, request: Request) -> None:
        """Check the handshake's credential and keep its grant for ``take``."""
        self._grants[connection] = self.grant(request)

    def take(self, connection: ServerConnection) -> Grant:
        """The grant ``admit`` kept for this connection."""
        return self._grants.pop(connection, FULL_GRANT if not self.auth.enabled else NO_GRANT)

    def authenticated(self, request: Request) -> bool:
        """Any valid credential (metrics, health details); always True with auth off."""
        try:
            self.grant(request)
        except AuthFailed:
            return False
        return True

    def admin(self, request: Request) -> bool:
        try:
            return self.grant(request).admin
        except AuthFailed:
            return False


# ---------------------------------------------------------------------- logs

_REDACTIONS = (
    (re.compile(r"([?&](?:access_)?token=)[^&\s\"']+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer\s+|basic\s+)?[^\s\"',}]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without bearer tokens, ``?token=`` values, JWTs or any of ``secrets``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class Redactor(logging.Filter):
    """A handler filter that rewrites each record without credentials (any level, any
    logger: websockets logs the request line and headers at debug)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def install_redaction(secrets: Iterable[str] = ()) -> None:
    """Put a ``Redactor`` of ``secrets`` on synccli's own log handler (``logs.own_handlers``),
    replacing one put there before. The handlers of a test runner or of an application
    embedding the server are theirs: such an application adds ``Redactor`` itself."""
    redactor = Redactor(secrets)
    for handler in own_handlers():
        for old in [f for f in handler.filters if isinstance(f, Redactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
