import itertools
import random

import pytest

from synccli.protocol.backoff import backoff


def test_delays_stay_under_the_growing_ceiling_and_cap() -> None:
    delays = list(itertools.islice(backoff(0.05, 5.0, 2.0, rng=random.Random(1)), 200))
    for n, delay in enumerate(delays):
        assert 0 <= delay <= min(5.0, 0.05 * 2**n)


def test_full_jitter_spreads_over_the_whole_window() -> None:
    capped = list(itertools.islice(backoff(1.0, 1.0, rng=random.Random(7)), 2000))
    assert min(capped) < 0.05
    assert max(capped) > 0.95
    assert 0.45 < sum(capped) / len(capped) < 0.55


def test_same_seed_same_delays_other_seed_other_delays() -> None:
    def first(seed: int) -> list[float]:
        return list(itertools.islice(backoff(rng=random.Random(seed)), 10))

    assert first(3) == first(3)
    assert first(3) != first(4)


@pytest.mark.parametrize(("initial", "maximum", "factor"), [(0, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_bad_parameters_are_refused(initial: float, maximum: float, factor: float) -> None:
    with pytest.raises(ValueError):
        next(backoff(initial, maximum, factor, rng=random.Random(0)))
