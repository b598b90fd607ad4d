"""The live board in real headless Chromium, against a real server process, under faults.

Pages load the board from the server (or through the embedded Toxiproxy-compatible proxy,
driven with toxiproxy-python) with ``?history=1``, so each page keeps the client's history
records; the database is the truth every page is compared with.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from synccli.store import open_store
from tests.conftest import SYNCCLI, seconds
from tests.web.browser import (
    ARTIFACTS,
    DATE,
    TOKEN,
    XSS_NAME,
    Board,
    Proxied,
    appt,
    ms,
    open_page,
    page_state,
    wait_synced,
    write_many,
)

pytestmark = pytest.mark.slow


def row(page: Any, n: int) -> Any:
    return page.locator(f'#rows tr[data-id="{appt(n)}"]')


def assert_matches_database(page: Any, board: Board) -> list[int]:
    """The page shows exactly the database's board; returns the seqs it applied."""
    (epoch, head), truth = board.truth()
    wait_synced(page, head)
    state = page_state(page)
    assert state["position"] == {"epoch": epoch, "seq": head}
    assert state["rows"] == {aid: list(v) for aid, v in truth.items()}
    assert state["shown"] == {aid: v[1] for aid, v in truth.items()}
    applied = [r["seq"] for r in state["records"] if r["k"] == "apply"]
    assert applied == sorted(set(applied)), "an event applied twice or out of order"
    return applied


def test_a_check_in_on_one_page_shows_on_the_other(browser: Any, board: Board) -> None:
    one = open_page(browser, board.page_url())
    other = open_page(browser, board.page_url())
    assert row(other, 2).get_attribute("data-state") == "Scheduled"
    one.get_by_role("button", name="Check in: Patient 0002").click()
    row(other, 2).and_(other.locator('[data-state="Present"]')).wait_for(timeout=ms(5))
    assert board.truth()[1][appt(2)] == (2, "Present")
    other.get_by_role("button", name="Seat: Patient 0002").focus()
    other.keyboard.press("Enter")
    row(one, 2).and_(one.locator('[data-state="Seated"]')).wait_for(timeout=ms(5))
    assert_matches_database(one, board)
    assert_matches_database(other, board)


