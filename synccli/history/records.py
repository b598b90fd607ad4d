"""The history vocabulary: one frozen dataclass per record kind (docs/history.md).

Each kind names its ``KIND`` (the ``k`` of its JSON form) and converts to and from that
form: ``to_json`` gives the object without the envelope (``t``, ``w``, ``c``, added by the
writer), ``record_from_json`` turns a parsed line's object back into a record. Field names
are Python's; ``JSON_NAMES`` maps the few that are spelled differently on disk
(``committedAt``, ``appointmentId``, ``requestId``, ``id``). Fields in ``OMIT_NONE`` are left
out when None, as the format always had them. A kind this version does not know is kept as
``OtherRecord`` so newer histories still load.

A field is checked when read: a required one (the channel fields the checker relies on)
must be present, and one typed ``int``,
``str``, ``bool`` or ``float`` (or that or None) must hold such a value, else the history
does not follow its format and ``ConfigError`` names the record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from synccli.errors import ConfigError

R = TypeVar("R", bound="Record")


class Record:
    """A history record of one kind (a frozen dataclass below)."""

    __slots__ = ()
    KIND: ClassVar[str] = ""
    JSON_NAMES: ClassVar[dict[str, str]] = {}
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    @property
    def kind(self) -> str:
        return self.KIND

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this record: ``k`` and the kind's fields."""
        out: dict[str, Any] = {"k": self.KIND}
        for name, json_name, _, _ in _layout(type(self)):
            value = getattr(self, name)
            if value is None and name in self.OMIT_NONE:
                continue
            out[json_name] = value
        return out


# ---------------------------------------------------------------------- the harness


@dataclass(frozen=True, slots=True)
class RunStart(Record):
    KIND: ClassVar[str] = "run_start"
    run_id: str | None = None
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    db: str | None = None
    url: str | None = None
    server_bugs: list[str] = field(default_factory=list)
    client_bugs: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunEnd(Record):
    KIND: ClassVar[str] = "run_end"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset(
        {"drained", "loop_lag_p99_ms", "loop_lag_max_ms", "error"}
    )
    interrupted: bool = False
    drained: bool | None = None
    loop_lag_p99_ms: float | None = None
    loop_lag_max_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InfrastructureFailure(Record):
    KIND: ClassVar[str] = "infrastructure_error"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Fault(Record):
    """A fault's ``start`` (about to be applied), ``end`` (healed) or ``error``."""

    KIND: ClassVar[str] = "fault"
    JSON_NAMES: ClassVar[dict[str, str]] = {"fault_kind": "kind"}
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset(
        {"target", "attrs", "groups", "clients", "error", "evidence"}
    )
    phase: str
    fault_kind: str | None = None
    name: str | None = None
    target: Any = None
    attrs: dict[str, Any] | None = None
    groups: list[int] | None = None
    error: str | None = None
    evidence: dict[str, int] | None = None
    #: The ids of the clients behind ``groups`` (``start``).
    clients: list[str] | None = None


@dataclass(frozen=True, slots=True)
class ServerLifecycle(Record):
    """A server process started, was killed, restarted, paused, resumed or exited;
    ``node`` is its index in a cluster."""

    KIND: ClassVar[str] = "server"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"code", "node"})
    event: str
    pid: int | None = None
    code: int | None = None
    node: int | None = None


@dataclass(frozen=True, slots=True)
class ServerMetrics(Record):
    """The server's counters at the end; for a cluster summed over the nodes, with each
    node's own in ``nodes``."""

    KIND: ClassVar[str] = "server_metrics"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"nodes"})
    metrics: dict[str, Any] = field(default_factory=dict)
    nodes: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class ClusterStart(Record):
    """A cluster's set-up: its nodes, its bus, and how clients reach the nodes
    (``haproxy`` at ``entry``, or ``client-rotation``)."""

    KIND: ClassVar[str] = "cluster"
    nodes: list[dict[str, Any]] = field(default_factory=list)
    bus: str = ""
    balancer: str = ""
    entry: str | None = None


# ---------------------------------------------------------------------- a client's connection


@dataclass(frozen=True, slots=True)
class ClientCreated(Record):
    """``browser``: a Chromium page on the board (``simulate --browsers``), else left out."""

    KIND: ClassVar[str] = "client"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"browser"})
    seed: int | None = None
    url: str = ""
    writer: bool = False
    rate: float = 0.0
    dates: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)
    browser: bool | None = None


@dataclass(frozen=True, slots=True)
class Connect(Record):
    """``node``: the name the server gave on the upgrade (a node of a cluster), if any."""

    KIND: ClassVar[str] = "connect"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"node"})
    attempt: int = 1
    node: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectFailed(Record):
    KIND: ClassVar[str] = "connect_failed"
    attempt: int = 1
    error: str = ""


@dataclass(frozen=True, slots=True)
class Disconnect(Record):
    KIND: ClassVar[str] = "disconnect"
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ErrorReceived(Record):
    """The server answered with ``error``, or sent a frame the client could not parse."""

    KIND: ClassVar[str] = "error"
    code: str | None = None
    message: str = ""
    ref: str | None = None


# ---------------------------------------------------------------------- a client's channels


