"""Scenario files: the load, the fault schedule and the thresholds of one run.

A scenario is TOML (read with stdlib ``tomllib``); its keys are the field names of
``Scenario``, ``ServerOptions`` and ``FaultSpec`` (``[server]``, ``[[faults]]``,
``[thresholds]``). A fault's attributes sit in its own ``[[faults]]`` table next to
``kind``, ``at_s`` and ``for_s``. Every mistake is a ``ConfigError`` that names the file,
the line and the field: ``scenarios/x.toml:12: faults[2].target: ...`` (``faults[2]`` is the
second ``[[faults]]`` table). tomllib reports no positions for values, so the line comes
from a scan of the text (``_key_lines``).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from synccli.errors import ConfigError
from synccli.harness.scenario_fields import MISSING, KeyPath, Located, Table
from synccli.report.thresholds import parse_threshold

#: The shipped scenarios (package data), where a name is looked up by default.
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
DEFAULT_NAME = "default"

#: Toxiproxy toxics, then our own kinds. Each maps an attribute to (type, default);
#: ``None`` as default means required. Units follow Toxiproxy (ms, KB/s, bytes, µs).
FAULT_KINDS: dict[str, dict[str, tuple[type, Any]]] = {
    "latency": {"latency": (int, None), "jitter": (int, 0)},
    "bandwidth": {"rate": (int, None)},
    "slicer": {"average_size": (int, None), "size_variation": (int, 0), "delay": (int, 0)},
    "timeout": {"timeout": (int, None)},
    "reset_peer": {"timeout": (int, 0)},
    "limit_data": {"bytes": (int, None)},
    "slow_close": {"delay": (int, None)},
    "down": {},
    "packet_loss": {"percent": (float, None)},
    "server_kill": {},
    "db_fault": {"mode": (str, None), "rate": (float, 1.0), "delay_ms": (int, 0)},
    "epoch_reset": {},
}
TOXIC_KINDS = frozenset({"latency", "bandwidth", "slicer", "timeout", "reset_peer"} | {
    "limit_data", "slow_close"
})  # fmt: skip
#: Kinds that act on the clients' proxies: the toxics and ``down``.
PROXY_KINDS = TOXIC_KINDS | {"down"}
#: Kinds that act on the server, not on groups of clients: no target share, no stream.
SERVER_KINDS = frozenset({"server_kill", "db_fault", "epoch_reset"})
STREAMS = ("both", "downstream", "upstream")
DB_FAULT_MODES = ("verify", "deadlock", "slow_commit")

DEFAULT_THRESHOLDS = {"delivery_rate": ">= 0.995"}
OVERRIDABLE = (
    "name", "seed", "duration_s", "clients", "writers", "dates", "rate", "appointments",
    "drain_timeout_s", "on_time_s", "groups", "expect_traces",
)  # fmt: skip


@dataclass(frozen=True)
class ServerOptions:
    """Settings for the embedded server; ``None`` keeps the server's own default."""

    heartbeat_s: float | None = None
    ack_timeout_s: float | None = None
    max_retries: int | None = None
    send_queue: int | None = None
    max_replay: int | None = None


