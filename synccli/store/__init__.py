"""Stores: the ``Store`` interface and its backends, opened by URL.

URLs follow SQLAlchemy's form: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``,
``mssql+pyodbc://…`` and ``postgresql+pyodbc://…``.
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus, unquote_plus

from synccli.errors import ConfigError
from synccli.store.base import Store, WriteHook

__all__ = [
    "Store",
    "WriteHook",
    "open_store",
    "redact_url",
]

_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")
_ODBC_PASSWORD = re.compile(r"((?:PWD|Password)=)(\{[^}]*\}|[^;&]*)", re.IGNORECASE)
_ODBC_CONNECT = re.compile(r"(odbc_connect=)([^&]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (userinfo and ODBC ``PWD=``, also
    inside a URL-encoded ``odbc_connect=``)."""
    url = _ODBC_CONNECT.sub(
        lambda m: m.group(1) + quote_plus(_ODBC_PASSWORD.sub(r"\1***", unquote_plus(m.group(2)))),
        url,
    )
    return _ODBC_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))


def open_store(url: str) -> Store:
    """Open the store at ``url`` (the schema is not created: call ``init_schema``)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from synccli.store.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if scheme in ("mssql+pyodbc", "postgresql+pyodbc"):
        from synccli.store.odbc import OdbcStore

        return OdbcStore.from_url(url)
    raise ConfigError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///PATH, "
        "mssql+pyodbc://USER:PASS@HOST:1433/DB?driver=… or postgresql+pyodbc://USER@HOST/DB?driver=…"
    )
