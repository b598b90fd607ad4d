"""The contract every ``Store`` backend must pass.

A backend's test module subclasses ``StoreContract`` and provides two fixtures: ``store`` (an
initialised, empty store) and ``raw`` (runs one SQL statement on a separate connection of the
same database and returns all rows), used to look behind the interface: counts of event and
request rows, so "a rejected write writes nothing" is checked on the tables themselves.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from synccli.domain.channels import WriteRequest
from synccli.domain.states import allowed_targets
from synccli.errors import DatabaseUnavailable, WriteRejected
from synccli.store.base import Store

Raw = Callable[[str], list[tuple[Any, ...]]]

DATE = "2026-11-26"
NOW = datetime(2026, 11, 26, 10, 15, 30, 123000, tzinfo=UTC)
OTHER = "2026-11-27"


def appt(number: int, date: str = DATE) -> str:
    return f"{date}-{number:04d}"


def update(request_id: str, number: int, state: str, expected: int | None = None) -> WriteRequest:
    return WriteRequest(request_id, appt(number), state, expected)


def footprint(store: Store, raw: Raw) -> tuple[object, ...]:
    """Everything a write could change: table counts, the channel, every row of DATE."""
    events = raw("SELECT COUNT(*) FROM events")[0][0]
    requests = raw("SELECT COUNT(*) FROM requests")[0][0]
    channel, rows = store.snapshot(DATE)
    return int(events), int(requests), channel, rows


class StoreContract:
    """Behaviour every backend shares; see the module docstring for the fixtures."""

    def test_init_schema_is_idempotent_and_keeps_data(self, store: Store) -> None:
        store.seed(DATE, 2)
        store.write(update("r1", 1, "Present"), NOW)
        store.init_schema()
        assert store.channel(DATE).head_seq == 1
        assert [r.state for r in store.snapshot(DATE)[1]] == ["Present", "Scheduled"]

    def test_seed_creates_missing_rows_only(self, store: Store) -> None:
        assert store.seed(DATE, 3) == 3
        assert store.seed(DATE, 5) == 2
        channel, rows = store.snapshot(DATE)
        assert [r.appointment_id for r in rows] == [appt(n) for n in range(1, 6)]
        assert {(r.state, r.version, r.state_time) for r in rows} == {("Scheduled", 1, None)}
        assert channel.head_seq == 0, "seeding writes rows, not events"

    def test_writes_are_gap_free_and_change_row_and_log_together(
        self, store: Store, raw: Raw
    ) -> None:
        store.seed(DATE, 2)
        outcomes = [
            store.write(update("r1", 1, "Present"), NOW),
            store.write(update("r2", 2, "Present"), NOW),
            store.write(update("r3", 1, "Seated", expected=2), NOW + timedelta(seconds=1)),
        ]
        assert [o.seq for o in outcomes] == [1, 2, 3]
        assert all(o.event is not None and not o.replayed for o in outcomes)
        final = outcomes[2]
        assert (final.row.state, final.row.version) == ("Seated", 3)
        assert final.row.state_time == final.row.updated_at == "2026-11-26T10:15:31.123Z"
        events = store.events_since(DATE, 0, 100)
        assert [e.seq for e in events] == [1, 2, 3]
        assert [e.action_id for e in events] == ["r1", "r2", "r3"]
        assert events == [o.event for o in outcomes]
        channel = store.channel(DATE)
        assert {e.epoch for e in events} == {channel.epoch}
        assert events[0].message_id == f"{DATE}:{channel.epoch}:1"
        assert (channel.head_seq, channel.min_seq) == (3, 1)
        rows = store.snapshot(DATE)[1]
        assert rows[0] == final.row
        assert int(raw("SELECT COUNT(*) FROM requests")[0][0]) == 3

    @pytest.mark.parametrize(
        ("request_", "code"),
        [
            (WriteRequest("x1", "nope", "Present"), "not_found"),
            (update("x2", 1, "Lunch"), "invalid_state"),
            (update("x3", 1, "Scheduled"), "invalid_transition"),
            (update("x4", 1, "Dismissed"), "invalid_transition"),
            (update("x5", 1, "Present", expected=7), "conflict"),
            (update("r1", 2, "Present"), "request_id_reused"),
            (update("r1", 1, "Present", expected=1), "request_id_reused"),
        ],
    )
    def test_every_rejection_writes_nothing(
        self, store: Store, raw: Raw, request_: WriteRequest, code: str
    ) -> None:
        store.seed(DATE, 2)
        store.write(update("r1", 1, "Present"), NOW)
        store.write(update("r0", 1, "Scheduled"), NOW)
        before = footprint(store, raw)
        with pytest.raises(WriteRejected) as caught:
            store.write(request_, NOW + timedelta(seconds=5))
        assert caught.value.code == code
        assert footprint(store, raw) == before

    def test_replay_returns_stored_outcome_and_logs_one_event(self, store: Store, raw: Raw) -> None:
        store.seed(DATE, 1)
        first = store.write(update("r1", 1, "Present"), NOW)
        again = store.write(update("r1", 1, "Present"), NOW + timedelta(seconds=9))
        assert again.replayed and again.event is None
        assert (again.request_id, again.row, again.seq) == (first.request_id, first.row, first.seq)
        assert int(raw("SELECT COUNT(*) FROM events")[0][0]) == 1
        assert store.channel(DATE).head_seq == 1

    def test_events_since_is_ordered_and_limited(self, store: Store) -> None:
        store.seed(DATE, 1)
        for n, state in enumerate(["Present", "Seated", "Dismissed", "Seated", "Present"]):
            store.write(update(f"r{n}", 1, state), NOW)
        assert [e.seq for e in store.events_since(DATE, 0, 2)] == [1, 2]
        assert [e.seq for e in store.events_since(DATE, 2, 100)] == [3, 4, 5]
        assert [e.row.state for e in store.events_since(DATE, 3, 100)] == ["Seated", "Present"]
        assert store.events_since(DATE, 5, 100) == []
        assert store.events_since(DATE, 0, 0) == []

    def test_snapshot_matches_the_log(self, store: Store) -> None:
        store.seed(DATE, 3)
        store.write(update("r1", 1, "Present"), NOW)
        store.write(update("r2", 3, "Cancelled"), NOW)
        channel, rows = store.snapshot(DATE)
        events = store.events_since(DATE, 0, 100)
        assert channel.head_seq == len(events) == 2
        latest = {e.row.appointment_id: e.row for e in events}
        assert {r.appointment_id: r for r in rows if r.appointment_id in latest} == latest

    def test_prune_keeps_head_and_epoch_and_sets_min_seq(self, store: Store) -> None:
        store.seed(DATE, 1)
        for n, state in enumerate(["Present", "Seated", "Dismissed"]):
            store.write(update(f"r{n}", 1, state), NOW + timedelta(minutes=n))
        epoch = store.channel(DATE).epoch
        assert store.prune(NOW + timedelta(minutes=1)) == 1
        channel = store.channel(DATE)
        assert (channel.epoch, channel.head_seq, channel.min_seq) == (epoch, 3, 2)
        assert [e.seq for e in store.events_since(DATE, 0, 100)] == [2, 3]
        assert store.prune(NOW + timedelta(hours=1)) == 2
        channel = store.channel(DATE)
        assert (channel.epoch, channel.head_seq, channel.min_seq) == (epoch, 3, 4)
        assert store.write(update("r9", 1, "Seated"), NOW).seq == 4

    def test_prune_spares_what_a_hold_keeps(self, store: Store) -> None:
        store.seed(DATE, 1)
        store.seed(OTHER, 1)
        for n, state in enumerate(["Present", "Seated", "Dismissed"]):
            store.write(update(f"r{n}", 1, state), NOW)
            store.write(WriteRequest(f"o{n}", appt(1, OTHER), state, None), NOW)
        later = NOW + timedelta(hours=1)
        assert store.prune(later, {DATE: 1}) == 1 + 3  # DATE keeps 2..3, OTHER keeps nothing
        assert [e.seq for e in store.events_since(DATE, 0, 100)] == [2, 3]
        assert (store.channel(DATE).min_seq, store.channel(OTHER).min_seq) == (2, 4)
        assert store.prune(later, {DATE: 3}) == 2
        assert store.channel(DATE).min_seq == 4

    def test_reset_channel_starts_a_new_epoch(self, store: Store) -> None:
        store.seed(DATE, 1)
        store.write(update("r1", 1, "Present"), NOW)
        old = store.channel(DATE)
        new = store.reset_channel(DATE)
        assert new.epoch != old.epoch
        assert (new.head_seq, new.min_seq) == (0, 1)
        assert store.events_since(DATE, 0, 100) == []
        outcome = store.write(update("r2", 1, "Seated"), NOW)
        assert outcome.seq == 1 and outcome.event is not None
        assert outcome.event.epoch == new.epoch

    @pytest.mark.parametrize("stage", ["verify", "commit"])
    def test_failing_hook_rolls_back_everything(self, store: Store, raw: Raw, stage: str) -> None:
        store.seed(DATE, 2)
        store.write(update("r1", 2, "Present"), NOW)
        before = footprint(store, raw)
        stages: list[str] = []

        def hook(at: str) -> None:
            stages.append(at)
            if at == stage:
                raise DatabaseUnavailable(f"injected failure at {at}")

        store.hook = hook
        with pytest.raises(DatabaseUnavailable, match=f"injected failure at {stage}"):
            store.write(update("r2", 1, "Present"), NOW)
        assert stages[-1] == stage
        assert footprint(store, raw) == before
        store.hook = None
        assert store.write(update("r2", 1, "Present"), NOW).seq == 2

    def test_unknown_date_reads_as_an_empty_channel_and_writes_nothing(
        self, store: Store, raw: Raw
    ) -> None:
        channel, rows = store.snapshot("2031-01-02")
        assert (channel.head_seq, channel.min_seq, rows) == (0, 1, [])
        assert store.events_since("2031-01-02", 0, 10) == []
        assert store.channel("2031-01-02") == channel
        assert "2031-01-02" not in store.heads()
        assert raw("SELECT COUNT(*) FROM channels")[0][0] == 0

    def test_the_first_write_creates_the_channel(self, store: Store, raw: Raw) -> None:
        store.seed(DATE, 1)  # seeding is a write: it creates the channel
        unborn = store.channel("2031-01-02")
        store.write(update("r1", 1, "Present"), NOW)
        channel = store.channel(DATE)
        assert channel.head_seq == 1 and channel.epoch != unborn.epoch
        assert [r[0] for r in raw("SELECT date FROM channels")] == [DATE]

    def test_heads_of_reads_only_the_dates_asked_for(self, store: Store) -> None:
        dates = [f"2026-{month:02d}-{day:02d}" for month in (1, 2) for day in range(1, 21)]
        for date in dates[::2]:
            store.reset_channel(date)
        store.reset_channel("2027-01-01")
        heads = store.heads_of([*dates, "2030-01-01"])  # more than one statement's worth
        assert sorted(heads) == dates[::2]
        assert all(heads[d] == store.channel(d) for d in dates[::2])
        assert store.heads_of([]) == {}

    def test_prune_channels_removes_only_empty_channels(self, store: Store) -> None:
        store.seed(DATE, 2)  # appointments: kept
        store.seed("2026-11-27", 1)
        store.write(WriteRequest("r1", appt(1, "2026-11-27"), "Present"), NOW)  # events: kept
        for date in ("2026-01-01", "2026-01-02", "2026-01-03"):
            store.reset_channel(date)  # empty rows, as reads of older versions left them
        assert store.prune_channels() == 3
        assert sorted(store.heads()) == [DATE, "2026-11-27"]
        assert store.prune_channels() == 0
        store.write(update("r2", 1, "Present"), NOW)  # the write path is unaffected
        assert store.channel(DATE).head_seq == 1

    def test_status_counts_events_and_appointments(self, store: Store) -> None:
        store.seed(DATE, 3)
        store.write(update("r1", 1, "Present"), NOW)
        (status,) = [s for s in store.status() if s.channel.date == DATE]
        assert (status.events, status.appointments, status.channel.head_seq) == (1, 3, 1)

    def test_close_is_idempotent_and_final(self, store: Store) -> None:
        store.channel(DATE)
        store.close()
        store.close()
        with pytest.raises(DatabaseUnavailable, match="closed"):
            store.channel(DATE)

    def test_concurrent_writers_are_gap_free_without_lost_updates(self, store: Store) -> None:
        appointments, threads, writes = 4, 4, 15
        store.seed(DATE, appointments)
        succeeded: list[int] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def writer(index: int) -> None:
            rng = random.Random(index)
            try:
                for n in range(writes):
                    number = rng.randint(1, appointments)
                    rows = {r.appointment_id: r for r in store.snapshot(DATE)[1]}
                    row = rows[appt(number)]
                    target = rng.choice(allowed_targets(row.state))
                    request = update(f"t{index}-{n}", number, target, expected=row.version)
                    try:
                        outcome = store.write(request, NOW)
                    except WriteRejected as exc:
                        assert exc.code in ("conflict", "invalid_transition")
                        continue
                    with lock:
                        succeeded.append(outcome.seq)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        pool = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in pool)
        assert failures == []
        assert sorted(succeeded) == list(range(1, len(succeeded) + 1))
        events = store.events_since(DATE, 0, 10_000)
        assert [e.seq for e in events] == sorted(succeeded)
        rows = store.snapshot(DATE)[1]
        for row in rows:
            mine = [e.row for e in events if e.row.appointment_id == row.appointment_id]
            # No lost update: every committed change is one version step, in log order.
            assert [r.version for r in mine] == list(range(2, row.version + 1))
            assert (mine[-1] if mine else row) == row
