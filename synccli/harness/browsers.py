"""Browsers as clients of a run: headless Chromium pages on the live board.

``synccli simulate --browsers N`` opens N pages (clients ``b000``, ``b001``…) on the board
(``GET /?date=…&follow=…&history=1&client=…``), each through the same proxy group as the
simulated client of the same index, so the faults hit them alike. A page's client keeps
the history records of the Python client (synccli-client.js makes the same ones); the page
hands them over as they happen (a Playwright binding, ``window.synccliHistory``, one call
per batch) and they are written to the run's history under the page's client id, so the
checker treats a browser like any other client. The pages
only read (the simulated writers write). At the end each page is drained to the database
heads, records its ``final`` rows and leaves a screenshot ``board-<client>.png`` in the run
folder.

Playwright drives the machine's Chromium (``executable_path``); nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import importlib.util
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
        record = ClientCreated(url=url.split("?")[0], dates=list(self.config.dates), browser=True)
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
