"""The live board in headless Chromium under a stream of events, against a bare page that
receives the same stream, in the same run.

    python benchmarks/board_browser.py                       # 1000 appointments, 100 events/s
    python benchmarks/board_browser.py --seconds 20 --repeats 3

A real ``synccli serve`` on a fresh SQLite file with ``--appointments`` rows on one date; a
writer connection changes them at ``--rate`` writes per second (check in, then undo, row
after row), so every page gets ``--rate`` ``appointments_updated`` frames per second.
Measured inside each page (an init script, the same for both):

* **apply → DOM**: ``performance.now()`` when the frame arrives (a ``message`` listener the
  page's own handler runs after) to the moment a ``MutationObserver`` sees the row of that
  appointment show the event's state (``data-state``);
* **long tasks**: ``PerformanceObserver('longtask')`` during the stream, and during the page
  load (the first render of every row) apart.

Pages: ``board`` is ``GET /?date=…`` (synccli-client.js and board.js); ``bare`` is a page
(from a loopback HTTP server of its own) whose socket subscribes, ``JSON.parse``s each
frame, acks it and sets ``data-state`` and ``textContent`` of one node: the floor for
Chromium, the socket and the observer. The two run one after the other on the same server,
``--repeats`` times; the table gives the median of each column over the repeats (max for
the long tasks), and the main thread's script, style and layout time per second of stream
(CDP ``Performance.getMetrics``). Targets: board p99 < 50 ms and no long task over 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate
from websockets.asyncio.client import ClientConnection, connect

from synccli.harness.browsers import CHROMIUM, CHROMIUM_ARGS, browsers_unavailable
from synccli.harness.server_process import ServerProcess, free_port
from synccli.protocol.client_id import with_client_id
from synccli.store import open_store

TOKEN = "bench-token"
DATE = datetime.now(UTC).date().isoformat()
BARE_PATH = "/bench-bare"

# Installed in every page before its scripts run: the frame arrival times, the DOM updates
# that show them, and the long tasks.
INSTRUMENT = r"""
(() => {
  const arrivals = new Map();
  const bench = { latencies: [], longTasks: [], frames: 0, matched: 0 };
  window.__bench = bench;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) bench.longTasks.push(entry.duration);
  }).observe({ type: "longtask", buffered: true });
  const ID = /"appointmentId":"([^"]*)"/;
  const STATE = /"state":"([A-Za-z]+)"/;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      // Registered before the page sets onmessage, so it runs first.
      this.addEventListener("message", (event) => {
        const t0 = performance.now();
        const text = event.data;
        if (typeof text !== "string" || !text.includes('"type":"appointments_updated"')) return;
        const id = ID.exec(text)?.[1];
        const state = STATE.exec(text)?.[1];
        if (!id || !state) return;
        bench.frames += 1;
        if (!arrivals.has(id)) arrivals.set(id, []);
        arrivals.get(id).push([t0, state]);
      });
    }
  };
  const observer = new MutationObserver((mutations) => {
    const t1 = performance.now();
    for (const mutation of mutations) {
      const node = mutation.target;
      const waiting = arrivals.get(node.dataset.id);
      if (!waiting) continue;
      const shown = node.dataset.state;
      const last = waiting.findLastIndex(([, state]) => state === shown);
      if (last < 0) continue;
      for (const [t0] of waiting.splice(0, last + 1)) bench.latencies.push(t1 - t0);
      bench.matched = bench.latencies.length;
    }
  });
  const watch = () => observer.observe(document.getElementById("rows"), {
    subtree: true, attributes: true, attributeFilter: ["data-state"],
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
  bench.reset = () => {
    bench.latencies.length = 0;
    bench.longTasks.length = 0;
    bench.frames = 0;
    bench.matched = 0;
    arrivals.clear();
  };
})();
"""

BARE_PAGE = """<!doctype html><meta charset="utf-8"><title>bare</title>
<table><tbody id="rows"><tr id="one"><td>-</td></tr></tbody></table>
<script>
const date = %(date)s;
const one = document.getElementById("one");
const ws = new WebSocket(`%(ws)s?client=bench-bare&token=%(token)s`);
ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", date }));
ws.onmessage = (event) => {
  const m = JSON.parse(event.data);
  if (m.type === "subscribed") window.__ready = true;
  if (m.type !== "appointments_updated") return;
  one.dataset.id = m.appointment.appointmentId;
  one.dataset.state = m.appointment.state;
  one.firstChild.textContent = `${m.appointment.patient}: ${m.appointment.state}`;
  ws.send(JSON.stringify({ type: "ack", date, sequenceNum: m.sequenceNum, epoch: m.epoch }));
};
</script>"""

#: Chromium's main-thread counters (CDP ``Performance.getMetrics``), as table columns.
BUSY = {"ScriptDuration": "script", "RecalcStyleDuration": "style", "LayoutDuration": "layout"}

READY = {
    "board": """([date, count]) => {
        const b = window.synccliBoard;
        return b !== undefined && b.client.status(date) === "synced"
            && document.querySelectorAll("#rows tr").length === count;
    }""",
    "bare": "() => window.__ready === true",
}


@dataclass
class Sample:
    page: str
    p50: float
    p90: float
    p99: float
    max: float
    frames: int
    matched: int
    written: int
    long_tasks: list[float]
    load_long_tasks: list[float]
    #: Milliseconds per second of stream in each of ``BUSY``.
    busy: dict[str, float]


def nearest_rank(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


async def write_stream(
    url: str, appointments: int, rate: float, seconds: float, round_: int
) -> int:
    """``rate`` state changes a second for ``seconds``; returns how many were confirmed.
    Rows are checked in on one pass and undone on the next, counted over every round, so
    every write is an allowed transition from the row's state."""
    count = int(rate * seconds)
    answers: list[bool] = []
    done = asyncio.Event()

    async def read(ws: ClientConnection) -> None:
        async for frame in ws:
            message = json.loads(frame)
            if message.get("type") == "result":
                answers.append(bool(message.get("ok")))
                if len(answers) == count:
                    done.set()

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with connect(with_client_id(url, "bench-writer"), additional_headers=headers) as ws:
        reader = asyncio.create_task(read(ws))
        started = time.monotonic()
        for k in range(count):
            await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
            written = round_ * count + k
            message = {
                "type": "update_appointment_state",
                "requestId": f"w{round_}-{k}",
                "appointmentId": f"{DATE}-{written % appointments + 1:04d}",
                "state": "Scheduled" if written // appointments % 2 else "Present",
            }
            await ws.send(json.dumps(message))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 10)
        reader.cancel()
    return sum(answers)


