"""Real packet loss: nftables drop rules inside a network namespace.

As root, the run creates a namespace ``synccli-<run id>`` joined to the host by a veth pair
on a link-local /30 that the namespace owns (``169.254.X.1`` host side, ``169.254.X.2``
inside), so the traffic never leaves the machine. The server *process* stays in the host's
namespace, so it reaches any database the machine can (PostgreSQL on the host's
127.0.0.1, SQL Server elsewhere); only its listening socket is made inside the namespace,
by a helper (``nshelper``), and handed over (``listener``). The clients connect to it
across the veth. ``set_loss`` installs a table ``inet synccli`` whose rules drop a random
share of TCP packets with ``numgen random``: the kernel really discards them and TCP really
retransmits; no proxy can fake that.

Without root, a namespace cannot be joined to the host's network, so where the kernel
allows unprivileged user namespaces the run uses ``userns.UserNamespaceLink`` instead (the
lossy link across the namespace's own loopback); ``synccli.faults.loss`` picks which one
is possible here, or says why neither is. A root namespace left behind by a killed run is
found by its owner file and removed by ``cleanup_stale``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from synccli.errors import ConfigError, FaultError
from synccli.faults.nshelper import NamespaceHelper

NAME_PREFIX = "synccli-"
#: Where each namespace's owner (pid and start time) is recorded, for ``cleanup_stale``.
STATE_DIR = Path("/run/synccli-netns")
#: Bound on every ``ip``/``nft`` call; they normally take milliseconds.
COMMAND_TIMEOUT_S = 10.0
TABLE = "synccli"
#: The server's port inside a namespace (the namespace is the run's own, so it is free).
SERVER_PORT = 8765
#: The ``tune_rto`` value the harness should use: at 10 % loss it cut 200 echo round trips
#: across the veth from ~9.4 s to ~3.1 s (docs/faults.md). 20 ms was faster still (~1.6 s)
#: but leaves little margin for scheduling delays on a busy machine: spurious resends.
RTO_MIN_MS = 50

#: ``upstream`` drops packets going to the server (the namespace's input hook),
#: ``downstream`` packets coming from it (output hook), ``both`` both ways.
Direction = Literal["both", "upstream", "downstream"]
DIRECTIONS: tuple[Direction, ...] = ("both", "upstream", "downstream")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Third octets of 169.254.X.0/30 we may take; 169 is left alone (cloud metadata lives at
# 169.254.169.254, and a route to it must never be shadowed).
_OCTETS = tuple(n for n in range(1, 255) if n != 169)
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


def check_root() -> str | None:
    """None if a veth namespace with nftables can be made here (with root's capabilities),
    else the reason it cannot (one sentence)."""
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"packet loss needs the `{tool}` command; install the {package} package"
    # A throwaway namespace that vanishes with the process: proves namespaces are permitted
    # and nf_tables works in one, without leaving anything behind.
    probe = ["unshare", "--net", "--", "nft", "add", "table", "inet", "synccli_probe"]
    try:
        subprocess.run(probe, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=True)
    except subprocess.CalledProcessError as exc:
        detail = _one_line(exc.stderr) or f"exit status {exc.returncode}"
        return f"network namespaces with nftables are not permitted here ({detail})"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces with nftables are not permitted here ({exc})"
    return None


def loss_ruleset(
    percent: float, direction: Direction = "both", loopback_port: int | None = None
) -> str:
    """The nft script that replaces table ``inet synccli`` with drop rules for ``percent``.

    The ``add table``/``delete table`` pair makes the replacement one atomic transaction
    whether the table exists or not. 0 % just deletes it. With ``loopback_port`` both ends
    of the link are in the namespace (a user namespace's loopback): every packet passes both
    hooks, so one output chain tells direction by the server's port instead.
    """
    per_mille = _per_mille(percent)
    if direction not in DIRECTIONS:
        raise ConfigError(f"packet loss direction must be one of {', '.join(DIRECTIONS)}")
    lines = [f"add table inet {TABLE}", f"delete table inet {TABLE}"]
    if per_mille == 0:
        return "\n".join(lines) + "\n"
    drop = f"numgen random mod 1000 < {per_mille} counter drop"
    chains: dict[str, list[str]]
    if loopback_port is None:
        hooks = {"both": ("input", "output"), "upstream": ("input",), "downstream": ("output",)}
        chains = {hook: [f"meta l4proto tcp {drop}"] for hook in hooks[direction]}
    else:
        ports = {"both": ("dport", "sport"), "upstream": ("dport",), "downstream": ("sport",)}
        chains = {"output": [f"tcp {port} {loopback_port} {drop}" for port in ports[direction]]}
    lines.append(f"table inet {TABLE} {{")
    for hook, rules in chains.items():
        lines += [f"  chain {hook} {{", f"    type filter hook {hook} priority 0; policy accept;"]
        lines += [f"    {rule}" for rule in rules]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def pick_octet(used: set[int], name: str) -> int:
    """A free third octet for ``169.254.X.0/30``, starting from one derived from ``name``."""
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % len(_OCTETS)
    for i in range(len(_OCTETS)):
        octet = _OCTETS[(start + i) % len(_OCTETS)]
        if octet not in used:
            return octet
    raise FaultError("no free 169.254.X.0/30 link-local subnet is left for a network namespace")


class PacketLossNamespace:
    """A network namespace joined to the host by a veth pair, where packets can be dropped.

    Use as a context manager, or call ``create()`` and ``destroy()`` (idempotent) yourself.
    """

    def __init__(self, name: str) -> None:
        if not _NAME_RE.match(name):
            raise ConfigError(
                f"network namespace name {name!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        self.name = name
        tag = hashlib.sha256(name.encode()).hexdigest()[:8]
        # Interface names are limited to 15 bytes, so they are derived from a hash.
        self.host_if = f"scl{tag}h"
        self.inner_if = f"scl{tag}n"
        self._octet: int | None = None
        self._dropped_before = 0
        self._helper: NamespaceHelper | None = None

    @classmethod
    def for_run(cls, run_id: str) -> PacketLossNamespace:
        """The namespace of run ``run_id``: ``synccli-<first 12 safe characters>``."""
        short = re.sub(r"[^A-Za-z0-9_.-]", "", run_id)[:12]
        if not short:
            raise ConfigError(f"run id {run_id!r} has no letters or digits to name a namespace")
        return cls(NAME_PREFIX + short)

    @property
    def address(self) -> str:
        """The namespace-side IPv4 address the server binds to."""
        return f"169.254.{self._require_octet()}.2"

    @property
    def host_address(self) -> str:
        """The host-side IPv4 address (the clients' source address across the veth)."""
        return f"169.254.{self._require_octet()}.1"

    @property
    def front(self) -> tuple[str, int]:
        """Where clients reach the server: its port inside, across the veth."""
        return self.address, SERVER_PORT

    def listener(self) -> socket.socket:
        """A new listening socket on ``front``, made inside the namespace, for the server
        process (which stays outside). The helper that makes it starts on first use."""
        if self._helper is None:
            helper = NamespaceHelper(self.wrap_command([]), self.address, SERVER_PORT)
            helper.start()
            self._helper = helper
        return self._helper.listener()

    @property
    def subnet(self) -> str:
        """The /30 the namespace owns."""
        return f"169.254.{self._require_octet()}.0/30"

    def __enter__(self) -> PacketLossNamespace:
        self.create()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def create(self) -> None:
        """Create the namespace, the veth pair and its addresses; bring the links up."""
        if self.name in list_namespaces():
            raise FaultError(
                f"network namespace {self.name} already exists (left by a killed run?); "
                f"remove it with `ip netns del {self.name}`"
            )
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        try:
            with _allocation_lock():
                self._octet = pick_octet(_used_octets(), self.name)
                _write_owner(STATE_DIR / f"{self.name}.owner")
                _ip("netns", "add", self.name)
                _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if)
                _ip("link", "set", self.inner_if, "netns", self.name)
                _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            self._ip_inside("addr", "add", f"{self.address}/30", "dev", self.inner_if)
            self._ip_inside("link", "set", "lo", "up")
            self._ip_inside("link", "set", self.inner_if, "up")
        except BaseException:
            self.destroy()
            raise

    def wrap_command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace. ``ip netns exec`` execs in place, so the pid
        of the started process is the command's own and a SIGKILL reaches it."""
        return ["ip", "netns", "exec", self.name, *argv]

    def set_loss(self, percent: float, direction: Direction = "both") -> None:
        """Drop ``percent`` % of TCP packets (0-100, 0.1 % steps) in ``direction``; replaces
        any previous loss rule; 0 clears."""
        script = loss_ruleset(percent, direction)
        self._dropped_before = self.dropped()
        run_command(["ip", "netns", "exec", self.name, "nft", "-f", "-"], stdin=script)

    def clear_loss(self) -> None:
        """Stop dropping packets."""
        self.set_loss(0)

    def dropped(self) -> int:
        """Packets the loss rules have dropped since ``create()`` (the fault's trace)."""
        if self._octet is None:
            return self._dropped_before
        listing = run_command(
            ["ip", "netns", "exec", self.name, "nft", "-j", "list", "ruleset"], check=False
        )
        return self._dropped_before + count_drops(listing)

    def tune_rto(self, min_ms: int) -> None:
        """Lower TCP's minimum retransmission timeout (default 200 ms) on both ends of the
        veth, so a dropped segment is resent sooner (route metric ``rto_min``)."""
        if not 1 <= min_ms <= 200:
            raise ConfigError("rto_min must be between 1 and 200 ms")
        route = [self.subnet, "proto", "kernel", "scope", "link"]
        self._ip_inside(
            "route", "change", *route, "dev", self.inner_if, "src", self.address,
            "rto_min", f"{min_ms}ms",
        )  # fmt: skip
        _ip(
            "route", "change", *route, "dev", self.host_if, "src", self.host_address,
            "rto_min", f"{min_ms}ms",
        )  # fmt: skip

    def destroy(self) -> None:
        """Delete the veth pair and the namespace. Idempotent; safe in ``finally``."""
        helper, self._helper = self._helper, None
        if helper is not None:
            with contextlib.suppress(FaultError):
                helper.close()
        # Deleting the host end removes its peer at once; deleting only the namespace
        # frees the veth asynchronously, after the last process inside has gone.
        run_command(["ip", "link", "del", self.host_if], check=False)
        run_command(["ip", "netns", "del", self.name], check=False)
        with contextlib.suppress(FileNotFoundError):
            (STATE_DIR / f"{self.name}.owner").unlink()
        if self.name in list_namespaces():
            raise FaultError(f"could not delete network namespace {self.name}")

    def _require_octet(self) -> int:
        if self._octet is None:
            raise FaultError(f"network namespace {self.name} has not been created")
        return self._octet

    def _ip_inside(self, *args: str) -> str:
        return _ip("-n", self.name, *args)


def list_namespaces() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    out = run_command(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def cleanup_stale(prefix: str = NAME_PREFIX) -> list[str]:
    """Remove ``prefix*`` namespaces whose creating process is gone (a killed run), killing
    the orphaned processes (a server) still inside them. Returns the names removed."""
    removed = []
    for name in list_namespaces():
        if not name.startswith(prefix) or _owner_alive(STATE_DIR / f"{name}.owner"):
            continue
        for pid in run_command(["ip", "netns", "pids", name], check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        PacketLossNamespace(name).destroy()
        removed.append(name)
    return removed


def _per_mille(percent: float) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise ConfigError("packet loss percent must be a number between 0 and 100")
    if not 0 <= percent <= 100:
        raise ConfigError(f"packet loss percent must be between 0 and 100, not {percent}")
    return round(percent * 10)


def count_drops(nft_json: str) -> int:
    try:
        items = json.loads(nft_json).get("nftables", [])
    except (ValueError, AttributeError):
        return 0
    total = 0
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule or rule.get("table") != TABLE:
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                total += int(expr["counter"].get("packets", 0))
    return total


def has_capabilities() -> bool:
    """True when this process holds CAP_NET_ADMIN and CAP_SYS_ADMIN (root, in effect)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return os.geteuid() == 0
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", status, re.MULTILINE)
    if match is None:
        return os.geteuid() == 0
    caps = int(match.group(1), 16)
    return all(caps >> bit & 1 for bit in (_CAP_NET_ADMIN, _CAP_SYS_ADMIN))


def _used_octets() -> set[int]:
    text = _ip("-4", "addr", "show") + _ip("-4", "route", "show", "table", "all")
    return {int(m) for m in re.findall(r"169\.254\.(\d+)\.\d+", text)}


@contextlib.contextmanager
def _allocation_lock() -> Iterator[None]:
    # Two runs starting together must not pick the same subnet.
    with (STATE_DIR / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (start time) counted after the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[19]


def _write_owner(path: Path) -> None:
    pid = os.getpid()
    path.write_text(f"{pid} {_process_start(pid)}\n")


def _owner_alive(path: Path) -> bool:
    try:
        pid_text, start = path.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    # The start time guards against a recycled pid.
    return _process_start(pid) == start


def _ip(*args: str) -> str:
    return run_command(["ip", *args])


def run_command(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    """``argv``'s stdout; a failure (with ``check``), a hang or a missing tool is a
    ``FaultError`` naming the command."""
    command = " ".join(argv)
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise FaultError(f"`{command}` did not finish within {COMMAND_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise FaultError(f"`{command}` could not be started: {exc.strerror}") from None
    if check and done.returncode != 0:
        detail = _one_line(done.stderr) or f"exit status {done.returncode}"
        raise FaultError(f"`{command}` failed: {detail}")
    return done.stdout


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())
