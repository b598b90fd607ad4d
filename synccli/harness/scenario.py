"""Scenario files: the load, the fault schedule and the thresholds of one run.

A scenario is TOML (read with stdlib ``tomllib``); its keys are the field names of
``Scenario``, ``ServerOptions`` and ``FaultSpec`` (``[server]``, ``[[faults]]``,
``[thresholds]``), and ``[client_groups]`` names sets of clients a fault can pick
(``client_groups``). A fault's attributes sit in its own ``[[faults]]`` table next to
``kind``, ``at_s`` and ``for_s``; the kinds and their attributes come from the fault-kind
registry (``synccli.faults.kinds``). A key left out takes the value ``synccli simulate``
uses without options (``DEFAULTS``), so a file need only say what differs. Durations are
seconds or strings like ``"1m30s"``.

Every mistake of a file is reported at once, each naming the file, the line and the field:
``scenarios/x.toml:12: faults[2].target: ...`` (``faults[2]`` is the second ``[[faults]]``
table), as one ``ScenarioError`` (a ``ConfigError``). tomllib reports no positions for
values, so the line comes from a scan of the text (``scenario_fields.key_lines``).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import tomli_w

from synccli.errors import ConfigError
from synccli.faults.kinds import FaultKind, fault_kind, fault_kinds
from synccli.faults.kinds.base import CLIENT_SETS
from synccli.harness.client_groups import ClientGroup, declared_names, parse_client_groups
from synccli.harness.layout import ProxyLayout
from synccli.harness.scenario_fields import MISSING, KeyPath, Located, Seconds, Table
from synccli.report.thresholds import parse_threshold

#: The shipped scenarios (package data), where a name is looked up by default.
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
DEFAULT_NAME = "default"

STREAMS = ("both", "downstream", "upstream")
#: What a file leaves out: the load ``synccli simulate`` runs without options (the built-in
#: default scenario's). ``writers`` is at most ``clients``; ``rate`` is 0 without writers.
DEFAULTS: dict[str, Any] = {
    "seed": 1, "duration_s": 36.0, "clients": 10, "writers": 3, "dates": 1, "rate": 15.0,
    "appointments": 30, "drain_timeout_s": 30.0, "on_time_s": 5.0,
}  # fmt: skip
#: The longest load, as ``simulate --duration`` allows.
MAX_DURATION_S = 24 * 3600.0
#: Keys whose default follows other keys: an override re-derives them unless the file set them.
DERIVED = ("writers", "rate", "expect_traces")
DEFAULT_THRESHOLDS = {"delivery_rate": ">= 0.995"}
OVERRIDABLE = (
    "name", "seed", "duration_s", "clients", "writers", "dates", "rate", "appointments",
    "drain_timeout_s", "on_time_s", "groups", "expect_traces", "faults",
)  # fmt: skip


@dataclass(frozen=True)
class ServerOptions:
    """Settings for the embedded server; ``None`` keeps the server's own default."""

    heartbeat_s: float | None = None
    ack_timeout_s: float | None = None
    max_retries: int | None = None
    send_queue: int | None = None
    max_replay: int | None = None
    #: More than one runs a cluster: nodes on one database, a Redis bus, HAProxy in front.
    nodes: int | None = None


@dataclass(frozen=True)
class FaultSpec:
    """One scheduled fault: ``kind`` from ``at_s`` for ``for_s`` seconds, on ``target`` (a
    share of the proxy groups of ``clients``: all, readers, writers or a named client
    group), in ``stream``;
    ``attrs`` has every attribute, defaults filled."""

    at_s: float
    for_s: float
    kind: str
    target: float = 1.0
    stream: str = "both"
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    clients: str = "all"

    @property
    def end_s(self) -> float:
        """When the fault is healed, in seconds since the run started."""
        return self.at_s + self.for_s


