"""Which nodes are alive on the bus, and when the relay must look at the database.

Pub/sub keeps nothing, so the events a node commits while it cannot publish (its link is
cut, it was killed between commit and publish, a publish failed) reach the others only
through the database log. Without presence, every node would have to poll the log forever
to find such a *last* event. With it, each node announces itself on the bus every
``HEARTBEAT_S``: its name, its process session, and a drop count that grows whenever it
changed the log without publishing the change (a failed publish, a channel reset). A node
reads the database only when that news says it may have missed something:

- a new session under a known name (a restart), a higher drop count, a peer heard again
  after a silence, a peer that says goodbye, or one heard for the first time that has
  already failed to publish: one relay pass (a new peer that has dropped nothing has
  published everything it committed, so it costs nothing);
- a peer silent for ``silent_after_s`` (killed, paused, or cut off from Redis while it may
  still be writing): one pass at once, then the safety poll while it stays silent;
- a peer silent for ``forget_after_s`` is taken for gone: one last pass, and it is
  forgotten (so a node that died for good does not cost a poll forever).

A cluster whose nodes are all heard reads nothing while idle. The membership list that
Redis keeps (``seed``) covers a node that starts while another is already cut off.

This module is pure: times are passed in (the caller's monotonic clock for what it heard
itself, wall-clock ages for what the membership list says).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: How often a node announces itself.
HEARTBEAT_S = 0.5


@dataclass(frozen=True, slots=True)
class Beat:
    """One announcement: ``node`` (its name), ``session`` (one per process) and ``drops``
    (how many times it failed to publish since it started). ``leaving`` says goodbye."""

    node: str
    session: str
    drops: int
    leaving: bool = False

    def encode(self) -> bytes:
        body = {"node": self.node, "session": self.session, "drops": self.drops}
        if self.leaving:
            body["leaving"] = True
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Beat:
        """Raises ``ValueError`` on anything that is not a beat."""
        body = json.loads(data)
        if not isinstance(body, dict):
            raise ValueError("a beat is a JSON object")
        node, session, drops = body.get("node"), body.get("session"), body.get("drops")
        if not isinstance(node, str) or not isinstance(session, str) or not node or not session:
            raise ValueError("a beat names its node and session")
        if not isinstance(drops, int) or isinstance(drops, bool) or drops < 0:
            raise ValueError("a beat's drops is a count")
        return cls(node, session, drops, body.get("leaving") is True)


@dataclass(frozen=True, slots=True)
class Member:
    """A node's entry in the membership list: its last beat, ``age_s`` seconds ago."""

    session: str
    drops: int
    age_s: float


@dataclass(slots=True)
class _Peer:
    session: str
    drops: int
    heard_at: float
    silent: bool = False


class Presence:
    """What one node knows of the others."""

    def __init__(self, me: str, silent_after_s: float, forget_after_s: float) -> None:
        self.me = me
        self.silent_after_s = silent_after_s
        self.forget_after_s = forget_after_s
        self._peers: dict[str, _Peer] = {}

    def heard(self, beat: Beat, now: float) -> bool:
        """A beat arrived at ``now``; True when the relay should read the database once."""
        if beat.node == self.me:
            return False
        if beat.leaving:
            return self._peers.pop(beat.node, None) is not None
        peer = self._peers.get(beat.node)
        if peer is None:
            self._peers[beat.node] = _Peer(beat.session, beat.drops, now)
            return beat.drops > 0
        news = peer.silent or peer.session != beat.session or beat.drops != peer.drops
        peer.session, peer.drops, peer.heard_at, peer.silent = beat.session, beat.drops, now, False
        return news

    def seed(self, members: dict[str, Member], now: float) -> bool:
        """The membership list read from Redis. A member not heard recently starts silent
        (it may be cut off and writing: True, poll); one older than ``forget_after_s`` is
        ignored. The others are known as they announced themselves last."""
        change = False
        for node, member in members.items():
            if node == self.me or node in self._peers or member.age_s >= self.forget_after_s:
                continue
            silent = member.age_s >= self.silent_after_s
            self._peers[node] = _Peer(member.session, member.drops, now - member.age_s, silent)
            change = change or silent
        return change

    def tick(self, now: float) -> bool:
        """Called at least every ``HEARTBEAT_S``: True when a peer fell silent or is gone."""
        change = False
        for node, peer in list(self._peers.items()):
            quiet = now - peer.heard_at
            if quiet >= self.forget_after_s:
                del self._peers[node]
                change = True
            elif quiet >= self.silent_after_s and not peer.silent:
                peer.silent = True
                change = True
        return change

    def polling(self) -> bool:
        """Whether some peer is silent: the relay polls the database until it is heard."""
        return any(peer.silent for peer in self._peers.values())

    def silent(self) -> list[str]:
        return sorted(node for node, peer in self._peers.items() if peer.silent)

    def peers(self) -> list[str]:
        return sorted(self._peers)

    def forget_all(self) -> None:
        """The link to the bus was lost: what was heard before says nothing any more (the
        reconnect runs a full pass and reads the membership list again)."""
        self._peers.clear()