@dataclass(frozen=True)
class FaultSpec:
    """One scheduled fault: ``kind`` from ``at_s`` for ``for_s`` seconds, on ``target`` (a
    share of the proxy groups), in ``stream``; ``attrs`` has every attribute, defaults
    filled."""

    at_s: float
    for_s: float
    kind: str
    target: float = 1.0
    stream: str = "both"
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

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
    appointments: int = 30
    drain_timeout_s: float = 30.0
    on_time_s: float = 5.0
    server: ServerOptions = field(default_factory=ServerOptions)
    groups: int = 1
    faults: tuple[FaultSpec, ...] = ()
    thresholds: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    expect_traces: bool = False

    def date_list(self, today: date) -> list[str]:
        """The channel dates: the explicit list, or ``dates`` consecutive days from today."""
        if isinstance(self.dates, tuple):
            return list(self.dates)
        return [(today + timedelta(days=i)).isoformat() for i in range(self.dates)]

    def with_overrides(self, **options: Any) -> Scenario:
        """A copy with command-line options applied (``None`` values are ignored), validated
        again. Fewer clients also lower ``groups``; fewer writers than clients is an error."""
        unknown = sorted(set(options) - set(OVERRIDABLE))
        if unknown:
            raise ConfigError(f"cannot override {', '.join(unknown)}; use {', '.join(OVERRIDABLE)}")
        given = {key: value for key, value in options.items() if value is not None}
        raw = self.to_dict()
        if "dates" in given and isinstance(given["dates"], list | tuple):
            given["dates"] = list(given["dates"])
        raw.update(given)
        if "clients" in given and "groups" not in given:
            raw["groups"] = min(self.groups, given["clients"])
        return _build(raw, Located("command line", ""))

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain data, in the file's own key names."""
        data = dataclasses.asdict(self)
        data["dates"] = list(self.dates) if isinstance(self.dates, tuple) else self.dates
        data["server"] = {k: v for k, v in data["server"].items() if v is not None}
        order = ("name", "kind", "at_s", "for_s", "target", "stream")
        data["faults"] = [{k: f[k] for k in order} | f["attrs"] for f in data["faults"]]
        return data

    def to_json(self) -> str:
        """``to_dict`` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_toml(self) -> str:
        """The resolved scenario as a TOML file that loads back to an equal ``Scenario``."""
        data = self.to_dict()
        tables = {key: data.pop(key) for key in ("server", "thresholds", "faults")}
        out = [f"{key} = {_toml_value(value)}" for key, value in data.items()]
        for key in ("server", "thresholds"):
            if tables[key]:
                out += ["", f"[{key}]"]
                out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in tables[key].items()]
        for fault in tables["faults"]:
            out += ["", "[[faults]]"] + [f"{k} = {_toml_value(v)}" for k, v in fault.items()]
        return "\n".join(out) + "\n"


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"scenario file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read scenario file {path}: {exc}") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str) -> Scenario:
    """Validate scenario TOML ``text``; ``source`` (a path) names it in errors and gives the
    default ``name`` (its stem)."""
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
    return _build(raw, Located(source, text))


def list_scenarios(directory: str | Path = SCENARIO_DIR) -> list[tuple[str, Path, str]]:
    """``(name, path, description)`` of every ``*.toml`` in ``directory``, by name. A file
    that does not load is listed with its error as the description."""
    found = []
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            scenario = load_scenario(path)
        except ConfigError as exc:
            found.append((path.stem, path, f"INVALID: {exc}"))
        else:
            found.append((path.stem, path, scenario.description))
    return found


def find_scenario(ref: str, directory: str | Path = SCENARIO_DIR) -> Scenario:
    """A scenario by file path, by name in ``directory``, or ``default`` (built in)."""
    as_path = Path(ref)
    if as_path.suffix == ".toml" or as_path.is_file():
        return load_scenario(as_path)
    candidate = Path(directory) / f"{ref}.toml"
    if candidate.is_file():
        return load_scenario(candidate)
    if ref == DEFAULT_NAME:
        return default_scenario()
    known = [name for name, _, _ in list_scenarios(directory)] + [DEFAULT_NAME]
    raise ConfigError(
        f"no scenario named {ref!r} in {directory}/ (known: {', '.join(known)}); "
        "give a name or a .toml file path"
    )


def default_scenario(clients: int = 10, packet_loss: bool | None = None) -> Scenario:
    """The built-in scenario ``synccli simulate`` runs without ``--scenario``, for
    ``clients`` clients. Its packet-loss fault is kept only where the machine allows it
    (``packet_loss=None`` asks ``synccli.faults.netns.check_available``)."""
    text = (
        importlib.resources.files("synccli.harness")
        .joinpath("default_scenario.toml")
        .read_text(encoding="utf-8")
    )
    scenario = parse_scenario(text, "default_scenario.toml")
    if packet_loss is None:
        from synccli.faults.netns import check_available

        packet_loss = check_available() is None
    if not packet_loss:
        kept = tuple(f for f in scenario.faults if f.kind != "packet_loss")
        scenario = dataclasses.replace(scenario, faults=kept)
    return scenario.with_overrides(clients=clients, writers=min(scenario.writers, clients))


# ------------------------------------------------------------------------- validation


def _build(raw: dict[str, Any], ctx: Located) -> Scenario:
    top = Table(ctx, raw, ())
    clients = top.get("clients", int, minimum=1)
    writers = top.get("writers", int, 0)
    if writers > clients:
        raise top.error("writers", f"{writers} writers is more than the {clients} clients")
    rate = top.get("rate", float, 0.0)
    if rate > 0 and writers == 0:
        raise top.error("rate", "writes need at least one writer; set writers")
    duration = top.get("duration_s", float)
    if duration <= 0:
        raise top.error("duration_s", "must be more than 0")
    groups = top.get("groups", int, min(clients, 10), minimum=1)
    if groups > clients:
        raise top.error("groups", f"{groups} groups is more than the {clients} clients")
    faults = _faults(ctx, raw.get("faults", []), duration)
    top.read.add("faults")
    scenario = Scenario(
        name=top.get("name", str),
        description=top.get("description", str, ""),
        seed=top.get("seed", int, 1),
        duration_s=duration,
        clients=clients,
        writers=writers,
        dates=_dates(top),
        rate=rate,
        appointments=top.get("appointments", int, 30, minimum=1),
        drain_timeout_s=top.get("drain_timeout_s", float, 30.0),
        on_time_s=top.get("on_time_s", float, 5.0),
        server=_server(ctx, raw.get("server", {})),
        groups=groups,
        faults=faults,
        thresholds=_thresholds(ctx, raw.get("thresholds", DEFAULT_THRESHOLDS)),
        expect_traces=top.get("expect_traces", bool, bool(faults)),
    )
    top.read |= {"server", "thresholds"}
    top.done()
    return scenario


def _dates(top: Table) -> int | tuple[str, ...]:
    top.read.add("dates")
    value = top.data.get("dates", 1)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise top.error("dates", "must be at least 1 (a count of days from today)")
        return value
    if not isinstance(value, list) or not value:
        raise top.error("dates", 'must be a count of days or a list like ["2026-11-26"]')
    dates = []
    for item in value:
        text = item.isoformat() if isinstance(item, date) else item
        try:
            date.fromisoformat(text)
            valid = isinstance(text, str) and len(text) == 10
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise top.error("dates", f"{item!r} is not a date YYYY-MM-DD")
        dates.append(text)
    if len(set(dates)) != len(dates):
        raise top.error("dates", "lists a date twice")
    return tuple(dates)


def _server(ctx: Located, data: Any) -> ServerOptions:
    table = Table(ctx, data, ("server",))
    options = ServerOptions(
        heartbeat_s=table.get("heartbeat_s", float, None, minimum=0.01),
        ack_timeout_s=table.get("ack_timeout_s", float, None, minimum=0.01),
        max_retries=table.get("max_retries", int, None),
        send_queue=table.get("send_queue", int, None, minimum=1),
        max_replay=table.get("max_replay", int, None, minimum=1),
    )
    table.done()
    return options


def _thresholds(ctx: Located, data: Any) -> dict[str, str]:
    table = Table(ctx, data, ("thresholds",))
    for metric in table.data:
        try:
            parse_threshold(metric, table.get(metric, str))
        except ConfigError as exc:
            raise table.error(metric, str(exc)) from None
    return dict(table.data)


def _faults(ctx: Located, data: Any, duration: float) -> tuple[FaultSpec, ...]:
    if not isinstance(data, list):
        raise ctx.error(("faults",), "must be [[faults]] tables")
    faults = tuple(_fault(ctx, item, ("faults", i), duration) for i, item in enumerate(data))
    names: dict[str, int] = {}
    for i, fault in enumerate(faults):
        if fault.name in names:
            raise ctx.error(("faults", i, "name"), f"{fault.name!r} is used twice")
        names[fault.name] = i
    # The server has one life and the namespace one loss rule at a time.
    for kind in ("server_kill", "packet_loss"):
        spans = sorted((f.at_s, f.end_s, i) for i, f in enumerate(faults) if f.kind == kind)
        for (_, end, _), (start, _, i) in pairwise(spans):
            if start < end:
                raise ctx.error(("faults", i, "at_s"), f"overlaps another {kind} fault")
    return faults


def _fault(ctx: Located, data: Any, path: KeyPath, duration: float) -> FaultSpec:
    table = Table(ctx, data, path)
    kind = table.get("kind", str)
    if kind not in FAULT_KINDS:
        raise table.error("kind", f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
    at = table.get("at_s", float)
    length = table.get("for_s", float, 0.0 if kind == "epoch_reset" else MISSING)
    if at + length > duration:
        raise table.error("for_s", f"the fault ends at {at + length:g} s, after duration_s")
    target = _target(table, kind)
    stream = table.get("stream", str, "both")
    if stream not in STREAMS:
        raise table.error("stream", f"must be one of {', '.join(STREAMS)}")
    if stream != "both" and kind not in TOXIC_KINDS | {"packet_loss"}:
        raise table.error("stream", f"a {kind} fault has no stream")
    attrs = {
        attr: table.get(attr, kind_, MISSING if default is None else default)
        for attr, (kind_, default) in FAULT_KINDS[kind].items()
    }
    _check_attrs(table, kind, attrs)
    name = table.get("name", str, f"{kind}-{path[-1] + 1}" if isinstance(path[-1], int) else kind)
    table.done()
    return FaultSpec(at, length, kind, target, stream, attrs, name)


def _target(table: Table, kind: str) -> float:
    table.read.add("target")
    value = table.data.get("target", 1.0)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value):
        share = float(value.strip().rstrip("%")) / 100
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        raise table.error("target", f'must be a share like 0.5 or "50%", not {value!r}')
    if not 0 < share <= 1:
        raise table.error("target", f"must be a share in (0, 1] of the groups, not {value!r}")
    if share != 1 and (kind in SERVER_KINDS or kind == "packet_loss"):
        raise table.error("target", f"a {kind} fault hits the server: target must be 1.0")
    return share


def _check_attrs(table: Table, kind: str, attrs: Mapping[str, Any]) -> None:
    if kind == "packet_loss" and attrs["percent"] > 100:
        raise table.error("percent", "must be at most 100")
    if kind == "db_fault":
        if attrs["mode"] not in DB_FAULT_MODES:
            raise table.error("mode", f"must be one of {', '.join(DB_FAULT_MODES)}")
        if not 0 < attrs["rate"] <= 1:
            raise table.error("rate", "must be a share in (0, 1] of the commits")
        if attrs["mode"] == "slow_commit" and attrs["delay_ms"] <= 0:
            raise table.error("delay_ms", "a slow_commit fault needs delay_ms > 0")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[\w-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    # JSON's string escapes and number forms are valid TOML; booleans and lists agree too.
    return json.dumps(value)
