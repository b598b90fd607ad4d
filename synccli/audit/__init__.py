"""The durable log as a tool: log entries with their audit columns, and the board of a day
rebuilt from them at any sequence number. Pure: nothing here does I/O or reads a clock."""

from synccli.audit.board import Rebuild, check_head, earliest_seq, parse_moment, rebuild, seq_at
from synccli.audit.entries import DayLog, LogEntry, LogPage

__all__ = [
    "DayLog",
    "LogEntry",
    "LogPage",
    "Rebuild",
    "check_head",
    "earliest_seq",
    "parse_moment",
    "rebuild",
    "seq_at",
]
