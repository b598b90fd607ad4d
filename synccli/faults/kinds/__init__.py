"""The fault-kind registry: every kind of fault a scenario can schedule, one module each.

A module here is named after its kind and registers it (``KIND = register(...)``); this
package imports every module it holds, so a new kind is one new module plus its runner
(``synccli.harness.fault_runners``). ``python -m synccli.faults.kinds`` prints the table
docs/scenarios.md shows.
"""

import importlib
import pkgutil

from synccli.faults.kinds.base import (
    REQUIRED,
    Attr,
    FaultKind,
    Problem,
    check_value,
    fault_kind,
    fault_kinds,
    markdown_table,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

#: Kinds that act on the clients' proxies (the toxics and ``down``): the run needs proxies.
PROXY_KINDS = frozenset(name for name, kind in fault_kinds().items() if kind.target == "proxy")

__all__ = [
    "PROXY_KINDS",
    "REQUIRED",
    "Attr",
    "FaultKind",
    "Problem",
    "check_value",
    "fault_kind",
    "fault_kinds",
    "markdown_table",
    "register",
]
