"""``Presence``, the pure core that decides when a node must read the database: news of a
peer (restart, failed publishes, back from a silence, goodbye) means one pass; a silent peer
means polling until it is heard or forgotten; a healthy idle cluster means nothing."""

from __future__ import annotations

import pytest

from synccli.bus.presence import Beat, Member, Presence

SILENT, FORGET = 2.0, 60.0


def presence() -> Presence:
    return Presence("me", SILENT, FORGET)


def beat(node: str = "b", session: str = "s1", drops: int = 0, leaving: bool = False) -> Beat:
    return Beat(node, session, drops, leaving)


def test_a_new_peer_costs_nothing_unless_it_already_failed_to_publish() -> None:
    p = presence()
    assert p.heard(beat("b"), 0.0) is False
    assert p.heard(beat("c", drops=1), 0.0) is True
    assert p.peers() == ["b", "c"]
    assert p.heard(beat("b"), 0.5) is False  # the same news again
    assert p.heard(beat("me", "other"), 0.5) is False  # its own name is not a peer
    assert not p.polling()


@pytest.mark.parametrize(
    "news",
    [beat(session="s2"), beat(drops=1)],
    ids=["restarted under the same name", "failed to publish"],
)
def test_news_of_a_known_peer_asks_for_one_pass(news: Beat) -> None:
    p = presence()
    p.heard(beat(), 0.0)
    assert p.heard(news, 0.5) is True
    assert p.heard(news, 1.0) is False


def test_a_silent_peer_is_polled_until_heard_again() -> None:
    p = presence()
    p.heard(beat(), 0.0)
    assert p.tick(SILENT - 0.01) is False
    assert p.tick(SILENT) is True  # one pass at once
    assert p.polling() and p.silent() == ["b"]
    assert p.tick(SILENT + 1) is False  # then the poll, no more passes
    assert p.heard(beat(), SILENT + 2) is True  # back: what did it write meanwhile?
    assert not p.polling() and p.silent() == []
    assert p.tick(SILENT + 3) is False


def test_a_peer_silent_for_long_is_forgotten_after_one_last_pass() -> None:
    p = presence()
    p.heard(beat(), 0.0)
    p.tick(SILENT)
    assert p.tick(FORGET) is True
    assert p.peers() == [] and not p.polling()
    assert p.heard(beat(), FORGET + 1) is False  # heard again: a new peer, nothing dropped


def test_a_goodbye_asks_for_one_last_pass() -> None:
    p = presence()
    p.heard(beat(), 0.0)
    assert p.heard(beat(leaving=True), 1.0) is True
    assert p.peers() == []
    assert p.heard(beat("x", leaving=True), 1.0) is False  # never known


def test_the_membership_list_makes_a_member_cut_off_before_the_start_silent() -> None:
    p = presence()
    members = {
        "fresh": Member("s1", 0, 0.4),
        "cut": Member("s2", 3, SILENT + 5),
        "gone": Member("s3", 0, FORGET),
        "me": Member("s4", 0, 100.0),
    }
    assert p.seed(members, 100.0) is True
    assert p.peers() == ["cut", "fresh"] and p.silent() == ["cut"]
    assert p.heard(beat("fresh", "s1"), 100.5) is False  # as the list said
    assert p.heard(beat("cut", "s2", 3), 100.5) is True  # back: read what it wrote
    assert not p.polling()
    assert p.seed({"fresh": Member("s1", 0, 0.1)}, 101.0) is False  # nothing new


def test_a_member_heard_with_more_drops_than_the_list_said_asks_for_a_pass() -> None:
    p = presence()
    p.seed({"b": Member("s1", 2, 0.2)}, 10.0)
    assert p.heard(beat(drops=3), 10.5) is True


def test_after_a_lost_link_nothing_heard_before_counts() -> None:
    p = presence()
    p.heard(beat(), 0.0)
    p.tick(SILENT)
    p.forget_all()
    assert p.peers() == [] and not p.polling()


def test_a_beat_survives_the_wire() -> None:
    for sent in (beat(), beat("node-2", "ab12", 7, leaving=True)):
        assert Beat.decode(sent.encode()) == sent


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"session": "s", "drops": 0}',
        b'{"node": "", "session": "s", "drops": 0}',
        b'{"node": "n", "session": 5, "drops": 0}',
        b'{"node": "n", "session": "s", "drops": -1}',
        b'{"node": "n", "session": "s", "drops": true}',
        b'{"node": "n", "session": "s"}',
    ],
)
def test_anything_that_is_not_a_beat_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Beat.decode(raw)
