"""``db_fault``: a seeded share of the server's write transactions fails or stalls.

The kind's attributes, and ``DbFault``, the hook the server installs on its store
(``Store.hook``) when the harness asks for it through ``/_admin/db-fault``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from synccli.errors import DatabaseUnavailable, TransientDatabaseError
from synccli.faults.kinds.base import Attr, FaultKind, Problem, register

#: ``verify`` fails the read-back check, ``deadlock`` makes the commit a deadlock victim
#: (the server retries it), ``slow_commit`` sleeps ``delay_ms`` before the commit.
MODES = ("verify", "deadlock", "slow_commit")


@dataclass(slots=True)
class DbFault:
    """A seeded share of write transactions fails or stalls (installed as ``Store.hook``)."""

    mode: str
    rate: float
    seed: int
    delay_ms: int

    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self, stage: str) -> None:
        if self.mode == "verify" and stage == "verify" and self._rng.random() < self.rate:
            raise DatabaseUnavailable("verification failed (injected fault)")
        if self.mode == "deadlock" and stage == "commit" and self._rng.random() < self.rate:
            raise TransientDatabaseError("deadlock victim (injected fault)")
        if self.mode == "slow_commit" and stage == "commit" and self._rng.random() < self.rate:
            time.sleep(self.delay_ms / 1000)  # runs in the DB thread: it is the point

    def describe(self) -> dict[str, Any]:
        """The fault's settings, as the admin hook answers them."""
        return {"mode": self.mode, "rate": self.rate, "seed": self.seed, "delay_ms": self.delay_ms}


def _rules(values: Mapping[str, Any]) -> Iterator[Problem]:
    if not 0 < values["rate"] <= 1:
        yield "rate", "must be a share in (0, 1] of the commits"
    if values["mode"] == "slow_commit" and values["delay_ms"] <= 0:
        yield "delay_ms", "a slow_commit fault needs delay_ms > 0"


KIND = register(
    FaultKind(
        "db_fault",
        "through the server's test hook, a share `rate` in (0, 1] of the commits fails"
        " (verify, deadlock) or waits `delay_ms` > 0 (slow_commit)",
        target="server",
        attrs=(
            Attr("mode", str, choices=MODES),
            Attr("rate", float, 1.0, unit="share of commits"),
            Attr("delay_ms", int, 0, unit="ms"),
        ),
        rules=_rules,
    )
)
