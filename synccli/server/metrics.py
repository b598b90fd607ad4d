"""Server counters and their Prometheus text rendering (every name prefixed ``synccli_``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

_HELP = {
    "events_committed_total": ("counter", "Events committed by writes through this server."),
    "events_relayed_total": ("counter", "Events published by the relay (written elsewhere)."),
    "events_sent_total": ("counter", "Event frames queued to clients, live and replayed."),
    "acks_total": ("counter", "Events acknowledged by clients."),
    "retries_total": ("counter", "Event re-sends after an ack timeout."),
    "ack_timeouts_total": ("counter", "Ack deadlines missed."),
    "replays_total": ("counter", "Replayed events (subscribe with since, missed_events)."),
    "resyncs_total": ("counter", "resync_required answers and snapshot fallbacks."),
    "snapshots_total": ("counter", "Snapshots served."),
    "writes_total": ("counter", "Writes answered with ok: true."),
    "malformed_total": ("counter", "Malformed client messages (bad_json, bad_message, ...)."),
    "slow_consumer_closes_total": ("counter", "Connections closed 4001 (send queue full)."),
    "ack_exhausted_closes_total": ("counter", "Connections closed 4000 (ack retries exhausted)."),
    "unacked_closes_total": ("counter", "Connections closed 4002 (too many unacked events)."),
    "policy_closes_total": ("counter", "Connections closed 1008 (sustained malformed input)."),
    "db_errors_total": ("counter", "Database calls that failed."),
    "write_db_retries_total": ("counter", "Writes retried after a transient database error."),
    "internal_errors_total": ("counter", "Unexpected exceptions in handlers."),
    "connections_total": ("counter", "WebSocket connections accepted."),
    "connections_refused_total": ("counter", "Upgrades refused with 503 (max connections)."),
    "rate_limited_total": ("counter", "Client messages refused over the message rate."),
    "rate_limit_closes_total": ("counter", "Connections closed 1008 (sustained flood)."),
    "subscription_limit_total": ("counter", "Subscribes refused (too many subscriptions)."),
    "db_corrupt_total": ("counter", "Database errors that reported a corrupt database."),
    "log_lines_suppressed_total": ("counter", "Log lines dropped by the flood limit."),
    "forbidden_total": ("counter", "Requests refused as outside the token's rights."),
    "auth_failures_total": ("counter", "Handshakes refused 401 (missing, wrong, expired token)."),
    "origin_refused_total": ("counter", "Handshakes refused 403 (foreign Origin)."),
    "token_expired_closes_total": ("counter", "Connections closed 4003 (token expired)."),
    "relay_db_queries_total": ("counter", "Database reads by the relay (head polls, gap fills)."),
    "db_gap_fills_total": ("counter", "Relay catch-ups that read missing events from the log."),
    "bus_published_total": ("counter", "Events this node published on the bus."),
    "bus_consumed_total": ("counter", "Events of other nodes received from the bus."),
    "bus_dropped_total": ("counter", "Events not published (bus down or queue full)."),
    "bus_malformed_total": ("counter", "Bus messages that were not events or beats."),
    "bus_name_clashes_total": ("counter", "Beats from another process under this node's name."),
}


@dataclass(slots=True)
class Metrics:
    """Plain counters, incremented on the event loop only (no locks needed)."""

    counts: Counter[str] = field(default_factory=Counter)
    writes_failed: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    db_up: bool = True
    bus_up: bool = True
    bus_lag_s: float = 0.0
    bus_lag_max_s: float = 0.0
    #: Other nodes known on the bus, and how many of them are silent (the relay polls then).
    bus_peers: int = 0
    bus_peers_silent: int = 0

    def inc(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name`` (one of the documented names)."""
        self.counts[name] += amount

    def observe_bus_lag(self, seconds: float) -> None:
        """Commit → receipt time of an event heard on the bus."""
        self.bus_lag_s = seconds
        self.bus_lag_max_s = max(self.bus_lag_max_s, seconds)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        lines: list[str] = []
        for name, (kind, text) in _HELP.items():
            lines += [
                f"# HELP synccli_{name} {text}",
                f"# TYPE synccli_{name} {kind}",
                f"synccli_{name} {self.counts[name]}",
            ]
        lines += [
            "# HELP synccli_writes_failed_total Writes answered ok: false, by error code.",
            "# TYPE synccli_writes_failed_total counter",
        ]
        lines += [
            f'synccli_writes_failed_total{{code="{code}"}} {count}'
            for code, count in sorted(self.writes_failed.items())
        ]
        lines += [
            "# HELP synccli_connections Open WebSocket connections.",
            "# TYPE synccli_connections gauge",
            f"synccli_connections {self.connections}",
            "# HELP synccli_db_up 1 when the last database poll succeeded.",
            "# TYPE synccli_db_up gauge",
            f"synccli_db_up {int(self.db_up)}",
            "# HELP synccli_bus_up 1 while the bus link works (always 1 without a bus).",
            "# TYPE synccli_bus_up gauge",
            f"synccli_bus_up {int(self.bus_up)}",
            "# HELP synccli_bus_lag_seconds Commit to bus receipt of the last event heard.",
            "# TYPE synccli_bus_lag_seconds gauge",
            f"synccli_bus_lag_seconds {self.bus_lag_s:.6f}",
            "# HELP synccli_bus_lag_max_seconds The largest bus lag since start.",
            "# TYPE synccli_bus_lag_max_seconds gauge",
            f"synccli_bus_lag_max_seconds {self.bus_lag_max_s:.6f}",
            "# HELP synccli_bus_peers Other nodes known on the bus.",
            "# TYPE synccli_bus_peers gauge",
            f"synccli_bus_peers {self.bus_peers}",
            "# HELP synccli_bus_peers_silent Known nodes not heard lately (the relay polls).",
            "# TYPE synccli_bus_peers_silent gauge",
            f"synccli_bus_peers_silent {self.bus_peers_silent}",
        ]
        return "\n".join(lines) + "\n"
