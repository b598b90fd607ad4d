"""A small HTTP/1.1 server: request line, headers, Content-Length or chunked body, keep-alive.

Enough for Toxiproxy's JSON API and its clients (requests, urllib, curl). A routed
response carries ``X-Toxiproxy-Request-Id`` (an xid). The real server adds it in a router
middleware, which runs only once a route and its method matched: its 404, 405 and 400
answers have none, and neither do ours.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import socket
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

MAX_HEADER_BYTES = 1 << 20
MAX_BODY_BYTES = 16 << 20


@dataclass
class Request:
    """A parsed request; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    version: str = "HTTP/1.1"

    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after the response."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass
class Response:
    """What a handler returns; ``content_type`` ``None`` sends no Content-Type. ``routed``
    says a route handled it (only those get a request id)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    routed: bool = False


class BadRequest(Exception):
    """The bytes received are not an HTTP request we can parse."""


Handler = Callable[[Request], Awaitable[Response]]


class RequestIds:
    """xid-style ids (20 base32hex characters: time, machine, pid, counter)."""

    def __init__(self) -> None:
        self._machine = struct.pack(">I", zlib.crc32(socket.gethostname().encode()))[1:]
        self._pid = struct.pack(">H", os.getpid() & 0xFFFF)
        self._counter = itertools.count()

    def next(self) -> str:
        """A new id."""
        raw = (
            struct.pack(">I", int(time.time()) & 0xFFFFFFFF)
            + self._machine
            + self._pid
            + struct.pack(">I", next(self._counter) & 0xFFFFFF)[1:]
        )
        return base64.b32hexencode(raw).decode().rstrip("=").lower()


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None = None
) -> Request | None:
    """The next request on the connection, ``None`` at a clean EOF.

    With a ``writer``, a client that sent ``Expect: 100-continue`` (curl does, for bodies
    over 1 KiB) is told to go on instead of waiting a second for nothing.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("truncated request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header")
        headers[name.lower()] = value.strip()
    path = target.split("?", 1)[0]
    if writer is not None and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        length_text = headers.get("content-length", "0") or "0"
        if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
            raise BadRequest("bad Content-Length")
        body = await reader.readexactly(int(length_text))
    return Request(method, path, headers, body, version)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if size == 0:
            # Skip any trailer fields up to the empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest("body too large")


def render(response: Response, request_id: str | None, keep_alive: bool) -> bytes:
    """The response's bytes on the wire; ``request_id`` ``None`` sends none."""
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if response.content_type is not None:
        lines.append(f"Content-Type: {response.content_type}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if request_id is not None:
        lines.append(f"X-Toxiproxy-Request-Id: {request_id}")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    if response.status != 204:
        lines.append(f"Content-Length: {len(response.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    ids: RequestIds,
) -> None:
    """Answer requests on one connection until the client or the server closes it."""
    try:
        while True:
            try:
                request = await read_request(reader, writer)
            except (BadRequest, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                bad = Response(400, b"400 Bad Request", "text/plain; charset=utf-8")
                writer.write(render(bad, None, keep_alive=False))
                await writer.drain()
                return
            if request is None:
                return
            response = await handler(request)
            keep_alive = request.keep_alive()
            request_id = ids.next() if response.routed else None
            writer.write(render(response, request_id, keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except OSError:
        return
    finally:
        writer.close()
