"""``host:port`` strings as Go's ``net`` package splits, resolves and words errors for them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from synccli.faults.proxy.envelope import ApiError


def split_host_port(address: str) -> tuple[str, int]:
    """``(host, port)``; raises ``ApiError`` 500 with Go's wording when malformed.

    An empty address means every interface and any port, as for Go's ``net.Listen``.
    """
    if address == "":
        return "", 0
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ApiError(500, f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ApiError(500, f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        if ":" not in address:
            raise ApiError(500, f"address {address}: missing port in address")
        host, port_text = address.rsplit(":", 1)
        if ":" in host:
            raise ApiError(500, f"address {address}: too many colons in address")
    if port_text == "":
        return host, 0
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ApiError(500, f"lookup tcp/{port_text}: unknown port")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    """``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(address: str) -> str:
    """The address with its host resolved to an IP (IPv4 first), for comparing listens."""
    host, port = split_host_port(address)
    if host == "":
        return join_host_port("", port)
    try:
        return join_host_port(str(ipaddress.ip_address(host)), port)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ApiError(500, f"lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return join_host_port(str(infos[0][4][0]), port)


def bind(address: str) -> socket.socket:
    """A listening socket for ``address`` (empty host: every interface, IPv4 and IPv6).

    Raises ``ApiError`` 500 with Go's ``listen tcp …`` message on failure.
    """
    host, port = split_host_port(address)
    try:
        if host == "":
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            target: tuple[str, int] = ("::", port)
        else:
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            target = (str(sockaddr[0]), port)
    except OSError as exc:
        raise ApiError(500, f"listen tcp {address}: {_reason(exc)}") from None
    try:
        # Go sets SO_REUSEADDR on listeners, so a port in TIME_WAIT can be bound again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(target)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ApiError(500, f"listen tcp {address}: bind: {_reason(exc)}") from None
    sock.setblocking(False)
    return sock


def bound_address(sock: socket.socket) -> str:
    """The ``host:port`` a listening socket is actually bound to."""
    host, port = sock.getsockname()[:2]
    return join_host_port(str(host), int(port))


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
