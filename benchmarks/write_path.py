"""The write path against its floor: transactional check-ins through ``Store.write`` versus a
bare ``UPDATE …; COMMIT`` on the same database, same kind of connection, same run.

    python benchmarks/write_path.py --db sqlite:///bench.db --writers 1,4 --count 2000
    python benchmarks/write_path.py --db 'postgresql+pyodbc://postgres@127.0.0.1/bench?driver=PostgreSQL+Unicode'

Each writer thread owns its own appointments and moves them Scheduled ⇄ Present, so writers
never conflict and every write is valid. The database gets a schema and rows for far-future
dates (``2099-…``): point it at a scratch database. For SQLite, ``--synchronous FULL,NORMAL``
measures both durability settings. The budget (DESIGN.md) is a ratio of at most 2.
``--actor NAME`` adds the path a per-user token takes (``Store.write`` recording the actor
with the outcome), alternating with the others in the same rounds.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import click
from tabulate import tabulate

from synccli.clock import utc_now
from synccli.domain.channels import WriteRequest
from synccli.store import open_store
from synccli.store.sql import SqlStore
from synccli.store.sqlite import SqliteStore
from synccli.store.urls import parse_sqlite_url

PER_WRITER = 8  # appointments per writer thread


@dataclass(frozen=True)
class Result:
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    round_trips: float = 0.0  # statements sent to the database per operation


class _CountingCursor:
    """A cursor that counts the statements it executes (each one is a round trip)."""

    def __init__(self, inner: Any, counter: itertools.count[int]) -> None:
        self._inner = inner
        self._counter = counter

    def execute(self, sql: str, *params: Any) -> Any:
        next(self._counter)
        return self._inner.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CountingConnection:
    def __init__(self, inner: Any, counter: itertools.count[int]) -> None:
        self._inner = inner
        self._counter = counter

    def cursor(self) -> _CountingCursor:
        return _CountingCursor(self._inner.cursor(), self._counter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _round_trips(store: SqlStore, op: Callable[[int, int], None], n: int = 50) -> float:
    """Statements per ``op``, counted on connections opened for the purpose (outside the
    timed rounds, so the counting costs them nothing)."""
    counter = itertools.count()
    plain = store._connect  # the engine's connect callable: a benchmark may look inside
    store._connect = lambda: _CountingConnection(plain(), counter)
    try:
        _measure(1, n, op)  # a fresh thread: its connection is a counting one
    finally:
        store._connect = plain
    return next(counter) / n


def _measure(writers: int, per_writer: int, op: Callable[[int, int], None]) -> Result:
    """Run ``op(writer, n)`` ``per_writer`` times on each of ``writers`` threads at once."""
    latencies: list[list[float]] = [[] for _ in range(writers)]
    barrier = threading.Barrier(writers + 1)
    failures: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            for n in range(per_writer):
                start = time.perf_counter()
                op(index, n)
                latencies[index].append(time.perf_counter() - start)
        except BaseException as exc:  # reported below, after every thread stopped
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    flat = sorted(x for per in latencies for x in per)
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))]
    return Result(len(flat) / elapsed, statistics.median(flat) * 1000, p99 * 1000)


@dataclass(frozen=True)
class Paths:
    """The best round of each path: the floor, the write as before (step by step, one
    statement per round trip), the write as it runs now, and with an actor."""

    bare: Result
    #: The bare write with every writer on one row: the floor of writes on one date, which
    #: all take that date's channel row (its head) until they commit. None for one writer.
    shared: Result | None
    before: Result | None
    full: Result
    with_actor: Result | None


@contextlib.contextmanager
def _as_before(store: SqlStore) -> Iterator[None]:
    """The write path as it was: step by step, one statement per round trip."""
    store.one_round_trip = False
    try:
        yield
    finally:
        store.one_round_trip = True


def _bench(
    store: SqlStore, writers: int, count: int, rounds: int, date: str, actor: str | None = None
) -> Paths:
    """The best of ``rounds`` alternating rounds of each path (the machine is shared: the
    best round is the one least disturbed by others)."""
    store.init_schema()
    store.reset_channel(date)
    store.seed(date, writers * PER_WRITER)
    per_writer = max(1, count // writers)
    # Rows left by an earlier run are Scheduled or Present, which the toggle handles.
    states = {r.appointment_id: r.state for r in store.snapshot(date)[1]}

    def appointment(index: int, n: int) -> str:
        return f"{date}-{index * PER_WRITER + n % PER_WRITER + 1:04d}"

    run_id = f"{date}-{time.time_ns()}"

    def store_write(index: int, n: int, who: str | None = None) -> None:
        key = appointment(index, n)
        target = "Present" if states[key] == "Scheduled" else "Scheduled"
        request_id = f"{run_id}-{index}-{n}" + ("" if who is None else "-a")
        store.write(WriteRequest(request_id, key, target, None, who), utc_now())
        states[key] = target

    connections = [store.connect() for _ in range(writers)]
    cursors = [c.cursor() for c in connections]
    dialect = store.dialect

    def bare_update(index: int, key: str) -> None:
        cur = cursors[index]
        cur.execute(dialect.begin_write)
        cur.execute(
            "UPDATE appointments SET version = version + 1, updated_at = ? "
            "WHERE appointment_id = ?",
            ("2099-01-01T00:00:00.000Z", key),
        )
        cur.execute(dialect.commit)

    def bare_write(index: int, n: int) -> None:
        bare_update(index, appointment(index, n))

    def shared_row(index: int, n: int) -> None:
        bare_update(index, appointment(0, 0))  # every writer on writer 0's first row

    bares: list[Result] = []
    shareds: list[Result] = []
    befores: list[Result] = []
    fulls: list[Result] = []
    actors: list[Result] = []
    # The step-by-step write is the comparison wherever the store has a faster path.
    compare = store.dialect.write_once is not None
    try:
        for r in range(rounds):
            bares.append(_measure(writers, per_writer, bare_write))
            if writers > 1:
                shareds.append(_measure(writers, per_writer, shared_row))
            offset = 2 * r * per_writer  # request ids stay unique across rounds and paths

            def shifted(index: int, n: int, offset: int = offset) -> None:
                store_write(index, offset + n)

            def shifted_before(index: int, n: int, offset: int = offset + per_writer) -> None:
                store_write(index, offset + n)

            if compare:
                with _as_before(store):
                    befores.append(_measure(writers, per_writer, shifted_before))
            fulls.append(_measure(writers, per_writer, shifted))
            if actor is not None:

                def as_actor(index: int, n: int, offset: int = offset) -> None:
                    store_write(index, offset + n, actor)

                actors.append(_measure(writers, per_writer, as_actor))
        offset = 2 * rounds * per_writer
        trips = _round_trips(store, lambda index, n: store_write(index, offset + n))
        offset += 100
        with _as_before(store):
            steps = _round_trips(store, lambda index, n: store_write(index, offset + n))
    finally:
        for conn in connections:
            conn.close()
    bare = max(bares, key=lambda x: x.ops_per_s)
    shared = max(shareds, key=lambda x: x.ops_per_s) if shareds else None
    full = max(fulls, key=lambda x: x.ops_per_s)
    before = max(befores, key=lambda x: x.ops_per_s) if befores else None
    with_actor = max(actors, key=lambda x: x.ops_per_s) if actors else None
    if with_actor is not None:
        with_actor = replace(with_actor, round_trips=trips)  # the same statements
    # bare_write sends exactly three statements: BEGIN, UPDATE, COMMIT.
    return Paths(
        replace(bare, round_trips=3.0),
        None if shared is None else replace(shared, round_trips=3.0),
        None if before is None else replace(before, round_trips=steps),
        replace(full, round_trips=trips),
        with_actor,
    )


def _cells(
    result: Result, bare: Result | None = None, shared: Result | None = None
) -> tuple[object, ...]:
    """A table row's measurements, and their cost against ``bare`` (and the one-row bare
    write, ``shared``) when given."""
    costs: tuple[object, ...] = ("", "", "")
    if bare is not None:
        against_shared = "" if shared is None else shared.ops_per_s / result.ops_per_s
        costs = (bare.ops_per_s / result.ops_per_s, result.p50_ms / bare.p50_ms, against_shared)
    return (result.ops_per_s, result.p50_ms, result.p99_ms, result.round_trips, *costs)


@click.command()
@click.option("--db", "db_url", required=True, help="Database URL of a scratch database.")
@click.option("--writers", default="1,4", show_default=True, help="Writer thread counts.")
@click.option("--count", default=1000, show_default=True, help="Writes per path and round.")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds; best is shown.")
@click.option(
    "--synchronous",
    default="FULL",
    show_default=True,
    help="SQLite only: synchronous settings to compare, e.g. FULL,NORMAL.",
)
@click.option("--actor", default=None, help="Also measure writes recorded under this actor.")
def main(
    db_url: str, writers: str, count: int, rounds: int, synchronous: str, actor: str | None
) -> None:
    """Print check-ins per second and latency, store versus bare UPDATE; COMMIT."""
    table: list[tuple[object, ...]] = []
    counts = [int(x) for x in writers.split(",")]
    if not all(1 <= w <= 28 for w in counts):
        raise click.BadParameter("writer counts must be between 1 and 28", param_hint="--writers")
    is_sqlite = db_url.lower().startswith("sqlite:")
    modes = [m.strip().upper() for m in synchronous.split(",")] if is_sqlite else ["-"]
    for m, mode in enumerate(modes, start=1):
        for w in counts:
            store: SqlStore
            if is_sqlite:
                store = SqliteStore(
                    parse_sqlite_url(db_url), "NORMAL" if mode == "NORMAL" else "FULL"
                )
            else:
                opened = open_store(db_url)
                assert isinstance(opened, SqlStore)
                store = opened
            try:
                measured = _bench(store, w, count, rounds, f"2099-{m:02d}-{w:02d}", actor)
            finally:
                store.close()
            bare = measured.bare
            paths = [
                ("Store.write before (steps)", measured.before),
                ("Store.write", measured.full),
                ("Store.write +actor", measured.with_actor),
            ]
            name = store.dialect.name
            table.append((name, mode, w, "bare UPDATE;COMMIT", *_cells(bare)))
            if measured.shared is not None:
                one_row = _cells(measured.shared, bare)
                table.append((name, mode, w, "bare, all on one row", *one_row))
            table += [
                (name, mode, w, path, *_cells(result, bare, measured.shared))
                for path, result in paths
                if result is not None
            ]
    click.echo(
        tabulate(
            table,
            headers=[
                "db",
                "sync",
                "writers",
                "path",
                "ops/s",
                "p50 ms",
                "p99 ms",
                "round trips",
                "cost x bare (ops/s)",
                "p50 x bare",
                "cost x one-row bare",
            ],
            floatfmt=".3f",
        )
    )


if __name__ == "__main__":
    main()
