"""Every rule of ``ChannelState`` (DESIGN.md guarantee 7) and every injected client bug."""

from __future__ import annotations

import pytest

from synccli.domain.values import Position
from synccli.protocol.bugs import IGNORE_RESYNC as BUG_IGNORE_RESYNC
from synccli.protocol.bugs import NO_DEDUPE as BUG_NO_DEDUPE
from synccli.protocol.bugs import NO_REORDER as BUG_NO_REORDER
from synccli.protocol.bugs import ChannelPolicy
from synccli.protocol.channel import (
    OUT_OF_SYNC,
    SYNCED,
    SYNCING,
    ChannelState,
)
from synccli.protocol.messages import (
    Ack,
    MissedEvents,
    RequestMissedEvents,
    ResyncRequired,
    Snapshot,
    Subscribe,
    Subscribed,
)
from tests.client.builders import DATE, EPOCH, applied, as_json, event, kinds, row


def synced(seq: int = 0, bugs: frozenset[str] = frozenset(), **kw: float) -> ChannelState:
    """A channel that subscribed fresh and got a snapshot at ``seq``."""
    policy = ChannelPolicy.for_bugs(bugs)
    channel = ChannelState(DATE, policy=policy, gap_timeout=kw.get("gap_timeout", 2.0))
    assert channel.subscribe() == Subscribe(DATE)
    channel.on_subscribed(Subscribed(DATE, EPOCH, seq, False, snapshot=[row("a1"), row("a2")]), 0)
    return channel


def test_fresh_subscribe_takes_the_snapshot() -> None:
    channel = ChannelState(DATE)
    assert channel.status == SYNCING
    channel.subscribe()
    effects = channel.on_subscribed(Subscribed(DATE, EPOCH, 7, False, snapshot=[row("a1")]), 0)
    assert as_json(effects.records) == [
        {"k": "subscribed", "date": DATE, "epoch": EPOCH, "seq": 7, "recovered": False, "events": 0}
    ]
    assert channel.position == Position(EPOCH, 7)
    assert set(channel.rows) == {"a1"}
    assert channel.status == SYNCED
    assert channel.take_ack() is None


def test_next_event_is_applied_and_acked_cumulatively() -> None:
    channel = synced()
    records = (
        channel.on_event(event(1), False, 0).records + channel.on_event(event(2), False, 0).records
    )
    assert applied(records) == [1, 2]
    assert channel.rows["a1"].version == 3
    assert channel.take_ack() == Ack(date=DATE, seq=2, epoch=EPOCH)
    assert channel.take_ack() is None


def test_duplicate_is_acked_and_ignored() -> None:
    channel = synced()
    channel.on_event(event(1, version=2), False, 0)
    channel.take_ack()
    effects = channel.on_event(event(1, version=2, state="Seated"), False, 0)
    assert kinds(effects.records) == ["dup"]
    assert channel.rows["a1"].state == "Present"
    assert channel.take_ack() == Ack(date=DATE, seq=1, epoch=EPOCH)


def test_gap_buffers_asks_once_and_reasks_only_after_timeout() -> None:
    channel = synced(gap_timeout=2.0)
    first = channel.on_event(event(3), False, 10.0)
    assert kinds(first.records) == ["gap"]
    assert first.records[0].to_json() == {"k": "gap", "date": DATE, "have": 0, "got": 3}
    assert first.send == [RequestMissedEvents(DATE, 0, EPOCH)]
    assert channel.on_event(event(4), False, 10.5).send == []
    assert channel.status == SYNCING
    assert channel.tick(11.9).send == []
    assert channel.tick(12.0).send == [RequestMissedEvents(DATE, 0, EPOCH)]
    assert channel.tick(12.1).send == []
    assert channel.take_ack() is None


def test_missed_events_fill_the_gap_in_order() -> None:
    channel = synced()
    channel.on_event(event(3, "a2"), False, 0)
    effects = channel.on_missed(MissedEvents(DATE, EPOCH, 3, [event(1), event(2)]), 0)
    assert applied(effects.records) == [1, 2, 3]
    assert effects.records[-1].to_json() == {"k": "gap_recovered", "date": DATE, "seq": 3}
    assert channel.status == SYNCED
    assert channel.missed_deadline is None
    assert channel.take_ack() == Ack(date=DATE, seq=3, epoch=EPOCH)


def test_a_late_live_event_fills_the_gap_too() -> None:
    channel = synced()
    channel.on_event(event(2), False, 0)
    effects = channel.on_event(event(1), False, 0)
    assert applied(effects.records) == [1, 2]
    assert [r["replay"] for r in as_json(effects.records) if r["k"] == "apply"] == [False, False]
    assert kinds(effects.records)[-1] == "gap_recovered"


