"""The ``Store`` interface: everything the server and the checker need from a database.

A backend translates its driver's exceptions at the boundary: rule violations become
``WriteRejected`` (with the wire code), everything else ``DatabaseUnavailable`` (or
``TransientDatabaseError`` for deadlock victims). Methods may be called from any thread;
a backend keeps one connection per thread. Nothing is ever half-written: every method that
writes does so in one transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from synccli.audit.entries import DayLog, LinePage, LogLine, LogPage, decisive
from synccli.domain.channels import Channel, ChannelStatus, WriteOutcome, WriteRequest
from synccli.domain.values import Event, Row
from synccli.errors import DatabaseUnavailable

#: 2: events record who made the change (``actor``) and the row before it (``from_*``).
#: 3: PostgreSQL has the function ``synccli_write`` (the write in one round trip).
SCHEMA_VERSION = 3

# Called inside the write transaction at each stage ("verify", "commit"); raising an
# exception from it makes the transaction roll back. The database-fault hook plugs in here.
WriteHook = Callable[[str], None]


class Store(ABC):
    """A database holding appointments, channels, the event log and idempotency records."""

    #: The URL with any password replaced by ``***``; safe for logs and reports.
    url: str
    #: Test and fault hook, see ``WriteHook``.
    hook: WriteHook | None = None
    #: Driver errors that reported a corrupt database (each is logged as an error).
    corrupt_errors: int = 0
    #: Log pages worth reading at once (``LogReader``): more than one only where the
    #: database builds them in processes of its own; in this process they would only
    #: take turns on the same CPU.
    log_readers: int = 1

    @abstractmethod
    def init_schema(self) -> None:
        """Create or migrate the schema; idempotent, never destroys data."""

    @abstractmethod
    def seed(self, date: str, count: int) -> int:
        """Create appointments ``<date>-0001`` … in state Scheduled (rows, not events).
        Existing ids are left alone. Returns how many rows were created."""

    @abstractmethod
    def write(self, request: WriteRequest, now: datetime) -> WriteOutcome:
        """The transaction of guarantee 1: lock the appointment, check the transition and
        ``expectedVersion``, update, verify, bump the channel's ``head_seq`` under a row lock,
        insert the event and the request record, commit. The same ``request_id`` with the
        same content returns the stored outcome (``replayed=True``); with other content it
        raises ``WriteRejected("request_id_reused")``."""

    @abstractmethod
    def channel(self, date: str) -> Channel:
        """The channel of ``date``; one without a row reads as empty (head 0) and is not
        created: reads never write, the first write creates the channel."""

    @abstractmethod
    def events_since(self, date: str, after_seq: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with ``seq > after_seq``, in order."""

    @abstractmethod
    def snapshot(self, date: str) -> tuple[Channel, list[Row]]:
        """The channel position and every appointment of ``date``, read in one transaction."""

    @abstractmethod
    def heads(self) -> dict[str, Channel]:
        """Every channel's position (the relay polls this to notice foreign writes)."""

    # The log as a tool (``synccli events``, ``synccli board``): read-only, and not every
    # store keeps a readable log, so these are not abstract.

    def log_page(
        self, date: str, after_seq: int, limit: int, appointment_id: str | None = None
    ) -> LogPage:
        """Up to ``limit`` entries of ``date`` after ``after_seq`` (of one appointment when
        given), in order, with the date's channel (None if it has none). Writes nothing."""
        raise DatabaseUnavailable(f"{type(self).__name__} keeps no readable log")

    def log_lines(
        self, date: str, after_seq: int, limit: int, appointment_id: str | None = None
    ) -> LinePage:
        """``log_page`` as the lines a tool shows (a store may have the database build them)."""
        page = self.log_page(date, after_seq, limit, appointment_id)
        return LinePage(date, page.channel, list(map(LogLine.of, page.entries)))

    def day_log(self, date: str) -> DayLog:
        """The channel, the stored rows and every kept entry of ``date``, from one read
        transaction. Writes nothing."""
        raise DatabaseUnavailable(f"{type(self).__name__} keeps no readable log")

    def board_log(self, date: str, *, seq: int | None = None, moment: str | None = None) -> DayLog:
        """The channel, the stored rows and only the entries that decide the board at
        ``seq``, or at the newest commit at or before ``moment`` (``iso_ms`` text): a
        ``DayLog`` with ``at`` set (-1 when nothing was committed by ``moment``). One read
        transaction; writes nothing. By default the whole day, narrowed here."""
        day = self.day_log(date)
        if moment is not None:
            seq = max((e.seq for e in day.entries if e.committed_at <= moment), default=-1)
        at = day.head if seq is None else seq
        return DayLog(date, day.channel, day.rows, decisive(day.entries, at), at)

    def appointment_date(self, appointment_id: str) -> str | None:
        """The date of ``appointment_id``, None if there is no such appointment."""
        raise DatabaseUnavailable(f"{type(self).__name__} keeps no readable log")

    def heads_of(self, dates: Iterable[str]) -> dict[str, Channel]:
        """The positions of those ``dates`` that have a channel (the relay polls only the
        dates somebody subscribes to, so its cost does not grow with idle channels)."""
        wanted = set(dates)
        return {date: channel for date, channel in self.heads().items() if date in wanted}

    def probe(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the write path answers (readiness)."""
        self.heads_of([])

    def prune_channels(self) -> int:
        """Delete channels that never had an event and have no appointments; the count."""
        return 0

    @abstractmethod
    def prune(self, before: datetime, holds: Mapping[str, int] | None = None) -> int:
        """Delete events committed before ``before``, but of a date in ``holds`` only those
        up to its sequence number (what connected clients still need stays); head and epoch
        stay. Returns the count."""

    @abstractmethod
    def reset_channel(self, date: str) -> Channel:
        """Start a new epoch for ``date`` (log reset or restore): head 0, log emptied."""

    @abstractmethod
    def status(self) -> list[ChannelStatus]:
        """Every channel with its event and appointment counts."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection; idempotent."""
