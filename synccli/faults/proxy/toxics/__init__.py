"""The toxics, one module each, registered by name (as in Shopify/toxiproxy's ``toxics/``)."""

from synccli.faults.proxy.toxics import (
    bandwidth,
    latency,
    limit_data,
    noop,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from synccli.faults.proxy.toxics.base import (
    Chunk,
    ChunkQueue,
    Stub,
    Toxic,
    toxic_class,
    toxic_types,
)

# Imported for their registration side effect.
_MODULES = (bandwidth, latency, limit_data, noop, reset_peer, slicer, slow_close, timeout)

__all__ = ["Chunk", "ChunkQueue", "Stub", "Toxic", "toxic_class", "toxic_types"]