def test_event_of_another_epoch_resubscribes_fresh_and_keeps_later_events() -> None:
    channel = synced(seq=5)
    effects = channel.on_event(event(1, epoch="e2"), False, 0)
    assert as_json(effects.records) == [{"k": "resync", "date": DATE, "reason": "epoch_changed"}]
    assert effects.send == [Subscribe(DATE)]
    assert channel.status == OUT_OF_SYNC
    # Events that arrive before the answer wait for it.
    assert channel.on_event(event(2, epoch="e2"), False, 0).records == []
    assert channel.on_event(event(3, epoch="e2"), False, 0).records == []
    answer = Subscribed(DATE, "e2", 2, False, snapshot=[row("a1", 3)])
    effects = channel.on_subscribed(answer, 0)
    assert applied(effects.records) == [3]
    assert channel.position == Position("e2", 3)
    assert channel.status == SYNCED


def test_recovered_subscribe_applies_the_events_in_order() -> None:
    channel = synced(seq=2)
    channel.on_disconnected()
    assert channel.subscribe() == Subscribe(DATE, Position(EPOCH, 2))
    effects = channel.on_subscribed(
        Subscribed(DATE, EPOCH, 4, True, events=[event(3), event(4)]), 0
    )
    assert kinds(effects.records) == ["subscribed", "apply", "apply"]
    assert applied(effects.records) == [3, 4]
    assert channel.take_ack() == Ack(date=DATE, seq=4, epoch=EPOCH)


def test_recovered_subscribe_short_of_its_head_asks_for_the_rest() -> None:
    channel = synced(seq=2)
    channel.on_disconnected()
    channel.subscribe()
    effects = channel.on_subscribed(Subscribed(DATE, EPOCH, 5, True, events=[event(3)]), 0)
    assert effects.send == [RequestMissedEvents(DATE, 3, EPOCH)]


def test_snapshot_replaces_rows_and_applies_only_newer_buffered_events() -> None:
    channel = synced()
    channel.on_event(event(1), False, 0)
    channel.on_resync(ResyncRequired(DATE, "history_truncated"), 0)
    channel.on_event(event(4, "a9", version=2), False, 0)
    channel.on_event(event(5, "a9", version=3), False, 0)
    effects = channel.on_snapshot(Snapshot(DATE, EPOCH, 4, [row("a9", 2)]), 0)
    assert kinds(effects.records) == ["snapshot", "apply"]
    assert set(channel.rows) == {"a9"}
    assert channel.rows["a9"].version == 3
    assert channel.seq == 5


def test_resync_required_resubscribes_without_since() -> None:
    channel = synced(seq=3)
    effects = channel.on_resync(ResyncRequired(DATE, "too_far_behind"), 0)
    assert effects.send == [Subscribe(DATE)]
    assert as_json(effects.records) == [{"k": "resync", "date": DATE, "reason": "too_far_behind"}]
    assert channel.status == OUT_OF_SYNC


def test_heartbeat_ahead_with_nothing_buffered_requests_missed_events() -> None:
    channel = synced(seq=3)
    assert channel.on_head(Position(EPOCH, 3), 0).send == []
    effects = channel.on_head(Position(EPOCH, 4), 0)
    assert effects.send == [RequestMissedEvents(DATE, 3, EPOCH)]
    assert effects.records[0].to_json()["k"] == "gap"
    assert channel.on_head(Position(EPOCH, 4), 0.1).send == []
    recovered = channel.on_missed(MissedEvents(DATE, EPOCH, 4, [event(4)]), 0.2)
    assert kinds(recovered.records) == ["apply", "gap_recovered"]


def test_heartbeat_of_another_epoch_resyncs() -> None:
    channel = synced(seq=3)
    assert channel.on_head(Position("e2", 1), 0).send == [Subscribe(DATE)]


def test_missed_events_of_another_epoch_resync() -> None:
    channel = synced()
    channel.on_event(event(2), False, 0)
    effects = channel.on_missed(MissedEvents(DATE, "e2", 9, []), 0)
    assert effects.send == [Subscribe(DATE)]


def test_disconnect_keeps_rows_and_position() -> None:
    channel = synced()
    channel.on_event(event(1), False, 0)
    channel.on_event(event(3), False, 0)
    channel.on_disconnected()
    assert channel.buffer == {}
    assert channel.missed_deadline is None
    assert channel.subscribe() == Subscribe(DATE, Position(EPOCH, 1))
    assert channel.rows["a1"].version == 2


