"""Real packet loss without root: an unprivileged user namespace with its own network.

``unshare --user --net --map-root-user`` gives any user a network namespace (where the
kernel allows unprivileged user namespaces) in which they may load nftables rules, but
that namespace has only a loopback and no route to the host. So the lossy link is inside
it: the namespace helper (``nshelper``) listens for the clients on the host's 127.0.0.1
and forwards each connection across the namespace's loopback to the server's listening
socket, which it created inside. The server process itself stays on the host (any
database), and its accepted connections are namespace connections: the drop rules act on
them, the kernel discards the packets and TCP really retransmits, on both ends of that link.

Because both ends of the link share one loopback, direction is told by port, not by hook:
upstream packets go *to* the server's port, downstream ones come *from* it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess

from synccli.errors import ConfigError, FaultError
from synccli.faults import netns
from synccli.faults.nshelper import NamespaceHelper

UNSHARE = ["unshare", "--user", "--net", "--map-root-user", "--"]
#: The server's port inside the namespace: the namespace is private, so it is always free.
INNER_PORT = netns.SERVER_PORT
INNER_HOST = "127.0.0.1"


def check_unprivileged() -> str | None:
    """None if this user can create a user namespace with nftables here, else why not."""
    for tool, package in (
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("nft", "nftables"),
    ):
        if shutil.which(tool) is None:
            return f"packet loss needs the `{tool}` command; install the {package} package"
    probe = [*UNSHARE, "nft", "add", "table", "inet", "synccli_probe"]
    try:
        done = subprocess.run(
            probe, capture_output=True, text=True, timeout=netns.COMMAND_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _refused(str(exc))
    if done.returncode != 0:
        return _refused(" ".join(done.stderr.split()) or f"exit status {done.returncode}")
    return None


def _refused(detail: str) -> str:
    return (
        "packet loss needs root, or a kernel that lets this user create user namespaces "
        f"(`unshare --user --net` failed: {detail}); run as root or skip this fault"
    )


class UserNamespaceLink:
    """The lossy link in a private user + network namespace; same face as
    ``PacketLossNamespace`` (``front``, ``listener``, ``set_loss``, ``dropped``…).

    Use as a context manager, or call ``create()`` and ``destroy()`` (idempotent).
    """

    def __init__(self) -> None:
        self._helper: NamespaceHelper | None = None
        self._front: tuple[str, int] | None = None
        self._dropped_before = 0

    def __enter__(self) -> UserNamespaceLink:
        self.create()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    @property
    def front(self) -> tuple[str, int]:
        """Where clients connect (host side, 127.0.0.1)."""
        if self._front is None:
            raise FaultError("the user-namespace link has not been created")
        return self._front

    @property
    def pid(self) -> int:
        """The helper's pid: a process inside the namespace, which lives as long as it."""
        if self._helper is None:
            raise FaultError("the user-namespace link has not been created")
        return self._helper.pid

    def tune_rto(self, min_ms: int) -> None:
        """Lower TCP's minimum retransmission timeout (default 200 ms) on the namespace's
        loopback, which both ends of the lossy link use."""
        if not 1 <= min_ms <= 200:
            raise ConfigError("rto_min must be between 1 and 200 ms")
        self._nsenter(["ip", "route", *_loopback_route(min_ms)])

    def create(self) -> None:
        """Start the helper in a new user and network namespace, listening for clients."""
        front = socket.create_server(("127.0.0.1", 0), backlog=socket.SOMAXCONN)
        setup = [["ip", "link", "set", "lo", "up"]]
        helper = NamespaceHelper(UNSHARE, INNER_HOST, INNER_PORT, relay=front, setup=setup)
        try:
            helper.start()
            self._front = front.getsockname()[:2]
        finally:
            # The helper has its own copy; the harness must not accept on it.
            front.close()
        self._helper = helper

    def listener(self) -> socket.socket:
        """A new listening socket for the server, inside the namespace."""
        if self._helper is None:
            raise FaultError("the user-namespace link has not been created")
        return self._helper.listener()

    def set_loss(self, percent: float, direction: netns.Direction = "both") -> None:
        """Drop ``percent`` % of the link's TCP packets in ``direction``; 0 clears."""
        script = netns.loss_ruleset(percent, direction, loopback_port=INNER_PORT)
        self._dropped_before = self.dropped()
        self._nsenter(["nft", "-f", "-"], stdin=script)

    def clear_loss(self) -> None:
        """Stop dropping packets."""
        self.set_loss(0)

    def dropped(self) -> int:
        """Packets the loss rules have dropped since ``create()``."""
        if self._helper is None:
            return self._dropped_before
        listing = self._nsenter(["nft", "-j", "list", "ruleset"], check=False)
        return self._dropped_before + netns.count_drops(listing)

    def destroy(self) -> None:
        """Stop the helper; the namespace ends with it. Idempotent."""
        helper, self._helper = self._helper, None
        if helper is not None:
            with contextlib.suppress(FaultError):
                helper.close()

    def _nsenter(self, argv: list[str], stdin: str | None = None, check: bool = True) -> str:
        if self._helper is None:
            raise FaultError("the user-namespace link has not been created")
        enter = ["nsenter", "--target", str(self._helper.pid), "--user", "--net"]
        # Without it nsenter calls setgroups(), which a user namespace mapped by
        # --map-root-user refuses.
        enter += ["--preserve-credentials", "--"]
        return netns.run_command([*enter, *argv], stdin=stdin, check=check)


def _loopback_route(min_ms: int) -> list[str]:
    # The /32 local route is the one loopback connections to 127.0.0.1 use.
    return [
        "change", "table", "local", "local", INNER_HOST, "dev", "lo", "proto", "kernel",
        "scope", "host", "src", INNER_HOST, "rto_min", f"{min_ms}ms",
    ]  # fmt: skip
