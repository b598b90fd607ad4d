import itertools
import random

import pytest

from synccli.protocol.backoff import Reconnect, ReconnectConfig, backoff


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


def test_refused_attempts_probe_within_bounds_however_long_the_outage() -> None:
    policy = Reconnect(ReconnectConfig(0.05, 5.0, probe=0.4), random.Random(2))
    delays = [policy.after_refused() for _ in range(500)]
    assert all(0.2 <= d <= 0.4 for d in delays)
    # Bounded jitter still spreads the fleet over the whole window.
    assert min(delays) < 0.21 and max(delays) > 0.39


def test_refusals_do_not_grow_the_backoff_other_failures_do() -> None:
    rng = random.Random(5)
    policy = Reconnect(ReconnectConfig(1.0, 64.0, factor=2.0, probe=0.5), rng)
    for _ in range(50):
        policy.after_refused()
    # The first real failure starts from ``initial`` however many refusals came before.
    assert policy.after_failure() <= 1.0
    ceilings = [1.0 * 2**n for n in range(1, 6)]
    failures = [policy.after_failure() for _ in ceilings]
    assert all(d <= c for d, c in zip(failures, ceilings, strict=True))
    assert max(failures) > 2.0


def test_healthy_starts_the_backoff_over() -> None:
    policy = Reconnect(ReconnectConfig(1.0, 1000.0, probe=None), random.Random(3))
    grown = [policy.after_failure() for _ in range(12)]
    assert max(grown) > 1.0
    policy.healthy()
    assert policy.after_failure() <= 1.0


def test_without_probe_refusals_grow_the_backoff_as_before() -> None:
    old = list(itertools.islice(backoff(0.05, 5.0, rng=random.Random(9)), 30))
    policy = Reconnect(ReconnectConfig(0.05, 5.0, probe=None), random.Random(9))
    assert [policy.after_refused() for _ in range(30)] == old


@pytest.mark.parametrize("probe", [0.0, -1.0, 6.0])
def test_bad_probe_is_refused(probe: float) -> None:
    with pytest.raises(ValueError):
        ReconnectConfig(0.05, 5.0, probe=probe)
