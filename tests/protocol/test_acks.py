"""AckTracker: per-message and cumulative acks, re-sends, exhaustion (no clock, no I/O)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synccli.domain.values import Event, Row
from synccli.protocol.acks import AckTracker

DATE = "2026-11-26"


def event(seq: int, date: str = DATE, epoch: str = "e1") -> Event:
    row = Row(f"{date}-0001", date, "P", "Present", None, seq, "2026-11-26T00:00:00.000Z")
    return Event(date, epoch, seq, row, f"r{seq}", "2026-11-26T00:00:00.000Z")


def test_message_ack_removes_only_that_event() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    for seq in (1, 2, 3):
        tracker.track(event(seq), now=0.0)
    tracker.ack_message(event(2).message_id)
    assert len(tracker) == 2
    assert [e.seq for e in tracker.due(1.0)] == [1, 3]
    assert tracker.counters.acked == 1


def test_cumulative_ack_pops_everything_up_to_n() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    for seq in range(1, 11):
        tracker.track(event(seq), now=0.0)
    tracker.ack_upto(DATE, 7)
    assert len(tracker) == 3
    assert [e.seq for e in tracker.due(1.0)] == [8, 9, 10]


def test_cumulative_ack_with_another_epoch_is_ignored() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    tracker.track(event(1), now=0.0)
    tracker.ack_upto(DATE, 5, epoch="other")
    assert len(tracker) == 1
    tracker.ack_upto(DATE, 5, epoch="e1")
    assert len(tracker) == 0


def test_unknown_ids_and_dates_are_ignored() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    tracker.track(event(1), now=0.0)
    tracker.ack_message("nope")
    tracker.ack_upto("2026-01-01", 10)
    assert len(tracker) == 1 and tracker.counters.acked == 0


def test_resend_then_exhaustion_after_max_retries() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=2)
    tracker.track(event(1), now=0.0)
    assert tracker.due(0.5) == []
    assert tracker.next_deadline() == 1.0
    assert [e.seq for e in tracker.due(1.0)] == [1]  # retry 1
    assert tracker.next_deadline() == 2.0
    assert not tracker.exhausted(1.5)
    assert [e.seq for e in tracker.due(2.0)] == [1]  # retry 2
    assert not tracker.exhausted(2.9)
    assert tracker.exhausted(3.0)
    assert tracker.due(3.0) == []
    assert tracker.counters.retries == 2
    assert tracker.counters.timeouts == 3


def test_zero_retries_exhausts_at_first_deadline() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=0)
    tracker.track(event(1), now=0.0)
    assert tracker.due(1.0) == []
    assert tracker.exhausted(1.0)


def test_ack_after_resend_stops_everything() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=1)
    tracker.track(event(1), now=0.0)
    tracker.due(1.0)
    tracker.ack_upto(DATE, 1)
    assert tracker.next_deadline() is None
    assert not tracker.exhausted(100.0)
    assert tracker.due(100.0) == []


def test_drop_date_forgets_only_that_date() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=0)
    tracker.track(event(1), now=0.0)
    tracker.track(event(1, date="2026-11-27"), now=0.0)
    tracker.drop_date(DATE)
    assert len(tracker) == 1
    assert tracker.exhausted(1.0)  # the other date's event still counts


def test_retrack_restarts_deadline_but_keeps_retry_budget() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=1)
    tracker.track(event(1), now=0.0)
    tracker.due(1.0)  # retry 1 of 1
    tracker.track(event(1), now=1.5)  # replayed again
    assert tracker.next_deadline() == 2.5
    assert not tracker.exhausted(2.4)
    assert tracker.exhausted(2.5)


def test_live_counts_only_pending_events_first_sent_live() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    for seq in (1, 2, 3):
        tracker.track(event(seq), now=0.0, live=True)
    tracker.track(event(4), now=0.0)  # replayed
    tracker.track(event(2), now=0.5)  # sent again in a replay: still live
    tracker.track(event(1, date="2026-11-27"), now=0.5, live=True)
    assert (len(tracker), tracker.live) == (5, 4)
    tracker.ack_message(event(1).message_id)
    assert tracker.live == 3
    tracker.ack_upto(DATE, 4)
    assert (len(tracker), tracker.live) == (1, 1)
    tracker.track(event(1, date="2026-11-27", epoch="e2"), now=1.0)  # another epoch's seq 1
    assert (len(tracker), tracker.live) == (1, 0)
    tracker.track(event(5), now=1.0, live=True)
    tracker.drop_date(DATE)
    assert tracker.live == 0


def test_out_of_order_tracking_still_acks_cumulatively() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    for seq in (5, 6, 2, 3):
        tracker.track(event(seq), now=0.0)
    tracker.ack_upto(DATE, 3)
    assert sorted(e.seq for e in tracker.due(1.0)) == [5, 6]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("track"), st.integers(1, 30)),
        st.tuples(st.just("ack"), st.integers(1, 30)),
        st.tuples(st.just("upto"), st.integers(0, 30)),
        st.tuples(st.just("tick"), st.floats(0.0, 3.0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_model_pending_set_matches_a_plain_set(steps: list[tuple[str, float]]) -> None:
    """Against a naive model: which events are pending, and nothing is ever silently dropped."""
    tracker = AckTracker(ack_timeout=1.0, max_retries=2)
    pending: set[int] = set()
    now = 0.0
    for op, arg in steps:
        if op == "track":
            tracker.track(event(int(arg)), now)
            pending.add(int(arg))
        elif op == "ack":
            tracker.ack_message(event(int(arg)).message_id)
            pending.discard(int(arg))
        elif op == "upto":
            tracker.ack_upto(DATE, int(arg))
            pending = {seq for seq in pending if seq > arg}
        else:
            now += arg
            resent = tracker.due(now)
            assert {e.seq for e in resent} <= pending
            assert len(resent) == len({e.seq for e in resent})
        assert len(tracker) == len(pending)
        deadline = tracker.next_deadline()
        assert (deadline is None) == (not pending) or tracker.exhausted(now)
        if deadline is not None:
            assert deadline > now or tracker.exhausted(now) or tracker.due(now) == []


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 5), st.integers(1, 20))
def test_unacked_event_is_resent_exactly_max_retries_times(max_retries: int, count: int) -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=max_retries)
    for seq in range(1, count + 1):
        tracker.track(event(seq), now=0.0)
    resends = 0
    now = 0.0
    for _ in range(max_retries + 5):
        now += 1.0
        resends += len(tracker.due(now))
    assert resends == max_retries * count
    assert tracker.exhausted(now)


def test_message_ack_needs_the_right_epoch_and_a_well_formed_id() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    tracker.track(event(4), now=0.0)
    for bad in (f"{DATE}:other:4", f"{DATE}:e1:x", "garbage", f"{DATE}:e1:5"):
        tracker.ack_message(bad)
    assert len(tracker) == 1
    tracker.ack_message(f"{DATE}:e1:4")
    assert len(tracker) == 0


def test_same_seq_of_a_new_epoch_replaces_the_old_one() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=0)
    tracker.track(event(1, epoch="old"), now=0.0)
    tracker.track(event(1, epoch="new"), now=0.5)
    assert len(tracker) == 1
    assert not tracker.exhausted(1.0)  # the old one no longer counts
    assert tracker.exhausted(1.5)


def test_acked_events_are_released_at_once_not_at_their_deadline() -> None:
    """Cumulative acks keep memory flat: nothing of an acked event waits for its deadline."""
    tracker = AckTracker(ack_timeout=5.0, max_retries=3)
    for seq in range(1, 10_001):
        tracker.track(event(seq), now=seq * 0.001)
        if seq % 8 == 0:
            tracker.ack_upto(DATE, seq)
            assert len(tracker._deadlines) == 0
    assert len(tracker) == 0


def test_a_re_armed_event_does_not_hold_back_earlier_deadlines() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    tracker.track(event(1), now=0.0)
    tracker.track(event(2), now=0.5)
    tracker.track(event(1), now=0.8)  # re-sent: its deadline moves behind event 2's
    assert tracker.next_deadline() == 1.5
    assert [e.seq for e in tracker.due(1.5)] == [2]
    assert [e.seq for e in tracker.due(1.8)] == [1]


dates = st.sampled_from([DATE, "2026-11-27"])
epochs = st.sampled_from(["e1", "e2"])
model_ops = st.lists(
    st.one_of(
        st.tuples(st.just("track"), dates, st.integers(1, 6), epochs),
        st.tuples(st.just("next"), dates, st.just(0), epochs),
        st.tuples(st.just("ack"), dates, st.integers(1, 6), epochs),
        st.tuples(st.just("upto"), dates, st.integers(0, 6), st.none() | epochs),
        st.tuples(st.just("tick"), dates, st.sampled_from([0, 1, 2, 3]), st.none()),
        st.tuples(st.just("drop"), dates, st.just(0), st.none()),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(model_ops)
def test_model_retries_deadlines_and_epochs_match_a_plain_dict(
    steps: list[tuple[str, str, int, str | None]],
) -> None:
    """Against a naive model keyed by (date, seq): pending set, epochs, retry counts, deadlines,
    counters and exhaustion, over two dates and two epochs (both the in-order and the record
    paths of the tracker)."""
    timeout, max_retries = 1.0, 1
    tracker = AckTracker(ack_timeout=timeout, max_retries=max_retries)
    model: dict[tuple[str, int], tuple[str, float, int]] = {}  # epoch, deadline, retries
    acked = retries = timeouts = 0
    exhausted = False
    now = 0.0
    for op, date, seq, epoch in steps:
        if op == "next":
            seq = max((s for d, s in model if d == date), default=0) + 1
        if op in ("track", "next"):
            assert epoch is not None
            tracker.track(event(seq, date, epoch), now)
            old = model.get((date, seq))
            kept = old[2] if old is not None and old[0] == epoch else 0
            model[date, seq] = (epoch, now + timeout, kept)
        elif op == "ack":
            tracker.ack_message(f"{date}:{epoch}:{seq}")
            if (date, seq) in model and model[date, seq][0] == epoch:
                del model[date, seq]
                acked += 1
        elif op == "upto":
            tracker.ack_upto(date, seq, epoch)
            mine = sorted(s for d, s in model if d == date)
            if mine and (epoch is None or model[date, mine[0]][0] == epoch):
                for s in mine:
                    if s <= seq:
                        del model[date, s]
                        acked += 1
        elif op == "drop":
            tracker.drop_date(date)
            model = {k: v for k, v in model.items() if k[0] != date}
        else:
            now += seq * 0.5
            expected = []
            for key, (ep, deadline, tries) in model.items():
                if deadline <= now:
                    timeouts += 1
                    if tries >= max_retries:
                        exhausted = True
                        model[key] = (ep, float("inf"), tries)
                    else:
                        retries += 1
                        model[key] = (ep, now + timeout, tries + 1)
                        expected.append(key)
            resent = tracker.due(now)
            assert sorted((e.date, e.seq) for e in resent) == sorted(expected)
            assert all(model[e.date, e.seq][0] == e.epoch for e in resent)
        assert len(tracker) == len(model)
        assert tracker.exhausted(now) == exhausted
        counters = tracker.counters
        assert (counters.acked, counters.retries, counters.timeouts) == (acked, retries, timeouts)
        finite = [d for _, d, _ in model.values() if d != float("inf")]
        assert tracker.next_deadline() == min(finite, default=None)


def test_an_event_of_another_epoch_does_not_join_the_in_order_range() -> None:
    tracker = AckTracker(ack_timeout=1.0, max_retries=3)
    tracker.track(event(1, epoch="e1"), now=0.0)
    tracker.track(event(2, epoch="e2"), now=0.0)
    tracker.ack_message(event(1, epoch="e1").message_id)
    tracker.ack_upto(DATE, 2, epoch="e1")  # the lowest pending event is of e2: ignored
    assert len(tracker) == 1
    tracker.ack_upto(DATE, 2, epoch="e2")
    assert len(tracker) == 0