@dataclass(frozen=True)
class Scenario:
    """A whole run: load, server settings, fault schedule and pass/fail thresholds."""

    name: str
    description: str
    seed: int
    duration_s: float
    clients: int
    writers: int
    dates: int | tuple[str, ...]
    rate: float
    appointments: int = DEFAULTS["appointments"]
    drain_timeout_s: float = DEFAULTS["drain_timeout_s"]
    on_time_s: float = DEFAULTS["on_time_s"]
    server: ServerOptions = field(default_factory=ServerOptions)
    groups: int = 1
    #: Named sets of clients a fault can pick, each behind proxies of its own.
    client_groups: tuple[ClientGroup, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    thresholds: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    expect_traces: bool = False
    #: The keys the file (or an override) set; the rest took their defaults.
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def date_list(self, today: date) -> list[str]:
        """The channel dates: the explicit list, or ``dates`` consecutive days from today."""
        if isinstance(self.dates, tuple):
            return list(self.dates)
        return [(today + timedelta(days=i)).isoformat() for i in range(self.dates)]

    def with_overrides(self, **options: Any) -> Scenario:
        """A copy with command-line options applied (``None`` values are ignored), validated
        again. Fewer clients also lower ``groups``; ``writers``, ``rate`` and
        ``expect_traces`` the file left out follow the new values; more writers than clients
        is an error."""
        raw = {k: v for k, v in self.to_dict().items() if k not in DERIVED or k in self.explicit}
        return _build(_merge(raw, options), Located("command line", ""))

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain data, in the file's own key names."""
        data = dataclasses.asdict(self)
        del data["explicit"]
        data["dates"] = list(self.dates) if isinstance(self.dates, tuple) else self.dates
        data["client_groups"] = {group.name: group.to_dict() for group in self.client_groups}
        data["server"] = {k: v for k, v in data["server"].items() if v is not None}
        order = ("name", "kind", "at_s", "for_s", "target", "stream")
        data["faults"] = [
            {k: f[k] for k in order}
            | ({"clients": f["clients"]} if f["clients"] != "all" else {})
            | f["attrs"]
            for f in data["faults"]
        ]
        return data

    def to_json(self) -> str:
        """``to_dict`` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_toml(self) -> str:
        """The resolved scenario as a TOML file that loads back to an equal ``Scenario``."""
        data = self.to_dict()
        faults = data.pop("faults")
        for table in ("server", "client_groups"):
            if not data[table]:
                del data[table]
        # Each fault as a [[faults]] table: tomli-w would inline the short ones.
        tables = ["\n[[faults]]\n" + tomli_w.dumps(fault) for fault in faults]
        return tomli_w.dumps(data) + "".join(tables)


def load_scenario(path: str | Path, **overrides: Any) -> Scenario:
    """Read the scenario file at ``path`` and validate it with ``overrides`` (command-line
    options, as for ``Scenario.with_overrides``) over it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"scenario file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read scenario file {path}: {exc}") from None
    return parse_scenario(text, str(path), **overrides)


