"""``DelegatingStore``: a wrapper reaches the wrapped backend for every call, including the
optional methods ``Store`` gives a default for (a real SQLite store underneath)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from synccli.errors import DatabaseUnavailable
from synccli.server.bugs import StaleEpochStore
from synccli.store.base import Store
from synccli.store.delegating import DelegatingStore
from synccli.store.sqlite import SqliteStore


def test_every_public_name_of_the_interface_is_delegated() -> None:
    public = {name for name, _ in inspect.getmembers(Store) if not name.startswith("_")}
    assert public and public <= set(vars(DelegatingStore)), public - set(vars(DelegatingStore))


@pytest.mark.parametrize("wrap", [DelegatingStore, StaleEpochStore])
def test_probe_and_prune_channels_reach_the_backend(tmp_path: Path, wrap: type[Store]) -> None:
    inner = SqliteStore(tmp_path / "sync.db")
    inner.init_schema()
    store = wrap(inner)  # type: ignore[call-arg]
    try:
        store.probe()
        # The backend's probe also writes to the disk; the interface's default only reads.
        (tmp_path / ".sync.db.probe").mkdir()
        with pytest.raises(DatabaseUnavailable, match="refuses writes"):
            store.probe()
        store.reset_channel("2026-11-27")  # a channel with no event and no appointment
        assert len(store.status()) == 1
        assert store.prune_channels() == 1 and store.status() == []
        store.hook = print
        assert inner.hook is print and store.corrupt_errors == inner.corrupt_errors == 0
    finally:
        store.close()
