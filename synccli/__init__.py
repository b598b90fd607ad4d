"""synccli: a reliable real-time sync server for appointment boards, and the harness that
proves it under faults."""

from synccli.errors import (
    ConfigError,
    DatabaseUnavailable,
    FaultError,
    InfrastructureError,
    ProtocolError,
    StoreError,
    SynccliError,
    TransientDatabaseError,
    WriteRejected,
)
from synccli.version import __version__

__all__ = [
    "ConfigError",
    "DatabaseUnavailable",
    "FaultError",
    "InfrastructureError",
    "ProtocolError",
    "StoreError",
    "SynccliError",
    "TransientDatabaseError",
    "WriteRejected",
    "__version__",
]