def parse_scenario(text: str, source: str, **overrides: Any) -> Scenario:
    """Validate scenario TOML ``text`` with ``overrides`` over it; ``source`` (a path) names
    it in errors and gives the default ``name`` (its stem)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)$", message)
        detail = message.split(" (at ")[0]
        if where:
            raise ConfigError(f"{source}:{where[1]}:{where[2]}: invalid TOML: {detail}") from None
        raise ConfigError(f"{source}: invalid TOML: {message}") from None
    raw.setdefault("name", Path(source).stem)
    overridden = frozenset(key for key, value in overrides.items() if value is not None)
    return _build(_merge(raw, overrides), Located(source, text, overridden))


def list_scenarios(directory: str | Path = SCENARIO_DIR) -> list[tuple[str, Path, str]]:
    """``(name, path, description)`` of every ``*.toml`` in ``directory``, by name. A file
    that does not load is listed with its error as the description."""
    found = []
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            scenario = load_scenario(path)
        except ConfigError as exc:
            first, *more = str(exc).splitlines()
            extra = f" (and {len(more)} more)" if more else ""
            found.append((path.stem, path, f"INVALID: {first}{extra}"))
        else:
            found.append((path.stem, path, scenario.description))
    return found


def find_scenario(ref: str, directory: str | Path = SCENARIO_DIR, **overrides: Any) -> Scenario:
    """A scenario by file path, by name in ``directory``, or ``default`` (built in), with
    ``overrides`` (command-line options) over it."""
    as_path = Path(ref)
    if as_path.suffix == ".toml" or as_path.is_file():
        return load_scenario(as_path, **overrides)
    candidate = Path(directory) / f"{ref}.toml"
    if candidate.is_file():
        return load_scenario(candidate, **overrides)
    if ref == DEFAULT_NAME:
        return default_scenario().with_overrides(**overrides)
    known = [name for name, _, _ in list_scenarios(directory)] + [DEFAULT_NAME]
    raise ConfigError(
        f"no scenario named {ref!r} in {directory}/ (known: {', '.join(known)}); "
        "give a name or a .toml file path"
    )


def default_scenario(clients: int = 10, packet_loss: bool | None = None) -> Scenario:
    """The built-in scenario ``synccli simulate`` runs without ``--scenario``, for
    ``clients`` clients. Its packet-loss fault is kept only where the machine allows it
    (``packet_loss=None`` asks ``synccli.faults.loss.check_available``)."""
    text = (
        importlib.resources.files("synccli.harness")
        .joinpath("default_scenario.toml")
        .read_text(encoding="utf-8")
    )
    scenario = parse_scenario(text, "default_scenario.toml")
    if packet_loss is None:
        from synccli.faults.loss import check_available

        packet_loss = check_available() is None
    if not packet_loss:
        kept = tuple(f for f in scenario.faults if f.kind != "packet_loss")
        scenario = dataclasses.replace(scenario, faults=kept)
    return scenario.with_overrides(clients=clients, writers=min(scenario.writers, clients))


# ------------------------------------------------------------------------- validation


def _merge(raw: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the options that are not ``None`` over it; fewer clients also lower
    ``groups``."""
    unknown = sorted(set(options) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError(f"cannot override {', '.join(unknown)}; use {', '.join(OVERRIDABLE)}")
    given = {key: value for key, value in options.items() if value is not None}
    for key in ("dates", "faults"):
        if isinstance(given.get(key), list | tuple):
            given[key] = list(given[key])
    groups = raw.get("groups")
    if "clients" in given and "groups" not in given and isinstance(groups, int):
        given["groups"] = min(groups, given["clients"])
    return raw | given


def _build(raw: dict[str, Any], ctx: Located) -> Scenario:
    """Validate ``raw``, reporting every problem at once (``Located.check``)."""
    top = Table(ctx, raw, ())
    clients = top.get("clients", int, DEFAULTS["clients"], minimum=1)
    writers = top.get("writers", int, min(DEFAULTS["writers"], clients or 1))
    if writers is not None and clients is not None and writers > clients:
        top.report("writers", f"{writers} writers is more than the {clients} clients")
    rate = top.get("rate", float, DEFAULTS["rate"] if writers else 0.0)
    if rate is not None and rate > 0 and writers == 0:
        top.report("rate", "writes need at least one writer; set writers")
    duration = top.get("duration_s", Seconds, DEFAULTS["duration_s"], maximum=MAX_DURATION_S)
    if duration is not None and duration <= 0:
        top.report("duration_s", "must be more than 0")
    groups = top.get("groups", int, min(clients or 1, 10), minimum=1)
    if groups is not None and clients is not None and groups > clients:
        top.report("groups", f"{groups} groups is more than the {clients} clients")
    declared = raw.get("client_groups", {})
    named = parse_client_groups(ctx, declared, clients, writers)
    load = (clients, writers, groups)
    faults = _faults(ctx, raw.get("faults", []), duration, load, declared_names(declared))
    if named:
        _check_layout(ctx, named, faults, load)
    values = {
        "name": top.get("name", str),
        "description": top.get("description", str, ""),
        "seed": top.get("seed", int, DEFAULTS["seed"]),
        "dates": _dates(top),
        "appointments": top.get("appointments", int, DEFAULTS["appointments"], minimum=1),
        "drain_timeout_s": top.get("drain_timeout_s", Seconds, DEFAULTS["drain_timeout_s"]),
        "on_time_s": top.get("on_time_s", Seconds, DEFAULTS["on_time_s"]),
        "server": _server(ctx, raw.get("server", {})),
        "thresholds": _thresholds(ctx, raw.get("thresholds", DEFAULT_THRESHOLDS)),
        "expect_traces": top.get("expect_traces", bool, bool(faults)),
    }
    top.read |= {"faults", "server", "thresholds", "client_groups"}
    top.done()
    ctx.check()
    return Scenario(
        duration_s=duration,
        clients=clients,
        writers=writers,
        rate=rate,
        groups=groups,
        client_groups=named,
        faults=faults,
        explicit=frozenset(raw),
        **values,
    )


def _dates(top: Table) -> int | tuple[str, ...] | None:
    top.read.add("dates")
    value = top.data.get("dates", DEFAULTS["dates"])
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            top.report("dates", "must be at least 1 (a count of days from today)")
            return None
        return value
    if not isinstance(value, list) or not value:
        top.report("dates", 'must be a count of days or a list like ["2026-11-26"]')
        return None
    dates = []
    for item in value:
        text = item.isoformat() if isinstance(item, date) else item
        try:
            date.fromisoformat(text)
            valid = isinstance(text, str) and len(text) == 10
        except (TypeError, ValueError):
            valid = False
        if not valid:
            top.report("dates", f"{item!r} is not a date YYYY-MM-DD")
            return None
        dates.append(text)
    if len(set(dates)) != len(dates):
        top.report("dates", "lists a date twice")
        return None
    return tuple(dates)


def _server(ctx: Located, data: Any) -> ServerOptions:
    table = Table(ctx, data, ("server",))
    options = ServerOptions(
        heartbeat_s=table.get("heartbeat_s", Seconds, None, minimum=0.01),
        ack_timeout_s=table.get("ack_timeout_s", Seconds, None, minimum=0.01),
        max_retries=table.get("max_retries", int, None),
        send_queue=table.get("send_queue", int, None, minimum=1),
        max_replay=table.get("max_replay", int, None, minimum=1),
        nodes=table.get("nodes", int, None, minimum=1),
    )
    table.done()
    return options


def _thresholds(ctx: Located, data: Any) -> dict[str, str]:
    table = Table(ctx, data, ("thresholds",))
    for metric in table.data:
        text = table.get(metric, str)
        if text is None:
            continue
        try:
            parse_threshold(metric, text)
        except ConfigError as exc:
            table.report(metric, str(exc))
    return dict(table.data)


#: The load a fault's ``clients`` is judged against: clients, writers, groups (``None`` if
#: invalid).
Load = tuple[int | None, int | None, int | None]


def _faults(
    ctx: Located, data: Any, duration: float | None, load: Load, named: tuple[str, ...]
) -> tuple[FaultSpec, ...]:
    if not isinstance(data, list):
        ctx.report(("faults",), "must be [[faults]] tables")
        return ()
    sets = (*CLIENT_SETS, *(name for name in named if name not in CLIENT_SETS))
    checked = [(i, _fault(ctx, item, ("faults", i), duration, sets)) for i, item in enumerate(data)]
    faults = [(i, fault) for i, fault in checked if fault is not None]
    for i, fault in faults:
        _check_clients(ctx, ("faults", i, "clients"), fault, load)
    names: set[str] = set()
    for i, fault in faults:
        if fault.name in names:
            ctx.report(("faults", i, "name"), f"{fault.name!r} is used twice")
        names.add(fault.name)
    for kind in (name for name, kind in fault_kinds().items() if kind.exclusive):
        spans = sorted((f.at_s, f.end_s, i) for i, f in faults if f.kind == kind)
        for (_, end, _), (start, _, i) in pairwise(spans):
            if start < end:
                ctx.report(("faults", i, "at_s"), f"overlaps another {kind} fault")
    return tuple(fault for _, fault in faults)


def _fault(
    ctx: Located, data: Any, path: KeyPath, duration: float | None, sets: tuple[str, ...]
) -> FaultSpec | None:
    table = Table(ctx, data, path)
    kind_name = table.get("kind", str)
    kind = fault_kind(kind_name) if kind_name is not None else None
    if kind is None:
        if kind_name is not None:
            known = ", ".join(fault_kinds())
            table.report("kind", f"unknown fault kind {kind_name!r} (known: {known})")
        return None  # its other keys cannot be judged without a kind
    at = table.get("at_s", Seconds)
    length = table.get("for_s", Seconds, MISSING if kind.span else 0.0)
    ends = at + length if at is not None and length is not None else None
    if ends is not None and duration is not None and ends > duration:
        table.report("for_s", f"the fault ends at {ends:g} s, after duration_s")
    target = _target(table, kind)
    clients = table.get("clients", str, "all")
    if clients is not None and clients not in sets:
        table.report("clients", f"unknown clients {clients!r} (known: {', '.join(sets)})")
        clients = None
    elif clients not in (None, "all") and not kind.picks_clients:
        table.report("clients", f"a {kind.name} fault hits every client: leave clients out")
        clients = None
    stream = table.get("stream", str, "both", choices=STREAMS)
    if stream not in (None, "both") and not kind.streams:
        table.report("stream", f"a {kind.name} fault has no stream")
    table.read.update(kind.attr_names)
    attrs, problems = kind.resolve({k: v for k, v in table.data.items() if k in kind.attr_names})
    for attr, problem in problems:
        table.report(attr, problem)
    name = table.get(
        "name", str, f"{kind.name}-{path[-1] + 1}" if isinstance(path[-1], int) else kind.name
    )
    table.done()
    if table.failed or target is None or clients is None:
        return None
    return FaultSpec(at, length, kind.name, target, stream, attrs, name, clients)


def _check_clients(ctx: Located, path: KeyPath, fault: FaultSpec, load: Load) -> None:
    """A fault on readers or writers needs some of them, each kind behind its own proxies."""
    clients, writers, groups = load
    if fault.clients not in ("readers", "writers"):
        return
    if clients is None or writers is None or groups is None:
        return
    count = writers if fault.clients == "writers" else clients - writers
    if count == 0:
        ctx.report(path, f"the scenario has no {fault.clients}: a share of them hits no one")
    elif groups < 2:
        ctx.report(path, f"{fault.clients} alone need their own proxy: set groups to at least 2")


def _check_layout(
    ctx: Located, named: tuple[ClientGroup, ...], faults: tuple[FaultSpec, ...], load: Load
) -> None:
    """Each named group, and the clients in none, need proxies of their own: enough
    ``groups`` for every cell of the layout."""
    clients, writers, groups = load
    if clients is None or writers is None or groups is None:
        return
    split = any(fault.clients in ("readers", "writers") for fault in faults)
    members = tuple((group.name, group.members) for group in named)
    needed = len(ProxyLayout(clients, writers, groups, split, members).cells)
    if needed > groups:
        rest = sum(len(group.members) for group in named) < clients
        plural = "s" if len(named) > 1 else ""
        who = f"{len(named)} client group{plural}" + (" and the clients in none" if rest else "")
        apart = ", writers apart from readers," if split else ""
        ctx.report(
            ("groups",) if ("groups",) in ctx.lines else ("client_groups",),
            f"{who}{apart} need {needed} proxy groups of their own: "
            f"set groups to at least {needed}",
        )


def _target(table: Table, kind: FaultKind) -> float | None:
    table.read.add("target")
    value = table.data.get("target", 1.0)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value):
        share = float(value.strip().rstrip("%")) / 100
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        table.report("target", f'must be a share like 0.5 or "50%", not {value!r}')
        return None
    if not 0 < share <= 1:
        table.report("target", f"must be a share in (0, 1] of the groups, not {value!r}")
        return None
    if share != 1 and kind.target != "proxy":
        table.report("target", f"a {kind.name} fault hits the server: target must be 1.0")
        return None
    return share
