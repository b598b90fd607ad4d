"""The report's timeline: one shaded, labelled window per fault, latency bands, markers,
client lanes (aggregated for 1,000 clients) and anomalies linked to their client's records;
and a screenshot of it in headless Chromium, saved under the test artifacts."""

from __future__ import annotations

import os
import re
from pathlib import Path

from synccli.report import check_run, render_html, write_outputs
from synccli.report.summary import Summary
from tests.conftest import require
from tests.report.builders import BASE_W, Run
from tests.report.test_recovery import _offline_run

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get(
        "SYNCCLI_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "reports" / "test-artifacts"
    )
)


def _two_fault_run() -> Run:
    """The offline run, a second fault, and a client that loses seq 45 near it."""
    run = _offline_run()
    run.fault("start", BASE_W + 4.4, name="slow-link", kind="latency")
    run.fault("end", BASE_W + 4.8, name="slow-link", kind="latency")
    run.connect("c003", BASE_W)
    run.subscribed("c003", 0, w=BASE_W + 0.01)
    run.apply("c003", *range(1, 45))
    run.rec("c003", "gap", BASE_W + 4.7, date=run.date, have=44, got=46)
    run.apply("c003", *range(46, 61))
    run.final("c003", seq=60)
    return run


def _fault_windows(page: str) -> list[str]:
    return re.findall(r'<rect class="fault-window[^"]*" data-fault="([^"]*)"', page)


def test_report_html_shades_and_labels_one_window_per_fault(tmp_path: Path) -> None:
    folder = _two_fault_run().write(tmp_path / "run")
    summary = check_run(folder)
    write_outputs(folder, summary)
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert len(summary.faults) == 2 and '<svg id="timeline"' in page
    assert _fault_windows(page) == ["offline", "slow-link"]
    assert re.search(r'class="fault-label"[^>]*>offline<', page)
    assert re.search(r'class="fault-label"[^>]*>slow-link<', page)


def test_latency_bands_markers_and_lanes() -> None:
    page = render_html(_two_fault_run().summary())
    svg = page[page.index('<svg id="timeline"') : page.index("</svg>")]
    assert '<polyline class="p50"' in svg and '<polyline class="p99"' in svg
    assert svg.count('<polygon class="band"') == 1
    assert svg.count('class="bin"') >= 6  # one per second with applies
    assert "reconnects (1)" in svg and 'class="marker reconnect"' in svg
    for client in ("c001", "c002", "c003"):
        assert f"<title>{client} connected" in svg
    assert "<title>c002 offline 3.0-6.0 s</title>" in svg


def test_each_anomaly_links_to_its_clients_records_around_it() -> None:
    summary = _two_fault_run().summary()
    kinds = [(a["kind"], a["client"], a["seq"]) for a in summary.anomalies]
    assert kinds == [("out_of_order", "c003", 46), ("lost", "c003", 45)]
    page = render_html(summary)
    for i in (0, 1):
        assert page.count(f'href="#anomaly-{i}"') == 2  # from the timeline and the table
    section = page[page.index('<section class="excerpt" id="anomaly-1">') :]
    section = section[: section.index("</section>")]
    assert "record of c003" in section
    assert "&quot;k&quot;: &quot;gap&quot;" in section  # the gap it opened, 0.2 s later
    assert "&quot;seq&quot;: 44" in section and "&quot;seq&quot;: 46" in section
    assert "c001" not in section and "c002" not in section


def _crowd(clients: int) -> Summary:
    run = Run()
    run.commit(50)
    run.fault("start", BASE_W + 1.0, name="offline")
    run.fault("end", BASE_W + 3.0, name="offline")
    for i in range(clients):
        client = f"c{i:04d}"
        run.connect(client, BASE_W)
        run.subscribed(client, 0, w=BASE_W + 0.01)
        if i % 3 == 0:
            run.apply(client, *range(1, 10))
            run.rec(client, "disconnect", BASE_W + 0.95, code=1006, reason="")
            run.connect(client, BASE_W + 3.5)
            run.subscribed(client, 49, w=BASE_W + 3.5, recovered=True, events=40)
            for seq in range(10, 50):
                run.apply(client, seq, delay=BASE_W + 3.51 - run.commit_w[seq], replay=True)
            run.apply(client, 50)
        else:
            run.apply(client, *range(1, 51))
        run.final(client)
    return run.summary()


def test_a_thousand_clients_draw_as_aggregated_lanes() -> None:
    summary = _crowd(1000)
    page = render_html(summary)
    svg = page[page.index('<svg id="timeline"') : page.index("</svg>")]
    assert 'class="lane ' not in svg and 'class="share offline"' in svg
    assert "clients by state (1000)" in svg
    assert len(svg) < 200_000
    # At 2 s, a third of the clients were offline.
    assert "<title>2 s: 334 offline</title>" in svg


def test_screenshot_of_the_timeline_in_chromium(tmp_path: Path) -> None:
    require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright for Python is not installed (pip install playwright)")
        raise
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(_two_fault_run().summary()), encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "timeline.png"
    shot.unlink(missing_ok=True)  # never look at an older run's picture
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_file.as_uri())
            timeline = page.locator("#timeline")
            timeline.screenshot(path=str(shot))
            widths = page.eval_on_selector_all(
                ".fault-window", "els => els.map(e => e.getBoundingClientRect().width)"
            )
            box = timeline.bounding_box()
        finally:
            browser.close()
    assert len(widths) == 2 and all(w > 5 for w in widths)
    assert box is not None and box["width"] >= 1000 and box["height"] > 200
    assert shot.stat().st_size > 10_000
    print(f"timeline screenshot: {shot}")
