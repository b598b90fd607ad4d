"""Conformance of the HTTP API with Toxiproxy 2.12 (status codes, bodies, JSON shapes),
through raw HTTP and through toxiproxy-python. Runs against TOXIPROXY_URL when set."""

from __future__ import annotations

import re
import socket

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from tests.conftest import listen_backlog, somaxconn
from tests.faults.test_proxy_helpers import (  # noqa: F401  (fixtures)
    REAL_URL,
    Api,
    Upstream,
    api_fixture,
    connect,
    echo_fixture,
    embedded_only,
    not_on_shared_server,
    round_trip,
    toxiproxy_url_fixture,
)

ERROR_TYPE = "text/plain; charset=utf-8"


def error_body(message: str, status: int) -> bytes:
    return b'{"error":"' + message.encode() + b'","status":' + str(status).encode() + b"}\n"


def test_version_and_request_id(api: Api) -> None:
    result = api.call("GET", "/version")
    assert result.status == 200
    assert result.headers["content-type"] == "application/json;charset=utf-8"
    assert re.fullmatch(rb'\{"version": "\d+\.\d+\.\d+"\}\n', result.body)
    if REAL_URL is None:
        assert result.body == b'{"version": "2.12.0"}\n'
    assert re.fullmatch(r"[0-9a-v]{20}", result.headers["x-toxiproxy-request-id"])


def test_create_show_and_list_proxy(api: Api, echo: Upstream) -> None:
    proxy = api.create("shape", echo.address)
    assert set(proxy) == {"name", "listen", "upstream", "enabled", "Logger", "toxics"}
    assert proxy["Logger"] == {} and proxy["toxics"] == [] and proxy["enabled"] is True
    assert proxy["upstream"] == echo.address
    host, port = proxy["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    shown = api.call("GET", f"/proxies/{proxy['name']}")
    assert shown.status == 200 and shown.json() == proxy
    listing = api.call("GET", "/proxies")
    assert listing.status == 200
    assert listing.json()[proxy["name"]] == proxy
    assert list(listing.json()) == sorted(listing.json())
    with connect(proxy["listen"]) as sock:
        assert round_trip(sock) < 1


@not_on_shared_server
def test_empty_listen_binds_every_interface(api: Api, echo: Upstream) -> None:
    result = api.call("POST", "/proxies", {"name": api.new_name("any"), "upstream": echo.address})
    assert result.status == 201
    host, port = result.json()["listen"].rsplit(":", 1)
    assert host == "[::]" and int(port) > 0
    with connect(f"127.0.0.1:{port}") as sock:
        assert round_trip(sock) < 1


def test_disabled_proxy_keeps_literal_listen(api: Api, echo: Upstream) -> None:
    proxy = api.create("disabled", echo.address, enabled=False)
    assert proxy["enabled"] is False and proxy["listen"] == "127.0.0.1:0"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
        ({"name": "synccli-test-noup"}, "missing required field: upstream"),
    ],
)
def test_create_proxy_missing_fields(api: Api, body: dict[str, str], message: str) -> None:
    result = api.call("POST", "/proxies", body)
    assert result.status == 400
    assert result.body == error_body(message, 400)
    assert result.headers["content-type"] == ERROR_TYPE


def test_create_proxy_errors(api: Api, echo: Upstream) -> None:
    proxy = api.create("dup", echo.address)
    dup = api.call("POST", "/proxies", {"name": proxy["name"], "upstream": echo.address})
    assert dup.status == 409 and dup.body == error_body("proxy already exists", 409)
    bad = api.call("POST", "/proxies", raw=b"not json")
    assert bad.status == 400
    assert bad.json()["error"].startswith("bad request body: ")
    wrong = api.call("POST", "/proxies", {"name": 5, "upstream": echo.address})
    assert wrong.status == 400
    assert "cannot unmarshal number into Go struct field" in wrong.json()["error"]
    taken = api.call(
        "POST",
        "/proxies",
        {"name": api.new_name("busy"), "listen": proxy["listen"], "upstream": echo.address},
    )
    assert taken.status == 500
    assert "address already in use" in taken.json()["error"]
    assert api.call("GET", f"/proxies/{api.created[-1]}").status == 404


