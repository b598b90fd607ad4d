"""The ODBC backend (pyodbc): SQL Server (``mssql+pyodbc://``) and PostgreSQL
(``postgresql+pyodbc://``, through psqlODBC), one connection per thread.

Connections run in autocommit mode and the engine issues ``BEGIN``/``COMMIT`` from the
dialect itself, so transaction control is the same visible SQL on every backend. The
connection string holds the password; every message that leaves this module is scrubbed.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from synccli.errors import DatabaseUnavailable, InfrastructureError
from synccli.store.dialect import DIALECTS, Dialect, odbc_state
from synccli.store.pool import Connection
from synccli.store.sql import SqlStore
from synccli.store.urls import OdbcTarget, parse_odbc_url, redact_url, scrub

#: Seconds a connection attempt may take before the database counts as unreachable.
LOGIN_TIMEOUT = 5

_INSTALL_HINT = (
    "install unixODBC and a driver: `apt-get install unixodbc odbc-postgresql` for PostgreSQL, "
    "Microsoft ODBC Driver 18 or FreeTDS (tdsodbc) for SQL Server, then "
    "`pip install 'synccli[odbc]'` (pyodbc)"
)


#: What PostgreSQL says when it refuses a login (psqlODBC passes it on under SQLSTATE 08001).
_LOGIN_REFUSED = ("password authentication failed", "FATAL: role", "no pg_hba.conf entry")


def load_pyodbc() -> ModuleType:
    """Import pyodbc, or explain which system packages are missing."""
    try:
        import pyodbc
    except ImportError as exc:
        raise InfrastructureError(f"pyodbc cannot be loaded ({exc}); {_INSTALL_HINT}") from None
    module: ModuleType = pyodbc
    return module


class OdbcStore(SqlStore):
    """A ``Store`` on SQL Server or PostgreSQL through ODBC."""

    #: The server builds one page of the log while the page before is sent and decoded.
    log_readers = 2

    def __init__(self, target: OdbcTarget, url: str, dialect: Dialect | None = None) -> None:
        self._pyodbc = load_pyodbc()
        self.target = target
        super().__init__(dialect or DIALECTS[target.dialect], self._connect_odbc, redact_url(url))

    @classmethod
    def from_url(cls, url: str) -> OdbcStore:
        """``mssql+pyodbc://…``, ``postgresql+pyodbc://…`` or ``…+pyodbc:///?odbc_connect=…``."""
        return cls(parse_odbc_url(url), url)

    def _connect_odbc(self) -> Connection:
        try:
            conn: Any = self._pyodbc.connect(
                self.target.connection_string, autocommit=True, timeout=LOGIN_TIMEOUT
            )
        except self._pyodbc.Error as exc:
            raise DatabaseUnavailable(self._connect_failure(exc)) from None
        return conn  # type: ignore[no-any-return]

    def _connect_failure(self, exc: BaseException) -> str:
        state = odbc_state(exc)
        detail = self.describe(exc)
        if state == "IM002" or "Can't open lib" in detail or "file not found" in detail:
            return (
                f"the ODBC driver named in {self.url} is not installed (see `odbcinst -q -d`); "
                f"{_INSTALL_HINT} ({detail})"
            )
        # psqlODBC reports every failed connect as 08001, so its text is the only clue.
        if state in ("28000", "28P01") or any(text in detail for text in _LOGIN_REFUSED):
            return (
                f"the database refused the login for {self.url}; check the user and password "
                f"({detail})"
            )
        if "does not exist" in detail and "FATAL: database" in detail:
            return (
                f"the database named in {self.url} does not exist; create it (for PostgreSQL: "
                f"`createdb NAME`) or fix the name, then run `synccli db init` ({detail})"
            )
        return (
            f"cannot connect to {self.url}: {detail}; check that the server is running and "
            "the host, port and database name are right"
        )

    def describe(self, exc: BaseException) -> str:
        """A driver error on one line, without the password or pyodbc's tuple wrapping."""
        args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
        text = args[-1] if len(args) == 2 and isinstance(args[-1], str) else str(exc)
        return scrub(" ".join(text.split()), self.target.secrets)

    def _is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._pyodbc.Error)
