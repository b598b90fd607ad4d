"""Reading a day's log in pages, for tools that stream it (``synccli events``)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from synccli.audit.entries import LogLine
from synccli.domain.channels import Channel
from synccli.errors import SynccliError
from synccli.store.base import Store

#: Entries in the first read transaction (the first screen comes at once); each further
#: page doubles, up to ``MAX_PAGE``, so a long day takes few round trips.
PAGE = 1_000
MAX_PAGE = 32_000


class LogReader:
    """The lines (``LogLine``) of one date after ``since``, at most ``limit`` (None: all), of one
    appointment when given, in pages of ``page`` entries doubling up to ``max_page``.
    ``channel`` is known after the first page (None: the date has never had a write)."""

    def __init__(
        self,
        store: Store,
        date: str,
        *,
        since: int = 0,
        limit: int | None = None,
        appointment_id: str | None = None,
        page: int = PAGE,
        max_page: int = MAX_PAGE,
    ) -> None:
        self.store, self.date, self.since, self.limit = store, date, since, limit
        self.appointment_id, self.page, self.max_page = appointment_id, page, max(page, max_page)
        self.channel: Channel | None = None
        self.count = 0

    def first(self) -> list[LogLine]:
        """The first page (sets ``channel``)."""
        return self._read(self.since)

    def pages(self, first: list[LogLine]) -> Iterator[list[LogLine]]:
        """``first`` and then every further page, each its own read transaction. The next
        page is read (on one worker thread) while the caller handles the one before: the
        database's work and the rendering overlap."""
        page, size = first, self.page
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-reader") as worker:
            while page:
                ahead = None
                if len(page) >= self._want(size) and self._left() != 0:
                    size = min(size * 2, self.max_page)
                    ahead = worker.submit(self._read, page[-1].seq, size)
                yield page
                page = [] if ahead is None else ahead.result()

    def _read(self, after: int, size: int | None = None) -> list[LogLine]:
        want = self._want(self.page if size is None else size)
        found = self.store.log_lines(self.date, after, want, self.appointment_id)
        self.channel = found.channel
        self.count += len(found.lines)
        return found.lines

    def _left(self) -> int | None:
        return None if self.limit is None else self.limit - self.count

    def _want(self, size: int) -> int:
        left = self._left()
        return size if left is None else min(size, max(left, 0))


def check_appointment(store: Store, appointment_id: str, date: str) -> None:
    """Raise ``SynccliError`` (exit 1) unless ``appointment_id`` exists on ``date``."""
    found = store.appointment_date(appointment_id)
    if found is None:
        raise SynccliError(f"there is no appointment {appointment_id!r}")
    if found != date:
        raise SynccliError(f"appointment {appointment_id!r} is on {found}, not on {date}")
