"""The log and the board as text: a table that streams (column widths fixed by the first
page), JSON Lines and CSV for the log; a table or one JSON document for the board."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring
from typing import Any

from synccli.audit.board import Rebuild
from synccli.audit.entries import LogLine

LOG_FORMATS = ("table", "json", "csv")
BOARD_FORMATS = ("table", "json")

LOG_COLUMNS = (
    "seq",
    "committed at",
    "appointment",
    "patient",
    "from → to",
    "version",
    "actor",
    "request id",
)
_JSON_KEYS = (
    "seq",
    "committedAt",
    "appointmentId",
    "patient",
    "from",
    "to",
    "version",
    "actor",
    "requestId",
)
#: One encoder for every line (``json.dumps`` with options builds a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False).encode
#: A JSON string literal as that encoder writes it (the C one where there is one).
_quote: Callable[[str], str] = encode_basestring
#: Written for a value the log does not hold (an actor or prior state from before schema 2).
UNKNOWN = "?"


def log_cells(line: LogLine) -> tuple[str, ...]:
    """One entry as the table's and the CSV's cells."""
    return (
        str(line.seq),
        line.committed_at,
        line.appointment_id,
        line.patient,
        f"{line.from_state or UNKNOWN} → {line.to_state}",
        str(line.version),
        line.actor or UNKNOWN,
        line.request_id or "",
    )


def _json_text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _json_number(value: Any) -> str:
    return str(value) if type(value) is int else _encode(value)


#: One JSON Lines object, keys in ``_JSON_KEYS`` order, as ``json.dumps`` would write it.
_JSON_LINE = "{{" + ", ".join(f'"{key}": {{}}' for key in _JSON_KEYS) + "}}"


def log_json(line: LogLine) -> str:
    """One entry as a JSON object on one line (unknown values are null). Built from quoted
    fields rather than a dict through the encoder: a day of 100,000 lines costs half."""
    return _JSON_LINE.format(
        line.seq,
        _quote(line.committed_at),
        _quote(line.appointment_id),
        _quote(line.patient),
        _json_text(line.from_state),
        _quote(line.to_state),
        _json_number(line.version),
        _json_text(line.actor),
        _json_text(line.request_id),
    )


def log_blocks(pages: Iterable[Sequence[LogLine]], fmt: str) -> Iterator[str]:
    """The log as text, one block of whole lines per page as the pages arrive (a pager or
    a pipe sees the first page at once; one write per page, not per line)."""
    header_done = False
    template = ""
    for page in pages:
        lines: list[str] = []
        if fmt == "json":
            lines = [log_json(entry) for entry in page]
        elif fmt == "csv":
            # One writer per page into one buffer (a writer per line costs more than the line).
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            if not header_done:
                writer.writerow(LOG_COLUMNS)
            writer.writerows(map(log_cells, page))
            header_done = True
            yield buffer.getvalue()
            continue
        else:
            cells = [log_cells(entry) for entry in page]
            if not header_done:
                widths = [
                    max([len(name), *(len(row[i]) for row in cells)])
                    for i, name in enumerate(LOG_COLUMNS)
                ]
                template = _template(widths)
                lines.append(template.format(*LOG_COLUMNS).rstrip())
                lines.append(template.format(*("-" * w for w in widths)).rstrip())
            lines += [template.format(*row).rstrip() for row in cells]
        header_done = True
        yield "".join(line + "\n" for line in lines)


def _template(widths: Sequence[int]) -> str:
    """A ``str.format`` template for one table line (one C call per line, not per cell):
    the sequence number and the version right-aligned, everything else left."""
    return "  ".join(
        f"{{:>{width}}}" if index in (0, 5) else f"{{:<{width}}}"
        for index, width in enumerate(widths)
    )


BOARD_COLUMNS = ("appointment", "patient", "state", "state time", "version", "updated at")


def board_table(board: Rebuild) -> list[tuple[str, ...]]:
    """The board's rows as table cells."""
    return [
        (
            row.appointment_id,
            row.patient,
            row.state,
            row.state_time or "",
            str(row.version),
            row.updated_at,
        )
        for row in board.rows
    ]


def board_json(date: str, board: Rebuild, head: int, problems: Sequence[str] | None) -> str:
    """The board as one JSON document; ``problems`` is the head check (None: not at head)."""
    document: dict[str, Any] = {
        "date": date,
        "seq": board.seq,
        "head": head,
        "committedAt": board.committed_at,
        "appointments": [row.to_wire() for row in board.rows],
    }
    if problems is not None:
        document["matchesStoredRows"] = not problems
        document["problems"] = list(problems)
    return json.dumps(document, ensure_ascii=False, indent=2)
