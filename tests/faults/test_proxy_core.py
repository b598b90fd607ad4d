"""The pure parts of the embedded proxy: Go-style JSON decoding, toxic envelopes, slicing,
HTTP parsing."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from synccli.faults.proxy import gojson
from synccli.faults.proxy.address import split_host_port
from synccli.faults.proxy.envelope import ApiError, parse_new_toxic, parse_toxic_update
from synccli.faults.proxy.httpserver import BadRequest, Request, read_request
from synccli.faults.proxy.toxics.latency import LatencyToxic
from synccli.faults.proxy.toxics.slicer import SlicerToxic


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "EOF"),
        (b"  ", "EOF"),
        (b"nope", "invalid character 'n' looking for beginning of value"),
        (b'{"name":', "unexpected EOF"),
    ],
)
def test_decode_errors_use_go_wording(body: bytes, message: str) -> None:
    with pytest.raises(gojson.GoJSONError, match=f"^{message}$"):
        gojson.decode(body)


def test_decode_ignores_trailing_data_and_matches_keys_case_insensitively() -> None:
    value = gojson.decode(b'{"Name": "x"} trailing')
    assert gojson.get_str(value, "name", "Proxy") == "x"


def test_int_attributes_reject_fractions_and_overflow() -> None:
    with pytest.raises(gojson.GoJSONError, match=r"cannot unmarshal number 1\.50 into"):
        LatencyToxic().merged(gojson.decode(b'{"latency": 1.50}'))
    with pytest.raises(gojson.GoJSONError, match="number 9223372036854775808 into"):
        LatencyToxic().merged({"latency": 2**63})


def test_encode_matches_go() -> None:
    assert gojson.encode({"a": 1.0, "b": 0.5, "c": "<&>"}) == (
        b'{"a":1,"b":0.5,"c":"\\u003c\\u0026\\u003e"}'
    )


def test_envelope_validation_order() -> None:
    # A bad stream is reported before an unknown type, which comes before a duplicate name.
    with pytest.raises(ApiError, match="stream was invalid"):
        parse_new_toxic(b'{"type": "nope", "stream": "x"}', set())
    with pytest.raises(ApiError, match="invalid toxic type"):
        parse_new_toxic(b'{"type": "nope", "name": "taken"}', {"taken"})
    with pytest.raises(ApiError, match="toxic already exists") as caught:
        parse_new_toxic(
            b'{"type": "latency", "attributes": {"latency": "x"}}', {"latency_downstream"}
        )
    assert caught.value.status == 409


def test_update_merges_attributes_and_keeps_toxicity() -> None:
    envelope = parse_new_toxic(
        b'{"type":"latency","toxicity":0.3,"attributes":{"latency":9}}', set()
    )
    toxic, toxicity = parse_toxic_update(envelope, b'{"attributes": {"jitter": 2}}')
    assert toxic.attributes() == {"latency": 9, "jitter": 2}
    assert toxicity == 0.3


@pytest.mark.parametrize("seed", range(20))
def test_slicer_pieces_cover_the_chunk(seed: int) -> None:
    slicer = SlicerToxic(average_size=10, size_variation=6)
    rng = random.Random(seed)
    size = rng.randrange(1, 5000)
    pieces = slicer.cut(size, rng)
    assert pieces[0][0] == 0 and pieces[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(0 < end - start <= 16 for start, end in pieces)


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:9", ("::1", 9)), ("", ("", 0))],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [("bad:addr:x", "too many colons in address"), ("nocolon", "missing port in address")],
)
def test_split_host_port_errors(address: str, message: str) -> None:
    with pytest.raises(ApiError, match=message):
        split_host_port(address)


def _parse(raw: bytes) -> Request | None:
    async def run() -> Request | None:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_request(reader)

    return asyncio.run(run())


def test_http_parser_reads_length_and_chunked_bodies() -> None:
    request = _parse(b"POST /proxies?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert request is not None
    assert (request.method, request.path, request.body) == ("POST", "/proxies", b"{}")
    chunked = _parse(
        b"POST /reset HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert chunked is not None and chunked.body == b"{}"
    assert _parse(b"") is None
    with pytest.raises(BadRequest):
        _parse(b"garbage\r\n\r\n")
