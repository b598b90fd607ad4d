"""Fixtures of the browser tests (tests/web/browser.py)."""

from tests.web.browser import board_fixture, browser_fixture, proxied_fixture  # noqa: F401
