"""Each toxic's observable effect on real sockets through a real upstream (and "down").
Runs against TOXIPROXY_URL when set, else the embedded proxy."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests.conftest import seconds
from tests.faults.test_proxy_helpers import (  # noqa: F401  (fixtures)
    Api,
    Upstream,
    api_fixture,
    connect,
    echo_fixture,
    fastest_round_trip,
    greeter_fixture,
    read_until_eof,
    round_trip,
    toxiproxy_url_fixture,
)

# Generous upper bounds: only lower bounds are exact (a toxic never makes things faster).
FAST = seconds(0.09)


def test_latency_downstream_and_upstream_add_up(api: Api, echo: Upstream) -> None:
    proxy = api.create("lat", echo.address)
    with connect(proxy["listen"]) as sock:
        assert fastest_round_trip(sock) < FAST
        api.add_toxic(proxy["name"], type="latency", attributes={"latency": 150})
        assert round_trip(sock) >= 0.15  # applied to an already-open connection
        api.add_toxic(proxy["name"], type="latency", stream="upstream", attributes={"latency": 100})
        assert round_trip(sock) >= 0.25
        api.call("DELETE", f"/proxies/{proxy['name']}/toxics/latency_downstream")
        elapsed = fastest_round_trip(sock)
        assert 0.1 <= elapsed < 0.1 + FAST


def test_latency_update_reaches_open_connections(api: Api, echo: Upstream) -> None:
    proxy = api.create("latupd", echo.address)
    api.add_toxic(proxy["name"], type="latency", name="lat", attributes={"latency": 0})
    with connect(proxy["listen"]) as sock:
        assert fastest_round_trip(sock) < FAST
        api.call("PATCH", f"/proxies/{proxy['name']}/toxics/lat", {"attributes": {"latency": 150}})
        assert round_trip(sock) >= 0.15


def test_latency_is_fifo_and_measured_from_receive_time(api: Api, echo: Upstream) -> None:
    proxy = api.create("fifo", echo.address)
    api.add_toxic(proxy["name"], type="latency", attributes={"latency": 150})
    with connect(proxy["listen"]) as sock:
        start = time.monotonic()
        for index in range(5):
            sock.sendall(b"%d" % index)
            time.sleep(0.01)  # separate chunks, on purpose: not a synchronisation
        received = b""
        while len(received) < 5:
            data = sock.recv(100)
            assert data
            received += data
        elapsed = time.monotonic() - start
    assert received == b"01234"
    # Five chunks 10 ms apart arrive 150 ms after each was received, not 5 x 150 ms.
    assert 0.19 <= elapsed < 0.19 + seconds(0.3)


def test_bandwidth_limits_throughput(api: Api, echo: Upstream) -> None:
    proxy = api.create("bw", echo.address)
    api.add_toxic(proxy["name"], type="bandwidth", attributes={"rate": 40})
    payload = bytes(range(256)) * 40  # 10240 bytes at 40 KB/s: about 0.256 s
    with connect(proxy["listen"]) as sock:
        elapsed = round_trip(sock, payload)
    assert elapsed >= 0.2


def test_slicer_splits_into_small_reads(api: Api, echo: Upstream) -> None:
    proxy = api.create("slice", echo.address)
    api.add_toxic(
        proxy["name"],
        type="slicer",
        attributes={"average_size": 10, "size_variation": 4, "delay": 2000},
    )
    payload = bytes(range(200))
    with connect(proxy["listen"]) as sock:
        sock.sendall(payload)
        received = b""
        sizes = []
        while len(received) < len(payload):
            data = sock.recv(65536)
            assert data
            received += data
            sizes.append(len(data))
    assert received == payload
    assert len(sizes) >= 5 and min(sizes) <= 14


def test_timeout_drops_data_then_closes_after_idle(api: Api, echo: Upstream) -> None:
    proxy = api.create("timeout", echo.address)
    api.add_toxic(proxy["name"], type="timeout", attributes={"timeout": 300})
    with connect(proxy["listen"]) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        data, _ = read_until_eof(sock)
        elapsed = time.monotonic() - start
    assert data == b""
    assert 0.3 <= elapsed < 0.3 + seconds(1)


def test_timeout_zero_hangs_and_removal_closes(api: Api, echo: Upstream) -> None:
    proxy = api.create("timeout0", echo.address)
    api.add_toxic(proxy["name"], type="timeout", attributes={"timeout": 0})
    with connect(proxy["listen"]) as sock:
        sock.sendall(b"ping")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        sock.settimeout(seconds(5))
        assert (
            api.call("DELETE", f"/proxies/{proxy['name']}/toxics/timeout_downstream").status == 204
        )
        assert read_until_eof(sock)[0] == b""


def test_reset_peer_sends_rst_when_present_at_accept(api: Api, echo: Upstream) -> None:
    proxy = api.create("reset", echo.address)
    api.add_toxic(proxy["name"], type="reset_peer", attributes={"timeout": 100})
    with connect(proxy["listen"]) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            read_until_eof(sock)
        assert time.monotonic() - start >= 0.1


def test_reset_peer_added_later_closes_with_fin(api: Api, echo: Upstream) -> None:
    proxy = api.create("resetfin", echo.address)
    with connect(proxy["listen"]) as sock:
        assert fastest_round_trip(sock) < FAST
        api.add_toxic(proxy["name"], type="reset_peer", attributes={"timeout": 0})
        sock.sendall(b"ping")
        assert read_until_eof(sock)[0] == b""


def test_limit_data_truncates_then_eof(api: Api, echo: Upstream) -> None:
    proxy = api.create("limit", echo.address)
    api.add_toxic(proxy["name"], type="limit_data", attributes={"bytes": 10})
    with connect(proxy["listen"]) as sock:
        sock.sendall(b"abcdefghijklmnopqrstuvwxyz")
        data, _ = read_until_eof(sock)
    assert data == b"abcdefghij"


def test_slow_close_delays_eof(api: Api, greeter: Upstream) -> None:
    proxy = api.create("slowclose", greeter.address)
    with connect(proxy["listen"]) as sock:
        start = time.monotonic()
        assert read_until_eof(sock)[0] == b"bye"
        assert time.monotonic() - start < FAST
    api.add_toxic(proxy["name"], type="slow_close", attributes={"delay": 300})
    with connect(proxy["listen"]) as sock:
        start = time.monotonic()
        assert read_until_eof(sock)[0] == b"bye"
        assert time.monotonic() - start >= 0.3


def test_down_refuses_connects_and_closes_open_ones(api: Api, echo: Upstream) -> None:
    proxy = api.create("down", echo.address)
    path = f"/proxies/{proxy['name']}"
    with connect(proxy["listen"]) as sock:
        assert fastest_round_trip(sock) < FAST
        assert api.call("PATCH", path, {"enabled": False}).status == 200
        # Closed either way: FIN or RST depending on timing.
        with contextlib.suppress(ConnectionResetError):
            assert read_until_eof(sock)[0] == b""
        with pytest.raises(ConnectionRefusedError):
            connect(proxy["listen"])
    api.call("PATCH", path, {"enabled": True})
    with connect(proxy["listen"]) as sock:
        assert fastest_round_trip(sock) < FAST


def test_toxicity_zero_never_applies(api: Api, echo: Upstream) -> None:
    proxy = api.create("tox0", echo.address)
    api.add_toxic(proxy["name"], type="latency", toxicity=0, attributes={"latency": 500})
    for _ in range(3):
        with connect(proxy["listen"]) as sock:
            assert fastest_round_trip(sock) < FAST


def test_toxicity_is_rolled_per_connection(api: Api, echo: Upstream) -> None:
    proxy = api.create("tox50", echo.address)
    api.add_toxic(proxy["name"], type="latency", toxicity=0.5, attributes={"latency": 200})
    outcomes = []
    for _ in range(8):
        with connect(proxy["listen"]) as sock:
            delayed = [round_trip(sock) >= 0.2 for _ in range(2)]
        assert delayed[0] == delayed[1]  # one roll for the whole link, not per chunk
        outcomes.append(delayed[0])
    # P(all 8 equal) = 2 * 0.5**8 < 1%; with the embedded proxy's fixed seed it is certain.
    assert len(set(outcomes)) == 2


def test_unreachable_upstream_closes_accepted_client(api: Api) -> None:
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{spare.getsockname()[1]}"
    spare.close()
    proxy = api.create("deadup", dead)
    with connect(proxy["listen"]) as sock, contextlib.suppress(ConnectionResetError):
        assert read_until_eof(sock)[0] == b""


def test_reset_heals_open_connections(api: Api, echo: Upstream) -> None:
    proxy = api.create("healopen", echo.address)
    api.add_toxic(proxy["name"], type="latency", attributes={"latency": 200})
    with connect(proxy["listen"]) as sock:
        assert round_trip(sock) >= 0.2
        assert api.call("POST", "/reset").status == 204
        assert fastest_round_trip(sock) < FAST


def test_toxic_changes_never_drop_or_reorder_data(api: Api, echo: Upstream) -> None:
    """Add, update and remove data-preserving toxics while bytes flow both ways."""
    proxy = api.create("churn", echo.address)
    name = proxy["name"]
    payload = bytes(i % 251 for i in range(300_000))
    received = bytearray()
    # Keeps the transfer going (about 1 s) while the other toxics come and go.
    api.add_toxic(name, type="bandwidth", name="base", stream="upstream", attributes={"rate": 300})
    with connect(proxy["listen"], timeout=10) as sock:

        def reader() -> None:
            while len(received) < len(payload):
                data = sock.recv(65536)
                if not data:
                    return
                received.extend(data)

        thread = threading.Thread(target=reader)
        thread.start()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        toxics = [
            ("latency", "downstream", {"latency": 5, "jitter": 5}),
            ("slicer", "upstream", {"average_size": 500, "size_variation": 100}),
            ("bandwidth", "downstream", {"rate": 2000}),
            ("noop", "upstream", {}),
        ]
        for round_number in range(3):
            for kind, stream, attributes in toxics:
                api.add_toxic(name, type=kind, stream=stream, attributes=attributes)
            api.call(
                "PATCH",
                f"/proxies/{name}/toxics/latency_downstream",
                {"attributes": {"latency": 1}},
            )
            # Remove in a different order each round: middle, head and tail of the chains.
            order = toxics[round_number:] + toxics[:round_number]
            for kind, stream, _ in order:
                assert api.call("DELETE", f"/proxies/{name}/toxics/{kind}_{stream}").status == 204
        assert len(received) < len(payload), "the changes must overlap the transfer"
        sender.join(seconds(10))
        thread.join(seconds(10))
    assert len(received) == len(payload)
    assert bytes(received) == payload
