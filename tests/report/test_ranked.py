"""``Ranked``: the k-th smallest of many samples from sorted chunks of 8-byte floats, as
``sorted`` would give it (percentiles of long runs without a list of float objects)."""

from __future__ import annotations

import random
from array import array

import pytest

from synccli.report import metrics, samples
from synccli.report.metrics import percentiles
from synccli.report.samples import Ordered, Ranked, Spill


def values(ordered: Ordered) -> list[float]:
    """Every sample of ``ordered``, by position (``Ordered`` promises positions, not
    iteration)."""
    return [ordered[k] for k in range(len(ordered))]


@pytest.mark.parametrize("n", [1, 2, 6, 7, 8, 50, 333])
@pytest.mark.parametrize("repeats", [False, True])
def test_every_rank_is_the_sorted_one(
    n: int, repeats: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(samples, "_CHUNK", 7)
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
    monkeypatch.setattr(samples, "_CHUNK", 64)
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
    bins = dict(binned.sorted_bins())
    assert len(bins) > 20
    for i, kept in bins.items():
        assert values(kept) == sorted(ms for w, ms in pairs if int((w - 100.0) // 2.0) == i)


@pytest.mark.parametrize("seed", range(3))
def test_spilled_runs_give_every_rank_bin_and_mean(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny buffer and budget nearly every sample goes through the temporary file:
    the ranks, the bins (also merged into coarser ones), the count and the mean are those
    of the samples kept in memory."""
    monkeypatch.setattr(samples, "_BUFFER", 5)
    rng = random.Random(seed)
    spill = Spill(budget=60)
    binned = metrics.BinnedLatencies(100.0, 1.0, spill)
    other = metrics.BinnedLatencies(100.0, 1.0, spill)  # a second store on the same file
    pairs = [(100.0 + rng.uniform(-2, 30), rng.uniform(0, 50)) for _ in range(400)]
    for w, ms in pairs:
        binned.add(w, ms)
        other.add(w, -ms)
    xs = [ms for _, ms in pairs]
    assert len(binned) == len(xs) and spill._written > 600
    ranked = binned.ranked()
    assert [ranked[k] for k in range(len(xs))] == sorted(xs)
    assert percentiles(binned) == percentiles(xs)
    assert binned.mean() == pytest.approx(sum(xs) / len(xs), rel=1e-12)
    assert percentiles(other)["max"] == round(-min(xs), 3)
    for bin_s in (1.0, 3.0):
        bins = dict(binned.sorted_bins(bin_s))
        want: dict[int, list[float]] = {}
        for w, ms in pairs:
            want.setdefault(int((w - 100.0) // bin_s), []).append(ms)
        assert {i: values(b) for i, b in bins.items()} == {i: sorted(v) for i, v in want.items()}
    with pytest.raises(ValueError, match="cannot be made"):
        dict(binned.sorted_bins(1.5))


def _store_state(spill: Spill, store: samples.SampleStore) -> tuple[object, ...]:
    """Everything a store and its spill hold: the runs written (and the file's bytes), the
    sums of the runs of all samples, and the buffers being filled."""
    data = b""
    if spill._file is not None:
        spill._file.flush()
        spill._file.seek(0)
        data = spill._file.read()
    buffers = {key: list(b) for key, b in store._buffers.items()}
    return spill._written, data, store._runs, store._spilled_sums, buffers


@pytest.mark.parametrize("seed", range(4))
def test_many_samples_at_once_are_kept_as_one_at_a_time(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``extender`` hands the spill the same buffers at the same points as the adder called
    on each sample: for ascending times (bins of 0.1 s, with times on their boundaries, where
    a bin's end is a rounding away) and for times in any order."""
    monkeypatch.setattr(samples, "_BUFFER", 5)
    rng = random.Random(seed)
    w0, bin_s = 100.0, 0.1
    one, many = Spill(budget=40), Spill(budget=40)
    each, at_once = samples.SampleStore(one), samples.SampleStore(many)
    add, extend = each.adder(w0, bin_s), at_once.extender(w0, bin_s)
    t = w0
    for _ in range(60):
        chunk: list[float] = []
        for _ in range(rng.randint(1, 30)):
            t += rng.choice([0.0, 0.01, 0.1, 0.3])
            chunk.append(rng.choice([t, w0 + round((t - w0) / bin_s) * bin_s]))
        if rng.random() < 0.3:
            rng.shuffle(chunk)
        mss = [rng.uniform(0, 50) for _ in chunk]
        for applied_w, ms in zip(chunk, mss, strict=True):
            add(applied_w, ms)
        extend(array("d", chunk), mss)
        assert _store_state(many, at_once) == _store_state(one, each)
    assert one._written > 500  # the spill was used, again and again
