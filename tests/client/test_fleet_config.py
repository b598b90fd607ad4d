"""``FleetConfig`` refuses impossible fleets with a sentence that says what to do, and the
per-client derivations (ids, seeds, urls, writer rates) are stable."""

from __future__ import annotations

from typing import Any

import pytest

from synccli.client.local import FleetConfig, client_config, client_seed, furthest
from synccli.domain.values import Position
from synccli.errors import ConfigError

BASE: dict[str, Any] = dict(
    urls=["ws://127.0.0.1:1/ws"],
    clients=4,
    writers=2,
    dates=["2026-11-26"],
    rate=10,
    duration_s=1,
    seed=5,
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"urls": []}, "at least one server URL"),
        ({"urls": ["http://x"]}, "must start with ws://"),
        ({"clients": 0}, "clients must be at least 1"),
        ({"writers": 5}, "writers must be between 0 and clients"),
        ({"rate": -1}, "must not be negative"),
        ({"workers": 9}, "workers must be between 1 and clients"),
        ({"dates": []}, "at least one date"),
        ({"dates": ["2026-02-30"]}, "not a calendar date"),
        ({"client_bugs": ("no-such",)}, "unknown client bug"),
        ({"connect_rate": 0}, "connect and reconnect rates"),
        ({"reconnect_rate": -5}, "connect and reconnect rates"),
    ],
)
def test_bad_fleet_config_is_a_config_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FleetConfig(**(BASE | change))


def test_clients_get_stable_distinct_seeds_urls_and_writer_shares() -> None:
    config = FleetConfig(**(BASE | {"urls": ["ws://a/ws", "ws://b/ws"]}))
    clients = [client_config(config, i) for i in range(4)]
    assert [c.session.client_id for c in clients] == ["c000", "c001", "c002", "c003"]
    assert [c.url for c in clients] == ["ws://a/ws", "ws://b/ws", "ws://a/ws", "ws://b/ws"]
    assert [c.write_rate for c in clients] == [5.0, 5.0, 0.0, 0.0]
    assert len({c.seed for c in clients}) == 4
    assert client_seed(5, 1) == clients[1].seed == client_seed(5, 1)
    assert client_seed(6, 1) != client_seed(5, 1)
    # Session settings pass down once, nested, not copied field by field.
    assert {c.session.dates for c in clients} == {tuple(config.dates)}
    assert {c.session.gap_timeout for c in clients} == {config.gap_timeout_s}


def test_furthest_position_per_date() -> None:
    assert furthest(
        [{"d": Position("e", 3)}, {"d": Position("e", 5), "x": Position("e", 1)}, {}]
    ) == {"d": Position("e", 5), "x": Position("e", 1)}


@pytest.mark.parametrize(
    ("clients", "probe", "initial"),
    [(10, 0.1, 0.05), (1000, 0.25, 0.25), (2000, 0.5, 0.5), (5000, 0.6, 0.6)],
)
def test_reconnects_spread_with_the_fleet_within_bounds(
    clients: int, probe: float, initial: float
) -> None:
    reconnect = client_config(FleetConfig(**{**BASE, "clients": clients}), 0).reconnect()
    assert reconnect.probe == pytest.approx(probe)
    assert reconnect.initial == pytest.approx(initial)


def test_without_probing_clients_keep_the_plain_backoff() -> None:
    config = FleetConfig(**{**BASE, "clients": 1000, "probe": False})
    reconnect = client_config(config, 0).reconnect()
    assert reconnect.probe is None
    assert reconnect.initial == 0.05
