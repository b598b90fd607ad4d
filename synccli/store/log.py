"""Reading a day's log in pages, for tools that stream it (``synccli events``)."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from synccli.audit.entries import LinePage, LogLine
from synccli.domain.channels import Channel
from synccli.errors import SynccliError
from synccli.store.base import Store

#: Entries in the first read transaction (the first screen comes at once); each further
#: page doubles, up to ``MAX_PAGE``, so a long day takes few round trips.
PAGE = 1_000
MAX_PAGE = 32_000
#: A page being read: the last sequence number it may hold (None: any), what it asked for.
_Read = tuple[int | None, int, "Future[LinePage]"]


class LogReader:
    """The lines (``LogLine``) of one date after ``since``, at most ``limit`` (None: all), of one
    appointment when given, in pages of ``page`` entries doubling up to ``max_page``, up to
    ``readers`` pages (default: the store's ``log_readers``) read ahead at once, each on
    its own thread and so its own connection. ``channel`` is known after the first page
    (None: the date has never had a write)."""

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
        readers: int | None = None,
    ) -> None:
        self.store, self.date, self.since, self.limit = store, date, since, limit
        self.appointment_id, self.page, self.max_page = appointment_id, page, max(page, max_page)
        self.readers = max(store.log_readers if readers is None else readers, 1)
        self.channel: Channel | None = None
        self.count = 0

    def first(self) -> list[LogLine]:
        """The first page (sets ``channel``)."""
        return self._take(self._read(self.since, self._want(self.page)))

    def pages(self, first: list[LogLine]) -> Iterator[list[LogLine]]:
        """``first`` and then every further page, each its own read transaction, in order.
        The next pages are read on worker threads while the caller handles the one before.

        Sequence numbers are gap-free above the channel's ``min_seq``, so the rest of the
        day up to the head the first page saw splits into ranges known at once, read
        ``readers`` at a time; each keeps only its own entries (after a prune a page may
        start later and run into the next range). Past that head (entries written since),
        with one reader, and for one appointment (sparse sequence numbers), each page is
        read after the page before: it starts after that page's last entry."""
        if not first:
            return
        with ThreadPoolExecutor(self.readers, thread_name_prefix="log-reader") as workers:
            ranges = self._ranges(first)
            reads: deque[_Read] = deque()
            page, upto = first, None
            want, size = self._want(self.page, counted=len(first)), self.page
            while True:
                while ranges and len(reads) < self.readers:
                    after, end = ranges.pop()
                    reads.append((end, end - after, workers.submit(self._read, after, end - after)))
                if not reads and self._left() != 0:
                    start = self._next_after(page, want, upto)
                    if start is not None:
                        size = min(size * 2, self.max_page)
                        ask = self._want(size)
                        reads.append((None, ask, workers.submit(self._read, start, ask)))
                if page:
                    yield page
                if not reads:
                    return
                upto, want, found = reads.popleft()
                page = self._take(found.result(), upto)

    def _ranges(self, first: list[LogLine]) -> list[tuple[int, int]]:
        """``(after, upto)`` of the pages from ``first`` to the head it saw (at most
        ``limit`` entries), sizes doubling, last first; none when the pages must follow
        one another."""
        channel, want = self.channel, self._want(self.page, counted=len(first))
        if self.readers == 1 or self.appointment_id is not None or channel is None:
            return []
        left = self._left()
        if len(first) < want or left == 0:
            return []
        after, size, end = first[-1].seq, self.page, channel.head_seq
        if left is not None:
            end = min(end, after + left)
        ranges = []
        while after < end:
            size = min(size * 2, self.max_page)
            ranges.append((after, min(after + size, end)))
            after += size
        return ranges[::-1]

    def _next_after(self, page: list[LogLine], want: int, upto: int | None) -> int | None:
        """Where the page after ``page`` starts (None: there is none). After a page read
        by range, the log goes on if the head has moved past the range; after one read by
        count, if it came back full."""
        if upto is not None:
            moved = self.channel is not None and self.channel.head_seq > upto
            return upto if moved else None
        return page[-1].seq if page and len(page) >= want else None

    def _read(self, after: int, want: int) -> LinePage:
        """One page (on any thread: it changes nothing on the reader)."""
        return self.store.log_lines(self.date, after, want, self.appointment_id)

    def _take(self, page: LinePage, upto: int | None = None) -> list[LogLine]:
        """``page``'s lines up to sequence number ``upto``, counted; its channel kept."""
        self.channel = page.channel
        lines = page.lines
        if upto is not None and lines and lines[-1].seq > upto:
            lines = lines[: bisect.bisect_right(lines, upto, key=lambda line: line.seq)]
        self.count += len(lines)
        return lines

    def _left(self) -> int | None:
        return None if self.limit is None else self.limit - self.count

    def _want(self, size: int, counted: int = 0) -> int:
        """How many to ask for in a page of ``size`` (as before the ``counted`` last ones)."""
        left = self._left()
        return size if left is None else min(size, max(left + counted, 0))


def check_appointment(store: Store, appointment_id: str, date: str) -> None:
    """Raise ``SynccliError`` (exit 1) unless ``appointment_id`` exists on ``date``."""
    found = store.appointment_date(appointment_id)
    if found is None:
        raise SynccliError(f"there is no appointment {appointment_id!r}")
    if found != date:
        raise SynccliError(f"appointment {appointment_id!r} is on {found}, not on {date}")
