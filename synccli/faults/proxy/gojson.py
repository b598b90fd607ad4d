"""Decode request bodies the way Toxiproxy's Go ``encoding/json`` does, with its error texts.

Clients read the error strings, so a body the real server refuses with ``json: cannot
unmarshal string into Go struct field …`` gets the same sentence here. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class GoJSONError(Exception):
    """A body Go's decoder would refuse; ``str()`` is Go's message."""


class FloatLiteral(float):
    """A JSON number with a fraction or exponent, remembering how it was written."""

    text: str

    def __new__(cls, text: str) -> FloatLiteral:
        value = super().__new__(cls, text)
        value.text = text
        return value


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=FloatLiteral, parse_constant=_reject_constant)


def decode(body: bytes) -> Any:
    """The first JSON value of ``body``; like Go's ``Decoder.Decode``, trailing data is ignored."""
    text = body.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip())
    if start == len(text):
        raise GoJSONError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise GoJSONError("unexpected EOF") from None
        char = text[exc.pos]
        raise GoJSONError(f"invalid character '{char}' looking for beginning of value") from None
    return value


def kind(value: Any) -> str:
    """Go's name for the JSON kind of ``value`` as used in unmarshal errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def expect_object(value: Any, go_type: str) -> dict[str, Any]:
    """``value`` as an object, or Go's error for decoding it into the struct ``go_type``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GoJSONError(f"json: cannot unmarshal {kind(value)} into Go value of type {go_type}")
    return value


def lookup(obj: dict[str, Any], key: str) -> Any:
    """``obj[key]``, matched case-insensitively as Go does when there is no exact key."""
    if key in obj:
        return obj[key]
    for name, value in obj.items():
        if name.lower() == key:
            return value
    return None


def _mismatch(value: Any, field: str, go_type: str) -> GoJSONError:
    return GoJSONError(
        f"json: cannot unmarshal {kind(value)} into Go struct field {field} of type {go_type}"
    )


def get_str(obj: dict[str, Any], key: str, struct: str) -> str | None:
    """The string field ``key``; ``None`` if absent or null."""
    value = lookup(obj, key)
    if value is None or isinstance(value, str):
        return value
    raise _mismatch(value, f"{struct}.{key}", "string")


def get_bool(obj: dict[str, Any], key: str, struct: str) -> bool | None:
    """The bool field ``key``; ``None`` if absent or null."""
    value = lookup(obj, key)
    if value is None or isinstance(value, bool):
        return value
    raise _mismatch(value, f"{struct}.{key}", "bool")


def get_float(obj: dict[str, Any], key: str, struct: str) -> float | None:
    """The float32 field ``key``; ``None`` if absent or null."""
    value = lookup(obj, key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _mismatch(value, f"{struct}.{key}", "float32")


def get_int(obj: dict[str, Any], key: str, field: str, go_type: str) -> int | None:
    """The integer field ``key`` (int64 range); ``None`` if absent or null."""
    value = lookup(obj, key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise GoJSONError(
            f"json: cannot unmarshal number {value} into Go struct field {field} of type {go_type}"
        )
    if isinstance(value, FloatLiteral):
        raise GoJSONError(
            f"json: cannot unmarshal number {value.text} into Go struct field {field} "
            f"of type {go_type}"
        )
    raise _mismatch(value, field, go_type)


def _html_safe(text: str) -> str:
    # Go's encoder escapes these so JSON can be embedded in HTML; clients may compare bytes.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_values(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _go_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_values(item) for item in value]
    return value


def encode(value: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (floats like 1.0 become ``1``)."""
    text = json.dumps(_go_values(value), separators=(",", ":"), ensure_ascii=False)
    return _html_safe(text).encode()
