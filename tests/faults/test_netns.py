"""Packet loss in a network namespace: pure rule building, and real namespaces as root."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synccli.errors import ConfigError, FaultError
from synccli.faults import loss, netns
from synccli.faults.netns import PacketLossNamespace, cleanup_stale, list_namespaces, loss_ruleset
from synccli.faults.userns import UserNamespaceLink, check_unprivileged
from tests.conftest import require, seconds

LossyLink = PacketLossNamespace | UserNamespaceLink

ECHO_SERVER = r"""
import os, socket, sys
server = socket.socket()
server.bind((sys.argv[1], 0))
server.listen(4)
print(os.getpid(), server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(4096):
        conn.sendall(data)
    conn.close()
"""


def test_ruleset_drops_tcp_in_both_hooks() -> None:
    script = loss_ruleset(30, "both")
    assert script.startswith("add table inet synccli\ndelete table inet synccli\n")
    assert "hook input" in script and "hook output" in script
    assert script.count("meta l4proto tcp numgen random mod 1000 < 300 counter drop") == 2


@pytest.mark.parametrize(("direction", "hook"), [("upstream", "input"), ("downstream", "output")])
def test_ruleset_one_direction_has_one_hook(direction: netns.Direction, hook: str) -> None:
    script = loss_ruleset(2.5, direction)
    assert f"hook {hook}" in script
    assert script.count("hook ") == 1
    assert "< 25 counter drop" in script


@pytest.mark.parametrize(
    ("direction", "matches"),
    [("both", ["tcp dport 8765", "tcp sport 8765"]), ("upstream", ["tcp dport 8765"]),
     ("downstream", ["tcp sport 8765"])],
)  # fmt: skip
def test_loopback_ruleset_tells_direction_by_port(
    direction: netns.Direction, matches: list[str]
) -> None:
    # Both ends share the loopback: each packet passes both hooks, so one hook and the port.
    script = loss_ruleset(10, direction, loopback_port=8765)
    assert script.count("hook ") == 1 and "hook output" in script
    drops = [line.strip() for line in script.splitlines() if line.strip().endswith("drop")]
    assert drops == [f"{m} numgen random mod 1000 < 100 counter drop" for m in matches]


def test_zero_loss_only_deletes_the_table() -> None:
    assert "chain" not in loss_ruleset(0)


@pytest.mark.parametrize("percent", [-1, 100.5, True, "5"])
def test_bad_percent_is_a_config_error(percent: object) -> None:
    with pytest.raises(ConfigError, match="percent"):
        loss_ruleset(percent)  # type: ignore[arg-type]


def test_bad_direction_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="direction"):
        loss_ruleset(5, "sideways")  # type: ignore[arg-type]


def test_pick_octet_skips_used_subnets_and_metadata_range() -> None:
    used = set(range(1, 255)) - {169, 200}
    assert netns.pick_octet(used, "x") == 200
    with pytest.raises(FaultError, match="no free"):
        netns.pick_octet(used | {200}, "x")


def test_bad_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="namespace name"):
        PacketLossNamespace("bad name/../x")


def test_for_run_names_the_namespace_from_the_run_id() -> None:
    assert PacketLossNamespace.for_run("20261126T101530-ab12/cd").name == "synccli-20261126T101"
    with pytest.raises(ConfigError, match="run id"):
        PacketLossNamespace.for_run("///")


def test_address_before_create_is_a_fault_error() -> None:
    with pytest.raises(FaultError, match="not been created"):
        _ = PacketLossNamespace("synccli-never").address


def test_a_kernel_without_user_namespaces_is_one_clear_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `unshare` that fails as a kernel forbidding user namespaces makes it fail.
    fake = tmp_path / "unshare"
    fake.write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    reason = check_unprivileged()
    assert reason is not None
    assert reason.startswith("packet loss needs root, or a kernel that lets this user create")
    assert "Operation not permitted" in reason and "\n" not in reason


# ---------------------------------------------------------------- real namespaces (root)


@pytest.fixture
def root() -> None:
    require(
        os.geteuid() == 0 and shutil.which("nft") is not None and shutil.which("ip") is not None,
        "network namespace tests need root, ip and nft",
    )
    reason = netns.check_root()
    require(reason is None, reason or "")


@pytest.fixture
def space(root: None) -> Iterator[PacketLossNamespace]:
    ns = PacketLossNamespace(f"synccli-t{os.getpid()}")
    ns.create()
    try:
        yield ns
    finally:
        ns.destroy()


@pytest.fixture
def echo(space: PacketLossNamespace) -> Iterator[tuple[int, int]]:
    """An echo server inside the namespace: (pid reported by the server, port)."""
    argv = space.wrap_command([sys.executable, "-c", ECHO_SERVER, space.address])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid_text, port_text = proc.stdout.readline().split()
        assert int(pid_text) == proc.pid, "ip netns exec must exec in place so SIGKILL reaches it"
        yield proc.pid, int(port_text)
    finally:
        proc.kill()
        proc.wait(seconds(5))


@pytest.fixture
def conn(space: PacketLossNamespace, echo: tuple[int, int]) -> Iterator[socket.socket]:
    """A connection from the host to the echo server, opened before any loss: a SYN lost
    is resent after 1 s, 2 s, 4 s… whatever ``rto_min`` says, which would make tests slow."""
    with socket.create_connection((space.address, echo[1]), timeout=seconds(30)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sock


def round_trips(conn: socket.socket, count: int, size: int = 200) -> None:
    """``count`` echoed messages of ``size`` bytes, each checked byte for byte."""
    for i in range(count):
        payload = (f"{i:05d}".encode() * (size // 5 + 1))[:size]
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(4096)
            assert chunk, "the echo server closed the connection"
            received += chunk
        assert received == payload


def test_check_available_as_root(root: None) -> None:
    assert netns.check_root() is None
    assert loss.check_available() is None


def test_create_and_destroy_leave_nothing_behind(root: None) -> None:
    ns = PacketLossNamespace(f"synccli-c{os.getpid()}")
    ns.create()
    assert ns.name in list_namespaces()
    assert ns.address.startswith("169.254.") and ns.address.endswith(".2")
    assert ns.host_address.rsplit(".", 1)[0] == ns.address.rsplit(".", 1)[0]
    ns.destroy()
    ns.destroy()  # idempotent
    assert ns.name not in list_namespaces()
    links = subprocess.run(["ip", "link", "show"], capture_output=True, text=True, check=True)
    assert ns.host_if not in links.stdout


def test_create_twice_names_the_cleanup(space: PacketLossNamespace) -> None:
    with pytest.raises(FaultError, match=f"ip netns del {space.name}"):
        PacketLossNamespace(space.name).create()


def test_echo_server_inside_is_reachable_from_host(
    space: PacketLossNamespace, conn: socket.socket
) -> None:
    assert conn.getsockname()[0] == space.host_address
    round_trips(conn, 5)
    assert space.dropped() == 0


def check_loss_drops_and_tcp_delivers(link: LossyLink, conn: socket.socket) -> None:
    """30 % loss on ``link`` drops packets in the kernel while every byte of ``conn`` (to
    an echo server behind it) still arrives; clearing it stops the drops."""
    link.tune_rto(20)  # keeps the retransmissions of this test fast
    link.set_loss(30)
    # Few request/response turns: at 30 % both ways a lost resend doubles the timeout,
    # so long serial exchanges have a heavy tail; a bulk echo recovers by SACK instead.
    round_trips(conn, 5)
    round_trips(conn, 1, size=32_000)
    # Read the count once the rule is gone: a last ACK still in flight when the echo returns
    # may be dropped until then. The count surviving the removal is the fault's trace.
    link.clear_loss()
    dropped = link.dropped()
    # The exchange is some 25-40 packets (on a 64 KB loopback MTU the bulk echo is a few
    # segments), so a fixed floor above one fails now and then by chance: none dropped at
    # 30 % over 25 packets has a chance of about 1 in 7,000, a handful is routine.
    assert dropped >= 1, "30 % loss over some 25 packets must drop at least one in the kernel"
    round_trips(conn, 40)
    assert link.dropped() == dropped, "no drop once the loss is cleared"


def test_loss_really_drops_and_tcp_still_delivers(
    space: PacketLossNamespace, conn: socket.socket
) -> None:
    check_loss_drops_and_tcp_delivers(space, conn)


def test_upstream_loss_only_counts_one_hook(
    space: PacketLossNamespace, conn: socket.socket
) -> None:
    space.tune_rto(20)
    space.set_loss(30, "upstream")
    listing = subprocess.run(
        ["ip", "netns", "exec", space.name, "nft", "list", "table", "inet", "synccli"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hook input" in listing and "hook output" not in listing
    round_trips(conn, 30)
    assert space.dropped() > 0


def test_cleanup_after_a_crashed_owner(root: None) -> None:
    name = f"synccli-k{os.getpid()}"
    # The child says "inside" once ``ip netns exec`` has entered the namespace and before it
    # execs ``sleep`` (same pid): only then does the owner crash. Crashing earlier raced
    # the child's setns(): cleanup could not see it in the namespace, and it outlived the test.
    crash = (
        "import os, signal, subprocess, sys\n"
        "from synccli.faults.netns import PacketLossNamespace\n"
        f"ns = PacketLossNamespace({name!r}); ns.create()\n"
        "child = subprocess.Popen(ns.wrap_command(['sh', '-c', 'echo inside; exec sleep 600']), "
        "stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
        "assert child.stdout.readline() == 'inside\\n'\n"
        "print(child.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    # Its own session, so whatever it started can be ended by process group if all fails.
    owner = subprocess.Popen(
        [sys.executable, "-c", crash], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    orphan: int | None = None
    try:
        out, _ = owner.communicate(timeout=seconds(20))
        assert owner.returncode == -signal.SIGKILL
        orphan = int(out.split()[0])
        gone = os.pidfd_open(orphan)
        assert name in list_namespaces()
        assert cleanup_stale(prefix=name) == [name]
        assert name not in list_namespaces()
        assert _wait_exit(gone, seconds(5)), "the orphaned process inside must be killed"
    finally:
        _kill_group(owner.pid)
        if orphan is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan, signal.SIGKILL)
        owner.kill()
        owner.wait(seconds(5))
        PacketLossNamespace(name).destroy()


def test_cleanup_spares_a_live_owner(space: PacketLossNamespace) -> None:
    assert cleanup_stale(prefix=space.name) == []
    assert space.name in list_namespaces()


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """Whether the process behind ``pidfd`` ends within ``timeout`` (its pidfd turns
    readable when it exits, zombie or reaped: an event, not a poll of /proc)."""
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
