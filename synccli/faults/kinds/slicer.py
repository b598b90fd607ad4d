"""``slicer``: the same bytes in pieces of about ``average_size``, ``delay`` µs apart."""

from collections.abc import Iterator, Mapping
from typing import Any

from synccli.faults.kinds.base import Attr, Problem, register, toxic


def _rules(values: Mapping[str, Any]) -> Iterator[Problem]:
    # A variation as large as the size makes Toxiproxy's splitting slice out of range.
    if values["size_variation"] >= values["average_size"]:
        yield "size_variation", "must be smaller than average_size"


KIND = register(
    toxic(
        "slicer",
        "the same bytes, cut into small pieces",
        # 0 makes Toxiproxy's slicer recurse forever.
        Attr("average_size", int, unit="bytes", minimum=1),
        Attr("size_variation", int, 0, unit="bytes"),
        Attr("delay", int, 0, unit="µs"),
        rules=_rules,
    )
)
