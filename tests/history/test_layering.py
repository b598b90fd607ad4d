"""``synccli.history`` sits low: it may import only ``synccli.errors``, ``synccli.domain``
and the standard library, so the clients, the harness and the report can all use it."""

from __future__ import annotations

import ast
from pathlib import Path

import synccli.history

ALLOWED = ("synccli.errors", "synccli.domain", "synccli.history")


def test_history_imports_nothing_above_it() -> None:
    folder = Path(synccli.history.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                inside = name.startswith("synccli")
                assert not inside or name.startswith(ALLOWED), f"{path.name} imports {name}"