def test_optimistic_write_shows_until_confirmed_event_or_rollback() -> None:
    channel = synced()
    channel.begin_optimistic("a1", "r1", "Present")
    assert channel.view_state("a1") == "Present"
    assert channel.rows["a1"].state == "Scheduled"
    channel.confirm("a1", "r1", 1)
    assert channel.view_state("a1") == "Present"
    channel.on_event(event(1, state="Present"), False, 0)
    assert "a1" not in channel.optimistic
    channel.begin_optimistic("a2", "r2", "Cancelled")
    assert channel.rollback("a2", "r2")
    assert channel.view_state("a2") == "Scheduled"
    assert not channel.rollback("a2", "r2")


def test_final_record_lists_versions_and_states() -> None:
    channel = synced()
    channel.on_event(event(1, version=2), False, 0)
    assert channel.final_record().to_json() == {
        "k": "final",
        "date": DATE,
        "epoch": EPOCH,
        "seq": 1,
        "rows": {"a1": [2, "Present"], "a2": [1, "Scheduled"]},
        "status": SYNCED,
    }


def test_caught_up_only_once_the_head_itself_is_applied() -> None:
    channel = synced(seq=4)
    assert not channel.caught_up(Position(EPOCH, 5))
    channel.on_event(event(5), False, 0)
    assert channel.caught_up(Position(EPOCH, 5))
    assert channel.caught_up(Position(EPOCH, 4))
    assert not channel.caught_up(Position("e2", 5))


def test_buffer_overflow_resyncs_instead_of_growing() -> None:
    channel = ChannelState(DATE, max_buffer=3)
    channel.subscribe()
    channel.on_subscribed(Subscribed(DATE, EPOCH, 0, False, snapshot=[]), 0)
    for seq in (2, 3, 4):
        channel.on_event(event(seq), False, 0)
    effects = channel.on_event(event(5), False, 0)
    assert effects.send == [Subscribe(DATE)]
    assert channel.buffer == {}


# ---------------------------------------------------------------------- injected bugs


def test_bug_no_dedupe_applies_a_duplicate_again() -> None:
    channel = synced(bugs=frozenset({BUG_NO_DEDUPE}))
    channel.on_event(event(1, version=2, state="Present"), False, 0)
    channel.on_event(event(2, version=3, state="Seated"), False, 0)
    effects = channel.on_event(event(1, version=2, state="Present"), False, 0)
    assert applied(effects.records) == [1]
    assert channel.rows["a1"].state == "Present"  # regressed: the checker must see it


def test_bug_no_reorder_buffer_applies_out_of_order_without_asking() -> None:
    channel = synced(bugs=frozenset({BUG_NO_REORDER}))
    sent = []
    records = []
    for seq in (1, 3, 2):
        effects = channel.on_event(event(seq), False, 0)
        sent += effects.send
        records += effects.records
    assert applied(records) == [1, 3, 2]
    assert sent == []
    assert channel.rows["a1"].version == 3  # the stale event won


def test_bug_ignore_resync_keeps_mixing_epochs() -> None:
    channel = synced(seq=5, bugs=frozenset({BUG_IGNORE_RESYNC}))
    assert channel.on_resync(ResyncRequired(DATE, "epoch_changed"), 0).send == []
    effects = channel.on_event(event(1, epoch="e2"), False, 0)
    assert kinds(effects.records) == ["dup"]  # the new epoch's event 1 is silently lost
    assert channel.on_head(Position("e2", 1), 0).send == []
    assert channel.epoch == EPOCH


def test_bugs_combine_in_one_policy_and_the_default_policy_has_none() -> None:
    assert ChannelState(DATE).policy.names == frozenset()
    channel = synced(seq=5, bugs=frozenset({BUG_NO_DEDUPE, BUG_IGNORE_RESYNC}))
    assert channel.on_resync(ResyncRequired(DATE, "epoch_changed"), 0).send == []
    assert applied(channel.on_event(event(5), False, 0).records) == [5]  # applied again


@pytest.mark.parametrize("bug", [BUG_NO_DEDUPE, BUG_NO_REORDER, BUG_IGNORE_RESYNC])
def test_each_bug_changes_behaviour_on_its_trigger(bug: str) -> None:
    triggers = {
        BUG_NO_DEDUPE: [event(1), event(1)],
        BUG_NO_REORDER: [event(2), event(1)],
        BUG_IGNORE_RESYNC: [event(1), event(1, epoch="e2")],
    }[bug]

    def run(bugs: frozenset[str]) -> list[object]:
        channel = synced(bugs=bugs)
        out: list[object] = []
        for item in triggers:
            out += kinds(channel.on_event(item, False, 0).records)
        return out

    assert run(frozenset({bug})) != run(frozenset())