def serve_bare(ws_url: str) -> tuple[ThreadingHTTPServer, str]:
    """The bare page, from its own loopback HTTP server (a page Chromium considers local,
    as the board is, so its socket to the loopback server is allowed)."""
    body = (BARE_PAGE % {"date": json.dumps(DATE), "ws": ws_url, "token": TOKEN}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}{BARE_PATH}"


async def measure(
    browser: Any, server: ServerProcess, bare_url: str, kind: str, args: Options, round_: int
) -> Sample:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.add_init_script(INSTRUMENT)
    page = await context.new_page()
    url = f"{server.http_base}/?date={DATE}&token={TOKEN}&client=bench-board"
    await page.goto(url if kind == "board" else bare_url)
    await page.wait_for_function(READY[kind], arg=[DATE, args.appointments], timeout=60_000)
    await asyncio.sleep(1.0)  # the first render's long task is reported by now
    load_long = await page.evaluate("() => window.__bench.longTasks.slice()")
    cdp = await context.new_cdp_session(page)
    await cdp.send("Performance.enable")
    before = await main_thread_times(cdp)
    await page.evaluate("() => window.__bench.reset()")
    written = await write_stream(server.ws_url, args.appointments, args.rate, args.seconds, round_)
    after = await main_thread_times(cdp)
    busy = {k: (after[k] - before[k]) * 1000 / args.seconds for k in after}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = await page.evaluate("() => [window.__bench.frames, window.__bench.matched]")
        if state[0] > 0 and state[0] == state[1]:
            break
        await asyncio.sleep(0.1)
    data = await page.evaluate(
        "() => ({lat: window.__bench.latencies, long: window.__bench.longTasks,"
        " frames: window.__bench.frames, matched: window.__bench.matched})"
    )
    await context.close()
    ordered = sorted(data["lat"])
    return Sample(
        kind,
        nearest_rank(ordered, 0.5),
        nearest_rank(ordered, 0.9),
        nearest_rank(ordered, 0.99),
        ordered[-1] if ordered else float("nan"),
        data["frames"],
        data["matched"],
        written,
        data["long"],
        load_long,
        busy,
    )


