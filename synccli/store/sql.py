"""The one SQL engine behind every backend: ``SqlStore`` runs a ``Dialect``'s statements on
DB-API connections (qmark parameters; sqlite3 and pyodbc both qualify).

Each thread gets its own connection (the server calls the store from worker threads); every
operation is one explicit transaction; driver exceptions are translated at this boundary.
A backend subclass only says how to connect and how to describe a driver error safely.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from synccli.audit.entries import DayLog, LinePage, LogPage
from synccli.clock import utc_now
from synccli.domain.channels import Channel, ChannelStatus, WriteOutcome, WriteRequest
from synccli.domain.states import SCHEDULED, check_transition
from synccli.domain.values import Event, Row, iso_ms, message_id
from synccli.errors import DatabaseUnavailable, TransientDatabaseError, WriteRejected
from synccli.store.base import SCHEMA_VERSION, Store
from synccli.store.dialect import HEADS_CHUNK, TABLES, Dialect, ErrorKind
from synccli.store.lines import lines_of
from synccli.store.pool import Connection, ConnectionPool, Cursor
from synccli.store.records import (
    channel_of,
    entries_of,
    event_of,
    payload_of,
    payload_parts,
    replay,
    result_of,
    result_parts,
    row_of,
)
from synccli.store.write_sql import VERIFY_FAILED

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

#: Attempts for one operation when the driver reports a transient error or a lost connection.
ATTEMPTS = 5
#: First backoff between attempts, doubled each time (5, 10, 20, 40 ms).
BACKOFF = 0.005


class _Retry(Exception):
    """A driver error after which the whole operation may safely run again."""

    def __init__(self, kind: ErrorKind, cause: BaseException) -> None:
        super().__init__(kind.value)
        self.kind = kind
        self.cause = cause


def new_epoch() -> str:
    """A fresh, opaque channel epoch."""
    return uuid.uuid4().hex[:12]


#: The epoch a date without a channel row reads as. Reads never create the row (the first
#: write does, with a fresh epoch), so a client that subscribed to the empty channel is told
#: to resync by that first write: it can never mix the two.
UNBORN_EPOCH = "0" * 12
#: The hold of a date nobody holds: above any sequence number (a BIGINT everywhere).
_NO_HOLD = 2**62


def unborn(date: str) -> Channel:
    """How a date that has no channel row yet reads: empty, head 0."""
    return Channel(date, UNBORN_EPOCH, 0, 1)


def _check(request: WriteRequest, before: Row) -> None:
    """The rules a write must pass against the locked row (``WriteRejected`` if not)."""
    check_transition(before.state, request.state)
    if request.expected_version is not None and request.expected_version != before.version:
        raise WriteRejected(
            "conflict",
            f"appointment {before.appointment_id} is at version {before.version}, "
            f"not {request.expected_version}; reload it and try again",
        )


class SqlStore(Store):
    """A ``Store`` on any DB-API database described by a ``Dialect``."""

    def __init__(self, dialect: Dialect, connect: Callable[[], Connection], url: str) -> None:
        self.dialect = dialect
        self.url = url
        self._connect = connect
        self._pool = ConnectionPool(self._open, url)
        # Dates whose channel row is known to exist (channels are never deleted), so the
        # write path can skip the insert-if-absent statement.
        self._known_channels: set[str] = set()
        #: Whether ``write`` uses the dialect's one-round-trip statement when it has one
        #: (the step-by-step path stays, for SQLite and as the benchmark's comparison).
        self.one_round_trip = True
        self._kept = threading.local()

    # ----------------------------------------------------------------- connections

    def connect(self) -> Connection:
        """A new connection configured like the store's own, not managed by the store (for
        benchmarks and tools); the caller closes it. Runs in the same transaction mode."""
        return self._open()

    def _open(self) -> Connection:
        """Open one connection; a backend translates its own connect errors."""
        return self._connect()

    def close(self) -> None:
        """Close every thread's connection; idempotent."""
        self._pool.close()

    def describe(self, exc: BaseException) -> str:
        """A driver error as one line that is safe to show (no secrets)."""
        return " ".join(str(exc).split())

    def in_transaction(self, conn: Connection) -> bool:
        """Whether ``conn`` may have an open transaction (a rollback is needed)."""
        return True

    # ----------------------------------------------------------------- transactions

    def _run(
        self, body: Callable[[Cursor], T], *, write: bool, owns: bool = False, keep: bool = False
    ) -> T:
        """Run ``body`` in one transaction, retrying transient failures a bounded number of
        times. Exceptions raised by ``body`` itself (rule violations, hook faults) are never
        retried: they propagate after the rollback. ``owns``: ``body`` runs statements that
        commit themselves (autocommit, or a batch with its own transaction control), so no
        ``BEGIN``/``COMMIT`` is sent around it. ``keep``: run it on the thread's kept cursor
        (see ``_kept_cursor``) instead of a fresh one."""
        for attempt in range(ATTEMPTS):
            try:
                return self._transaction(body, write, owns, keep)
            except _Retry as retry:
                if attempt == ATTEMPTS - 1:
                    raise self._exhausted(retry) from None
                time.sleep(BACKOFF * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _transaction(
        self, body: Callable[[Cursor], T], write: bool, owns: bool = False, keep: bool = False
    ) -> T:
        conn = self._pool.acquire()
        try:
            return self._transaction_on(conn, body, write, owns, keep)
        finally:
            self._pool.release(conn)

    def _transaction_on(
        self,
        conn: Connection,
        body: Callable[[Cursor], T],
        write: bool,
        owns: bool = False,
        keep: bool = False,
    ) -> T:
        try:
            cur: Cursor = self._kept_cursor(conn) if keep else conn.cursor()
        except Exception as exc:
            raise self._translate(conn, exc) from exc
        try:
            if not owns:
                cur.execute(self.dialect.begin_write if write else self.dialect.begin_read)
            result = body(cur)
            if not owns:
                cur.execute(self.dialect.commit)
            return result
        except BaseException as exc:
            # A body that owns its transaction left none open unless the driver failed.
            if not owns or self._is_driver_error(exc):
                self._rollback(conn, cur)
            if self._is_driver_error(exc):
                raise self._translate(conn, exc) from exc
            raise
        finally:
            if not keep:
                # The cursor of a dropped connection may refuse to close.
                with contextlib.suppress(Exception):
                    cur.close()

    def _kept_cursor(self, conn: Connection) -> Cursor:
        """This thread's cursor on ``conn`` that lives as long as the connection. pyodbc keeps
        the statement a cursor last ran prepared, so running the same statement on the same
        cursor again skips the database's parse and plan (for the one-statement write,
        longer than running it); a fresh cursor per call would pay them every time."""
        kept: tuple[Connection, Cursor] | None = getattr(self._kept, "pair", None)
        if kept is not None and kept[0] is conn:
            return kept[1]
        cur: Cursor = conn.cursor()
        self._kept.pair = (conn, cur)
        return cur

    def _rollback(self, conn: Connection, cur: Cursor) -> None:
        if not self.in_transaction(conn):
            return
        try:
            cur.execute(self.dialect.rollback)
        except Exception:
            # A connection that cannot roll back is in an unknown state: never reuse it.
            self._pool.drop(conn)

    @abstractmethod
    def _is_driver_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` came from the driver (the backend knows its exception classes)."""

    def _translate(self, conn: Connection, exc: BaseException) -> Exception:
        kind = self.dialect.classify(exc)
        if kind is ErrorKind.CORRUPT:
            self.corrupt_errors += 1
            log.error("the database %s is corrupt: %s", self.url, self.describe(exc))
            return DatabaseUnavailable(f"the database {self.url} is corrupt: {self.describe(exc)}")
        if kind is ErrorKind.LOST:
            self._pool.drop(conn)
        if kind in (ErrorKind.TRANSIENT, ErrorKind.LOST, ErrorKind.UNIQUE):
            return _Retry(kind, exc)
        if kind is ErrorKind.NO_SCHEMA:
            return DatabaseUnavailable(
                f"the database {self.url} has no synccli tables (or an older schema); "
                "run `synccli db init --db URL`"
            )
        return DatabaseUnavailable(f"database error on {self.url}: {self.describe(exc)}")

    def _exhausted(self, retry: _Retry) -> DatabaseUnavailable:
        detail = self.describe(retry.cause)
        if retry.kind is ErrorKind.LOST:
            return DatabaseUnavailable(
                f"lost the connection to {self.url} {ATTEMPTS} times: {detail}"
            )
        return TransientDatabaseError(
            f"database {self.url} stayed busy after {ATTEMPTS} attempts ({detail}); retry later"
        )

    # ----------------------------------------------------------------- schema

    def init_schema(self) -> None:
        """Create the missing tables, migrate older schemas in place and record the version;
        never drops anything. One transaction: a failed migration leaves the old schema."""

        def body(cur: Cursor) -> None:
            created: set[str] = set()
            for table in TABLES:
                cur.execute(self.dialect.table_exists, (table,))
                if cur.fetchone() is None:
                    for statement in self.dialect.table_ddl(table):
                        cur.execute(statement)
                    created.add(table)
            if self.dialect.create_write_function is not None:
                # CREATE OR REPLACE: every init leaves the function this synccli calls.
                cur.execute(self.dialect.create_write_function)
            cur.execute(self.dialect.select_schema_version)
            found = [int(r[0]) for r in cur.fetchall()]
            if not found:
                cur.execute(self.dialect.insert_schema_version, (SCHEMA_VERSION,))
                return
            version = max(found)
            if version > SCHEMA_VERSION:
                raise DatabaseUnavailable(
                    f"the database {self.url} has schema version {version}, newer than this "
                    f"synccli ({SCHEMA_VERSION}); upgrade synccli"
                )
            if version < 2 and "events" not in created:
                # Existing events keep NULL audit columns: the log did not record them.
                for statement in self.dialect.add_event_columns:
                    cur.execute(statement)
            if version < SCHEMA_VERSION:
                cur.execute(self.dialect.update_schema_version, (SCHEMA_VERSION,))

        self._run(body, write=True)

    def seed(self, date: str, count: int) -> int:
        """Create ``<date>-0001`` … ``<date>-<count>`` as Scheduled rows (and the channel)."""
        now = iso_ms(utc_now())

        def body(cur: Cursor) -> int:
            self._create_channel(cur, date)
            created = 0
            for number in range(1, count + 1):
                appointment_id = f"{date}-{number:04d}"
                cur.execute(
                    self.dialect.insert_appointment,
                    (appointment_id, date, f"Patient {number:04d}", SCHEDULED, now, appointment_id),
                )
                created += max(cur.rowcount, 0)
            return created

        return self._run(body, write=True)

    # ----------------------------------------------------------------- the write path

    def write(self, request: WriteRequest, now: datetime) -> WriteOutcome:
        """Guarantee 1 in one transaction; see ``Store.write``. Where the dialect has the
        whole write as one statement (``write_once``) it is one round trip; with a hook
        installed, the same statement runs inside an explicit transaction so the hook still
        sees it open (and can roll it back)."""
        d = self.dialect
        if d.write_once is None or d.write_in_tx is None or not self.one_round_trip:
            return self._run(lambda cur: self._write(cur, request, now), write=True)
        try:
            if self.hook is None:
                once = d.write_once
                return self._run(
                    lambda cur: self._write_once(cur, once, request, now),
                    write=True,
                    owns=True,
                    keep=True,
                )
            in_tx = d.write_in_tx
            return self._run(lambda cur: self._write_once(cur, in_tx, request, now), write=True)
        except DatabaseUnavailable as exc:
            if VERIFY_FAILED not in str(exc):
                raise
            raise DatabaseUnavailable(
                f"appointment {request.appointment_id} was not stored as written; rolled back"
            ) from None

    def _write_once(
        self, cur: Cursor, sql: str, request: WriteRequest, now: datetime
    ) -> WriteOutcome:
        """The write as the one statement ``sql``; what its answer row means follows the
        rules of ``_write`` (see ``synccli.store.write_sql``)."""
        stamp = iso_ms(now)
        head, to_patient, to_version, tail = payload_parts(
            request.appointment_id, request.state, stamp
        )
        result_head, result_mid = result_parts(request)
        cur.execute(
            sql,
            (
                request.request_id,
                request.appointment_id,
                request.state,
                request.expected_version,
                stamp,
                request.actor,
                new_epoch(),
                head,
                to_patient,
                to_version,
                tail,
                result_head,
                result_mid,
            ),
        )
        found = cur.fetchone()
        if found[7] is not None:
            return replay(request, str(found[7]))
        if found[0] is None:
            raise WriteRejected("not_found", f"no appointment {request.appointment_id!r}")
        before = row_of(found)
        if found[9] is None:
            try:
                _check(request, before)
            except WriteRejected:
                # As in ``_write``: the lock may have waited for this very request's first
                # attempt, whose record the statement's snapshot did not show yet.
                cur.execute(self.dialect.select_request, (request.request_id,))
                stored = cur.fetchone()
                if stored is not None:
                    return replay(request, str(stored[0]))
                raise
            raise TransientDatabaseError(
                f"appointment {before.appointment_id} changed under its lock; retry"
            )
        if self.hook is not None:
            self.hook("verify")
            self.hook("commit")
        # The statement verified that the row was stored exactly as this one.
        after = Row(
            before.appointment_id,
            before.date,
            before.patient,
            request.state,
            stamp,
            before.version + 1,
            stamp,
        )
        epoch, seq = str(found[8]), int(found[9])
        event = Event(after.date, epoch, seq, after, request.request_id, stamp)
        return WriteOutcome(request.request_id, after, seq, event)

    def _write(self, cur: Cursor, request: WriteRequest, now: datetime) -> WriteOutcome:
        d = self.dialect
        # One round trip: lock the row and look the request id up (idempotency).
        cur.execute(d.lock_appointment, (request.request_id, request.appointment_id))
        found = cur.fetchone()
        if found is None:
            # No such appointment; the id may still hold a stored result (rare path).
            cur.execute(d.select_request, (request.request_id,))
            stored = cur.fetchone()
            if stored is not None:
                return replay(request, str(stored[0]))
            raise WriteRejected("not_found", f"no appointment {request.appointment_id!r}")
        if found[7] is not None:
            return replay(request, str(found[7]))
        before = row_of(found)
        try:
            _check(request, before)
        except WriteRejected:
            # The lock may have waited for this very request's first attempt (a retry racing
            # its own ambiguous commit); the lookup above used a snapshot from before that
            # commit. Look again, now that the lock is held: its stored outcome is the answer.
            cur.execute(d.select_request, (request.request_id,))
            stored = cur.fetchone()
            if stored is not None:
                return replay(request, str(stored[0]))
            raise

        stamp = iso_ms(now)
        cur.execute(
            d.update_appointment,
            (request.state, stamp, stamp, before.appointment_id, before.version),
        )
        written = cur.fetchall()
        if len(written) != 1:
            raise TransientDatabaseError(
                f"appointment {before.appointment_id} changed under its lock; retry"
            )
        if self.hook is not None:
            self.hook("verify")
        after = self._verify(row_of(written[0]), before, request.state, stamp)

        self._create_channel(cur, after.date)
        cur.execute(d.bump_channel, (after.date,))
        # psqlODBC describes an UPDATE … RETURNING that matched nothing as no result set.
        bumped = [] if cur.description is None else cur.fetchall()
        if not bumped:
            # The cached channel row is gone (the tables were recreated): forget the cache
            # and let the retry create it.
            self._known_channels.clear()
            raise _Retry(ErrorKind.TRANSIENT, LookupError(f"no channel row for {after.date}"))
        epoch, seq = str(bumped[0][0]), int(bumped[0][1])
        payload = payload_of(after)
        cur.execute(
            d.insert_event,
            (
                after.date,
                seq,
                message_id(after.date, epoch, seq),
                after.appointment_id,
                request.request_id,
                payload,
                stamp,
                request.actor,
                before.state,
                before.state_time,
                before.updated_at,
            ),
        )
        cur.execute(
            d.insert_request,
            (request.request_id, after.date, seq, result_of(request, seq, payload), stamp),
        )
        if self.hook is not None:
            self.hook("commit")
        event = Event(after.date, epoch, seq, after, request.request_id, stamp)
        return WriteOutcome(request.request_id, after, seq, event)

    def _verify(self, stored: Row, before: Row, state: str, stamp: str) -> Row:
        """``stored`` (the row as the UPDATE left it, from ``RETURNING``/``OUTPUT``) must be
        exactly the intended change of ``before``; anything else rolls the write back."""
        # Built directly: ``dataclasses.replace`` costs twice as much, on every write.
        intended = Row(
            before.appointment_id,
            before.date,
            before.patient,
            state,
            stamp,
            before.version + 1,
            stamp,
        )
        if stored != intended:
            raise DatabaseUnavailable(
                f"appointment {before.appointment_id} was not stored as written; rolled back"
            )
        return stored

    def _create_channel(self, cur: Cursor, date: str) -> None:
        if date not in self._known_channels:
            cur.execute(self.dialect.create_channel, (date, new_epoch(), date))
            # Cached even if this transaction rolls back: the write path then finds no row
            # to bump, clears the cache and retries.
            self._known_channels.add(date)

    # ----------------------------------------------------------------- reads

    def channel(self, date: str) -> Channel:
        """The channel of ``date``; a date without a row reads as empty (``unborn``) and
        nothing is written: the first write creates the row."""
        found = self._run(lambda cur: self._select_channel(cur, date), write=False)
        return unborn(date) if found is None else found

    def _select_channel(self, cur: Cursor, date: str) -> Channel | None:
        cur.execute(self.dialect.select_channel, (date,))
        found = cur.fetchone()
        return None if found is None else channel_of(found)

    def events_since(self, date: str, after_seq: int, limit: int) -> list[Event]:
        """Up to ``limit`` events of ``date`` after ``after_seq``, in order."""
        if limit <= 0:
            return []
        params = (limit, date, after_seq) if self.dialect.limit_first else (date, after_seq, limit)

        def body(cur: Cursor) -> list[Event]:
            cur.execute(self.dialect.select_events, params)
            return [event_of(date, values) for values in cur.fetchall()]

        return self._run(body, write=False)

    def log_page(
        self, date: str, after_seq: int, limit: int, appointment_id: str | None = None
    ) -> LogPage:
        """Up to ``limit`` entries of ``date`` after ``after_seq``, in order, and the channel
        from the same read transaction. Writes nothing."""
        d = self.dialect
        sql = d.select_log if appointment_id is None else d.select_log_of
        channel, entries = self._log_read(sql, date, after_seq, limit, appointment_id, entries_of)
        return LogPage(date, channel, entries)

    def log_lines(
        self, date: str, after_seq: int, limit: int, appointment_id: str | None = None
    ) -> LinePage:
        """``log_page`` as lines the database writes as JSON text (``select_log_lines``),
        where the dialect has that statement."""
        d = self.dialect
        sql = d.select_log_lines if appointment_id is None else d.select_log_lines_of
        if sql is None:
            return super().log_lines(date, after_seq, limit, appointment_id)
        channel, lines = self._log_read(sql, date, after_seq, limit, appointment_id, lines_of)
        return LinePage(date, channel, lines)

    def _log_read(
        self,
        sql: str,
        date: str,
        after_seq: int,
        limit: int,
        appointment_id: str | None,
        convert: Callable[[Any], list[R]],
    ) -> tuple[Channel | None, list[R]]:
        """One page of a log statement (``select_log*``) and the channel, from one read
        transaction; ``convert`` turns the fetched rows into the page's items."""
        filters: tuple[object, ...] = (date, after_seq)
        if appointment_id is not None:
            filters += (appointment_id,)
        top = max(limit, 0)
        params = (top, *filters) if self.dialect.limit_first else (*filters, top)

        def body(cur: Cursor) -> tuple[Channel | None, list[R]]:
            channel = self._select_channel(cur, date)
            if channel is None or limit <= 0:
                return channel, []
            cur.execute(sql, params)
            return channel, convert(cur.fetchall())

        return self._run(body, write=False)

    def day_log(self, date: str) -> DayLog:
        """The rows, the channel and every kept entry of ``date`` from one read transaction
        (rows first, as ``snapshot``). Writes nothing."""
        d = self.dialect

        def body(cur: Cursor) -> DayLog:
            cur.execute(d.select_rows, (date,))
            rows = [row_of(values) for values in cur.fetchall()]
            channel = self._select_channel(cur, date)
            if channel is None:
                return DayLog(date, None, rows, [])
            cur.execute(d.select_day_log, (date,))
            return DayLog(date, channel, rows, entries_of(cur.fetchall()))

        return self._run(body, write=False)

    def board_log(self, date: str, *, seq: int | None = None, moment: str | None = None) -> DayLog:
        """Rows, channel and the entries deciding the board at ``seq`` (or at ``moment``)
        from one read transaction: the database picks them (``select_board_log``), so a
        long day costs a few grouped scans and about three entries per appointment."""
        d = self.dialect

        def body(cur: Cursor) -> DayLog:
            cur.execute(d.select_rows, (date,))
            rows = [row_of(values) for values in cur.fetchall()]
            channel = self._select_channel(cur, date)
            if channel is None:
                return DayLog(date, None, rows, [])
            at = channel.head_seq if seq is None else seq
            if moment is not None:
                cur.execute(d.select_seq_at, (date, moment))
                found = cur.fetchone()
                at = -1 if found is None or found[0] is None else int(found[0])
            cur.execute(d.select_board_log, (date, date, at, date, at, date))
            return DayLog(date, channel, rows, entries_of(cur.fetchall()), at)

        return self._run(body, write=False)

    def appointment_date(self, appointment_id: str) -> str | None:
        """The date of ``appointment_id``, None if there is no such appointment."""

        def body(cur: Cursor) -> str | None:
            cur.execute(self.dialect.select_appointment_date, (appointment_id,))
            found = cur.fetchone()
            return None if found is None else str(found[0])

        return self._run(body, write=False)

    def snapshot(self, date: str) -> tuple[Channel, list[Row]]:
        """The channel and its rows from one read transaction (rows first: see the mssql
        dialect, whose locks make the head read afterwards match them). Writes nothing: a
        date without a channel row reads as empty."""

        def body(cur: Cursor) -> tuple[Channel, list[Row]]:
            cur.execute(self.dialect.select_rows, (date,))
            rows = [row_of(values) for values in cur.fetchall()]
            channel = self._select_channel(cur, date)
            return unborn(date) if channel is None else channel, rows

        return self._run(body, write=False)

    def heads(self) -> dict[str, Channel]:
        """Every channel's position."""

        def body(cur: Cursor) -> dict[str, Channel]:
            cur.execute(self.dialect.select_channels)
            return {str(v[0]): channel_of(v) for v in cur.fetchall()}

        return self._run(body, write=False)

    def heads_of(self, dates: Iterable[str]) -> dict[str, Channel]:
        """The positions of ``dates`` that have a channel row, in one read transaction
        (``HEADS_CHUNK`` dates per statement; the last chunk repeats its last date)."""
        wanted = sorted(set(dates))
        if not wanted:
            return {}

        def body(cur: Cursor) -> dict[str, Channel]:
            found: dict[str, Channel] = {}
            for start in range(0, len(wanted), HEADS_CHUNK):
                chunk = wanted[start : start + HEADS_CHUNK]
                chunk += [chunk[-1]] * (HEADS_CHUNK - len(chunk))
                cur.execute(self.dialect.select_channels_in, tuple(chunk))
                found.update((str(v[0]), channel_of(v)) for v in cur.fetchall())
            return found

        return self._run(body, write=False)

    def status(self) -> list[ChannelStatus]:
        """Every channel with its event and appointment counts, by date."""

        def body(cur: Cursor) -> list[ChannelStatus]:
            cur.execute(self.dialect.select_channels)
            channels = [channel_of(v) for v in cur.fetchall()]
            cur.execute(self.dialect.count_events)
            events = {str(v[0]): int(v[1]) for v in cur.fetchall()}
            cur.execute(self.dialect.count_appointments)
            rows = {str(v[0]): int(v[1]) for v in cur.fetchall()}
            cur.execute(self.dialect.oldest_events)
            oldest = {str(v[0]): str(v[1]) for v in cur.fetchall()}
            return [
                ChannelStatus(c, events.get(c.date, 0), rows.get(c.date, 0), oldest.get(c.date))
                for c in channels
            ]

        return self._run(body, write=False)

    # ----------------------------------------------------------------- health

    def probe(self) -> None:
        """The write path answers: a write transaction (it takes the write lock) that reads
        the schema version and changes nothing."""

        def body(cur: Cursor) -> None:
            cur.execute(self.dialect.select_schema_version)
            cur.fetchall()

        self._run(body, write=True)

    # ----------------------------------------------------------------- maintenance

    def prune(self, before: datetime, holds: Mapping[str, int] | None = None) -> int:
        """Delete events committed before ``before``, of a held date only up to its hold;
        heads and epochs stay, ``min_seq`` follows. The oldest commit time (from the index
        alone) says whether there is anything to do; then the channel rows are locked, so no
        head moves while ``min_seq`` is set, and each date whose oldest kept event is old
        enough is pruned with one delete."""
        held = holds or {}
        moment = iso_ms(before)

        def body(cur: Cursor) -> int:
            d = self.dialect
            cur.execute(d.select_oldest_commit)
            oldest = cur.fetchone()
            if oldest is None or oldest[0] is None or str(oldest[0]) >= moment:
                return 0
            cur.execute(d.lock_channels)
            cur.fetchall()
            cur.execute(d.oldest_events)
            dates = [str(date) for date, committed_at in cur.fetchall() if committed_at < moment]
            deleted = 0
            for date in dates:
                cur.execute(d.delete_events_before, (date, moment, held.get(date, _NO_HOLD)))
                deleted += max(cur.rowcount, 0)
            cur.execute(d.update_min_seq)
            return deleted

        return self._run(body, write=True)

    def prune_channels(self) -> int:
        """Delete channel rows that never had an event (head 0) and have neither events nor
        appointments: what reads of unused dates created before reads stopped writing."""

        def body(cur: Cursor) -> int:
            cur.execute(self.dialect.delete_empty_channels)
            return max(cur.rowcount, 0)

        deleted = self._run(body, write=True)
        self._known_channels.clear()
        return deleted

    def reset_channel(self, date: str) -> Channel:
        """A new epoch for ``date`` with an empty log (head 0, min 1)."""

        def body(cur: Cursor) -> Channel:
            self._create_channel(cur, date)
            cur.execute(self.dialect.reset_channel, (new_epoch(), date))
            cur.execute(self.dialect.delete_events_of_date, (date,))
            channel = self._select_channel(cur, date)
            assert channel is not None, "the channel row was ensured in this transaction"
            return channel

        return self._run(body, write=True)
