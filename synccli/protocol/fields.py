"""Field specs: a message declares its wire fields once, as a table that drives both
``parse`` and ``to_wire`` (``WireMessage``).

A ``Kind`` checks one wire value into a Python value and writes it back; a ``Field`` binds a
wire key to an attribute; a ``Group`` flattens a nested object into attributes; a
``Variant`` picks more fields by a flag read before them; an ``Inline`` attribute is the
message itself. Every check raises ``ProtocolError("bad_message")`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol, Self

from synccli.domain.values import (
    MAX_FIELD_LEN,
    MAX_ID_LEN,
    Event,
    Position,
    Row,
    check_date,
    check_object,
    check_seq,
    check_text,
)
from synccli.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class Kind:
    """How one wire value is checked into a Python value (``read``) and written back."""

    read: Callable[[Any, str], Any]
    write: Callable[[Any], Any] = lambda value: value


class Spec(Protocol):
    """One entry of a message's ``FIELDS``: reads wire keys into constructor arguments and
    writes attributes back into the wire dict."""

    def take(self, data: dict[str, Any], into: dict[str, Any]) -> None: ...

    def put(self, message: Any, out: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Field:
    """The wire key ``wire`` holds the attribute ``attr``. ``optional``: absent or null reads
    as None; None is then left out of the wire unless ``omit`` is false (written as null)."""

    attr: str
    wire: str
    kind: Kind
    optional: bool = False
    omit: bool = True

    def take(self, data: dict[str, Any], into: dict[str, Any]) -> None:
        raw = data.get(self.wire)
        into[self.attr] = None if raw is None and self.optional else self.kind.read(raw, self.wire)

    def put(self, message: Any, out: dict[str, Any]) -> None:
        value = getattr(message, self.attr)
        if value is not None:
            out[self.wire] = self.kind.write(value)
        elif not (self.optional and self.omit):
            out[self.wire] = None


@dataclass(frozen=True, slots=True)
class Group:
    """A nested object whose keys are attributes of the message itself (``error``)."""

    wire: str
    fields: tuple[Field, ...]

    def take(self, data: dict[str, Any], into: dict[str, Any]) -> None:
        raw = data.get(self.wire)
        inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
        for spec in self.fields:
            spec.take(inner, into)

    def put(self, message: Any, out: dict[str, Any]) -> None:
        inner: dict[str, Any] = {}
        for spec in self.fields:
            spec.put(message, inner)
        out[self.wire] = inner


@dataclass(frozen=True, slots=True)
class Variant:
    """Fields that depend on an attribute read before them: ``when`` if it is truthy."""

    attr: str
    when: tuple[Spec, ...]
    otherwise: tuple[Spec, ...]

    def take(self, data: dict[str, Any], into: dict[str, Any]) -> None:
        for spec in self.when if into[self.attr] else self.otherwise:
            spec.take(data, into)

    def put(self, message: Any, out: dict[str, Any]) -> None:
        for spec in self.when if getattr(message, self.attr) else self.otherwise:
            spec.put(message, out)


@dataclass(frozen=True, slots=True)
class Inline:
    """An attribute whose wire form is the message itself (an event's keys at the top)."""

    attr: str
    kind: Kind

    def take(self, data: dict[str, Any], into: dict[str, Any]) -> None:
        into[self.attr] = self.kind.read(data, self.attr)

    def put(self, message: Any, out: dict[str, Any]) -> None:
        out.update(self.kind.write(getattr(message, self.attr)))


def _position(value: Any, name: str) -> Position:
    data = check_object(value, f"{name!r} ({{epoch, sequenceNum}})")
    return Position(
        check_text(data.get("epoch"), "epoch"), check_seq(data.get("sequenceNum"), "sequenceNum")
    )


def _position_wire(position: Position) -> dict[str, Any]:
    return {"epoch": position.epoch, "sequenceNum": position.seq}


def _positions(value: Any, name: str) -> dict[str, Position]:
    return {
        check_date(date_): _position(pos, "position")
        for date_, pos in check_object(value, repr(name)).items()
    }


def _list_of(read: Callable[[Any], Any]) -> Callable[[Any, str], list[Any]]:
    def read_list(value: Any, name: str) -> list[Any]:
        if not isinstance(value, list):
            raise ProtocolError("bad_message", f"{name!r} must be a list")
        return [read(item) for item in value]

    return read_list


def _note(value: Any, name: str) -> str:
    """Free text for people (an error's message): any string, absent reads as empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"{name!r} must be a string")
    return value


DATE = Kind(check_date)
TEXT = Kind(partial(check_text, limit=MAX_FIELD_LEN))
ID = Kind(partial(check_text, limit=MAX_ID_LEN))
SEQ = Kind(check_seq)
FLAG = Kind(lambda value, name: bool(value))
NOTE = Kind(_note)
POSITION = Kind(_position, _position_wire)
POSITIONS = Kind(_positions, lambda positions: {d: _position_wire(p) for d, p in positions.items()})
ROW = Kind(lambda value, name: Row.from_wire(value), Row.to_wire)
ROWS = Kind(_list_of(Row.from_wire), lambda rows: [row.to_wire() for row in rows])
EVENT = Kind(lambda value, name: Event.from_wire(value), Event.to_wire)
EVENTS = Kind(_list_of(Event.from_wire), lambda events: [e.to_wire(True) for e in events])


class WireMessage:
    """Base of every message: ``parse`` and ``to_wire`` both follow ``FIELDS``."""

    __slots__ = ()
    type: ClassVar[str]
    FIELDS: ClassVar[tuple[Spec, ...]]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Self:
        """Validate a decoded frame of this type; ``ProtocolError`` names the first bad field."""
        values: dict[str, Any] = {}
        for spec in cls.FIELDS:
            spec.take(data, values)
        build: Callable[..., Self] = cls
        return build(**values)

    def to_wire(self) -> dict[str, Any]:
        """The message as the JSON object sent on the wire."""
        out: dict[str, Any] = {"type": self.type}
        for spec in self.FIELDS:
            spec.put(self, out)
        return out