async def main_thread_times(cdp: Any) -> dict[str, float]:
    """Seconds the page's main thread has spent in script, style and layout so far."""
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    return {name: metrics[name] for name in BUSY}


@dataclass
class Options:
    """The command line."""

    appointments: int
    rate: float
    seconds: float
    repeats: int


async def run(options: Options) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'board.db'}"
        store = open_store(db)
        store.init_schema()
        store.seed(DATE, options.appointments)
        store.close()
        server = ServerProcess(db, "127.0.0.1", free_port(), Path(tmp) / "serve.log", (), TOKEN)
        await server.start()
        httpd, bare_url = serve_bare(server.ws_url)
        samples: list[Sample] = []
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=list(CHROMIUM_ARGS)
                )
                round_ = 0
                for _ in range(options.repeats):
                    for kind in ("board", "bare"):
                        sample = await measure(browser, server, bare_url, kind, options, round_)
                        samples.append(sample)
                        round_ += 1
                await browser.close()
        finally:
            httpd.shutdown()
            await server.stop()
    report(samples, options)


def report(samples: list[Sample], options: Options) -> None:
    rows = []
    p99: dict[str, float] = {}
    by_kind: dict[str, list[Sample]] = {}
    for sample in samples:
        by_kind.setdefault(sample.page, []).append(sample)
    for kind in ("bare", "board"):
        group = by_kind[kind]
        stream_long = [d for s in group for d in s.long_tasks]
        load_long = [d for s in group for d in s.load_long_tasks]
        p99[kind] = round(statistics.median(s.p99 for s in group), 2)
        rows.append(
            [
                kind,
                round(statistics.median(s.p50 for s in group), 2),
                round(statistics.median(s.p90 for s in group), 2),
                p99[kind],
                round(max(s.max for s in group), 1),
                f"{sum(s.matched for s in group)}/{sum(s.frames for s in group)}"
                f"/{sum(s.written for s in group)}",
                sum(1 for d in stream_long if d > 100),
                round(max(stream_long, default=0.0), 1),
                round(max(load_long, default=0.0), 1),
                *(round(statistics.median(s.busy[k] for s in group), 1) for k in BUSY),
            ]
        )
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{options.appointments} appointments, {options.rate:g} events/s for "
        f"{options.seconds:g} s, {options.repeats} repeat(s); load average {load}"
    )
    headers = [
        "page",
        "apply→DOM p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "shown/frames/writes",
        "long tasks >100 ms",
        "longest task ms",
        "longest at load ms",
        *(f"{label} ms/s" for label in BUSY.values()),
    ]
    print(tabulate(rows, headers=headers))
    ratio = p99["board"] / p99["bare"]
    print(f"board/bare p99: {ratio:.1f}x; target board p99 < 50 ms, no task > 100 ms")


@click.command()
@click.option("--appointments", default=1000, show_default=True)
@click.option("--rate", default=100.0, show_default=True, help="Events per second.")
@click.option("--seconds", default=10.0, show_default=True, help="Stream length per page.")
@click.option("--repeats", default=1, show_default=True)
def main(appointments: int, rate: float, seconds: float, repeats: int) -> None:
    """Apply → DOM latency and long tasks of the board against a bare page."""
    reason = browsers_unavailable()
    if reason is not None:
        raise click.ClickException(reason)
    asyncio.run(run(Options(appointments, rate, seconds, repeats)))


if __name__ == "__main__":
    main()
