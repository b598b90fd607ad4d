"""Reconnect delays: exponential growth with full jitter, as a plain generator.

Full jitter (each delay uniform in ``[0, min(maximum, initial * factor**n)]``) spreads a
thousand clients that lost the same server over the whole window instead of having them
return in lock-step. The caller owns the ``random.Random`` so every run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


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
