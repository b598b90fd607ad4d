"""The resource limits of one connection, as pure rules: a message-rate token bucket with
its sustained-overload close, the window of dates a client may read, and how many live
events may wait for their ack.

No clock is read here: ``now`` (monotonic seconds) and ``today`` are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from synccli.errors import ProtocolError

#: Live events one connection may have sent and not yet seen acked. A client that keeps
#: reading but acks nothing would otherwise make the server hold every event it is sent
#: until the ack retries run out (``ack_timeout`` x (``max_retries`` + 1)): at a high event
#: rate, without bound. Reaching it closes the connection ``CLOSE_UNACKED`` (4002); the
#: client resumes from its position, so nothing is lost. Replayed events do not count: the
#: server reads no ack while it sends a replay, each replay is bounded by ``max_replay``,
#: and counting them would close a client that resumes several dates over and over.
MAX_UNACKED = 10_000
UNACKED_REASON = "too many unacked events"


@dataclass(slots=True)
class TokenBucket:
    """``rate`` messages per second on average, bursts of up to ``burst``."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float | None = None

    def take(self, now: float) -> bool:
        """Whether one message may be served at ``now`` (it then uses a token)."""
        if self.stamp is None:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class RateLimit:
    """The bucket and what to do with a message it refuses: answer ``rate_limited`` until
    ``strikes`` refusals came with less than ``quiet`` seconds between them (a sustained
    flood), then close 1008."""

    bucket: TokenBucket
    strikes: int
    quiet: float = 1.0
    refused: int = 0
    last_refusal: float = float("-inf")

    def admit(self, now: float) -> bool:
        """Whether the message may be served; refusals are counted in ``refused``."""
        if self.bucket.take(now):
            return True
        if now - self.last_refusal > self.quiet:
            self.refused = 0
        self.refused += 1
        self.last_refusal = now
        return False

    @property
    def sustained(self) -> bool:
        """More than ``strikes`` refusals in a row without a quiet second: close 1008."""
        return self.refused > self.strikes


@dataclass(frozen=True, slots=True)
class DateWindow:
    """Dates a client may subscribe to or read: ``back`` days before today to ``ahead``
    days after it. Anything else is ``bad_message`` (and never touches the database)."""

    back: int = 366
    ahead: int = 731

    def check(self, day: str, today: date) -> None:
        """Raise ``bad_message`` unless ``day`` (a valid ``YYYY-MM-DD``) is in the window."""
        value = date.fromisoformat(day)
        first, last = today - timedelta(days=self.back), today + timedelta(days=self.ahead)
        if not first <= value <= last:
            raise ProtocolError(
                "bad_message",
                f"date {day} is outside the served window {first.isoformat()} .. "
                f"{last.isoformat()}",
            )
