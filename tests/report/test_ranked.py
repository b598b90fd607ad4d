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


@pytest.mark.parametrize("seed", range(5))
def test_sorted_chunks_and_bins_give_every_rank(seed: int) -> None:
    """``Ranked.of_sorted`` (as ``BinnedLatencies`` uses it) over many chunks, with negative
    samples and repeats, picks what ``sorted`` does; the bins hold the samples by time."""
    rng = random.Random(seed)
    binned = metrics.BinnedLatencies(100.0, 2.0)
    pairs = [
        (100.0 + rng.uniform(0, 60), rng.choice([0.5, 7.25, rng.uniform(-3, 9)]))
        for _ in range(400)
    ]
    for w, ms in pairs:
        binned.add(w, ms)
    xs = [ms for _, ms in pairs]
    ranked = binned.ranked()
    assert [ranked[k] for k in range(len(xs))] == sorted(xs) and len(ranked) == len(xs)
    assert percentiles(binned) == percentiles(xs)
    bins = binned.sorted_bins()
    assert len(bins) > 20
    for i, samples in bins.items():
        assert list(samples) == sorted(ms for w, ms in pairs if int((w - 100.0) // 2.0) == i)
