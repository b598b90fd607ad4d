"""Named client groups: clients a scenario names so a fault can hit them alone.

A scenario's ``[client_groups]`` table names sets of clients (not to be confused with
``groups``, the count of proxy groups)::

    [client_groups]
    front_desk = { writers = 2 }        # two writers
    waiting_room = { readers = 4 }      # four readers
    lobby = { clients = 3 }             # three clients of either kind
    kiosk = { first = 8, last = 9 }     # clients c008 and c009 (indexes, both included)

A group is either a count of ``writers``, ``readers`` or ``clients`` (either kind), or an
index range ``first``…``last``. Ranges are placed first; then each counted group takes, in
file order, the lowest-numbered clients of its kind that no other group holds. The writers
are the first ``writers`` clients. Two groups never share a client (ranges that overlap
are an error), and a group never asks for more clients than are left.

Every named group sits behind proxy groups of its own (``layout.ProxyLayout``), so a fault
on one group (``clients = "waiting_room"``) never touches another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from synccli.client.local import client_id
from synccli.faults.kinds.base import CLIENT_SETS
from synccli.harness.scenario_fields import Located, Table

#: What a counted group counts: only writers, only readers, or clients of either kind.
COUNTS = ("writers", "readers", "clients")
NAME = re.compile(r"[A-Za-z0-9_-]+")


def declared_names(data: Any) -> tuple[str, ...]:
    """The names a ``[client_groups]`` table declares, valid or not (a fault that names an
    invalid group is not also told the name is unknown)."""
    return tuple(data) if isinstance(data, dict) else ()


@dataclass(frozen=True)
class ClientGroup:
    """One named group: how the file gave it (``count`` of ``counts``, or ``first``…
    ``last``) and the client indexes it resolved to."""

    name: str
    members: tuple[int, ...]
    counts: str | None = None
    count: int = 0
    first: int = 0
    last: int = 0

    def to_dict(self) -> dict[str, int]:
        """The group as the file writes it."""
        if self.counts is not None:
            return {self.counts: self.count}
        return {"first": self.first, "last": self.last}


@dataclass(frozen=True)
class _Wanted:
    name: str
    counts: str | None
    count: int
    first: int
    last: int


def parse_client_groups(
    ctx: Located, data: Any, clients: int | None, writers: int | None
) -> tuple[ClientGroup, ...]:
    """The ``[client_groups]`` table ``data`` resolved against ``clients`` and ``writers``
    (``None`` when those are invalid: the groups are then only checked for their shape).
    Problems are reported to ``ctx``; an invalid group is left out."""
    table = Table(ctx, data, ("client_groups",))
    wanted = []
    for name, spec in table.data.items():
        table.read.add(name)
        if name in CLIENT_SETS:
            table.report(name, f"{name!r} is a built-in set of clients: choose another name")
            continue
        if not NAME.fullmatch(name):
            table.report(name, "a group name is letters, digits, _ and - only")
            continue
        one = _group(ctx, name, spec)
        if one is not None:
            wanted.append(one)
    if clients is None or writers is None:
        return ()
    return _resolve(ctx, wanted, clients, writers)


def _group(ctx: Located, name: str, data: Any) -> _Wanted | None:
    table = Table(ctx, data, ("client_groups", name))
    if table.failed:
        return None
    given = [key for key in (*COUNTS, "first", "last") if key in table.data]
    counted = [key for key in given if key in COUNTS]
    ranged = [key for key in given if key not in COUNTS]
    shape = "give one of writers = N, readers = N, clients = N, or first = I and last = J"
    if len(counted) > 1 or (counted and ranged):
        table.report(given[-1], f"a group has one size: {shape}")
        table.read.update(given)
        table.done()
        return None
    if not given:
        ctx.report(("client_groups", name), f"is empty: {shape}")
        table.done()
        return None
    if counted:
        count = table.get(counted[0], int, minimum=1)
        table.done()
        return None if count is None else _Wanted(name, counted[0], count, 0, 0)
    first = table.get("first", int, minimum=0)
    last = table.get("last", int, minimum=0)
    table.done()
    if first is None or last is None:
        return None
    if last < first:
        table.report("last", f"{last} is before first ({first})")
        return None
    return _Wanted(name, None, 0, first, last)


def _resolve(
    ctx: Located, wanted: list[_Wanted], clients: int, writers: int
) -> tuple[ClientGroup, ...]:
    owner: dict[int, str] = {}
    members: dict[str, tuple[int, ...]] = {}
    for group in (g for g in wanted if g.counts is None):
        where = ("client_groups", group.name, "last")
        if group.last >= clients:
            ctx.report(
                where,
                f"client {group.last} is past the fleet: the scenario has {clients} clients "
                f"(indexes 0 to {clients - 1})",
            )
            continue
        span = range(group.first, group.last + 1)
        shared = [i for i in span if i in owner]
        if shared:
            others = sorted({owner[i] for i in shared})
            ids = ", ".join(client_id(i) for i in shared)
            ctx.report(
                ("client_groups", group.name, "first"),
                f"overlaps {', '.join(others)}: {ids} would be in two groups",
            )
            continue
        owner.update(dict.fromkeys(span, group.name))
        members[group.name] = tuple(span)
    for group in (g for g in wanted if g.counts is not None):
        counts = group.counts or "clients"
        kind = _kind(counts, clients, writers)
        free = [i for i in kind if i not in owner]
        if group.count > len(free):
            taken = len(kind) - len(free)
            held = f", {taken} of them in other groups" if taken else ""
            ctx.report(
                ("client_groups", group.name, counts),
                f"asks for {group.count} {counts}, only {len(free)} {_are(len(free))} left: "
                f"the scenario has {len(kind)} {counts}{held}",
            )
            continue
        chosen = tuple(free[: group.count])
        owner.update(dict.fromkeys(chosen, group.name))
        members[group.name] = chosen
    return tuple(
        ClientGroup(g.name, members[g.name], g.counts, g.count, g.first, g.last)
        for g in wanted
        if g.name in members
    )


def _kind(counts: str, clients: int, writers: int) -> range:
    if counts == "writers":
        return range(min(writers, clients))
    if counts == "readers":
        return range(writers, clients)
    return range(clients)


def _are(count: int) -> str:
    return "is" if count == 1 else "are"
