"""Reconnect delays: exponential growth with full jitter, and fast probes while refused.

Full jitter (each delay uniform in ``[0, min(maximum, initial * factor**n)]``) spreads a
thousand clients that lost the same server over the whole window instead of having them
return in lock-step. The caller owns the ``random.Random`` so every run is reproducible.

``Reconnect`` tells two failures apart. An attempt *refused* at once (nothing listens: the
kernel answers the SYN with a reset) cost the server nothing, so the next one comes after a
short *probe* delay, uniform in ``[probe/2, probe]``, however long the outage: the client
is back within ``probe`` of the heal instead of within the capped backoff of dozens of
failed tries. Anything else (a time-out, an HTTP error, a connection lost soon after it
opened) means the server is there but struggling, and grows the exponential backoff. A
healthy connection starts both over. The caller scales ``probe`` to the fleet, so the
returning clients arrive spread over ``probe`` at a rate the server can take.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


def backoff(
    initial: float = 0.05,
    maximum: float = 5.0,
    factor: float = 2.0,
    *,
    rng: random.Random,
) -> Iterator[float]:
    """Yield delays forever: the n-th is ``uniform(0, min(maximum, initial * factor**n))``."""
    if initial <= 0 or maximum < initial or factor < 1:
        raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
    ceiling = initial
    while True:
        yield rng.uniform(0, ceiling)
        # Stop multiplying once capped so the float never overflows on a long outage.
        ceiling = min(maximum, ceiling * factor)


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """The delays between connection attempts. ``probe`` ``None`` turns probing off: every
    failure, refused or not, grows the backoff (the behaviour before probing)."""

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    probe: float | None = 0.5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        if self.probe is not None and not 0 < self.probe <= self.maximum:
            raise ValueError("the probe delay must be above 0 and at most the backoff maximum")


class Reconnect:
    """The delay before the next connection attempt, from how the last one ended."""

    def __init__(self, config: ReconnectConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self._delays = self._fresh()

    def _fresh(self) -> Iterator[float]:
        c = self.config
        return backoff(c.initial, c.maximum, c.factor, rng=self._rng)

    def healthy(self) -> None:
        """A connection lived long enough: the next failure starts from ``initial``."""
        self._delays = self._fresh()

    def after_refused(self) -> float:
        """The attempt was refused at once: probe again soon, the backoff does not grow."""
        probe = self.config.probe
        if probe is None:
            return next(self._delays)
        return self._rng.uniform(probe / 2, probe)

    def after_failure(self) -> float:
        """The attempt timed out, was answered with an error, or the connection dropped."""
        return next(self._delays)
