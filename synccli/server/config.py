"""The server's configuration: one frozen dataclass the CLI builds and the server reads."""

from __future__ import annotations

from dataclasses import dataclass

from synccli.errors import ConfigError
from synccli.injection import check_bugs


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``SyncServer`` needs. Times are seconds unless the name says otherwise."""

    db_url: str
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    heartbeat_s: float = 5.0
    ack_timeout_s: float = 5.0
    max_retries: int = 3
    send_queue: int = 10000
    max_frame_bytes: int = 65536
    max_replay: int = 10000
    relay_poll_s: float = 0.05
    #: Events older than this many hours are pruned from the log; None keeps them forever.
    retention_hours: float | None = 24.0
    prune_every_s: float = 60.0
    malformed_limit: int = 10
    tail_cache: int = 2048
    write_retries: int = 3
    #: Seconds any database call may take before it is answered as ``db_unavailable``;
    #: longer than the store's own waits (SQLite's 10 s busy timeout, the 5 s ODBC login).
    db_timeout_s: float = 15.0
    shutdown_timeout_s: float = 5.0
    fault_hooks: bool = False
    inject_bugs: tuple[str, ...] = ()
    bug_seed: int = 0

    def __post_init__(self) -> None:
        positive = {
            "heartbeat": self.heartbeat_s,
            "ack timeout": self.ack_timeout_s,
            "send queue": self.send_queue,
            "max frame bytes": self.max_frame_bytes,
            "max replay": self.max_replay,
            "relay poll": self.relay_poll_s,
            "database timeout": self.db_timeout_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"the {name} must be greater than 0 (got {value})")
        if self.max_retries < 0:
            raise ConfigError(f"max retries must be 0 or more (got {self.max_retries})")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535 (got {self.port})")
        if self.retention_hours is not None and self.retention_hours <= 0:
            raise ConfigError(f"retention must be more than 0 hours (got {self.retention_hours})")
        check_bugs(self.inject_bugs, "server")
