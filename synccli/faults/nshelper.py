"""A small process that holds sockets inside a network namespace, for packet loss.

The sync server stays in the host's network namespace, so it reaches any database the
machine can reach. Only its *listening socket* lives in the packet-loss namespace: this
helper, started inside it, creates that socket and hands it over (SCM_RIGHTS), and every
connection the server accepts on it is a namespace connection, where nftables drops packets.

Both halves are here: ``NamespaceHelper`` (the harness side) and ``main`` (run inside the
namespace as ``python -m synccli.faults.nshelper``). Over a SOCK_SEQPACKET control socket,
the helper says ``ready`` (or ``error <sentence>``), then answers each ``listen`` with a fresh
listening socket on the same address (a server restarted after a kill gets a new one, so
while it is down, connections are refused as they would be). With ``--relay-fd`` (a listening
socket of the host's namespace) it also forwards every connection accepted there to the
server's port across the namespace's loopback: the lossy link of a user namespace, which
has no route to the host. It exits when the control socket closes (the harness is gone),
and an unshared namespace goes with it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from synccli.errors import FaultError

#: Bound on the helper's start-up and on each request.
HELPER_TIMEOUT_S = 10.0
_MESSAGE_BYTES = 512
_RELAY_CHUNK = 65536


class NamespaceHelper:
    """The harness side: start the helper with ``prefix`` (how to enter the namespace) and
    ask it for listening sockets on ``host:port`` inside."""

    def __init__(
        self,
        prefix: Sequence[str],
        host: str,
        port: int,
        relay: socket.socket | None = None,
        setup: Sequence[Sequence[str]] = (),
    ) -> None:
        self.prefix = list(prefix)
        self.host = host
        self.port = port
        self._relay = relay
        self._setup = [list(command) for command in setup]
        self._control: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The helper's pid: ``unshare`` and ``ip netns exec`` exec in place, so it is also
        a process inside the namespace (``nsenter --target``)."""
        if self._proc is None:
            raise FaultError("the namespace helper has not been started")
        return self._proc.pid

    def start(self) -> None:
        """Start the helper and wait for its ``ready``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.settimeout(HELPER_TIMEOUT_S)
        argv = [*self.prefix, sys.executable, "-m", "synccli.faults.nshelper"]
        argv += ["--control", str(theirs.fileno()), "--host", self.host, "--port", str(self.port)]
        fds = [theirs.fileno()]
        if self._relay is not None:
            argv += ["--relay-fd", str(self._relay.fileno())]
            fds.append(self._relay.fileno())
        for command in self._setup:
            argv += ["--setup", " ".join(command)]
        try:
            self._proc = subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise FaultError(f"the namespace helper could not be started: {exc}") from None
        finally:
            theirs.close()
        self._control = ours
        try:
            self._expect(self._request(None))
        except BaseException:
            self.close()
            raise

    def listener(self) -> socket.socket:
        """A new listening TCP socket on ``host:port`` inside the namespace."""
        message, fds = self._request(b"listen")
        self._expect((message, []))
        if len(fds) != 1:
            raise FaultError("the namespace helper answered `listen` without a socket")
        return socket.socket(fileno=fds[0])

    def close(self) -> None:
        """Stop the helper (closing its control socket ends it). Idempotent."""
        if self._control is not None:
            self._control.close()
            self._control = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(HELPER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(HELPER_TIMEOUT_S)

    def _request(self, message: bytes | None) -> tuple[bytes, list[int]]:
        if self._control is None:
            raise FaultError("the namespace helper is not running")
        try:
            if message is not None:
                self._control.send(message)
            data, fds, _, _ = socket.recv_fds(self._control, _MESSAGE_BYTES, 1)
        except TimeoutError:
            raise FaultError(
                f"the namespace helper did not answer within {HELPER_TIMEOUT_S:g} s"
            ) from None
        except OSError as exc:
            raise FaultError(f"the namespace helper is gone ({exc})") from None
        if not data:
            raise FaultError("the namespace helper exited; see its error above")
        return data, fds

    @staticmethod
    def _expect(answer: tuple[bytes, list[int]]) -> None:
        text = answer[0].decode(errors="replace")
        if text.startswith("error "):
            raise FaultError(text.removeprefix("error "))
        if text != "ok":
            raise FaultError(f"the namespace helper answered {text!r}")


# ---------------------------------------------------------------- inside the namespace


def main(argv: Sequence[str] | None = None) -> int:
    """Run the helper: ``--control FD --host H --port P [--relay-fd FD] [--setup CMD]…``."""
    parser = argparse.ArgumentParser(prog="python -m synccli.faults.nshelper")
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--relay-fd", type=int)
    parser.add_argument("--setup", action="append", default=[])
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control)
    try:
        for command in args.setup:
            done = subprocess.run(command.split(), capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                detail = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
                raise OSError(f"`{command}` failed inside the namespace: {detail}")
        if args.relay_fd is not None:
            front = socket.socket(fileno=args.relay_fd)
            relay = threading.Thread(
                target=asyncio.run, args=(_relay(front, args.host, args.port),), daemon=True
            )
            relay.start()
    except OSError as exc:
        control.send(f"error {exc}".encode())
        return 1
    control.send(b"ok")
    while request := control.recv(_MESSAGE_BYTES):
        if request != b"listen":
            control.send(b"error unknown request")
            continue
        try:
            # The server listens on it again with its own backlog (``--backlog``).
            listener = socket.create_server((args.host, args.port), backlog=socket.SOMAXCONN)
        except OSError as exc:
            control.send(f"error cannot listen on {args.host}:{args.port} inside: {exc}".encode())
            continue
        socket.send_fds(control, [b"ok"], [listener.fileno()])
        listener.close()
    return 0


async def _relay(front: socket.socket, host: str, port: int) -> None:
    """Forward every connection accepted on ``front`` to ``host:port``, until the end."""

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            # The server is down (killed): the client sees its connection end, as it would.
            writer.transport.abort()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for end in (writer, up_writer):
            end.close()

    server = await asyncio.start_server(forward, sock=front, backlog=socket.SOMAXCONN)
    async with server:
        await server.serve_forever()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # A reset on one side resets the other: nothing half-open is left behind.
        writer.transport.abort()


if __name__ == "__main__":
    sys.exit(main())
