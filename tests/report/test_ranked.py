"""``Ranked``: the k-th smallest of many samples from sorted chunks of 8-byte floats, as
``sorted`` would give it (percentiles of long runs without a list of float objects)."""

from __future__ import annotations

import random
from array import array

import pytest

from synccli.report import metrics
from synccli.report.metrics import Ranked, percentiles


@pytest.mark.parametrize("n", [1, 2, 6, 7, 8, 50, 333])
@pytest.mark.parametrize("repeats", [False, True])
def test_every_rank_is_the_sorted_one(
    n: int, repeats: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_CHUNK", 7)
    rng = random.Random(n * 2 + repeats)
    xs = [rng.choice([1.0, 2.0, -3.5]) if repeats else rng.uniform(-5, 100) for _ in range(n)]
    ranked = Ranked(array("d", xs))
    assert [ranked[k] for k in range(n)] == sorted(xs)
    assert ranked[-1] == max(xs) and len(ranked) == n
    with pytest.raises(IndexError):
        ranked[n]


def test_chunked_percentiles_are_the_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    xs = array("d", (rng.expovariate(0.1) for _ in range(1000)))
    plain = percentiles(xs)
    monkeypatch.setattr(metrics, "_CHUNK", 64)
    assert percentiles(xs) == plain and plain["count"] == 1000
