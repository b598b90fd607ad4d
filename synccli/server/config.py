"""The server's configuration: one frozen dataclass the CLI builds and the server reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from synccli.errors import ConfigError
from synccli.injection import check_bugs
from synccli.protocol.node import valid_node_name
from synccli.protocol.server_ops import ServerSessionConfig
from synccli.server.loop import check_event_loop

#: The protocol limits' defaults have one home, the connection's session configuration.
_LIMITS = ServerSessionConfig()

#: URL schemes ``--bus`` accepts (redis-py's).
BUS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``SyncServer`` needs. Times are seconds unless the name says otherwise."""

    db_url: str
    host: str = "127.0.0.1"
    port: int = 8765
    #: The single-user static token; ``repr`` never shows a secret.
    token: str | None = field(default=None, repr=False)
    #: Per-user signed tokens: the HS256 secret, or the RS256/ES256 public key (PEM text).
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = None
    #: Clock skew tolerated between where a token was minted and here (also past ``exp``).
    jwt_leeway_s: float = 30.0
    #: Serve wss:// and https:// with this certificate chain and key (PEM files).
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Browser origins (``https://board.example``) allowed besides the server's own.
    allowed_origins: tuple[str, ...] = ()
    #: A second port with ``/metrics`` and full ``/healthz`` and no token (None: none).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    heartbeat_s: float = _LIMITS.heartbeat
    ack_timeout_s: float = _LIMITS.ack_timeout
    max_retries: int = _LIMITS.max_retries
    send_queue: int = 10000
    max_frame_bytes: int = 65536
    max_replay: int = _LIMITS.max_replay
    relay_poll_s: float = 0.05
    #: ``redis://HOST:PORT/DB`` shares events with other nodes; None: one node, polling relay.
    bus_url: str | None = None
    #: With a bus up and a peer silent, the relay's poll of the database (a missed last event).
    bus_safety_poll_s: float = 1.0
    #: This node's name, sent on every WebSocket upgrade (``X-Synccli-Node``); None: none.
    node_name: str | None = None
    #: Events older than this many hours are pruned from the log; None keeps them forever.
    retention_hours: float | None = 24.0
    prune_every_s: float = 60.0
    malformed_limit: int = _LIMITS.malformed_limit
    tail_cache: int = 2048
    write_retries: int = 3
    #: Seconds any database call may take before it is answered as ``db_unavailable``;
    #: longer than the store's own waits (SQLite's 10 s busy timeout, the 5 s ODBC login).
    db_timeout_s: float = 15.0
    shutdown_timeout_s: float = 5.0
    #: Open WebSocket connections; more are refused with HTTP 503 at the upgrade.
    max_connections: int = 2000
    #: Connections the kernel queues for the server before it accepts them (``listen()``'s
    #: backlog, capped by ``net.core.somaxconn``): room for every connection coming back at
    #: once, since one that finds the queue full waits for a SYN retransmit, about 1 s.
    backlog: int = 2048
    #: Bytes of frames queued for one connection before it is closed 4001.
    send_queue_bytes: int = 8 * 1024 * 1024
    #: Events per replay page; the next page is read once the queue is below a quarter.
    replay_page: int = _LIMITS.replay_page
    max_subscriptions: int = _LIMITS.max_subscriptions
    #: Client messages per second per connection (token bucket) and its burst.
    message_rate: float = _LIMITS.message_rate
    message_burst: float = _LIMITS.message_burst
    #: Refused messages without a quiet second before the connection is closed 1008.
    rate_strikes: int = _LIMITS.rate_strikes
    #: Dates served: this many days before today to this many after.
    days_back: int = _LIMITS.days_back
    days_ahead: int = _LIMITS.days_ahead
    #: Live events one connection may leave unacked before it is closed 4002.
    max_unacked: int = _LIMITS.max_unacked
    fault_hooks: bool = False
    inject_bugs: tuple[str, ...] = ()
    bug_seed: int = 0
    #: Serve on this already-listening socket (inherited) instead of binding host:port;
    #: the harness's packet loss hands over one made inside a network namespace.
    listen_fd: int | None = None
    #: ``asyncio``, ``uvloop`` or ``auto`` (uvloop when installed; see ``server.loop``).
    event_loop: str = "asyncio"

    def __post_init__(self) -> None:
        positive = {
            "heartbeat": self.heartbeat_s,
            "ack timeout": self.ack_timeout_s,
            "send queue": self.send_queue,
            "max frame bytes": self.max_frame_bytes,
            "max replay": self.max_replay,
            "relay poll": self.relay_poll_s,
            "bus safety poll": self.bus_safety_poll_s,
            "database timeout": self.db_timeout_s,
            "max connections": self.max_connections,
            "backlog": self.backlog,
            "send queue bytes": self.send_queue_bytes,
            "replay page": self.replay_page,
            "max subscriptions": self.max_subscriptions,
            "message rate": self.message_rate,
            "message burst": self.message_burst,
            "max unacked": self.max_unacked,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"the {name} must be greater than 0 (got {value})")
        if min(self.days_back, self.days_ahead, self.rate_strikes) < 0:
            raise ConfigError("the date window and rate strikes must be 0 or more")
        if self.max_retries < 0:
            raise ConfigError(f"max retries must be 0 or more (got {self.max_retries})")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535 (got {self.port})")
        if self.retention_hours is not None and self.retention_hours <= 0:
            raise ConfigError(f"retention must be more than 0 hours (got {self.retention_hours})")
        if self.bus_url is not None and not self.bus_url.startswith(BUS_SCHEMES):
            raise ConfigError(
                f"the bus URL must look like redis://HOST:PORT/DB (got {self.bus_url!r})"
            )
        if self.node_name is not None and not valid_node_name(self.node_name):
            raise ConfigError(
                f"a node name is 1 to 64 letters, digits or ._:@- (got {self.node_name!r})"
            )
        check_bugs(self.inject_bugs, "server")
        check_event_loop(self.event_loop)
        self._check_security()

    def _check_security(self) -> None:
        from synccli.server.auth import check_secret

        check_secret(self.token, "token")
        check_secret(self.jwt_secret, "JWT secret")
        check_secret(self.jwt_public_key, "JWT public key")
        chosen = [self.token, self.jwt_secret, self.jwt_public_key]
        if sum(value is not None for value in chosen) > 1:
            raise ConfigError("choose one of --token, --jwt-secret and --jwt-public-key")
        if self.jwt_leeway_s < 0:
            raise ConfigError(f"the JWT leeway must be 0 or more (got {self.jwt_leeway_s})")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics port must be between 0 and 65535 (got {self.metrics_port})")
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise ConfigError("the metrics port must differ from the main port")

    @property
    def auth_enabled(self) -> bool:
        return any(v is not None for v in (self.token, self.jwt_secret, self.jwt_public_key))

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