def test_not_found_errors(api: Api, echo: Upstream) -> None:
    missing = api.call("GET", "/proxies/synccli-test-nope")
    assert missing.status == 404 and missing.body == error_body("proxy not found", 404)
    assert missing.headers["content-type"] == ERROR_TYPE
    for method, path in [
        ("DELETE", "/proxies/synccli-test-nope"),
        ("GET", "/proxies/synccli-test-nope/toxics"),
        ("PATCH", "/proxies/synccli-test-nope"),
    ]:
        assert api.call(method, path, {}).body == error_body("proxy not found", 404)
    proxy = api.create("nf", echo.address)
    toxic = api.call("GET", f"/proxies/{proxy['name']}/toxics/nope")
    assert toxic.status == 404 and toxic.body == error_body("toxic not found", 404)
    assert api.call("DELETE", f"/proxies/{proxy['name']}/toxics/nope").status == 404


def test_routing_404_405_403(api: Api) -> None:
    unknown = api.call("GET", "/nope")
    assert unknown.status == 404 and unknown.body == b"404 page not found\n"
    assert api.call("GET", "/metrics").status == 404
    wrong = api.call("PUT", "/proxies", {})
    assert wrong.status == 405 and wrong.body == b""
    assert api.call("DELETE", "/version").status == 405
    browser = api.call("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert browser.status == 403 and browser.body == b"User agent not allowed\n"
    # The real server's request-id middleware runs only on routed requests.
    assert "x-toxiproxy-request-id" not in unknown.headers
    assert "x-toxiproxy-request-id" not in wrong.headers
    assert "x-toxiproxy-request-id" in browser.headers
    assert "x-toxiproxy-request-id" in api.call("GET", "/version").headers


def test_toxic_create_defaults_and_errors(api: Api, echo: Upstream) -> None:
    name = api.create("tox", echo.address)["name"]
    path = f"/proxies/{name}/toxics"
    created = api.call("POST", path, {"type": "latency", "attributes": {"latency": 5}})
    assert created.status == 200
    assert created.body == (
        b'{"attributes":{"latency":5,"jitter":0},"name":"latency_downstream",'
        b'"type":"latency","stream":"downstream","toxicity":1}'
    )
    dup = api.call("POST", path, {"type": "latency"})
    assert dup.status == 409 and dup.body == error_body("toxic already exists", 409)
    stream = api.call("POST", path, {"type": "latency", "stream": "sideways"})
    assert stream.body == error_body(
        "stream was invalid, can be either upstream or downstream", 400
    )
    assert api.call("POST", path, {"type": "latency", "stream": ""}).status == 400
    kind = api.call("POST", path, {"type": "gremlins", "name": "g"})
    assert kind.status == 400 and kind.body == error_body("invalid toxic type", 400)
    assert api.call("POST", path, {"name": "x"}).body == error_body("invalid toxic type", 400)
    typed = api.call(
        "POST", path, {"type": "latency", "name": "l2", "attributes": {"latency": "5"}}
    )
    assert typed.status == 400
    assert typed.json()["error"] == (
        "bad request body: json: cannot unmarshal string into Go struct field "
        "LatencyToxic.attributes.latency of type int64"
    )
    upper = api.add_toxic(name, type="noop", stream="UPSTREAM", toxicity=0.5)
    assert upper["name"] == "noop_UPSTREAM" and upper["stream"] == "UPSTREAM"
    assert upper["attributes"] == {} and upper["toxicity"] == 0.5
    slicer = api.add_toxic(name, type="slicer", attributes={"average_size": 4, "x": 1})
    assert slicer["attributes"] == {"average_size": 4, "size_variation": 0, "delay": 0}
    listed = api.call("GET", path).json()
    assert [t["name"] for t in listed] == [
        "noop_UPSTREAM",
        "latency_downstream",
        "slicer_downstream",
    ]
    assert api.call("GET", f"/proxies/{name}").json()["toxics"] == listed


def test_toxic_update_merges(api: Api, echo: Upstream) -> None:
    name = api.create("upd", echo.address)["name"]
    api.add_toxic(name, type="latency", name="lat", attributes={"latency": 100, "jitter": 5})
    path = f"/proxies/{name}/toxics/lat"
    patched = api.call("PATCH", path, {"attributes": {"jitter": 7}, "type": "timeout"})
    assert patched.status == 200
    assert patched.json() == {
        "attributes": {"latency": 100, "jitter": 7},
        "name": "lat",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    posted = api.call("POST", path, {"toxicity": 0.25, "name": "renamed"})
    assert posted.json()["toxicity"] == 0.25 and posted.json()["name"] == "lat"
    assert api.call("GET", path).json()["attributes"] == {"latency": 100, "jitter": 7}
    bad = api.call("PATCH", path, {"attributes": {"latency": True}})
    assert bad.status == 400 and "cannot unmarshal bool" in bad.json()["error"]
    assert api.call("DELETE", path).status == 204
    assert api.call("GET", path).status == 404


def test_proxy_update_and_delete(api: Api, echo: Upstream) -> None:
    proxy = api.create("patch", echo.address)
    path = f"/proxies/{proxy['name']}"
    down = api.call("PATCH", path, {"enabled": False})
    assert down.status == 200 and down.json()["enabled"] is False
    assert down.json()["listen"] == proxy["listen"]
    with pytest.raises(ConnectionRefusedError):
        connect(proxy["listen"])
    up = api.call("POST", path, {"enabled": True, "name": "ignored"})
    assert up.json()["enabled"] is True and up.json()["name"] == proxy["name"]
    with connect(proxy["listen"]) as sock:
        assert round_trip(sock) < 1
    bad = api.call("PATCH", path, {"enabled": "yes"})
    assert bad.status == 400
    assert api.call("DELETE", path).status == 204
    assert api.call("GET", path).status == 404
    with pytest.raises(ConnectionRefusedError):
        connect(proxy["listen"])


def test_a_proxy_queues_as_many_connections_as_the_kernel_allows(api: Api, echo: Upstream) -> None:
    """Go listens with the kernel's somaxconn, when created and when enabled again (a fleet
    cut off by a ``down`` comes back at once when it heals); asyncio's default is 100."""
    proxy = api.create("backlog", echo.address)
    port = int(proxy["listen"].rsplit(":", 1)[1])
    assert listen_backlog(port) == min(socket.SOMAXCONN, somaxconn())
    path = f"/proxies/{proxy['name']}"
    assert api.call("POST", path, {"enabled": False}).status == 200
    assert api.call("POST", path, {"enabled": True}).status == 200
    assert listen_backlog(port) == min(socket.SOMAXCONN, somaxconn())


def test_populate(api: Api, echo: Upstream) -> None:
    first, second = api.new_name("pop"), api.new_name("pop")
    items = [
        {"name": first, "listen": "127.0.0.1:0", "upstream": echo.address},
        {"name": second, "listen": "127.0.0.1:0", "upstream": echo.address, "enabled": False},
    ]
    result = api.call("POST", "/populate", items)
    assert result.status == 201
    proxies = result.json()["proxies"]
    assert [p["name"] for p in proxies] == [first, second]
    assert [p["enabled"] for p in proxies] == [True, False]
    api.add_toxic(first, type="latency", name="kept")
    same = [{"name": first, "listen": proxies[0]["listen"], "upstream": echo.address}]
    again = api.call("POST", "/populate", same)
    assert again.status == 201 and again.json()["proxies"][0]["toxics"][0]["name"] == "kept"
    moved = [{"name": first, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}]
    replaced = api.call("POST", "/populate", moved).json()["proxies"][0]
    assert replaced["toxics"] == [] and replaced["upstream"] == "127.0.0.1:1"
    empty = api.call("POST", "/populate", [])
    assert empty.status == 201 and empty.body == b'{"proxies":null}'


def test_populate_errors_change_nothing(api: Api, echo: Upstream) -> None:
    fresh = api.new_name("popbad")
    items = [{"name": fresh, "upstream": echo.address}, {"name": "x", "listen": ":0"}]
    result = api.call("POST", "/populate", items)
    assert result.status == 400
    assert result.headers["content-type"].startswith("application/json")
    assert result.json() == {
        "error": "missing required field: upstream at proxy 2",
        "status": 400,
        "proxies": None,
    }
    assert api.call("GET", f"/proxies/{fresh}").status == 404
    not_array = api.call("POST", "/populate", {"name": fresh})
    assert not_array.status == 400
    assert not_array.json()["error"].startswith(
        "bad request body: json: cannot unmarshal object into Go value of type []"
    )


def test_reset_heals_everything(api: Api, echo: Upstream) -> None:
    proxy = api.create("reset", echo.address)
    api.add_toxic(proxy["name"], type="latency", attributes={"latency": 1000})
    api.add_toxic(proxy["name"], type="bandwidth", stream="upstream", attributes={"rate": 1})
    api.call("PATCH", f"/proxies/{proxy['name']}", {"enabled": False})
    result = api.call("POST", "/reset")
    assert result.status == 204 and result.body == b""
    healed = api.call("GET", f"/proxies/{proxy['name']}").json()
    assert healed["toxics"] == [] and healed["enabled"] is True
    with connect(proxy["listen"]) as sock:
        assert round_trip(sock) < 0.5


@embedded_only
@pytest.mark.parametrize(
    ("toxic", "attributes", "field"),
    [
        ("bandwidth", {"rate": -1}, "rate"),
        ("slicer", {"average_size": 0}, "average_size"),
        ("slicer", {"average_size": 10, "size_variation": 10}, "size_variation"),
        ("slicer", {"average_size": 10, "size_variation": -1}, "size_variation"),
        ("limit_data", {"bytes": -5}, "bytes"),
    ],
)
def test_inputs_that_crash_the_real_one_are_refused(
    api: Api, echo: Upstream, toxic: str, attributes: dict[str, int], field: str
) -> None:
    name = api.create("guard", echo.address)["name"]
    result = api.call("POST", f"/proxies/{name}/toxics", {"type": toxic, "attributes": attributes})
    assert result.status == 400
    assert result.json()["error"].startswith(f"bad request body: {field} ")
    assert api.call("GET", f"/proxies/{name}/toxics").json() == []
    api.add_toxic(name, type="bandwidth", name="bw", attributes={"rate": 5})
    patched = api.call("PATCH", f"/proxies/{name}/toxics/bw", {"attributes": {"rate": -2}})
    assert patched.status == 400
    assert api.call("GET", f"/proxies/{name}/toxics/bw").json()["attributes"] == {"rate": 5}


def test_toxiproxy_python_client(toxiproxy_url: str, api: Api, echo: Upstream) -> None:
    host, port = toxiproxy_url.removeprefix("http://").rsplit(":", 1)
    APIConsumer.host, APIConsumer.port = host, int(port)
    server = Toxiproxy()
    assert server.running()
    name = api.new_name("client")
    proxy = server.create(upstream=echo.address, name=name)
    assert proxy.listen.startswith("127.0.0.1:") and proxy.enabled is True
    with pytest.raises(ProxyExists):
        server.create(upstream=echo.address, name=name)
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency", attributes={"latency": 100})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="bogus", name="b")
    assert list(proxy.toxics()) == ["latency_downstream"]
    assert proxy.get_toxic("latency_downstream").attributes["latency"] == 100
    with connect(proxy.listen) as sock:
        assert round_trip(sock) >= 0.1
        proxy.destroy_toxic("latency_downstream")
        assert round_trip(sock) < 0.1
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        connect(proxy.listen)
    with connect(proxy.listen) as sock:
        assert round_trip(sock) < 1
    assert name in server.proxies()
    assert server.reset() is True
    with pytest.raises(NotFound):
        proxy.destroy_toxic("nope")
    assert server.destroy(proxy) is True
    assert server.get_proxy(name) is None
    with pytest.raises(OSError):
        socket.create_connection(tuple(proxy.listen.rsplit(":", 1)), timeout=1)