def test_lossy_replay_is_not_re_asked_at_once_and_ends_in_a_resync() -> None:
    channel = synced(gap_timeout=1.0)
    assert channel.on_event(event(3), False, 0).send == [RequestMissedEvents(DATE, 0, EPOCH)]
    # The answer leaves seq 1 out: no new request until the deadline.
    lossy = channel.on_missed(MissedEvents(DATE, EPOCH, 3, [event(2), event(3)]), 0.1)
    assert lossy.send == []
    assert channel.tick(1.0).send == [RequestMissedEvents(DATE, 0, EPOCH)]
    assert channel.tick(2.0).send == [RequestMissedEvents(DATE, 0, EPOCH)]
    gave_up = channel.tick(3.0)
    assert gave_up.send == [Subscribe(DATE)]
    assert as_json(gave_up.records) == [{"k": "resync", "date": DATE, "reason": "gap_unfilled"}]


def test_one_gap_record_per_gap_not_one_per_event_held_behind_it() -> None:
    channel = synced()
    records = []
    for seq in (2, 3, 4):
        records += channel.on_event(event(seq), False, 0).records
    # A lossy replay re-sends the held events: still the same gap.
    records += channel.on_missed(MissedEvents(DATE, EPOCH, 4, [event(2), event(3)]), 0.1).records
    assert as_json(records) == [{"k": "gap", "date": DATE, "have": 0, "got": 2}]
    filled = channel.on_event(event(1), False, 0.2)
    assert applied(filled.records) == [1, 2, 3, 4]
    assert kinds(channel.on_event(event(6), False, 0.3).records) == ["gap"]  # a new gap


def test_unfillable_gap_gives_up_even_when_reconnects_come_between_requests() -> None:
    channel = synced(gap_timeout=1.0)
    sent = channel.on_event(event(2), False, 0).send
    for n in range(2):
        channel.on_disconnected()
        channel.subscribe()
        # Every reconnect's replay leaves seq 1 out again.
        lossy = Subscribed(DATE, EPOCH, 2, True, events=[event(2)])
        sent += channel.on_subscribed(lossy, 10.0 * (n + 1)).send
    assert sent == [RequestMissedEvents(DATE, 0, EPOCH)] * 3
    channel.on_disconnected()
    channel.subscribe()
    gave_up = channel.on_subscribed(Subscribed(DATE, EPOCH, 2, True, events=[event(2)]), 30.0)
    assert gave_up.send == [Subscribe(DATE)]
    assert gave_up.records[-1].to_json() == {"k": "resync", "date": DATE, "reason": "gap_unfilled"}


def test_progress_renews_the_request_budget() -> None:
    channel = synced(gap_timeout=1.0)
    channel.on_event(event(3), False, 0)
    assert channel.tick(1.0).send == [RequestMissedEvents(DATE, 0, EPOCH)]
    # A partial replay moves the position: the gap is still open, but not stuck.
    channel.on_missed(MissedEvents(DATE, EPOCH, 3, [event(1)]), 1.5)
    asked = [channel.tick(float(t)).send for t in (2, 3, 4)]
    assert asked == [[RequestMissedEvents(DATE, 1, EPOCH)]] * 3
    assert channel.tick(5.0).send == [Subscribe(DATE)]


def test_a_lossy_server_gets_a_bounded_number_of_requests() -> None:
    """The regression behind ~36,000 ``gap`` records in 4 s: a server that commits one event
    every 10 ms but never sends seq 7, live or in replays, answers every request at once and
    announces its head every 10 ms. One gap, ``max_missed_requests`` requests spaced by
    ``gap_timeout``, then a resync."""
    channel = synced(gap_timeout=1.0)
    records = []
    requests: list[float] = []
    for step in range(1000):  # 10 simulated seconds
        now, head = step / 100, min(step + 1, 10)
        effects = channel.tick(now)
        if step < 10 and head != 7:
            effects.extend(channel.on_event(event(head), False, now))
        effects.extend(channel.on_head(Position(EPOCH, head), now))
        for message in effects.send:
            if isinstance(message, RequestMissedEvents):
                requests.append(now)
                missed = [event(s) for s in range(message.last_seq + 1, head + 1) if s != 7]
                effects.extend(channel.on_missed(MissedEvents(DATE, EPOCH, head, missed), now))
        records += effects.records
        if channel.status == OUT_OF_SYNC:
            break
    assert requests == [0.06, 1.06, 2.06]
    assert kinds(records).count("gap") == 1
    assert records[-1].to_json() == {"k": "resync", "date": DATE, "reason": "gap_unfilled"}
    assert now == 3.06
