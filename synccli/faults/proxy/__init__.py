"""An embedded, Toxiproxy-compatible proxy (HTTP API v2.12) in pure asyncio.

Use it where no Toxiproxy is installed; the same client code drives either one::

    handle = start_in_thread("127.0.0.1", 0, seed=1)
    ...  # http://127.0.0.1:{handle.port} speaks Toxiproxy's API
    handle.stop()

``start_in_process`` runs it in a child process instead (same API, its own interpreter).
"""

from synccli.faults.proxy.process import ProxyProcess, start_in_process
from synccli.faults.proxy.server import (
    EmbeddedToxiproxy,
    ProxyThread,
    serve_forever,
    start_in_thread,
)

__all__ = [
    "EmbeddedToxiproxy",
    "ProxyProcess",
    "ProxyThread",
    "serve_forever",
    "start_in_process",
    "start_in_thread",
]
