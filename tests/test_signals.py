"""``stop_on_signals`` in a real process: the first signal asks for a stop, a second one
while stopping forces exit 130; the handlers go away with the block."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import seconds

# Stops on the first signal, then (with --stuck) hangs in its "shutdown" until a second one.
PROGRAM = textwrap.dedent(
    """
    import asyncio, signal, sys
    from synccli.signals import stop_on_signals

    async def main(stuck: bool) -> None:
        stop = asyncio.Event()
        with stop_on_signals(
            stop, on_stop=lambda: print("stopping", flush=True),
            on_force=lambda: print("forced", flush=True),
        ):
            print("ready", flush=True)
            await stop.wait()
            if stuck:
                await asyncio.Event().wait()
        handler = signal.getsignal(signal.SIGINT)
        print("restored" if handler is signal.default_int_handler else handler, flush=True)

    asyncio.run(main("--stuck" in sys.argv))
    """
)


def _start(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_stops_cleanly_and_handlers_are_removed(signum: int) -> None:
    process = _start()
    try:
        process.send_signal(signum)
        out, _ = process.communicate(timeout=seconds(10))
    finally:
        process.kill()
    assert process.returncode == 0
    assert out.splitlines() == ["stopping", "restored"]


def test_second_signal_while_stopping_forces_exit_130() -> None:
    process = _start("--stuck")
    try:
        assert process.stdout is not None
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline() == "stopping\n"
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=seconds(10))
    finally:
        process.kill()
    assert process.returncode == 130
    assert out.splitlines() == ["forced"]
