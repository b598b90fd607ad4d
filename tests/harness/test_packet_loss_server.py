"""The server of a packet-loss run, on the host with a socket from inside the namespace:
it serves through the link, and nothing of the run outlives a harness that was killed."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synccli.faults.userns import check_unprivileged
from tests.conftest import seconds

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CRASHING_HARNESS = """
import asyncio, os, signal, sys
from pathlib import Path
from synccli.faults.userns import UserNamespaceLink
from synccli.harness.server_process import ServerProcess

async def main() -> None:
    link = UserNamespaceLink()
    link.create()
    host, port = link.front
    server = ServerProcess(
        db_url="sqlite:///" + sys.argv[1] + "/s.db", host=host, port=port,
        log_path=Path(sys.argv[1]) / "server.log", listener=link.listener,
    )
    await server.start()  # healthy: /healthz answered through the relay and the namespace
    print(server.pid, link.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_a_killed_harness_takes_its_server_and_helper_with_it(tmp_path: Path) -> None:
    reason = check_unprivileged()
    if reason is not None:
        pytest.skip(reason)
    harness = subprocess.Popen(
        [sys.executable, "-c", CRASHING_HARNESS, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        out, _ = harness.communicate(timeout=seconds(60))
        assert harness.returncode == -signal.SIGKILL, out
        pids = [int(pid) for pid in out.split()]
        assert len(pids) == 2
        fds = [os.pidfd_open(pid) for pid in pids]
        try:
            for fd, name in zip(fds, ("server", "helper"), strict=True):
                ready = select.select([fd], [], [], seconds(10))[0]
                assert ready, f"the {name} must end with the harness that started it"
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(harness.pid, signal.SIGKILL)
        harness.wait(seconds(5))
