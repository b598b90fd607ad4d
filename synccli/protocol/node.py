"""Which node answered: the name a server of several sends on its WebSocket upgrade.

A node started with ``--node-name`` adds ``X-Synccli-Node: NAME`` to the HTTP 101 answer, so
a client behind a load balancer knows which node it reached (the harness records it on each
``connect``). A name is ``[A-Za-z0-9._:@-]{1,64}``: safe in a header and in a report.
"""

from __future__ import annotations

import re

HEADER = "X-Synccli-Node"
_VALID = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def valid_node_name(name: str) -> bool:
    """Whether ``name`` may name a node."""
    return _VALID.match(name) is not None
