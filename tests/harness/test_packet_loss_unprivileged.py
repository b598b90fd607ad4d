"""The shipped `packet-loss` scenario as an unprivileged user: real kernel drops, no root.

Run as root, the test makes (if missing) a system user and runs synccli as that user with
``setpriv``; run as anyone else, it runs synccli as itself. A kernel that forbids
unprivileged user namespaces skips the test (even in CI: the clear skip is then the right
behaviour); not being able to try at all (no way to switch user, no usable Python) fails
it in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require, seconds

pytestmark = [pytest.mark.netns, pytest.mark.slow]

USER = "synccli-unpriv"
ROOT = Path(__file__).resolve().parents[2]
# The harness starts the server and the namespace helper with its own interpreter again.
PROBE = (
    "import subprocess, sys; "
    "import click, synccli, tabulate, toxiproxy, websockets; "
    "subprocess.run([sys.executable, '-c', 'import synccli'], check=True)"
)


@dataclass(frozen=True)
class Unprivileged:
    """How to run a command as an unprivileged user, with synccli importable."""

    prefix: tuple[str, ...]
    python: str
    uid: int
    gid: int

    def env(self, home: Path) -> dict[str, str]:
        paths = [str(ROOT), *site.getsitepackages()]
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                "PYTHONPATH": os.pathsep.join(paths), "LANG": "C.UTF-8"}  # fmt: skip

    def run(self, argv: list[str], home: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """``argv`` as the user, in its own session; ended by process group if it hangs."""
        proc = subprocess.Popen(
            [*self.prefix, *argv],
            cwd=home,
            env=self.env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _user() -> tuple[tuple[str, ...], int, int]:
    if os.geteuid() != 0:
        return (), os.getuid(), os.getgid()
    require(shutil.which("setpriv") is not None, "switching user needs setpriv (util-linux)")
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        require(shutil.which("useradd") is not None, "creating a test user needs useradd")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(USER)
    prefix = ("setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups")
    return (*prefix, "--"), entry.pw_uid, entry.pw_gid


@pytest.fixture
def home() -> Iterator[Path]:
    """A run folder the user can write (pytest's tmp_path is private to us)."""
    path = Path(tempfile.mkdtemp(prefix="synccli-unpriv-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _traversable(paths: list[str]) -> Iterator[None]:
    """Let other users read the import folders ``paths`` and pass through (not list) the
    folders above them while the test runs: a checkout or venv under a private folder
    (``mktemp -d`` makes mode 700) is otherwise out of the user's reach. Each mode is put
    back afterwards."""
    changed: dict[Path, int] = {}

    def grant(folder: Path, bits: int) -> None:
        mode = folder.stat().st_mode
        if mode & bits != bits:
            changed.setdefault(folder, mode)
            folder.chmod(stat.S_IMODE(mode) | bits)

    for path in paths:
        folder = Path(path).resolve()
        grant(folder, stat.S_IROTH | stat.S_IXOTH)
        for parent in folder.parents:
            grant(parent, stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(stat.S_IMODE(mode))


@pytest.fixture
def user(home: Path) -> Iterator[Unprivileged]:
    prefix, uid, gid = _user()
    os.chown(home, uid, gid)
    if os.geteuid() != 0:
        yield _usable(prefix, uid, gid, home)
        return
    with _traversable([str(ROOT), *site.getsitepackages()]):
        yield _usable(prefix, uid, gid, home)


def _usable(prefix: tuple[str, ...], uid: int, gid: int, home: Path) -> Unprivileged:
    # This interpreter may live where the user cannot read it (a root-only pyenv): then the
    # system's Python 3 with the same packages on PYTHONPATH.
    pythons = [p for p in (sys.executable, "/usr/bin/python3") if os.path.exists(p)]
    for python in dict.fromkeys(pythons):
        candidate = Unprivileged(prefix, python, uid, gid)
        probe = candidate.run([python, "-c", PROBE], home, seconds(60))
        if probe.returncode == 0:
            break
    else:
        require(False, f"no Python that user {uid} can run synccli with ({probe.stderr.strip()})")
    userns = candidate.run(
        ["unshare", "--user", "--net", "--map-root-user", "--", "nft", "list", "ruleset"],
        home,
        seconds(30),
    )
    if userns.returncode != 0:
        pytest.skip(f"this kernel forbids unprivileged user namespaces: {userns.stderr.strip()}")
    return candidate


def test_the_default_run_keeps_its_packet_loss_without_root(user: Unprivileged, home: Path) -> None:
    shown = user.run(
        [user.python, "-m", "synccli", "scenarios", "show", "default"], home, seconds(60)
    )
    assert shown.returncode == 0, shown.stderr
    assert 'kind = "packet_loss"' in shown.stdout


def test_packet_loss_scenario_without_root(user: Unprivileged, home: Path) -> None:
    out = home / "run"
    result = user.run(
        [user.python, "-m", "synccli", "simulate", "--scenario", "packet-loss", "--quiet",
         "--out", str(out)],
        home,
        seconds(150),
    )  # fmt: skip
    assert "needs root" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert result.returncode == 0, (summary["reasons"], result.stdout[-2000:], result.stderr)
    assert summary["verdict"] == "pass" and summary["events_committed"] > 0
    windows = summary["faults"]
    assert [w["kind"] for w in windows] == ["packet_loss", "packet_loss"]
    assert all(w["evidence"]["packets_dropped"] > 0 and not w["error"] for w in windows)
    if os.geteuid() == 0:
        left = subprocess.run(["pgrep", "-u", str(user.uid)], capture_output=True, text=True)
        assert left.stdout == "", "no process of the run may outlive it (helper, server)"
