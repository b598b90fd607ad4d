"""A store that hands every call to another one: the base of stores that wrap a backend.

A wrapper overrides only what it changes. Everything else, the optional methods with a
default in ``Store`` (``probe``, ``prune_channels``, the log tools) included, reaches the
wrapped backend, so wrapping a store never silently swaps a backend's answer for the
interface's default (a readiness probe that checks nothing, channels never pruned).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from synccli.audit.entries import DayLog, LinePage, LogPage
from synccli.domain.channels import Channel, ChannelStatus, WriteOutcome, WriteRequest
from synccli.domain.values import Event, Row
from synccli.store.base import Store, WriteHook


class DelegatingStore(Store):
    """Every ``Store`` method and attribute of ``inner``, unchanged."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url

    @property  # the fault hook belongs to the backend itself
    def hook(self) -> WriteHook | None:
        return self.inner.hook

    @hook.setter
    def hook(self, value: WriteHook | None) -> None:
        self.inner.hook = value

    @property
    def corrupt_errors(self) -> int:  # type: ignore[override]
        return self.inner.corrupt_errors

    @property
    def log_readers(self) -> int:  # type: ignore[override]
        return self.inner.log_readers

    def init_schema(self) -> None:
        self.inner.init_schema()

    def seed(self, date: str, count: int) -> int:
        return self.inner.seed(date, count)

    def write(self, request: WriteRequest, now: datetime) -> WriteOutcome:
        return self.inner.write(request, now)

    def channel(self, date: str) -> Channel:
        return self.inner.channel(date)

    def events_since(self, date: str, after_seq: int, limit: int) -> list[Event]:
        return self.inner.events_since(date, after_seq, limit)

    def snapshot(self, date: str) -> tuple[Channel, list[Row]]:
        return self.inner.snapshot(date)

    def heads(self) -> dict[str, Channel]:
        return self.inner.heads()

    def log_page(
        self, date: str, after_seq: int, limit: int, appointment_id: str | None = None
    ) -> LogPage:
        return self.inner.log_page(date, after_seq, limit, appointment_id)

    def log_lines(
        self, date: str, after_seq: int, limit: int, appointment_id: str | None = None
    ) -> LinePage:
        return self.inner.log_lines(date, after_seq, limit, appointment_id)

    def day_log(self, date: str) -> DayLog:
        return self.inner.day_log(date)

    def board_log(self, date: str, *, seq: int | None = None, moment: str | None = None) -> DayLog:
        return self.inner.board_log(date, seq=seq, moment=moment)

    def appointment_date(self, appointment_id: str) -> str | None:
        return self.inner.appointment_date(appointment_id)

    def heads_of(self, dates: Iterable[str]) -> dict[str, Channel]:
        return self.inner.heads_of(dates)

    def probe(self) -> None:
        self.inner.probe()

    def prune_channels(self) -> int:
        return self.inner.prune_channels()

    def prune(self, before: datetime, holds: Mapping[str, int] | None = None) -> int:
        return self.inner.prune(before, holds)

    def reset_channel(self, date: str) -> Channel:
        return self.inner.reset_channel(date)

    def status(self) -> list[ChannelStatus]:
        return self.inner.status()

    def close(self) -> None:
        self.inner.close()
