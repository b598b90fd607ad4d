"""What a fault kind declares, and the registry the kinds' modules fill.

A kind is one ``FaultKind``: its name, what it acts on, one line saying what happens, and
its attributes (``Attr``: type, unit, default, bounds), plus the rules between attributes
that no single bound can say. Every consumer reads it from here: scenario validation, the
fault schedule (one runner per kind), the Toxiproxy wrapper (a toxic's attributes) and the
table in docs/scenarios.md (``markdown_table``).

Only the standard library, ``synccli.errors`` and ``synccli.domain`` may be imported in this
package: the server imports the database fault from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: The default of an attribute that must be given.
REQUIRED: Any = object()

#: A problem with one attribute: ``(attribute, "must be ...")``.
Problem = tuple[str, str]
#: A kind's rules between its attributes: the problems of a set of valid values.
Rules = Callable[[Mapping[str, Any]], Iterable[Problem]]

#: What a kind acts on: the clients' proxies, the network around the server, the server.
Target = Literal["proxy", "network", "server"]
#: The built-in sets a proxy fault may be narrowed to (``clients`` of a fault), besides a
#: scenario's named client groups: readers and writers sit behind separate proxies, so
#: either kind can be hit alone.
CLIENT_SETS = ("all", "readers", "writers")

TYPE_NAMES: dict[type, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
}


def check_value(
    value: Any,
    kind: type,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
) -> tuple[Any, str | None]:
    """``value`` as ``kind`` (an int is accepted as a float) and what is wrong with it, if
    anything: its type, a bound, or not one of ``choices``."""
    given = value  # shown in problems as written
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    # bool is an int subclass, but `clients = true` is a mistake, not 1.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        return value, f"must be {TYPE_NAMES[kind]}, not {given!r}"
    if isinstance(value, float) and math.isnan(value):
        return value, "must be a number, not nan"
    if isinstance(value, int | float):
        if minimum is not None and value < minimum:
            return value, f"must be at least {minimum:g}, not {given!r}"
        if maximum is not None and value > maximum:
            return value, f"must be at most {maximum:g}, not {given!r}"
    if choices and value not in choices:
        return value, f"must be one of {', '.join(choices)}, not {given!r}"
    return value, None


@dataclass(frozen=True)
class Attr:
    """One attribute of a fault kind. ``unit`` is shown in the docs (Toxiproxy's units:
    ms, KB/s, bytes, µs); numbers are at least ``minimum`` unless it is ``None``."""

    name: str
    type: type
    default: Any = REQUIRED
    unit: str = ""
    minimum: float | None = 0
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        """Whether the attribute has no default."""
        return self.default is REQUIRED

    def check(self, value: Any) -> tuple[Any, str | None]:
        """The value (normalised) and what is wrong with it, if anything."""
        return check_value(value, self.type, self.minimum, self.maximum, self.choices)

    def describe(self) -> str:
        """The attribute as the docs table shows it: name, unit, choices, default."""
        text = f"`{self.name}`"
        if self.unit:
            text += f" {self.unit}"
        if self.minimum not in (None, 0):
            text += f" ≥ {self.minimum:g}"
        if self.maximum is not None:
            text += f" ≤ {self.maximum:g}"
        if self.choices:
            text += " (" + ", ".join(f"`{choice}`" for choice in self.choices) + ")"
        if not self.required:
            text += f" ({self.default})"
        return text


def no_rules(values: Mapping[str, Any]) -> Iterator[Problem]:
    """The rules of a kind whose attributes are independent."""
    return iter(())


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault a scenario can schedule.

    ``toxic``: applied as the Toxiproxy toxic of the same name, its attributes sent as the
    toxic's. ``streams``: ``stream`` picks a direction. ``span``: ``for_s`` is required
    (otherwise the fault is instant, ``for_s`` 0). ``exclusive``: two windows of this kind
    may not overlap (there is one server, one loss rule). ``rules`` checks the attributes
    together, once each is valid on its own.
    """

    name: str
    summary: str
    target: Target
    attrs: tuple[Attr, ...] = ()
    toxic: bool = False
    streams: bool = False
    span: bool = True
    exclusive: bool = False
    rules: Rules = no_rules

    @property
    def picks_clients(self) -> bool:
        """Whether a fault of this kind hits chosen clients (``target``, ``clients``): only
        a proxy fault does; the others act on the server or the network around it."""
        return self.target == "proxy"

    @property
    def attr_names(self) -> list[str]:
        """The attribute names, in declaration order."""
        return [attr.name for attr in self.attrs]

    def resolve(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
        """Every attribute's value (defaults filled) and every problem with them. Keys of
        ``given`` that are not attributes are the caller's to refuse."""
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        for attr in self.attrs:
            if attr.name not in given:
                if attr.required:
                    problems.append((attr.name, "is missing"))
                else:
                    values[attr.name] = attr.default
                continue
            value, problem = attr.check(given[attr.name])
            if problem is not None:
                problems.append((attr.name, problem))
            values[attr.name] = value
        if not problems:
            problems.extend(self.rules(values))
        return values, problems

    def describe(self) -> str:
        """The attributes as the docs table shows them."""
        return ", ".join(attr.describe() for attr in self.attrs) or "—"


def toxic(name: str, summary: str, *attrs: Attr, rules: Rules = no_rules) -> FaultKind:
    """A Toxiproxy toxic as a fault kind: on the targeted groups' proxies, either stream."""
    summary = f"Toxiproxy toxic: {summary}"
    return FaultKind(name, summary, "proxy", attrs, toxic=True, streams=True, rules=rules)


_KINDS: dict[str, FaultKind] = {}


def register(kind: FaultKind) -> FaultKind:
    """Make ``kind`` known under its name; a second kind with the same name is a bug."""
    if kind.name in _KINDS:
        raise ValueError(f"fault kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind
    return kind


def fault_kind(name: str) -> FaultKind | None:
    """The registered kind called ``name``, or ``None``."""
    return _KINDS.get(name)


_TARGET_ORDER: dict[Target, int] = {"proxy": 0, "network": 1, "server": 2}


def fault_kinds() -> dict[str, FaultKind]:
    """Every registered kind by name: the toxics, then by what they act on, then by name."""
    ordered = sorted(_KINDS.values(), key=lambda k: (_TARGET_ORDER[k.target], not k.toxic, k.name))
    return {kind.name: kind for kind in ordered}


def markdown_table(kinds: Iterable[FaultKind]) -> str:
    """The table of kinds in docs/scenarios.md: kind, attributes (unit, default), effect."""
    lines = ["| kind | attributes (default) | what happens |", "|---|---|---|"]
    lines += [f"| `{k.name}` | {k.describe()} | {k.summary} |" for k in kinds]
    return "\n".join(lines) + "\n"
