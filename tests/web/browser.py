"""Real headless Chromium on the live board: the system's Chromium through Playwright.

Nothing is downloaded: Playwright drives ``/usr/bin/chromium``. Without it (or without the
``playwright`` package) the tests skip with the reason, and fail under ``CI=true``.
Screenshots go to ``$SYNCCLI_TEST_ARTIFACTS`` (default ``reports/test-artifacts``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synccli.faults.proxy.server import start_in_thread
from synccli.faults.toxiproxy import ToxiproxyFaults
from synccli.harness.browsers import CHROMIUM, CHROMIUM_ARGS, browsers_unavailable
from synccli.store import open_store
from tests.conftest import require, seconds
from tests.server.helpers import ServerProcess

DATE = "2026-11-26"
APPOINTMENTS = 10
XSS_NAME = "<img src=x onerror=alert(1)>"
# Every page passes the server's token on with ``?token=``, as a browser must.
TOKEN = "board-token"
ARTIFACTS = Path(os.environ.get("SYNCCLI_TEST_ARTIFACTS", "reports/test-artifacts"))


def ms(value: float) -> float:
    """``value`` seconds, scaled, in Playwright's milliseconds."""
    return seconds(value) * 1000


def appt(n: int) -> str:
    return f"{DATE}-{n:04d}"


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Any]:
    """One Chromium for the module (a new context per page keeps their storage apart)."""
    reason = browsers_unavailable()
    require(reason is None, str(reason))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Board:
    """A server process on a seeded SQLite file; restartable on the same port."""

    db: str
    process: ServerProcess
    extra: tuple[str, ...]

    @property
    def ws_url(self) -> str:
        return self.process.url

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return self.ws_url.removeprefix("ws://").removesuffix("/ws")

    def page_url(self, address: str | None = None, token: str | None = TOKEN) -> str:
        url = f"http://{address or self.address}/?date={DATE}&history=1"
        return url if token is None else f"{url}&token={token}"

    def restart(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self.process = ServerProcess(self.db, "--port", port, *self.extra)

    def truth(self) -> tuple[tuple[str, int], dict[str, tuple[int, str]]]:
        """The database's position and rows (version, state) of the day."""
        store = open_store(self.db)
        try:
            channel, rows = store.snapshot(DATE)
        finally:
            store.close()
        by_id = {row.appointment_id: (row.version, row.state) for row in rows}
        return (channel.epoch, channel.head_seq), by_id


@pytest.fixture(name="board")
def board_fixture(tmp_path: Path) -> Iterator[Board]:
    path = tmp_path / "board.db"
    url = f"sqlite:///{path}"
    store = open_store(url)
    store.init_schema()
    store.seed(DATE, APPOINTMENTS)
    store.close()
    with sqlite3.connect(path) as db:
        rename = "UPDATE appointments SET patient = ? WHERE appointment_id = ?"
        db.execute(rename, (XSS_NAME, appt(1)))
    extra = ("--fault-hooks", "--heartbeat", str(seconds(1)), "--token", TOKEN)
    server = Board(url, ServerProcess(url, *extra), extra)
    try:
        yield server
    finally:
        if server.process.proc.poll() is None:
            server.process.kill()


@dataclass
class Proxied:
    """The board's server behind one proxy of the embedded Toxiproxy-compatible proxy."""

    faults: ToxiproxyFaults
    listen: str


@pytest.fixture(name="proxied")
def proxied_fixture(board: Board) -> Iterator[Proxied]:
    handle = start_in_thread(seed=11)
    faults = ToxiproxyFaults(handle.url, prefix="web")
    try:
        (listen,) = faults.create_proxies(board.address, 1)
        yield Proxied(faults, listen)
    finally:
        faults.destroy()
        handle.stop()


def open_page(browser: Any, url: str, width: int = 1280, height: int = 800) -> Any:
    """A page in its own context (its own sessionStorage), synced on the board."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(ms(10))
    page = context.new_page()
    page.goto(url)
    wait_synced(page)
    return page


def wait_synced(page: Any, seq: int | None = None, timeout: float = 10) -> None:
    """Until the page's channel is synced (at ``seq`` or beyond, when given)."""
    page.wait_for_function(
        """([date, seq]) => {
            const b = window.synccliBoard;
            const p = b && b.client.position(date);
            return b && b.client.status(date) === "synced" && p !== null
                && (seq === null || p.seq >= seq);
        }""",
        arg=[DATE, seq],
        timeout=ms(timeout),
    )


def page_state(page: Any) -> dict[str, Any]:
    """What the page's client holds, and what its table shows."""
    result: dict[str, Any] = page.evaluate(
        """(date) => {
            const b = window.synccliBoard;
            const shown = {};
            for (const tr of document.querySelectorAll("#rows tr")) {
                shown[tr.dataset.id] = tr.dataset.state;
            }
            const rows = {};
            for (const { row } of b.client.rows(date)) {
                rows[row.appointmentId] = [row.version, row.state];
            }
            return {
                position: b.client.position(date),
                rows,
                shown,
                records: b.records,
            };
        }""",
        DATE,
    )
    return result


def write_many(page: Any, count: int) -> list[dict[str, Any]]:
    """``count`` writes through the page's client, one at a time, each a valid transition."""
    outcomes: list[dict[str, Any]] = page.evaluate(
        """async ([date, count]) => {
            const { client } = window.synccliBoard;
            const { allowedTargets } = await import("/client.js");
            const outcomes = [];
            for (let i = 0; i < count; i++) {
                const rows = client.rows(date);
                const { row, state } = rows[i % rows.length];
                outcomes.push(await client.write(row.appointmentId, allowedTargets(state)[0]));
            }
            return outcomes;
        }""",
        [DATE, count],
    )
    return outcomes
