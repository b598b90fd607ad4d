"""The hub alone (pure): in-order publication, gaps, epochs, the tail cache."""

from __future__ import annotations

from synccli.domain.channels import Channel
from synccli.domain.values import Event, Row
from synccli.server.hub import Hub

DATE = "2026-11-26"


def event(seq: int, epoch: str = "e1") -> Event:
    row = Row(f"{DATE}-0001", DATE, "P", "Present", None, seq, "2026-11-26T00:00:00.000Z")
    return Event(DATE, epoch, seq, row, None, "2026-11-26T00:00:00.000Z")


class Recorder:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.resyncs: list[str] = []
        self.position: int | None = None

    def deliver(self, event: Event, frame: bytes) -> None:
        assert frame == event.wire_json(False).encode()
        self.seqs.append(event.seq)

    def resync(self, date: str, reason: str) -> None:
        self.resyncs.append(reason)

    def needs(self, date: str) -> int | None:
        return self.position


def hub_with(sub: Recorder, head: int = 0) -> Hub:
    hub = Hub(tail_size=4)
    hub.sync(Channel(DATE, "e1", head, 1))
    hub.subscribe(DATE, sub)
    return hub


def test_out_of_order_commits_are_published_in_order() -> None:
    sub = Recorder()
    hub = hub_with(sub)
    assert hub.publish(event(1)) is False
    assert hub.publish(event(3)) is True  # gap: 2 is missing, ask the relay
    assert sub.seqs == [1]
    assert hub.publish(event(2)) is False
    assert sub.seqs == [1, 2, 3]
    assert hub.publish(event(2)) is False  # a duplicate is ignored
    assert sub.seqs == [1, 2, 3]


def test_events_of_another_epoch_are_never_published() -> None:
    sub = Recorder()
    hub = hub_with(sub)
    hub.publish(event(1, epoch="other"))
    assert sub.seqs == []


def test_epoch_change_tells_subscribers_and_forgets_them() -> None:
    sub = Recorder()
    hub = hub_with(sub, head=5)
    assert hub.sync(Channel(DATE, "e2", 0, 1)) is False
    assert sub.resyncs == ["epoch_changed"]
    hub.publish(event(1, epoch="e2"))
    assert sub.seqs == []


def test_sync_reports_a_head_behind_the_database() -> None:
    hub = hub_with(Recorder(), head=2)
    assert hub.sync(Channel(DATE, "e1", 5, 1)) is True
    assert hub.sync(Channel(DATE, "e1", 2, 1)) is False


def test_tail_cache_answers_only_when_complete() -> None:
    hub = hub_with(Recorder())
    for seq in range(1, 7):
        hub.publish(event(seq))
    # tail_size 4: events 3..6 are cached
    cached = hub.cached(DATE, "e1", 2)
    assert cached is not None and [e.seq for e in cached] == [3, 4, 5, 6]
    assert hub.cached(DATE, "e1", 1) is None  # 2 is no longer cached
    assert hub.cached(DATE, "e1", 6) == []
    assert hub.cached(DATE, "e1", 7) is None  # ahead of the head
    assert hub.cached(DATE, "e2", 4) is None
    hub.sync(Channel(DATE, "e1", 6, 5))  # events before 5 were pruned
    assert hub.cached(DATE, "e1", 3) is None
    cached = hub.cached(DATE, "e1", 4)
    assert cached is not None and [e.seq for e in cached] == [5, 6]


def test_holds_keep_the_lowest_connected_position_within_the_replay_window() -> None:
    slow, quick, idle = Recorder(), Recorder(), Recorder()
    hub = hub_with(slow, head=100)
    hub.subscribe(DATE, quick)
    hub.subscribe(DATE, idle)  # subscribed, position unknown yet: holds nothing
    slow.position, quick.position = 60, 95
    assert hub.holds(max_replay=1000) == {DATE: 60}
    # A client further behind than the replay window gets a snapshot anyway: the bound.
    assert hub.holds(max_replay=10) == {DATE: 90}
    slow.position = quick.position = None
    assert hub.holds(max_replay=1000) == {}
    hub.unsubscribe(DATE, slow)
    quick.position = 100
    assert hub.holds(max_replay=1000) == {DATE: 100}
