"""The client id a connection declares on its WebSocket URL (``…/ws?client=ID``).

It names who a write is recorded as (the event's ``actor``) when no signed token names the
user; it authenticates nothing. An id outside ``[A-Za-z0-9._:@-]{1,64}`` is ignored, so the
audit trail never carries arbitrary client text.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

PARAM = "client"
_VALID = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def with_client_id(url: str, client_id: str) -> str:
    """``url`` with ``?client=client_id`` (replacing one already there)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != PARAM]
    query.append((PARAM, client_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def client_id_of(path: str) -> str | None:
    """The valid client id in a request path's query, else None."""
    values = parse_qs(urlsplit(path).query).get(PARAM)
    if values and _VALID.match(values[0]):
        return values[0]
    return None
