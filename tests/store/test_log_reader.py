"""``LogReader`` on SQLite and PostgreSQL: pages in order with every filter, several pages
read at once (by sequence range) giving the lines and the rendered output of one reader,
across pruned ranges and entries written meanwhile, and a failed read raising in place."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from synccli.audit.entries import LinePage, LogLine
from synccli.audit.render import LOG_FORMATS, log_blocks
from synccli.domain.channels import WriteRequest
from synccli.errors import DatabaseUnavailable
from synccli.store.log import LogReader
from synccli.store.sql import SqlStore
from tests.store.backends import Backend
from tests.store.contract import DATE, NOW, appt

#: The next state of an appointment in the day ``_write_day`` writes.
NEXT = {"Scheduled": "Present", "Present": "Seated", "Seated": "Present"}
LogRead = Callable[[str, int, int, "str | None"], LinePage]


def _write_day(store: SqlStore, count: int, start: int = 0) -> None:
    """``count`` events over three appointments, event ``i`` committed ``i`` s after NOW."""
    if start == 0:
        store.seed(DATE, 3)
    states = {appt(n): row.state for n, row in enumerate(store.snapshot(DATE)[1], 1)}
    for i in range(start, start + count):
        appointment = appt(1 + i % 3)
        states[appointment] = NEXT[states[appointment]]
        request = WriteRequest(f"r{i}", appointment, states[appointment], actor=f"user-{i % 2}")
        store.write(request, NOW + timedelta(seconds=i))


def _pages(reader: LogReader) -> list[list[LogLine]]:
    return list(reader.pages(reader.first()))


def _text(pages: list[list[LogLine]], fmt: str) -> str:
    return "".join(log_blocks(pages, fmt))


def test_the_reader_pages_and_stops_at_the_limit(store: SqlStore) -> None:
    store.seed(DATE, 1)
    for i, state in enumerate(["Present", "Scheduled"] * 5):
        store.write(WriteRequest(f"r{i}", appt(1), state), NOW + timedelta(seconds=i))
    for readers in (1, 2):
        reader = LogReader(store, DATE, since=2, limit=5, page=2, max_page=2, readers=readers)
        assert [[e.seq for e in p] for p in _pages(reader)] == [[3, 4], [5, 6], [7]]
        reader = LogReader(store, DATE, page=1, max_page=4, readers=readers)
        pages = _pages(reader)
        assert [len(p) for p in pages] == [1, 2, 4, 3]
        assert [e.seq for p in pages for e in p] == list(range(1, 11))
        assert reader.count == 10


@pytest.mark.parametrize(
    ("since", "limit", "appointment", "pruned"),
    [
        (0, None, None, 0),
        (5, None, None, 0),
        (0, 7, None, 0),
        (5, 7, None, 0),
        (0, 1, None, 0),
        (0, None, None, 9),
        (3, 8, None, 9),
        (12, None, None, 9),
        (0, None, 2, 0),
        (4, 3, 2, 9),
    ],
)
def test_pages_read_at_once_are_the_lines_and_the_output_of_one_reader(
    store: SqlStore, since: int, limit: int | None, appointment: int | None, pruned: int
) -> None:
    _write_day(store, 30)
    if pruned:
        assert store.prune(NOW + timedelta(seconds=pruned)) == pruned
    appointment_id = None if appointment is None else appt(appointment)
    kept = store.log_lines(DATE, since, 1_000, appointment_id).lines[:limit]
    outputs = []
    for readers in (1, 2):
        reader = LogReader(
            store,
            DATE,
            since=since,
            limit=limit,
            appointment_id=appointment_id,
            page=2,
            max_page=4,
            readers=readers,
        )
        pages = _pages(reader)
        assert [line for page in pages for line in page] == kept
        assert all(pages) and reader.count == len(kept)
        outputs.append([_text(pages, fmt) for fmt in LOG_FORMATS])
    assert outputs[0] == outputs[1]


def test_a_prune_between_pages_leaves_no_entry_twice(store: SqlStore) -> None:
    _write_day(store, 20)
    reader = LogReader(store, DATE, page=2, max_page=2, readers=2)
    first = reader.first()
    # The ranges are planned from the head the first page saw; the prune then removes
    # entries 1 to 9, so a page read after 2 starts at 10, inside later ranges.
    assert store.prune(NOW + timedelta(seconds=9)) == 9
    seqs = [line.seq for page in reader.pages(first) for line in page]
    assert seqs == [1, 2, *range(10, 21)]


@pytest.mark.parametrize("readers", [1, 2])
def test_entries_written_after_the_first_page_are_read_too(store: SqlStore, readers: int) -> None:
    _write_day(store, 6)
    reader = LogReader(store, DATE, page=2, max_page=2, readers=readers)
    first = reader.first()
    _write_day(store, 5, start=6)
    assert [line.seq for page in reader.pages(first) for line in page] == list(range(1, 12))
    assert reader.channel is not None and reader.channel.head_seq == 11


def test_two_pages_are_read_at_once_each_on_its_own_thread(
    store: SqlStore, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # By default only a database that builds pages in its own processes gets two.
    assert LogReader(store, DATE).readers == (1 if backend.dialect.name == "sqlite" else 2)
    _write_day(store, 7)
    read: LogRead = store.log_lines
    # The first two reads after the first page wait for each other: one reader at a
    # time would break the barrier (timeout) instead of passing it.
    both = threading.Barrier(2, timeout=10)
    threads: list[str] = []

    def together(date: str, after_seq: int, limit: int, appointment_id: str | None) -> LinePage:
        if after_seq > 1 and len(threads) < 2:
            threads.append(threading.current_thread().name)
            both.wait()
        return read(date, after_seq, limit, appointment_id)

    monkeypatch.setattr(store, "log_lines", together)
    reader = LogReader(store, DATE, page=1, max_page=2, readers=2)
    assert [line.seq for page in _pages(reader) for line in page] == list(range(1, 8))
    assert len(set(threads)) == 2 and threading.current_thread().name not in threads


def test_a_page_read_ahead_that_fails_raises_where_it_is_wanted(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.seed(DATE, 1)
    for i, state in enumerate(["Present", "Scheduled", "Present"]):
        store.write(WriteRequest(f"r{i}", appt(1), state), NOW + timedelta(seconds=i))
    read: LogRead = store.log_lines

    def gone_after_two(
        date: str, after_seq: int, limit: int, appointment_id: str | None
    ) -> LinePage:
        if after_seq >= 2:
            raise DatabaseUnavailable("the database went away")
        return read(date, after_seq, limit, appointment_id)

    monkeypatch.setattr(store, "log_lines", gone_after_two)
    for readers in (1, 2):
        reader = LogReader(store, DATE, page=1, max_page=1, readers=readers)
        pages = reader.pages(reader.first())
        assert [line.seq for line in next(pages)] == [1]  # page 2 is read meanwhile
        assert [line.seq for line in next(pages)] == [2]
        with pytest.raises(DatabaseUnavailable):
            next(pages)
