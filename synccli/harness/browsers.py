"""Browsers as clients of a run: headless Chromium pages on the live board.

``synccli simulate --browsers N`` opens N pages (clients ``b000``, ``b001``…) on the board
(``GET /?date=…&follow=…&history=1&client=…``), each through the same proxy group as the
simulated client of the same index, so the faults hit them alike. A page's client keeps
the history records of the Python client (synccli-client.js makes the same ones); the page
hands them over as they happen (a Playwright binding, ``window.synccliHistory``, one call
per batch) and they are written to the run's history under the page's client id, so the
checker treats a browser like any other client.

Page ``i`` plays the part of simulated client ``i``: the same proxy group, and it writes
when that client is a writer (``i % clients < writers``, with a rate). A writing page clicks
the board's transition buttons, really (Playwright's ``click``, which waits for the button
to be visible, enabled and hit), at the rate of a simulated writer (``rate / writers``)
capped at ``MAX_CLICK_RATE``, one write in flight at a time, on a row and an allowed
transition drawn from its own ``random.Random(page_seed(run seed, i))``. Its client records
the ``write`` / ``write_result`` / ``rollback`` records as the Python client does; the
``client`` record carries ``writer``, ``rate`` and ``seed``. At the end each page is drained
to the database heads, records its ``final`` rows and leaves a screenshot
``board-<client>.png`` in the run folder.

Playwright drives the machine's Chromium (``executable_path``); nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from synccli.errors import ConfigError, InfrastructureError
from synccli.history import ClientCreated, ErrorReceived, HistoryWriter, record_from_json

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Seen from the page: the board's client and whether it is at the heads.
_FINALS = "() => window.synccliBoard.client.finalRecords()"
_AT_HEADS = """(heads) => {
    const { client } = window.synccliBoard;
    return Object.entries(heads).every(([date, [epoch, seq]]) => {
        const p = client.position(date);
        return client.status(date) === "synced" && p !== null && p.epoch === epoch && p.seq >= seq;
    });
}"""

# The buttons a writing page may click now: none unless connected, synced and with no
# write of its own in flight (one at a time, as a simulated writer).
_CHOICES = """(date) => {
    const { client } = window.synccliBoard;
    if (!client.connected || client.status(date) !== "synced" || client.session.pending.size) {
        return [];
    }
    const choices = [];
    for (const tr of document.querySelectorAll("#rows tr")) {
        const targets = [...tr.querySelectorAll("button[data-target]:not(:disabled)")]
            .map((button) => button.dataset.target);
        if (targets.length) choices.push([tr.dataset.id, targets]);
    }
    return choices;
}"""
_PENDING = "() => window.synccliBoard.client.session.pending.size"
#: Clicks per second of one page at most: each is a Playwright round trip and a repaint.
MAX_CLICK_RATE = 2.0
#: How long a click may wait for its button (it may re-render under the cursor).
CLICK_TIMEOUT_S = 2.0

Heads = Callable[[], Awaitable[dict[str, tuple[str, int]] | None]]


def browsers_unavailable(chromium: str = CHROMIUM) -> str | None:
    """Why browsers cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "browser clients need Playwright: pip install 'synccli[browser]'"
    if not Path(chromium).exists():
        return f"browser clients need Chromium at {chromium}: apt-get install chromium"
    return None


def client_id(index: int) -> str:
    return f"b{index:03d}"


