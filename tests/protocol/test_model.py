"""Timestamps on the wire: ``iso_ms`` and its inverse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from synccli.domain.values import iso_ms, parse_iso_ms


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 26, 10, 15, 30, 123999, UTC), "2026-11-26T10:15:30.123Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 0, UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 12, 31, 23, 59, 59, 999999, UTC), "2026-12-31T23:59:59.999Z"),
        # Another offset is converted to UTC, across midnight.
        (
            datetime(2026, 3, 1, 0, 30, 0, 5000, timezone(timedelta(hours=2))),
            "2026-02-28T22:30:00.005Z",
        ),
    ],
)
def test_iso_ms_is_utc_truncated_to_milliseconds(moment: datetime, text: str) -> None:
    assert iso_ms(moment) == text
    assert parse_iso_ms(text) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
