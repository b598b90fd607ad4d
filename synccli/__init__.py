"""synccli: a reliable real-time sync server for appointment boards, and the harness that
proves it under faults.

The public API, for using synccli as a library::

    from synccli import ServerConfig, SyncServer, open_store

    store = open_store("sqlite:///clinic.db")   # a Store: init_schema, seed, write, ...
    async with SyncServer(ServerConfig(db_url="sqlite:///clinic.db", port=0)) as server:
        ...                                     # clients connect to server.url

``ClientSession`` is the sans-I/O client (messages and ``now`` in, effects out);
``check_run`` checks a recorded run against the database (``truth_from_store``). Every error
raised on purpose is a ``SynccliError`` (see ``synccli.errors``). The error tree and the
domain values load with the package; the rest loads on first use, so ``import synccli``
stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from synccli.domain.channels import Channel, ChannelStatus, WriteOutcome, WriteRequest
from synccli.domain.states import STATES, allowed_targets, check_transition
from synccli.domain.values import Event, Position, Row
from synccli.errors import (
    ConfigError,
    DatabaseTimeout,
    DatabaseUnavailable,
    FaultError,
    InfrastructureError,
    ProtocolError,
    StoreError,
    SynccliError,
    TransientDatabaseError,
    WriteRejected,
)

if TYPE_CHECKING:
    from synccli.protocol.session import ClientSession, SessionConfig
    from synccli.report.run import check_run
    from synccli.report.summary import Summary
    from synccli.report.truth import Truth, truth_from_store
    from synccli.server.app import SyncServer, run_server
    from synccli.server.config import ServerConfig
    from synccli.store import Store, open_store, redact_url
    from synccli.version import __version__

# name -> module, imported on first access (the server pulls in websockets and asyncio).
_LAZY = {
    "ClientSession": "synccli.protocol.session",
    "SessionConfig": "synccli.protocol.session",
    "check_run": "synccli.report.run",
    "Summary": "synccli.report.summary",
    "Truth": "synccli.report.truth",
    "truth_from_store": "synccli.report.truth",
    "SyncServer": "synccli.server.app",
    "run_server": "synccli.server.app",
    "ServerConfig": "synccli.server.config",
    "Store": "synccli.store",
    "open_store": "synccli.store",
    "redact_url": "synccli.store",
    "__version__": "synccli.version",
}

__all__ = [
    "STATES",
    "Channel",
    "ChannelStatus",
    "ClientSession",
    "ConfigError",
    "DatabaseTimeout",
    "DatabaseUnavailable",
    "Event",
    "FaultError",
    "InfrastructureError",
    "Position",
    "ProtocolError",
    "Row",
    "ServerConfig",
    "SessionConfig",
    "Store",
    "StoreError",
    "Summary",
    "SyncServer",
    "SynccliError",
    "TransientDatabaseError",
    "Truth",
    "WriteOutcome",
    "WriteRejected",
    "WriteRequest",
    "__version__",
    "allowed_targets",
    "check_run",
    "check_transition",
    "open_store",
    "redact_url",
    "run_server",
    "truth_from_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synccli' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
