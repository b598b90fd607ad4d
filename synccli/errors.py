"""The one exception tree of synccli.

::

    SynccliError
     ├── ProtocolError            a peer sent something the protocol forbids (has a wire `code`)
     ├── StoreError               anything the database layer raises, translated at the boundary
     │    ├── WriteRejected       a write the rules refuse (not_found, invalid_transition, ...)
     │    └── DatabaseUnavailable the database cannot be reached or failed (db_unavailable)
     │         ├── TransientDatabaseError  deadlock victim / serialisation failure: retry is safe
     │         └── DatabaseTimeout  no answer in time: the operation may still complete
     ├── ConfigError              the user asked for something impossible (exit 2)
     ├── InfrastructureError      a service we need is not there (exit 4)
     └── FaultError               a fault could not be applied or healed (run is inconclusive)

Library code raises these; the CLI turns them into one sentence and an exit code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_INFRASTRUCTURE = 4


class SynccliError(Exception):
    """Base of every error synccli raises on purpose."""

    exit_code = EXIT_FAILED


class ProtocolError(SynccliError):
    """A message that breaks the wire protocol. ``code`` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StoreError(SynccliError):
    """Base of the database layer's errors."""

    exit_code = EXIT_INFRASTRUCTURE


class WriteRejected(StoreError):
    """A write refused by the rules; nothing was written. ``code`` is the wire error code."""

    exit_code = EXIT_FAILED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DatabaseUnavailable(StoreError):
    """The database cannot be reached, or a statement failed for a reason outside the rules."""

    code = "db_unavailable"


class TransientDatabaseError(DatabaseUnavailable):
    """A deadlock victim or serialisation failure: the transaction rolled back; retry is safe."""


class DatabaseTimeout(DatabaseUnavailable):
    """The database did not answer in time (a silent network partition, a stuck server); the
    operation was abandoned but may still complete: a write's outcome is learned by retrying
    it with the same requestId."""


class ConfigError(SynccliError):
    """Bad configuration or arguments from the user."""

    exit_code = EXIT_USAGE


class InfrastructureError(SynccliError):
    """A service the run needs is missing or unreachable."""

    exit_code = EXIT_INFRASTRUCTURE


class FaultError(SynccliError):
    """A fault could not be applied or healed; a run that depended on it is inconclusive."""

    exit_code = EXIT_INCONCLUSIVE
