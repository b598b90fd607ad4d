"""The harness's cluster: the Redis bus and the HAProxy balancer it starts for several nodes.

Each is a child process on a free loopback port, configured in the run folder and ended by
its PID: the harness never uses the machine's shared Redis (6379) or a system HAProxy.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from synccli.errors import InfrastructureError

READY_TIMEOUT_S = 10.0


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InfrastructureError(f"{name} is not installed; install the Debian package {package}")
    return path


def redis_answers(host: str, port: int) -> bool:
    """Whether a Redis at ``host:port`` answers PING."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class ChildProcess:
    """A service child process, ended by its PID."""

    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: list[str]) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process if it runs."""
        if self.running():
            assert self._proc is not None
            self._proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (a crash) and reap."""
        if self.running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGCONT)  # a paused process must die too
            self._proc.kill()
            self._proc.wait(timeout=10)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL past ``timeout``; idempotent."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        return proc.returncode


@dataclass
class RedisProcess(ChildProcess):
    """``redis-server`` on 127.0.0.1:``port``, no persistence, its files in ``workdir``."""

    port: int = 0
    workdir: Path = Path(".")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            _binary("redis-server", "redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", "",
        ]  # fmt: skip

    async def start(self) -> None:
        """Start and wait until it answers PING (``InfrastructureError`` otherwise)."""
        self._spawn(self.command())
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running():
                raise InfrastructureError(
                    f"redis-server exited at start-up on port {self.port}; see {self.log_path}"
                )
            if await asyncio.to_thread(redis_answers, "127.0.0.1", self.port):
                return
            await asyncio.sleep(0.05)
        self.kill()
        raise InfrastructureError(
            f"redis-server did not answer within {READY_TIMEOUT_S:.0f} s; see {self.log_path}"
        )
