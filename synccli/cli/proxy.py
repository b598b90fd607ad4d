"""``synccli proxy``: run the embedded Toxiproxy-compatible proxy until Ctrl+C."""

from __future__ import annotations

import asyncio
import sys

import click

from synccli.cli.common import examples, handle_errors, option
from synccli.faults.proxy import serve_forever
from synccli.signals import stop_on_signals


def _announce(url: str) -> None:
    """The one "ready" line, flushed: scripts wait for it."""
    sys.stdout.write(f"synccli proxy: Toxiproxy API on {url}\n")
    sys.stdout.flush()


async def _run(host: str, port: int, seed: int | None) -> None:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await serve_forever(host, port, seed, stop, _announce)


@click.command(
    "proxy",
    epilog=examples(
        "synccli proxy",
        "synccli proxy -p 0 --seed 7",
        "synccli proxy & synccli simulate --toxiproxy http://127.0.0.1:8474",
    ),
)
@option("--host", default="127.0.0.1", show_default=True, help="Interface for the API.")
@option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=8474,
    show_default=True,
    help="API port (0 picks a free one).",
)
@option(
    "--seed",
    type=int,
    default=None,
    help="Seed for the toxicity dice, jitter and slicer splits (reproducible runs).",
)
@handle_errors
def proxy(host: str, port: int, seed: int | None) -> None:
    """Run the embedded Toxiproxy-compatible proxy.

    It speaks Toxiproxy's HTTP API (v2.12) until Ctrl+C. Point `synccli simulate
    --toxiproxy http://HOST:PORT` (or any Toxiproxy client) at it. Exits 0 on
    Ctrl+C/SIGTERM (a second one forces exit), 4 if the port cannot be bound.
    """
    asyncio.run(_run(host, port, seed))
