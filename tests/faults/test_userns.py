"""The user-namespace link: a listener made inside, the relay from the host's loopback, and
real drops on the namespace's loopback. Runs as any user the kernel lets create user
namespaces (root included)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from synccli.errors import FaultError
from synccli.faults.userns import INNER_PORT, UserNamespaceLink, check_unprivileged
from tests.conftest import seconds
from tests.faults.test_netns import check_loss_drops_and_tcp_delivers, round_trips

pytestmark = pytest.mark.netns


@pytest.fixture
def link() -> Iterator[UserNamespaceLink]:
    reason = check_unprivileged()
    if reason is not None:
        pytest.skip(reason)
    with UserNamespaceLink() as made:
        yield made


def _echo(listener: socket.socket) -> threading.Thread:
    """Echo every byte of the first connection accepted on ``listener``, then close it."""

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_the_listener_is_inside_and_reached_through_the_front(link: UserNamespaceLink) -> None:
    listener = link.listener()
    assert listener.getsockname() == ("127.0.0.1", INNER_PORT)
    echo = _echo(listener)
    with socket.create_connection(link.front, timeout=seconds(30)) as conn:
        round_trips(conn, 5)
        check_loss_drops_and_tcp_delivers(link, conn)
    echo.join(seconds(10))
    assert not echo.is_alive()


def test_no_listener_means_the_client_is_cut_off(link: UserNamespaceLink) -> None:
    link.listener().close()  # a server that was killed
    conn = socket.create_connection(link.front, timeout=seconds(10))
    with conn, contextlib.suppress(ConnectionResetError):
        assert conn.recv(1) == b""


def test_destroy_ends_the_helper(link: UserNamespaceLink) -> None:
    pid = link.pid
    link.destroy()
    link.destroy()  # idempotent
    assert not _alive(pid), "the helper (and with it the namespace) must be gone"
    with pytest.raises(FaultError, match="not been created"):
        link.listener()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