def page_seed(run_seed: int, index: int) -> int:
    """A 63-bit seed for page ``index``'s choices, from the run seed (stable everywhere)."""
    digest = hashlib.sha256(f"{run_seed}/{client_id(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True, slots=True)
class BrowserConfig:
    """N pages on the board: page ``i`` reaches the server through ``urls[i % len(urls)]``."""

    count: int
    urls: tuple[str, ...]
    dates: tuple[str, ...]
    run_dir: Path
    token: str | None = None
    #: Per-client tokens (``--jwt``/``--tls``): the page's client id -> its own token.
    mint: Callable[[str], str] | None = None
    chromium: str = CHROMIUM
    load_timeout_s: float = 20.0
    #: The run's simulated clients and writers, and their total write rate: page ``i``
    #: writes when simulated client ``i % clients`` does.
    clients: int = 0
    writers: int = 0
    rate: float = 0.0
    seed: int = 0

    def click_rate(self, index: int) -> float:
        """Clicks per second of page ``index`` (0: it only reads)."""
        if self.clients == 0 or self.rate <= 0 or index % self.clients >= self.writers:
            return 0.0
        return min(MAX_CLICK_RATE, self.rate / self.writers)

    def page_url(self, index: int) -> str:
        """The board's URL for page ``index`` (HTTP on the same host and port as its socket)."""
        parts = urlsplit(self.urls[index % len(self.urls)])
        scheme = "https" if parts.scheme == "wss" else "http"
        query = {"date": self.dates[0], "history": "1", "client": client_id(index)}
        if len(self.dates) > 1:
            query["follow"] = ",".join(self.dates[1:])
        token = self.mint(client_id(index)) if self.mint is not None else self.token
        if token is not None:
            query["token"] = token
        return f"{scheme}://{parts.netloc}/?{urlencode(query)}"


class BrowserFleet:
    """The pages of one run: ``start``, then ``drain`` and ``close`` once faults are healed."""

    def __init__(self, config: BrowserConfig, history: HistoryWriter) -> None:
        self.config = config
        self.history = history
        self._playwright: Any = None
        self._browser: Any = None
        self._pages: list[Any] = []
        self._clickers: list[asyncio.Task[None]] = []
        self._writing = asyncio.Event()

    async def start(self) -> None:
        """Launch Chromium and open every page; raises ``InfrastructureError`` if it cannot."""
        reason = browsers_unavailable(self.config.chromium)
        if reason is not None:
            raise InfrastructureError(reason)
        from playwright.async_api import Error, async_playwright

        try:
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.config.chromium, args=list(CHROMIUM_ARGS)
            )
            for index in range(self.config.count):
                await self._open(index)
        except Error as exc:
            raise InfrastructureError(f"Chromium could not open the board: {exc.message}") from None

    async def _open(self, index: int) -> None:
        url = self.config.page_url(index)
        rate = self.config.click_rate(index)
        record = ClientCreated(
            seed=page_seed(self.config.seed, index) if rate else None,
            url=url.split("?")[0],
            writer=rate > 0,
            rate=rate,
            dates=list(self.config.dates),
            browser=True,
        )
        self.history.write(client_id(index), record)
        # With --tls the run's own throwaway CA signed the server's certificate.
        tls = url.startswith("https:")
        context = await self._browser.new_context(
            viewport={"width": 1280, "height": 800}, ignore_https_errors=tls
        )
        context.set_default_timeout(self.config.load_timeout_s * 1000)
        name = client_id(index)

        def sink(_source: Any, records: list[dict[str, Any]]) -> None:
            self._write(name, records)

        await context.expose_binding("synccliHistory", sink)
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_function("() => window.synccliBoard !== undefined")
        self._pages.append(page)

    def _write(self, name: str, records: list[dict[str, Any]]) -> None:
        """The page's records, in the history's vocabulary. One that does not follow it (a
        bug in synccli-client.js) is kept as an ``error`` record naming the problem."""
        for data in records:
            try:
                record = record_from_json(data)
            except ConfigError as exc:
                record = ErrorReceived(code="bad_record", message=str(exc))
            self.history.write(name, record)

    def start_writing(self) -> None:
        """Start the clicks of every writing page (the load has begun)."""
        self._writing.set()
        for index, page in enumerate(self._pages):
            rate = self.config.click_rate(index)
            if rate > 0:
                rng = random.Random(page_seed(self.config.seed, index))
                self._clickers.append(asyncio.create_task(self._click_loop(page, rng, rate)))

    async def stop_writing(self, timeout_s: float) -> bool:
        """Stop clicking, then wait (bounded) until no page has a write in flight, so the
        drain's heads include every page's writes; whether they all got answered."""
        self._writing.clear()
        for task in self._clickers:
            task.cancel()
        for task in self._clickers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._clickers.clear()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = [await page.evaluate(_PENDING) for page in self._pages]
            if not any(pending):
                return True
            await asyncio.sleep(0.2)
        return False

    async def _click_loop(self, page: Any, rng: random.Random, rate: float) -> None:
        """Click an allowed transition about ``rate`` times a second (never faster; after a
        stall the next click waits its turn instead of bursting)."""
        from playwright.async_api import Error

        interval = 1.0 / rate
        next_at = time.monotonic() + rng.uniform(0, interval)
        date = self.config.dates[0]
        while self._writing.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic())
            try:
                choices = await page.evaluate(_CHOICES, date)
                if not choices:
                    continue
                appointment_id, targets = rng.choice(sorted(choices))
                target = rng.choice(targets)
                button = f'#rows tr[data-id="{appointment_id}"] button[data-target="{target}"]'
                await page.locator(button).click(timeout=CLICK_TIMEOUT_S * 1000)
            except Error:
                # The row changed under the cursor (an event, a rollback): the button is
                # gone or disabled; the next turn picks again.
                continue

    async def drain(self, heads: Heads, timeout_s: float) -> bool:
        """Wait until every page is synced at the database heads; whether they all got there."""
        deadline = time.monotonic() + timeout_s
        target = await heads()
        while target is not None and time.monotonic() < deadline:
            reached = [await page.evaluate(_AT_HEADS, target) for page in self._pages]
            if all(reached):
                return True
            await asyncio.sleep(0.2)
            target = await heads()
        return target is None

    async def close(self) -> None:
        """Final records and a screenshot per page, then close Chromium; idempotent."""
        await self.stop_writing(0)
        for index, page in enumerate(self._pages):
            # The last batch is handed over on the page's next turn: let it arrive first.
            await page.evaluate("() => new Promise((done) => setTimeout(done, 0))")
            self._write(client_id(index), await page.evaluate(_FINALS))
            path = self.config.run_dir / f"board-{client_id(index)}.png"
            await page.screenshot(path=str(path), full_page=True)
        self._pages.clear()
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
