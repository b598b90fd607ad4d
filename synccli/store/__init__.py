"""Stores: the ``Store`` interface and its backends, opened by URL.

URLs follow SQLAlchemy's form: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``,
``mssql+pyodbc://…`` and ``postgresql+pyodbc://…``.
"""

from __future__ import annotations

from synccli.errors import ConfigError
from synccli.store.base import Store, WriteHook
from synccli.store.urls import redact_url

__all__ = [
    "Store",
    "WriteHook",
    "open_store",
    "redact_url",
]


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
