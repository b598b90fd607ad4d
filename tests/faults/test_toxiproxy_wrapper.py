"""``ToxiproxyFaults`` against the embedded proxy (or TOXIPROXY_URL): validation before any
change, all-or-nothing across groups, idempotent heal/destroy, clear errors."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from synccli.errors import ConfigError, FaultError, InfrastructureError
from synccli.faults.toxiproxy import ToxiproxyFaults
from tests.conftest import seconds
from tests.faults.test_proxy_helpers import (  # noqa: F401  (fixtures)
    REAL_URL,
    Api,
    Upstream,
    api_fixture,
    connect,
    echo_fixture,
    round_trip,
    toxiproxy_url_fixture,
)

FAST = seconds(0.09)


@pytest.fixture
def faults(toxiproxy_url: str, api: Api) -> Iterator[ToxiproxyFaults]:
    wrapper = ToxiproxyFaults(toxiproxy_url, prefix=api.new_name("wrap"))
    try:
        yield wrapper
    finally:
        wrapper.destroy()


def toxics_of(api: Api, name: str) -> list[str]:
    return [toxic["name"] for toxic in api.call("GET", f"/proxies/{name}/toxics").json()]


def test_check_reports_the_version(faults: ToxiproxyFaults) -> None:
    version = faults.check()
    assert version.count(".") == 2
    if REAL_URL is None:
        assert version == "2.12.0"


def test_unreachable_server_is_an_infrastructure_error() -> None:
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{spare.getsockname()[1]}"
    spare.close()
    faults = ToxiproxyFaults(url)
    message = f"Toxiproxy at {url} is unreachable: start it or omit --toxiproxy"
    with pytest.raises(InfrastructureError, match=message):
        faults.check()
    with pytest.raises(InfrastructureError, match="unreachable"):
        faults.create_proxies("127.0.0.1:1", 1)
    faults.heal()
    faults.destroy()


class _NotToxiproxy(http.server.BaseHTTPRequestHandler):
    """Some other HTTP server: answers every GET with an HTML page and ``status``."""

    status = 200

    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.mark.parametrize("status", [200, 404])
def test_a_server_that_is_not_toxiproxy_is_refused(status: int) -> None:
    handler = type("Handler", (_NotToxiproxy,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        faults = ToxiproxyFaults(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(InfrastructureError, match="does not answer GET /version like"):
            faults.check()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(seconds(5))


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http://HOST:PORT"):
        ToxiproxyFaults("ftp://example")


def test_create_proxies_one_per_group(faults: ToxiproxyFaults, api: Api, echo: Upstream) -> None:
    listens = faults.create_proxies(echo.address, 3)
    assert len(listens) == 3 and len(set(listens)) == 3
    assert faults.proxy_names == [f"{faults.prefix}-g{i}" for i in range(3)]
    for listen in listens:
        assert listen.startswith("127.0.0.1:")
        with connect(listen) as sock:
            assert round_trip(sock) < FAST
    with pytest.raises(ConfigError, match="already called"):
        faults.create_proxies(echo.address, 1)


def test_create_proxies_refuses_an_existing_name_and_undoes(
    toxiproxy_url: str, api: Api, echo: Upstream
) -> None:
    prefix = api.new_name("clash")
    api.created.append(f"{prefix}-g1")
    api.call("POST", "/proxies", {"name": f"{prefix}-g1", "upstream": echo.address})
    faults = ToxiproxyFaults(toxiproxy_url, prefix=prefix)
    with pytest.raises(FaultError, match="proxy already exists"):
        faults.create_proxies(echo.address, 2)
    assert api.call("GET", f"/proxies/{prefix}-g0").status == 404
    assert api.call("GET", f"/proxies/{prefix}-g1").status == 200  # not ours: left alone


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": "gremlins"}, "unknown toxic type 'gremlins'"),
        ({"type": "latency", "stream": "both", "attributes": {"latency": 1}}, "stream"),
        ({"type": "latency"}, "latency toxic attribute 'latency' is missing"),
        ({"type": "latency", "attributes": {"latency": "5"}}, "'latency' must be an integer"),
        ({"type": "latency", "attributes": {"latency": 1.5}}, "'latency' must be an integer"),
        ({"type": "bandwidth", "attributes": {"rate": -1}}, "'rate' must be at least 0, not -1"),
        ({"type": "latency", "attributes": {"latncy": 5}}, "no attribute 'latncy'"),
        ({"type": "latency", "attributes": {"latency": 1}, "toxicity": 1.5}, "toxicity"),
        ({"type": "slicer", "attributes": {"average_size": 0}}, "average_size"),
        (
            {"type": "slicer", "attributes": {"average_size": 4, "size_variation": 4}},
            "size_variation",
        ),
    ],
)
def test_add_toxic_validates_before_touching_the_proxy(
    faults: ToxiproxyFaults, api: Api, echo: Upstream, kwargs: dict[str, object], field: str
) -> None:
    faults.create_proxies(echo.address, 1)
    with pytest.raises(ConfigError, match=field):
        faults.add_toxic([0], **kwargs)  # type: ignore[arg-type]
    assert toxics_of(api, faults.proxy_names[0]) == []


def test_add_update_remove_toxic_per_group(
    faults: ToxiproxyFaults, api: Api, echo: Upstream
) -> None:
    g0, g1 = faults.create_proxies(echo.address, 2)
    names = faults.add_toxic([1], "latency", attributes={"latency": 120})
    assert len(names) == 1
    assert toxics_of(api, faults.proxy_names[1]) == names
    with connect(g0) as fast, connect(g1) as slow:
        assert round_trip(fast) < FAST
        assert round_trip(slow) >= 0.12
        faults.update_toxic([1], names[0], attributes={"latency": 0})
        assert round_trip(slow) < FAST
        faults.update_toxic([1], names[0], attributes={"latency": 120})
        faults.remove_toxic([1], names[0])
        faults.remove_toxic([1], names[0])  # idempotent
        assert round_trip(slow) < FAST
    with pytest.raises(FaultError, match="toxic not found"):
        faults.update_toxic([0], names[0], toxicity=0.5)
    with pytest.raises(ConfigError, match="group 5 does not exist"):
        faults.remove_toxic([5], names[0])


def test_add_toxic_is_all_or_nothing(faults: ToxiproxyFaults, api: Api, echo: Upstream) -> None:
    faults.create_proxies(echo.address, 3)
    api.add_toxic(faults.proxy_names[2], type="noop", name="taken")
    with pytest.raises(FaultError, match="toxic already exists"):
        faults.add_toxic([0, 1, 2], "latency", attributes={"latency": 5}, name="taken")
    assert toxics_of(api, faults.proxy_names[0]) == []
    assert toxics_of(api, faults.proxy_names[1]) == []
    assert toxics_of(api, faults.proxy_names[2]) == ["taken"]


def test_down_heal_and_destroy(
    toxiproxy_url: str, faults: ToxiproxyFaults, api: Api, echo: Upstream
) -> None:
    foreign = api.create("foreign", echo.address)
    api.add_toxic(foreign["name"], type="noop", name="theirs")
    g0, g1 = faults.create_proxies(echo.address, 2)
    faults.add_toxic([0, 1], "timeout", attributes={"timeout": 0})
    faults.set_enabled([0], False)
    with pytest.raises(ConnectionRefusedError):
        connect(g0)
    faults.heal()
    faults.heal()
    for listen in (g0, g1):
        with connect(listen) as sock:
            assert round_trip(sock) < FAST
    assert toxics_of(api, foreign["name"]) == ["theirs"]  # heal never uses /reset
    names = faults.proxy_names
    faults.destroy()
    faults.destroy()
    for name in names:
        assert api.call("GET", f"/proxies/{name}").status == 404
    assert api.call("GET", f"/proxies/{foreign['name']}").status == 200
    faults.heal()  # nothing left: a no-op
