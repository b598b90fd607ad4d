"""What one connection may do: ``Authorisation``, pure (no clock, no token parsing).

The server turns a credential (the static token, a signed JWT) into an ``Authorisation`` at
the handshake (``synccli.server.auth``) and hands it to the connection's ``ServerSession``,
which applies it to every request: a subscribe, snapshot or replay of a date outside
``channels``, or any write without ``write`` (or to a date outside ``channels``), is refused
with ``forbidden`` before the store is touched; past ``expires`` (in the session's clock) the
connection is closed with ``CLOSE_TOKEN_EXPIRED``.

Channel patterns are dates with shell wildcards: ``"2026-11-26"``, ``"2026-11-*"``, ``"*"``.
A write's date is the date its appointment id starts with (``<date>-0001``, as ``Store.seed``
makes them); an id that does not start with a date is only writable with ``"*"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:-|$)")
_PATTERN = re.compile(r"^[0-9*?\[\]!-]{1,10}$")
#: Dates whose answer is remembered per authorisation (a client may name any date).
_SEEN_LIMIT = 1024


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a date pattern (digits, ``-`` and wildcards), else ValueError."""
    if not _PATTERN.match(pattern):
        raise ValueError(
            f"channel pattern {pattern!r} must be a date with wildcards, like 2026-11-* or *"
        )
    return pattern


def date_of_appointment(appointment_id: str) -> str | None:
    """The date an appointment id starts with, or None."""
    found = _DATE_PREFIX.match(appointment_id)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Authorisation:
    """The rights of one connection. ``actor`` (the token's ``sub``) is recorded with every
    write; None for the single-user static token or no auth."""

    actor: str | None = None
    channels: tuple[str, ...] = ("*",)
    write: bool = True
    #: When the credential expires, in the session's clock (``now``); None: never.
    expires: float | None = None
    _seen: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def may_read(self, date: str) -> bool:
        """Whether the connection may subscribe to, snapshot or replay ``date``."""
        allowed = self._seen.get(date)
        if allowed is None:
            allowed = any(fnmatchcase(date, p) for p in self.channels)
            if len(self._seen) < _SEEN_LIMIT:
                self._seen[date] = allowed
        return allowed

    def may_write(self, appointment_id: str) -> bool:
        """Whether the connection may change ``appointment_id``."""
        if not self.write:
            return False
        date = date_of_appointment(appointment_id)
        if date is None:
            return "*" in self.channels
        return self.may_read(date)

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


#: No restriction: auth off, or the single-user static token.
FULL_ACCESS = Authorisation()
