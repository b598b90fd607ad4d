"""The log tools on a long day: ``synccli events`` and ``synccli board --at`` on a day of
100,000 events, against a bare ``SELECT`` of the same rows in the same run.

    python benchmarks/log_tools.py                         # a scratch SQLite file
    python benchmarks/log_tools.py --db 'postgresql+pyodbc://postgres@127.0.0.1/bench?driver=PostgreSQL+Unicode'

The day (``2099-06-01``, ``--appointments`` rows, ``--events`` valid changes Scheduled ⇄
Present ⇄ Seated, seeded ``--seed``) is written once with the engine's own statements in one
transaction, then each operation runs ``--rounds`` times, alternating, best round kept:

* bare: ``SELECT`` of every column the log tools read, ``fetchall`` on one connection;
* bare SELECT of JSON lines: ``select_log_lines`` for the whole day, values not decoded;
* events: every entry through ``LogReader``'s pages, rendered as the table (and JSON Lines,
  CSV) and written to ``/dev/null``, as ``synccli events DATE > /dev/null`` does: the
  database writes each page's lines as JSON text (``Store.log_lines``), the next pages read
  while one is rendered, the store's ``log_readers`` at once by sequence range on their own
  connections (PostgreSQL: 2; SQLite: 1, the same as before);
  "one reader (before)" reads one page ahead at a time; "cells (before)" rows read ten cells
  per entry (``Store.log_page``), build the lines in Python and read a page only after the
  last;
* ``$ synccli …``: the same as a whole command, as a user runs it (process start-up
  included), output to ``/dev/null``;
* board --at: the sequence number at a time in the middle of the day, the entries that
  decide the board there read in one transaction (``Store.board_log``), the board rebuilt
  and rendered as the table; "whole day (before)" reads every entry and folds in Python.

Target (the task): under 1 s each. Point ``--db`` at a scratch database.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import click
from tabulate import tabulate

from synccli.audit import parse_moment, rebuild, seq_at
from synccli.audit.entries import LogLine
from synccli.audit.render import BOARD_COLUMNS, board_table, log_blocks
from synccli.domain.values import Row, iso_ms, message_id
from synccli.store import open_store
from synccli.store.log import LogReader
from synccli.store.records import payload_of
from synccli.store.sql import SqlStore

DATE = "2099-06-01"
EPOCH = "bench0000000"
NEXT = {"Scheduled": "Present", "Present": "Seated", "Seated": "Present"}


def build_day(store: SqlStore, appointments: int, events: int, seed: int) -> None:
    """Write ``DATE``: ``appointments`` seeded rows and ``events`` committed changes."""
    rng = random.Random(seed)
    start = datetime(2099, 6, 1, 7, 0, tzinfo=UTC)
    rows = {
        n: Row(f"{DATE}-{n:05d}", DATE, f"Patient {n:05d}", "Scheduled", None, 1, iso_ms(start))
        for n in range(1, appointments + 1)
    }
    d = store.dialect
    conn = store.connect()
    cur = conn.cursor()
    try:
        cur.execute(d.begin_write)
        cur.execute(d.delete_events_of_date, (DATE,))
        cur.execute("DELETE FROM appointments WHERE date = ?", (DATE,))
        cur.execute("DELETE FROM channels WHERE date = ?", (DATE,))
        batch = []
        for seq in range(1, events + 1):
            number = rng.randint(1, appointments)
            before = rows[number]
            stamp = iso_ms(start + timedelta(milliseconds=300 * seq))
            after = Row(
                before.appointment_id,
                DATE,
                before.patient,
                NEXT[before.state],
                stamp,
                before.version + 1,
                stamp,
            )
            rows[number] = after
            batch.append(
                (
                    DATE,
                    seq,
                    message_id(DATE, EPOCH, seq),
                    after.appointment_id,
                    f"bench-{seq}",
                    payload_of(after),
                    stamp,
                    f"user-{number % 7}",
                    before.state,
                    before.state_time,
                    before.updated_at,
                )
            )
        cur.executemany(d.insert_event, batch)
        cur.executemany(
            "INSERT INTO appointments (appointment_id, date, patient, state, state_time, "
            "version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.appointment_id,
                    r.date,
                    r.patient,
                    r.state,
                    r.state_time,
                    r.version,
                    r.updated_at,
                )
                for r in rows.values()
            ],
        )
        cur.execute(
            "INSERT INTO channels (date, epoch, head_seq, min_seq) VALUES (?, ?, ?, 1)",
            (DATE, EPOCH, events),
        )
        cur.execute(d.commit)
        if d.name == "postgresql":
            # What autovacuum does soon after a day's inserts: the rows the DELETE above left
            # dead are reclaimed (repeated runs would otherwise slow down), and without
            # statistics the planner sorts the whole day for every page instead of walking
            # the key. The store's connections are in autocommit, as VACUUM needs.
            for table in ("events", "appointments", "channels"):
                cur.execute(f"VACUUM ANALYZE {table}")
    finally:
        cur.close()
        conn.close()


def bare(store: SqlStore) -> int:
    conn = store.connect()
    cur = conn.cursor()
    try:
        cur.execute(store.dialect.begin_read)
        cur.execute(
            "SELECT seq, event_id, appointment_id, request_id, payload, committed_at, actor, "
            "from_state, from_state_time, from_updated_at FROM events WHERE date = ? ORDER BY seq",
            (DATE,),
        )
        count = len(cur.fetchall())
        cur.execute(store.dialect.commit)
        return count
    finally:
        cur.close()
        conn.close()


def events(store: SqlStore, fmt: str, readers: int | None = None) -> int:
    reader = LogReader(store, DATE, readers=readers)
    with open(os.devnull, "w", encoding="utf-8") as sink:
        for block in log_blocks(reader.pages(reader.first()), fmt):
            sink.write(block)
    return reader.count


class _CellReader(LogReader):
    """Before: each page read as ten cells per entry (``log_page``), the lines built in
    Python from the entries and their payloads, the next page read only after this one
    is rendered."""

    def first(self) -> list[LogLine]:
        return self._cells(self.since, self.page)

    def pages(self, first: list[LogLine]) -> Iterator[list[LogLine]]:
        page, size = first, self.page
        while page:
            yield page
            if len(page) < size:
                return
            size = min(size * 2, self.max_page)
            page = self._cells(page[-1].seq, size)

    def _cells(self, after: int, size: int) -> list[LogLine]:
        found = self.store.log_page(self.date, after, size, self.appointment_id)
        self.channel = found.channel
        self.count += len(found.entries)
        return list(map(LogLine.of, found.entries))


def events_before(store: SqlStore, fmt: str) -> int:
    reader = _CellReader(store, DATE)
    with open(os.devnull, "w", encoding="utf-8") as sink:
        for block in log_blocks(reader.pages(reader.first()), fmt):
            sink.write(block)
    return reader.count


def bare_lines(store: SqlStore) -> int:
    """The statement of the new path alone, one page of the whole day, values unread."""
    sql = store.dialect.select_log_lines
    assert sql is not None
    conn = store.connect()
    cur = conn.cursor()
    try:
        cur.execute(store.dialect.begin_read)
        cur.execute(sql, (DATE, 0, 10**9))
        count = len(cur.fetchall())
        cur.execute(store.dialect.commit)
        return count
    finally:
        cur.close()
        conn.close()


def board_at(store: SqlStore, moment: str) -> int:
    """``synccli board DATE --at``: the database picks the entries that decide the board."""
    day = store.board_log(DATE, moment=parse_moment(moment, DATE))
    board = rebuild(day, seq_at(day, parse_moment(moment, DATE)))
    tabulate(board_table(board), headers=BOARD_COLUMNS)
    return len(day.entries)


def board_at_whole_day(store: SqlStore, moment: str) -> int:
    """Before: every entry of the day read, the board folded in Python."""
    day = store.day_log(DATE)
    board = rebuild(day, seq_at(day, parse_moment(moment, DATE)))
    tabulate(board_table(board), headers=BOARD_COLUMNS)
    return len(day.entries)


def command(url: str, *args: str) -> int:
    """The whole ``synccli`` process a user runs (start-up included), output discarded."""
    subprocess.run(
        [sys.executable, "-m", "synccli", *args, "--db", url],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return 0


def best(run: Callable[[], int], rounds: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        count = run()
        times.append(time.perf_counter() - started)
    return min(times), count


@click.command()
@click.option("--db", "db_url", default=None, help="Scratch database (default: a temp SQLite).")
@click.option("--events", "count", default=100_000, show_default=True)
@click.option("--appointments", default=1_000, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--seed", default=1, show_default=True)
def main(db_url: str | None, count: int, appointments: int, rounds: int, seed: int) -> None:
    """Time the log tools against a bare SELECT of the same rows."""
    folder = tempfile.TemporaryDirectory()
    store = open_store(db_url or f"sqlite:///{folder.name}/log_tools.db")
    assert isinstance(store, SqlStore)
    try:
        store.init_schema()
        started = time.perf_counter()
        build_day(store, appointments, count, seed)
        click.echo(f"built {count:,} events in {time.perf_counter() - started:.1f} s ({store.url})")
        middle = iso_ms(
            datetime(2099, 6, 1, 7, 0, tzinfo=UTC) + timedelta(milliseconds=150 * count)
        )
        url = store.url
        operations: dict[str, Callable[[], int]] = {
            "bare SELECT": lambda: bare(store),
            "bare SELECT of JSON lines (whole day)": lambda: bare_lines(store),
            "events (table), cells (before)": lambda: events_before(store, "table"),
            "events (table), one reader (before)": lambda: events(store, "table", 1),
            "events (table)": lambda: events(store, "table"),
            "events --format json, cells (before)": lambda: events_before(store, "json"),
            "events --format json, one reader (before)": lambda: events(store, "json", 1),
            "events --format json": lambda: events(store, "json"),
            "events --format csv, cells (before)": lambda: events_before(store, "csv"),
            "events --format csv, one reader (before)": lambda: events(store, "csv", 1),
            "events --format csv": lambda: events(store, "csv"),
            "board --at, whole day (before)": lambda: board_at_whole_day(store, middle),
            "board --at (mid-day)": lambda: board_at(store, middle),
            "$ synccli events DATE": lambda: command(store.url, "events", DATE),
            "$ synccli events DATE -f json": lambda: command(url, "events", DATE, "-f", "json"),
            "$ synccli events DATE -f csv": lambda: command(url, "events", DATE, "-f", "csv"),
            "$ synccli board DATE --at T": lambda: command(url, "board", DATE, "--at", middle),
        }
        results = {name: (float("inf"), 0) for name in operations}
        for _ in range(rounds):
            for name, run in operations.items():
                took, rows = best(run, 1)
                results[name] = (min(results[name][0], took), rows)
        floor = results["bare SELECT"][0]
        table = [
            (name, rows, f"{took:.3f}", f"{took / floor:.1f}", "yes" if took < 1 else "NO")
            for name, (took, rows) in results.items()
        ]
        click.echo(tabulate(table, headers=["operation", "rows", "best s", "x bare", "< 1 s"]))
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            click.echo(f"best of {rounds}; load average {' '.join(loadavg.read().split()[:3])}")
    finally:
        store.close()
        folder.cleanup()


if __name__ == "__main__":
    main()
