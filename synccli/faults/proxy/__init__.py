"""An embedded, Toxiproxy-compatible proxy (HTTP API v2.12) in pure asyncio.

Use it where no Toxiproxy is installed; the same client code drives either one::

    handle = start_in_thread("127.0.0.1", 0, seed=1)
    ...  # http://127.0.0.1:{handle.port} speaks Toxiproxy's API
    handle.stop()
"""

from synccli.faults.proxy.server import (
    EmbeddedToxiproxy,
    ProxyThread,
    serve_forever,
    start_in_thread,
)

__all__ = ["EmbeddedToxiproxy", "ProxyThread", "serve_forever", "start_in_thread"]
