"""``synccli proxy``: run the embedded Toxiproxy-compatible proxy until Ctrl+C."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from synccli.cli.common import handle_errors
from synccli.faults.proxy import serve_forever


def _announce(url: str) -> None:
    """The one "ready" line, flushed: scripts wait for it."""
    sys.stdout.write(f"synccli proxy: Toxiproxy API on {url}\n")
    sys.stdout.flush()


async def _run(host: str, port: int, seed: int | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        stop.set()
        # A second Ctrl+C during shutdown falls back to the default: exit at once.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    await serve_forever(host, port, seed, stop, _announce)


@click.command("proxy")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for the API.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8474,
    show_default=True,
    help="API port (0 picks a free one).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for the toxicity dice, jitter and slicer splits (reproducible runs).",
)
@handle_errors
def proxy(host: str, port: int, seed: int | None) -> None:
    """Run an embedded proxy that speaks Toxiproxy's HTTP API (v2.12) until Ctrl+C.

    Point `synccli simulate --toxiproxy http://HOST:PORT` (or any Toxiproxy client) at it.
    Exits 0 on Ctrl+C/SIGTERM, 4 if the port cannot be bound.
    """
    asyncio.run(_run(host, port, seed))