def test_a_click_is_logged_with_the_page_as_the_actor(browser: Any, board: Board) -> None:
    """The page's client id (``&client=``) reaches the server as ``?client=`` and names who
    made the change in ``synccli events``."""
    page = open_page(browser, f"{board.page_url()}&client=front-desk-1")
    page.get_by_role("button", name="Check in: Patient 0003").click()
    row(page, 3).and_(page.locator('[data-state="Present"]:not([aria-busy="true"])')).wait_for(
        timeout=ms(5)
    )
    done = subprocess.run(
        [*SYNCCLI, "events", DATE, "--db", board.db, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=seconds(30),
    )
    assert done.returncode == 0, done.stderr
    (event,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert event["appointmentId"] == appt(3)
    assert event["actor"] == "front-desk-1"
    assert event["requestId"].startswith("front-desk-1-")


def test_a_day_longer_than_one_render_turn_shows_every_row_in_order(
    browser: Any, board: Board
) -> None:
    """The first render makes rows a few dozen per turn; all of them end up, in order."""
    store = open_store(board.db)
    try:
        store.seed(DATE, 130)
    finally:
        store.close()
    page = open_page(browser, board.page_url())
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 130")
    ids = page.eval_on_selector_all("#rows tr", "(rows) => rows.map((tr) => tr.dataset.id)")
    assert ids == [appt(n) for n in range(1, 131)]
    page.get_by_role("button", name="Check in: Patient 0125").click()
    row(page, 125).and_(page.locator('[data-state="Present"]')).wait_for(timeout=ms(5))
    assert board.truth()[1][appt(125)] == (2, "Present")


def test_a_page_without_the_token_never_syncs(browser: Any, board: Board) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(board.page_url(token=None))
    page.locator("#banner").wait_for(state="visible", timeout=ms(5))
    assert page.locator("#badge").get_attribute("data-status") == "syncing"
    assert page.locator("#rows tr").count() == 0
    context.close()


def test_a_page_cut_off_catches_up_exactly(browser: Any, board: Board, proxied: Proxied) -> None:
    cut = open_page(browser, board.page_url(proxied.listen))
    writer = open_page(browser, board.page_url())
    proxied.faults.set_enabled([0], False)
    cut.locator("#banner").wait_for(state="visible", timeout=ms(5))
    outcomes = write_many(writer, 50)
    assert [o["ok"] for o in outcomes] == [True] * 50
    assert cut.locator("#badge").get_attribute("data-status") != "synced"
    proxied.faults.set_enabled([0], True)
    applied = assert_matches_database(cut, board)
    assert applied == list(range(1, 51))
    cut.locator("#banner").wait_for(state="hidden", timeout=ms(5))
    assert_matches_database(writer, board)


def test_a_pending_write_shows_processing_until_confirmed(
    browser: Any, board: Board, proxied: Proxied
) -> None:
    page = open_page(browser, board.page_url(proxied.listen))
    delay = round(seconds(2) * 1000)
    proxied.faults.add_toxic([0], "latency", "upstream", {"latency": delay})
    page.get_by_role("button", name="Check in: Patient 0004").click()
    pending = page.locator(f'#rows tr.processing[data-id="{appt(4)}"]')
    pending.wait_for(timeout=ms(1))
    assert pending.get_attribute("data-state") == "Present"
    assert pending.get_attribute("aria-busy") == "true"
    assert pending.locator("button:disabled").count() == 2
    assert board.truth()[1][appt(4)] == (1, "Scheduled"), "shown before the server has it"
    pending.wait_for(state="detached", timeout=ms(8))
    assert_matches_database(page, board)
    assert board.truth()[1][appt(4)] == (2, "Present")


def test_a_reload_resumes_from_the_stored_position(browser: Any, board: Board) -> None:
    page = open_page(browser, board.page_url())
    write_many(page, 3)
    wait_synced(page, 3)
    page.reload()
    wait_synced(page, 3)
    records = page_state(page)["records"]
    subscribed = [r for r in records if r["k"] == "subscribed"]
    assert subscribed[0]["recovered"] is True
    assert not [r for r in records if r["k"] == "snapshot"]
    write_many(page, 1)
    applied = assert_matches_database(page, board)
    assert applied == [4], "the reloaded page applied only what it had not seen"


def test_a_refused_write_shows_the_error_then_rolls_back(browser: Any, board: Board) -> None:
    page = open_page(browser, board.page_url())
    admin = f"http://{board.address}/_admin/db-fault?mode=verify&rate=1&token={TOKEN}"
    with urllib.request.urlopen(admin, timeout=seconds(5)):
        pass
    page.get_by_role("button", name="Check in: Patient 0003").click()
    error = row(page, 3).locator(".error")
    error.wait_for(timeout=ms(10))
    shown_at = time.monotonic()
    assert "Not saved" in error.inner_text()
    assert row(page, 3).get_attribute("data-state") == "Present"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "board-refused.png"))
    row(page, 3).and_(page.locator('[data-state="Scheduled"]')).wait_for(timeout=ms(6))
    held = time.monotonic() - shown_at
    # The board holds the error for 3 s (its own clock, not scaled); seeing it takes a moment.
    assert 2.0 <= held <= 3.0 + seconds(3), held
    assert error.count() == 0
    assert board.truth()[1][appt(3)] == (1, "Scheduled")


def test_every_page_recovers_from_a_server_kill_without_a_reload(
    browser: Any, board: Board
) -> None:
    pages = [open_page(browser, board.page_url()) for _ in range(2)]
    write_many(pages[0], 2)
    for page in pages:
        wait_synced(page, 2)
        page.evaluate("window.notReloaded = true")
    board.process.kill()
    for page in pages:
        page.locator("#banner").wait_for(state="visible", timeout=ms(5))
    board.restart()
    for page in pages:
        wait_synced(page, 2, timeout=15)
    write_many(pages[1], 2)
    for page in pages:
        assert page.evaluate("window.notReloaded") is True
        assert_matches_database(page, board)
        page.locator("#banner").wait_for(state="hidden", timeout=ms(5))


def test_a_patient_name_is_rendered_as_text(browser: Any, board: Board) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wide = open_page(browser, board.page_url())
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    wide.on("dialog", on_dialog)
    assert row(wide, 1).locator(".patient").inner_text() == XSS_NAME
    assert wide.locator("#rows img").count() == 0
    clicks = [("Check in", 2), ("Check in", 3), ("Seat", 2), ("No-show", 4), ("Cancel", 5)]
    for label, n in clicks:
        wide.get_by_role("button", name=f"{label}: Patient {n:04d}").click()
        wait_synced(wide)
    wide.get_by_role("button", name="Dismiss: Patient 0002").click()
    wait_synced(wide, len(clicks) + 1)
    page_state(wide)  # the page still answers: nothing ran from the name
    wide.screenshot(path=str(ARTIFACTS / "board-1280.png"), full_page=True)
    narrow = open_page(browser, board.page_url(), width=390, height=844)
    wait_synced(narrow, len(clicks) + 1)
    narrow.screenshot(path=str(ARTIFACTS / "board-390.png"), full_page=True)
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
    assert dialogs == []
