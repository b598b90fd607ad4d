"""The embedded proxy in a process of its own, for runs whose proxies carry many connections.

On a thread, the proxy shares the interpreter lock with the harness that starts it: with a
thousand proxied connections its chunk forwarding takes most of a core, and the harness's
own loop (the fault schedule, its heals) lags behind it. A ``spawn``ed process has its own
interpreter and loop; the harness drives it over the same HTTP API as a thread's.

Parent -> child over a pipe: ``"stop"`` (or the pipe closing: the parent is gone).
Child -> parent: ``("ready", url)`` or ``("error", message)``, then ``("stopped",)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from synccli.errors import InfrastructureError, SynccliError
from synccli.faults.proxy.server import serve_forever

START_TIMEOUT_S = 30.0


@dataclass
class ProxyProcess:
    """An ``EmbeddedToxiproxy`` running in a child process; ``stop()`` is idempotent."""

    url: str
    process: Any
    conn: Connection
    _stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return int(self.process.pid)

    @property
    def port(self) -> int:
        """The API's bound port."""
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 10.0) -> None:
        """Close every proxy and connection in the child, then wait for it to exit (killed,
        by its PID, if it does not within ``timeout``)."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError, ValueError):
            self.conn.send("stop")
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


def start_in_process(
    host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None
) -> ProxyProcess:
    """Start an ``EmbeddedToxiproxy`` in a spawned process; returns once the API is bound.

    Raises ``InfrastructureError`` if the port cannot be bound or the child does not start.
    """
    context = multiprocessing.get_context("spawn")
    parent_conn, child_conn = context.Pipe()
    process = context.Process(
        target=_main,
        args=(child_conn, host, port, seed),
        name=f"synccli-proxy-{port}",
        daemon=True,
    )
    process.start()
    child_conn.close()
    reply: Any = None
    if parent_conn.poll(START_TIMEOUT_S):
        with contextlib.suppress(EOFError, OSError):
            reply = parent_conn.recv()
    if not (isinstance(reply, tuple) and reply and reply[0] == "ready"):
        process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join()
        parent_conn.close()
        if isinstance(reply, tuple) and reply and reply[0] == "error":
            raise InfrastructureError(str(reply[1]))
        raise InfrastructureError(
            f"the embedded proxy process did not start (exit code {process.exitcode})"
        )
    return ProxyProcess(str(reply[1]), process, parent_conn)


def _main(conn: Connection, host: str, port: int, seed: int | None) -> None:
    """Entry point of the child."""
    try:
        asyncio.run(_serve(conn, host, port, seed))
    except SynccliError as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", str(exc)))
    finally:
        conn.close()


async def _serve(conn: Connection, host: str, port: int, seed: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_command() -> None:
        # Any command, EOF or a broken pipe alike: stop (the parent stops, or is gone).
        with contextlib.suppress(EOFError, OSError):
            conn.recv()
        loop.remove_reader(conn.fileno())
        stop.set()

    loop.add_reader(conn.fileno(), on_command)
    await serve_forever(host, port, seed, stop, lambda url: conn.send(("ready", url)))
    with contextlib.suppress(OSError):
        conn.send(("stopped",))
