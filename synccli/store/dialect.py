"""What differs between SQL databases, in one place: DDL types, locks, row limits,
``RETURNING``/``OUTPUT``, transaction control, and which driver errors mean what.

Every statement the engine (``synccli.store.sql``) runs is a field of ``Dialect``; the engine
has no SQL of its own. That lets ``Dialect.statements()`` hand every statement to a checker
(the T-SQL one parses each with sqlglot) so no statement can slip past it. All statements
use qmark (``?``) parameters, and a statement takes the same parameters, in the same order,
in every dialect.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from synccli.store import write_sql

#: Tables in creation order; ``Dialect.create[name]`` creates one (with its indexes).
TABLES = ("schema_version", "appointments", "channels", "events", "requests")
#: Dates per ``select_channels_in`` statement (the relay's poll of the subscribed dates).
HEADS_CHUNK = 32


class ErrorKind(enum.Enum):
    """What a driver exception means for the caller."""

    TRANSIENT = "transient"  # deadlock victim, serialisation failure, busy: retry is safe
    LOST = "lost"  # the connection is gone: drop it, reopen, retry
    UNIQUE = "unique"  # a concurrent insert won the race: retry sees its row
    NO_SCHEMA = "no_schema"  # the tables are missing: `synccli db init`
    CORRUPT = "corrupt"  # the database file is damaged: logged as an error and counted
    OTHER = "other"  # anything else: the database failed


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL of one database. Field values are statements unless noted."""

    name: str
    #: True when the row limit is the first parameter (``SELECT TOP (?)``), not the last.
    limit_first: bool
    #: Maps a driver exception to its meaning.
    classify: Callable[[BaseException], ErrorKind]
    begin_write: str
    begin_read: str
    commit: str
    rollback: str
    table_exists: str
    create_schema_version: str
    create_appointments: str
    index_appointments: str
    create_channels: str
    create_events: str
    index_events: str
    #: The events columns schema version 2 added (the audit trail), one ALTER each.
    add_event_columns: tuple[str, ...]
    create_requests: str
    select_schema_version: str
    insert_schema_version: str
    update_schema_version: str
    insert_appointment: str
    lock_appointment: str
    update_appointment: str
    select_rows: str
    select_request: str
    insert_request: str
    create_channel: str
    select_channel: str
    select_channels: str
    select_channels_in: str
    delete_empty_channels: str
    lock_channels: str
    bump_channel: str
    reset_channel: str
    update_min_seq: str
    insert_event: str
    select_events: str
    select_log: str
    select_log_of: str
    select_day_log: str
    #: The newest entry at or before a time (``board --at``).
    select_seq_at: str
    #: The entries that decide the board at one sequence number (see ``Store.board_log``).
    select_board_log: str
    select_appointment_date: str
    #: The oldest commit time in the log (an index-only read: does retention have work?).
    select_oldest_commit: str
    #: Events of a date committed before a time, up to a sequence number (retention).
    delete_events_before: str
    delete_events_of_date: str
    count_events: str
    oldest_events: str
    count_appointments: str
    #: The whole write (``Store.write``) as one statement or batch that commits itself, and
    #: the same without its transaction control (run between ``begin_write`` and ``commit``
    #: when a write hook must see the open transaction). None: the write runs step by step.
    write_once: str | None = None
    write_in_tx: str | None = None
    #: What ``write_once`` calls, created (or replaced) by ``init_schema`` (schema 3).
    create_write_function: str | None = None
    #: ``select_log`` (``select_log_of``) as JSON text: arrays of ``seq, committed_at,
    #: appointment_id, from_state, actor, request_id`` and the payload object, separated
    #: by commas, in one value per page or one per row (in
    #: order). None: the engine reads ``select_log`` and builds the lines itself.
    select_log_lines: str | None = None
    select_log_lines_of: str | None = None

    def statements(self) -> dict[str, str]:
        """Every statement of this dialect, by field name (``name[i]`` for a sequence)."""
        found: dict[str, str] = {}
        for f in fields(self):
            if f.name in ("name", "limit_first", "classify"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                found.update((f"{f.name}[{i}]", sql) for i, sql in enumerate(value))
            else:
                found[f.name] = value
        return found

    def table_ddl(self, table: str) -> tuple[str, ...]:
        """The statements that create ``table`` and its indexes."""
        return {
            "schema_version": (self.create_schema_version,),
            "appointments": (self.create_appointments, self.index_appointments),
            "channels": (self.create_channels,),
            "events": (self.create_events, self.index_events),
            "requests": (self.create_requests,),
        }[table]


_ROW = "appointment_id, date, patient, state, state_time, version, updated_at"
_CHANNEL = "date, epoch, head_seq, min_seq"
#: An event's audit columns (schema 2): who, and the row's state before the change.
_AUDIT = "actor, from_state, from_state_time, from_updated_at"
_LOG = f"seq, event_id, appointment_id, request_id, payload, committed_at, {_AUDIT}"


def _build(
    name: str,
    classify: Callable[[BaseException], ErrorKind],
    *,
    key: str,
    text: str,
    big: str,
    tx: tuple[str, str, str, str],
    table_exists: str,
    lock_suffix: str = "",
    lock_hint: str = "",
    snapshot_hint: str = "",
    insert_prefix: str = "INSERT INTO",
    insert_suffix: str = "",
    output_inserted: bool = False,
    top: tuple[str, str] = ("", " LIMIT ?"),
    add_column: str = "ADD COLUMN",
) -> Dialect:
    """Assemble a dialect from the handful of things that differ; the rest is shared SQL."""
    begin_write, begin_read, commit, rollback = tx

    def returning(columns: str) -> tuple[str, str]:
        """What an UPDATE adds before WHERE and at its end to return ``columns`` of the
        updated rows: ``OUTPUT INSERTED.…`` (SQL Server) or ``RETURNING …``."""
        if output_inserted:
            names = ", ".join(f"INSERTED.{c.strip()}" for c in columns.split(","))
            return f" OUTPUT {names}", ""
        return "", f" RETURNING {columns}"

    row_back = returning(_ROW)
    seq_back = returning("epoch, head_seq")
    short = key.replace("128", "32")
    date = key.replace("128", "10")
    audit_types = (key, short, short, short)
    audit = ", ".join(f"{c} {t} NULL" for c, t in zip(_AUDIT.split(", "), audit_types, strict=True))
    return Dialect(
        name=name,
        limit_first=bool(top[0]),
        classify=classify,
        begin_write=begin_write,
        begin_read=begin_read,
        commit=commit,
        rollback=rollback,
        table_exists=table_exists,
        create_schema_version=f"CREATE TABLE schema_version (version {big} NOT NULL)",
        create_appointments=(
            f"CREATE TABLE appointments (appointment_id {key} NOT NULL PRIMARY KEY, "
            f"date {date} NOT NULL, patient {key} NOT NULL, state {short} NOT NULL, "
            f"state_time {short} NULL, version {big} NOT NULL, updated_at {short} NOT NULL)"
        ),
        index_appointments="CREATE INDEX appointments_date ON appointments (date)",
        create_channels=(
            f"CREATE TABLE channels (date {date} NOT NULL PRIMARY KEY, epoch {short} NOT NULL, "
            f"head_seq {big} NOT NULL, min_seq {big} NOT NULL)"
        ),
        create_events=(
            f"CREATE TABLE events (date {date} NOT NULL, seq {big} NOT NULL, "
            f"event_id {key} NOT NULL, appointment_id {key} NOT NULL, request_id {key} NULL, "
            f"payload {text} NOT NULL, committed_at {short} NOT NULL, {audit}, "
            "PRIMARY KEY (date, seq))"
        ),
        index_events="CREATE INDEX events_committed_at ON events (committed_at)",
        add_event_columns=tuple(
            f"ALTER TABLE events {add_column} {column}" for column in audit.split(", ")
        ),
        create_requests=(
            f"CREATE TABLE requests (request_id {key} NOT NULL PRIMARY KEY, date {date} NOT NULL, "
            f"seq {big} NOT NULL, result {text} NOT NULL, created_at {short} NOT NULL)"
        ),
        select_schema_version="SELECT version FROM schema_version",
        insert_schema_version="INSERT INTO schema_version (version) VALUES (?)",
        update_schema_version="UPDATE schema_version SET version = ?",
        insert_appointment=(
            f"{insert_prefix} appointments ({_ROW}) SELECT ?, ?, ?, ?, NULL, 1, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM appointments WHERE appointment_id = ?)"
            f"{insert_suffix.format(key='appointment_id')}"
        ),
        # The row, locked, and the stored result of the request id (NULL if new): the
        # idempotency lookup rides on the lock's round trip.
        lock_appointment=(
            f"SELECT {_ROW}, (SELECT result FROM requests WHERE request_id = ?) "
            f"FROM appointments{lock_hint} WHERE appointment_id = ?{lock_suffix}"
        ),
        # Returns the row as stored, which the write path verifies (no re-read round trip).
        update_appointment=(
            "UPDATE appointments SET state = ?, state_time = ?, version = version + 1, "
            f"updated_at = ?{row_back[0]} WHERE appointment_id = ? AND version = ?{row_back[1]}"
        ),
        select_rows=(
            f"SELECT {_ROW} FROM appointments{snapshot_hint} WHERE date = ? ORDER BY appointment_id"
        ),
        select_request="SELECT result FROM requests WHERE request_id = ?",
        insert_request=(
            "INSERT INTO requests (request_id, date, seq, result, created_at) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        create_channel=(
            f"{insert_prefix} channels ({_CHANNEL}) SELECT ?, ?, 0, 1 WHERE NOT EXISTS "
            f"(SELECT 1 FROM channels{lock_hint.replace('ROWLOCK', 'HOLDLOCK')} WHERE date = ?)"
            f"{insert_suffix.format(key='date')}"
        ),
        select_channel=f"SELECT {_CHANNEL} FROM channels WHERE date = ?",
        select_channels=f"SELECT {_CHANNEL} FROM channels ORDER BY date",
        select_channels_in=(
            f"SELECT {_CHANNEL} FROM channels WHERE date IN ({', '.join(['?'] * HEADS_CHUNK)})"
        ),
        delete_empty_channels=(
            "DELETE FROM channels WHERE head_seq = 0 "
            "AND NOT EXISTS (SELECT 1 FROM events WHERE events.date = channels.date) "
            "AND NOT EXISTS (SELECT 1 FROM appointments WHERE appointments.date = channels.date)"
        ),
        lock_channels=f"SELECT date FROM channels{lock_hint}{lock_suffix}",
        bump_channel=(
            f"UPDATE channels SET head_seq = head_seq + 1{seq_back[0]} WHERE date = ?{seq_back[1]}"
        ),
        reset_channel="UPDATE channels SET epoch = ?, head_seq = 0, min_seq = 1 WHERE date = ?",
        update_min_seq=(
            "UPDATE channels SET min_seq = COALESCE((SELECT MIN(seq) FROM events "
            "WHERE events.date = channels.date), head_seq + 1)"
        ),
        insert_event=(
            "INSERT INTO events (date, seq, event_id, appointment_id, request_id, payload, "
            f"committed_at, {_AUDIT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        select_events=(
            f"SELECT{top[0]} event_id, seq, request_id, payload, committed_at FROM events "
            f"WHERE date = ? AND seq > ? ORDER BY seq{top[1]}"
        ),
        select_log=(
            f"SELECT{top[0]} {_LOG} FROM events WHERE date = ? AND seq > ? ORDER BY seq{top[1]}"
        ),
        select_log_of=(
            f"SELECT{top[0]} {_LOG} FROM events WHERE date = ? AND seq > ? "
            f"AND appointment_id = ? ORDER BY seq{top[1]}"
        ),
        select_day_log=f"SELECT {_LOG} FROM events WHERE date = ? ORDER BY seq",
        select_seq_at="SELECT MAX(seq) FROM events WHERE date = ? AND committed_at <= ?",
        # Per appointment: its last entry at or below the sequence number, its first above
        # it, and its first of all (``earliest_seq``); the database folds, a page is read.
        select_board_log=(
            f"SELECT {_LOG} FROM events WHERE date = ? AND seq IN ("
            "SELECT MAX(seq) FROM events WHERE date = ? AND seq <= ? GROUP BY appointment_id "
            "UNION SELECT MIN(seq) FROM events WHERE date = ? AND seq > ? GROUP BY appointment_id "
            "UNION SELECT MIN(seq) FROM events WHERE date = ? GROUP BY appointment_id"
            ") ORDER BY seq"
        ),
        select_appointment_date="SELECT date FROM appointments WHERE appointment_id = ?",
        select_oldest_commit="SELECT MIN(committed_at) FROM events",
        delete_events_before=(
            "DELETE FROM events WHERE date = ? AND committed_at < ? AND seq <= ?"
        ),
        delete_events_of_date="DELETE FROM events WHERE date = ?",
        count_events="SELECT date, COUNT(*) FROM events GROUP BY date",
        oldest_events=(
            "SELECT events.date, events.committed_at FROM events JOIN channels "
            "ON channels.date = events.date AND events.seq = channels.min_seq"
        ),
        count_appointments="SELECT date, COUNT(*) FROM appointments GROUP BY date",
    )


def _classify_sqlite(exc: BaseException) -> ErrorKind:
    if isinstance(exc, sqlite3.IntegrityError):
        return ErrorKind.UNIQUE
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "locked" in text or "busy" in text:
            return ErrorKind.TRANSIENT
        if "no such table" in text:
            return ErrorKind.NO_SCHEMA
    if isinstance(exc, sqlite3.DatabaseError) and any(
        sign in str(exc) for sign in ("malformed", "not a database")
    ):
        return ErrorKind.CORRUPT  # SQLITE_CORRUPT: "database disk image is malformed"
    return ErrorKind.OTHER


def odbc_state(exc: BaseException) -> str:
    """The SQLSTATE of a pyodbc error (``args[0]``), or ``""``."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], str) and len(args[0]) == 5 else ""


_LOST_STATES = frozenset({"08S01", "08001", "08003", "08004", "08006", "08007", "57P01"})


def _odbc_classifier(
    transient: frozenset[str], unique: frozenset[str], no_schema: frozenset[str], natives: str
) -> Callable[[BaseException], ErrorKind]:
    """A classifier for pyodbc errors by SQLSTATE and, as a fallback, native error numbers
    found in the message (SQL Server reports a deadlock victim as ``(1205)``)."""

    def classify(exc: BaseException) -> ErrorKind:
        state = odbc_state(exc)
        message = str(exc)
        if state in _LOST_STATES or ("connection" in message.lower() and "closed" in message):
            return ErrorKind.LOST
        if state in transient or any(f"({n})" in message for n in natives.split()):
            return ErrorKind.TRANSIENT
        if state in unique:
            return ErrorKind.UNIQUE
        if state in no_schema:
            return ErrorKind.NO_SCHEMA
        return ErrorKind.OTHER

    return classify


SQLITE = _build(
    "sqlite",
    _classify_sqlite,
    key="TEXT",
    text="TEXT",
    big="INTEGER",
    # BEGIN IMMEDIATE takes the database write lock up front, so two writers never both
    # read and then collide on upgrade; a deferred BEGIN reads from one WAL snapshot.
    tx=("BEGIN IMMEDIATE", "BEGIN", "COMMIT", "ROLLBACK"),
    table_exists="SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
    insert_prefix="INSERT OR IGNORE INTO",
)

POSTGRESQL = _build(
    "postgresql",
    _odbc_classifier(
        transient=frozenset({"40P01", "40001", "55P03"}),
        unique=frozenset({"23505"}),
        # 42883: no such function (``synccli_write``: a schema-2 database).
        no_schema=frozenset({"42P01", "42883"}),
        natives="",
    ),
    key="VARCHAR(128)",
    text="TEXT",
    big="BIGINT",
    # Writes run in READ COMMITTED with explicit row locks; the snapshot reads in
    # REPEATABLE READ so the channel position and the rows come from one snapshot.
    tx=(
        "BEGIN",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "COMMIT",
        "ROLLBACK",
    ),
    table_exists=(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = ?"
    ),
    lock_suffix=" FOR UPDATE",
    insert_suffix=" ON CONFLICT ({key}) DO NOTHING",
)

_PG_FUNCTION, _PG_WRITE = write_sql.postgresql_function(
    "VARCHAR(128)", "VARCHAR(32)", "BIGINT", "TEXT"
)
POSTGRESQL = replace(
    POSTGRESQL,
    create_write_function=_PG_FUNCTION,
    write_once=_PG_WRITE,
    write_in_tx=_PG_WRITE,
)

#: The ``LogLine`` fields the events table holds as columns; a line is these and the
#: stored payload object (extracting the patient, state and version in SQL would parse each
#: payload once per field: on PostgreSQL twice the cost of the whole read).
_LINE = "seq, committed_at, appointment_id, from_state, actor, request_id"
_PAGE = f"SELECT {_LINE}, payload FROM events WHERE date = ? AND seq > ?"


def _log_lines(dialect: Dialect, *, sqlite: bool) -> Dialect:
    """``dialect`` with its ``select_log_lines`` statements: SQLite writes one JSON array per
    row (json1; its aggregates take no ORDER BY before 3.44), PostgreSQL one text per page
    (``string_agg`` in sequence order), so the driver converts one value, not ten a row."""

    def lines(where: str) -> str:
        page = f"({_PAGE}{where} ORDER BY seq LIMIT ?) AS page"
        if sqlite:
            return f"SELECT json_array({_LINE}, json(payload)) FROM {page} ORDER BY seq"
        return (
            f"SELECT string_agg(json_build_array({_LINE}, payload::json)::text, ',' "
            f"ORDER BY seq) FROM {page}"
        )

    return replace(
        dialect,
        select_log_lines=lines(""),
        select_log_lines_of=lines(" AND appointment_id = ?"),
    )


SQLITE = _log_lines(SQLITE, sqlite=True)
POSTGRESQL = _log_lines(POSTGRESQL, sqlite=False)

MSSQL = _build(
    "mssql",
    _odbc_classifier(
        transient=frozenset({"40001"}),
        unique=frozenset({"23000"}),
        no_schema=frozenset({"42S02"}),
        natives="1205 1222",
    ),
    key="NVARCHAR(128)",
    text="NVARCHAR(MAX)",
    big="BIGINT",
    # XACT_ABORT makes any error abort the whole transaction, never half of it. The snapshot
    # takes update locks on the date's rows before it reads the channel: every writer of that
    # date holds one of those rows while it bumps the head, so the head read after them
    # matches the rows, without needing SNAPSHOT isolation to be enabled on the database.
    tx=(
        "SET XACT_ABORT ON; SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN TRANSACTION",
        "SET XACT_ABORT ON; SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN TRANSACTION",
        "COMMIT TRANSACTION",
        "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION",
    ),
    table_exists=(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = SCHEMA_NAME() AND table_name = ?"
    ),
    lock_hint=" WITH (UPDLOCK, ROWLOCK)",
    snapshot_hint=" WITH (UPDLOCK, HOLDLOCK)",
    output_inserted=True,
    top=(" TOP (?)", ""),
    add_column="ADD",
)

_MSSQL_ONCE, _MSSQL_IN_TX = write_sql.mssql(
    "NVARCHAR(128)", "NVARCHAR(32)", "BIGINT", "NVARCHAR(MAX)", MSSQL.begin_write
)
MSSQL = replace(MSSQL, write_once=_MSSQL_ONCE, write_in_tx=_MSSQL_IN_TX)

DIALECTS = {d.name: d for d in (SQLITE, POSTGRESQL, MSSQL)}
