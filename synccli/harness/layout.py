"""Which proxy group each client connects through, so a fault can hit some clients alone.

The clients are split into cells that never share a proxy: one per named client group
(``client_groups``) and one for the clients in none; each of those is split again into
writers and readers when a fault picks ``readers`` or ``writers``. Each cell gets proxy
groups of its own, about its share of ``groups`` (at least one, never more than it has
clients), so a fault on a set of clients takes only groups whose clients are all in it.
With a single cell the layout is the plain one: client ``i`` in group ``i % groups``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from synccli.client.local import client_id

if TYPE_CHECKING:
    from synccli.harness.scenario import Scenario

#: A named group of clients: its name and its client indexes.
Named = tuple[str, tuple[int, ...]]


def apportion(sizes: list[int], total: int) -> list[int]:
    """How many of ``total`` groups each cell of ``sizes`` clients gets: at least one, at
    most its size, the rest by largest shortfall from its proportional share (ties to
    the earlier cell)."""
    clients = sum(sizes)
    total = max(len(sizes), min(total, clients))
    shares = [1] * len(sizes)
    for _ in range(total - len(sizes)):
        open_cells = [i for i, size in enumerate(sizes) if shares[i] < size]
        best = max(open_cells, key=lambda i: (total * sizes[i] / clients - shares[i], -i))
        shares[best] += 1
    return shares


@dataclass(frozen=True)
class ProxyLayout:
    """The proxy group of every client: ``clients`` of which the first ``writers`` write,
    ``groups`` proxy groups asked for, writers split from readers when ``split``, and
    the ``named`` client groups each behind their own proxies."""

    clients: int
    writers: int
    groups: int
    split: bool = True
    named: tuple[Named, ...] = ()

    @classmethod
    def of(cls, scenario: Scenario) -> ProxyLayout:
        """The layout of ``scenario``: its named groups apart, and writers apart from
        readers when one of its faults picks a kind of client."""
        split = any(fault.clients in ("readers", "writers") for fault in scenario.faults)
        named = tuple((g.name, g.members) for g in scenario.client_groups)
        return cls(scenario.clients, scenario.writers, scenario.groups, split, named)

    @cached_property
    def cells(self) -> list[tuple[int, ...]]:
        """The clients that share proxies, by first client."""
        group_of = {i: name for name, members in self.named for i in members}
        cells: dict[tuple[str, bool], list[int]] = {}
        for index in range(self.clients):
            writes = self.split and index < self.writers
            cells.setdefault((group_of.get(index, ""), writes), []).append(index)
        return [tuple(members) for members in cells.values()]

    @cached_property
    def _groups_of_cells(self) -> list[list[int]]:
        shares = apportion([len(cell) for cell in self.cells], self.groups)
        starts = [sum(shares[:i]) for i in range(len(shares))]
        return [list(range(start, start + n)) for start, n in zip(starts, shares, strict=True)]

    @cached_property
    def _group_of(self) -> dict[int, int]:
        found = {}
        for cell, groups in zip(self.cells, self._groups_of_cells, strict=True):
            for position, index in enumerate(cell):
                found[index] = groups[position % len(groups)]
        return found

    @property
    def writer_groups(self) -> int:
        """How many groups only writers use (0 when the kinds are not split)."""
        return len(self.groups_of("writers")) if self._kinds_apart else 0

    @property
    def _kinds_apart(self) -> bool:
        return self.split and 0 < self.writers < self.clients

    @property
    def total(self) -> int:
        """How many proxy groups are used (no group is left empty)."""
        return sum(len(groups) for groups in self._groups_of_cells)

    def group_of(self, index: int) -> int:
        """The group client ``index`` connects through."""
        return self._group_of[index]

    def groups_of(self, clients: str) -> list[int]:
        """The groups of ``clients``: ``all``, ``readers``, ``writers`` or a named group;
        readers or writers not split apart (no fault picks them) stand for every group."""
        wanted = self.members(clients)
        if clients in ("readers", "writers") and not self._kinds_apart:
            wanted = set(range(self.clients))
        chosen = {self._group_of[i] for i in wanted}
        # Only groups whose clients are all wanted: a share never reaches a bystander.
        mixed = {self._group_of[i] for i in range(self.clients) if i not in wanted}
        return sorted(chosen - mixed)

    def members(self, clients: str) -> set[int]:
        """The indexes of ``clients`` (``all``, ``readers``, ``writers`` or a named group)."""
        if clients == "all":
            return set(range(self.clients))
        if clients == "writers":
            return set(range(min(self.writers, self.clients)))
        if clients == "readers":
            return set(range(self.writers, self.clients))
        return {i for name, members in self.named if name == clients for i in members}

    def clients_in(self, groups: list[int]) -> list[str]:
        """The ids of the clients behind ``groups``."""
        chosen = set(groups)
        return [client_id(i) for i in range(self.clients) if self._group_of[i] in chosen]

    def client_urls(self, group_urls: list[str]) -> list[str]:
        """One URL per client, its group's proxy (the fleet gives client ``i`` the
        ``i``-th)."""
        return [group_urls[self._group_of[i]] for i in range(self.clients)]
