"""The embedded default backend: a SQLite file through the standard library.

Durability: WAL with ``synchronous=FULL``. NORMAL already survives a killed process (the WAL
is in the OS page cache), but a commit acknowledged under NORMAL can be lost on power failure,
and a clinic board must never show a check-in that later vanishes. The benchmark
(``benchmarks/write_path.py --synchronous``) measures the difference; see docs/store.md.
Several processes may share one file: writers queue on ``busy_timeout``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

from synccli.errors import DatabaseUnavailable
from synccli.store.dialect import SQLITE
from synccli.store.pool import Connection
from synccli.store.sql import SqlStore
from synccli.store.urls import parse_sqlite_url

Synchronous = Literal["FULL", "NORMAL"]

#: How long a writer waits for another process's write lock before it counts as busy (ms).
BUSY_TIMEOUT_MS = 10_000
#: WAL pages after which a commit checkpoints (SQLite's default is 1,000). A check-in
#: dirties about 8 pages, mostly the same few (its row, the channel, the ends of the event
#: and request trees): a longer WAL lets one checkpoint copy each of them once for many
#: commits and fsync the database less often. Durability is unchanged (every commit still
#: syncs the WAL); the WAL file grows to about 16 MB. See docs/store.md.
WAL_AUTOCHECKPOINT_PAGES = 4_000
#: Bytes the readiness probe writes next to the database (a few pages of a commit).
PROBE_BYTES = 64 * 1024


class SqliteStore(SqlStore):
    """A ``Store`` in one SQLite file (WAL), one connection per thread."""

    def __init__(self, path: str | Path, synchronous: Synchronous = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        super().__init__(SQLITE, self._connect_file, f"sqlite:///{self.path}")

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``."""
        return cls(parse_sqlite_url(url))

    def _connect_file(self) -> Connection:
        if not self.path.parent.is_dir():
            raise DatabaseUnavailable(
                f"cannot open SQLite database {self.path}: the folder {self.path.parent} "
                "does not exist; create it or choose another path"
            )
        try:
            # isolation_level=None: the engine issues BEGIN/COMMIT itself. A connection is
            # used by one thread at a time, but close() may run on another thread.
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(
                f"cannot open SQLite database {self.path}: {exc}; "
                "check the path and its permissions"
            ) from None
        return conn

    def probe(self) -> None:
        """The write-path probe, and the disk: a small file written, synced and removed
        next to the database (a full disk fails here, as every write would)."""
        super().probe()
        probe = self.path.parent / f".{self.path.name}.probe"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"the disk of {self.path} refuses writes: {exc.strerror or exc}"
            ) from None

    def in_transaction(self, conn: Connection) -> bool:
        return isinstance(conn, sqlite3.Connection) and conn.in_transaction

    def _is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)