@dataclass(frozen=True, slots=True)
class Subscribed(Record):
    """``recovered: false``: the state of ``date`` was replaced by a snapshot at ``seq``."""

    KIND: ClassVar[str] = "subscribed"
    date: str
    epoch: str
    seq: int
    recovered: bool = False
    events: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotTaken(Record):
    KIND: ClassVar[str] = "snapshot"
    date: str
    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class Apply(Record):
    KIND: ClassVar[str] = "apply"
    JSON_NAMES: ClassVar[dict[str, str]] = {
        "message_id": "id",
        "committed_at": "committedAt",
        "appointment_id": "appointmentId",
    }
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"message_id"})
    date: str
    epoch: str
    seq: int
    message_id: str | None = None
    committed_at: str | None = None
    replay: bool = False
    appointment_id: str | None = None
    version: int | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Dup(Record):
    KIND: ClassVar[str] = "dup"
    date: str
    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class Gap(Record):
    """``have``: the last applied seq; ``via``: what announced the head, if not an event."""

    KIND: ClassVar[str] = "gap"
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"via"})
    date: str
    have: int
    got: int
    via: str | None = None


@dataclass(frozen=True, slots=True)
class GapRecovered(Record):
    KIND: ClassVar[str] = "gap_recovered"
    date: str
    seq: int


@dataclass(frozen=True, slots=True)
class Resync(Record):
    KIND: ClassVar[str] = "resync"
    date: str
    reason: str


@dataclass(frozen=True, slots=True)
class Final(Record):
    """What the client ends up believing: ``rows`` is ``{appointmentId: [version, state]}``."""

    KIND: ClassVar[str] = "final"
    date: str
    epoch: str | None
    seq: int
    rows: dict[str, Any] = field(default_factory=dict)
    status: str = ""


# ---------------------------------------------------------------------- a client's writes


@dataclass(frozen=True, slots=True)
class Write(Record):
    KIND: ClassVar[str] = "write"
    JSON_NAMES: ClassVar[dict[str, str]] = {
        "request_id": "requestId",
        "appointment_id": "appointmentId",
    }
    request_id: str
    appointment_id: str = ""
    state: str = ""
    date: str = ""
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class WriteResult(Record):
    KIND: ClassVar[str] = "write_result"
    JSON_NAMES: ClassVar[dict[str, str]] = {"request_id": "requestId"}
    request_id: str
    ok: bool
    code: str | None = None
    seq: int | None = None
    ms: float | None = None


@dataclass(frozen=True, slots=True)
class Rollback(Record):
    KIND: ClassVar[str] = "rollback"
    JSON_NAMES: ClassVar[dict[str, str]] = {
        "request_id": "requestId",
        "appointment_id": "appointmentId",
    }
    request_id: str
    appointment_id: str = ""


@dataclass(frozen=True, slots=True)
class OtherRecord(Record):
    """A kind this version does not know, kept as it was read."""

    kind_name: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.kind_name

    def to_json(self) -> dict[str, Any]:
        return {"k": self.kind_name, **self.fields}


KINDS: dict[str, type[Record]] = {
    cls.KIND: cls
    for cls in (
        RunStart,
        RunEnd,
        InfrastructureFailure,
        Fault,
        ServerLifecycle,
        ServerMetrics,
        ClusterStart,
        ClientCreated,
        Connect,
        ConnectFailed,
        Disconnect,
        ErrorReceived,
        Subscribed,
        SnapshotTaken,
        Apply,
        Dup,
        Gap,
        GapRecovered,
        Resync,
        Final,
        Write,
        WriteResult,
        Rollback,
    )
}

ENVELOPE = frozenset({"t", "w", "c", "k"})


def record_from_json(data: dict[str, Any]) -> Record:
    """The record of a parsed line (``k`` and the kind's fields; the envelope is ignored)."""
    kind = data.get("k")
    if not isinstance(kind, str):
        raise ConfigError("a history record has no kind ('k'): the history is corrupt")
    cls = KINDS.get(kind)
    if cls is None:
        return OtherRecord(kind, {k: v for k, v in data.items() if k not in ENVELOPE})
    values: dict[str, Any] = {}
    for name, json_name, required, check in _layout(cls):
        if json_name not in data:
            if required:
                raise ConfigError(
                    f"history record {kind!r} has no {json_name!r}: "
                    "the history does not follow docs/history.md"
                )
            continue
        value = data[json_name]
        if check is not None and not check(value):
            raise ConfigError(
                f"history record {kind!r} has a {json_name!r} of the wrong type ({value!r}): "
                "the history does not follow docs/history.md"
            )
        values[name] = value
    return cls(**values)


# ---------------------------------------------------------------------- field layout

Check = Callable[[Any], bool]
_CHECKS: dict[str, Check] = {
    "int": lambda v: type(v) is int,
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "float": lambda v: type(v) in (int, float),
}
_layouts: dict[type[Record], list[tuple[str, str, bool, Check | None]]] = {}


def _check_for(annotation: str) -> Check | None:
    if annotation in _CHECKS:
        return _CHECKS[annotation]
    base, _, rest = annotation.partition(" | ")
    if rest == "None" and base in _CHECKS:
        inner = _CHECKS[base]
        return lambda v: v is None or inner(v)
    return None


def _layout(cls: type[Record]) -> list[tuple[str, str, bool, Check | None]]:
    """Per field: its name, its JSON name, whether it is required, and its type check."""
    layout = _layouts.get(cls)
    if layout is None:
        layout = [
            (
                f.name,
                cls.JSON_NAMES.get(f.name, f.name),
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                _check_for(str(f.type)),
            )
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        ]
        _layouts[cls] = layout
    return layout
