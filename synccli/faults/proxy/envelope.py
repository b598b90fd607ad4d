"""The envelope every toxic shares (name, type, stream, toxicity, attributes), the API error,
and the pure decoding of toxic create/update bodies in Toxiproxy's validation order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synccli.faults.proxy import gojson
from synccli.faults.proxy.toxics import Toxic, toxic_class

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"
DIRECTIONS = (UPSTREAM, DOWNSTREAM)


class ApiError(Exception):
    """An API failure: HTTP ``status`` and Toxiproxy's exact ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_body(error: gojson.GoJSONError | str) -> ApiError:
    """400 ``bad request body: …`` as the real server words it."""
    return ApiError(400, f"bad request body: {error}")


@dataclass
class ToxicEnvelope:
    """One toxic of a proxy: ``stream`` is echoed as sent, ``direction`` is its meaning."""

    name: str
    type: str
    stream: str
    direction: str
    toxicity: float
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        """The toxic as the API returns it (Go's field order)."""
        return {
            "attributes": self.toxic.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


def parse_direction(stream: str) -> str:
    """``upstream``/``downstream``, case-insensitive; anything else is a 400."""
    direction = stream.lower()
    if direction not in DIRECTIONS:
        raise ApiError(400, "stream was invalid, can be either upstream or downstream")
    return direction


def _checked(toxic: Toxic) -> Toxic:
    problem = toxic.problem()
    if problem is not None:
        raise bad_body(problem)
    return toxic


def parse_new_toxic(body: bytes, taken: set[str]) -> ToxicEnvelope:
    """Decode a ``POST /proxies/{p}/toxics`` body; ``taken`` are the proxy's toxic names.

    Order as the real one: JSON, stream, default name, type, duplicate name, attributes.
    """
    try:
        obj = gojson.expect_object(gojson.decode(body), "toxics.ToxicWrapper")
        name = gojson.get_str(obj, "name", "ToxicWrapper") or ""
        type_name = gojson.get_str(obj, "type", "ToxicWrapper") or ""
        stream = gojson.get_str(obj, "stream", "ToxicWrapper")
        toxicity = gojson.get_float(obj, "toxicity", "ToxicWrapper")
    except gojson.GoJSONError as exc:
        raise bad_body(exc) from None
    stream = DOWNSTREAM if stream is None else stream
    direction = parse_direction(stream)
    name = name or f"{type_name}_{stream}"
    cls = toxic_class(type_name)
    if cls is None:
        raise ApiError(400, "invalid toxic type")
    if name in taken:
        raise ApiError(409, "toxic already exists")
    try:
        toxic = cls().merged(gojson.lookup(obj, "attributes"))
    except gojson.GoJSONError as exc:
        raise bad_body(exc) from None
    return ToxicEnvelope(
        name=name,
        type=type_name,
        stream=stream,
        direction=direction,
        toxicity=1.0 if toxicity is None else toxicity,
        toxic=_checked(toxic),
    )


def parse_toxic_update(envelope: ToxicEnvelope, body: bytes) -> tuple[Toxic, float]:
    """Decode a toxic ``PATCH`` body: attributes merge over the current ones; only
    ``attributes`` and ``toxicity`` are read. Returns the new toxic and toxicity."""
    try:
        obj = gojson.expect_object(gojson.decode(body), "struct { Attributes interface {}; ... }")
        toxic = envelope.toxic.merged(gojson.lookup(obj, "attributes"))
        toxicity = gojson.get_float(obj, "toxicity", "")
    except gojson.GoJSONError as exc:
        raise bad_body(exc) from None
    return _checked(toxic), envelope.toxicity if toxicity is None else toxicity
