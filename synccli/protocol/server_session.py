"""The server half of the protocol for one connection, without I/O: ``ServerSession``.

The session owns the connection's subscriptions, its ack tracker, its malformed-message
budget and its heartbeat clock. The adapter (``synccli.server.connection``) feeds it what
happens, always with ``now`` (monotonic seconds), and does what comes back (``Effects``):

* ``receive(frame, now)``: one client frame. Subscribes, resumes, snapshots and writes need
  the store: their ``Effects`` carry a store operation; the adapter runs it and calls
  ``resume(result, now)`` or ``fail(exc, now)``, until an ``Effects`` has no operation.
* ``deliver(event, now)``: a live event from the hub (the fan-out fast path: True means
  "send the event's shared frame"; False with ``close_due`` set means "close the
  connection"); ``live(event, now)`` when the send policy shapes live traffic.
  ``resync(date, reason)``: the hub saw a new epoch.
* ``tick(now)``: ack re-sends, the 4000 close, heartbeats; ``next_deadline()`` says when.

Rules kept here: a subscription is registered in the hub before its answer is read, and live
events meanwhile are buffered and then sent only past the answer's position (guarantee 5);
a live event at or below a subscription's position is never sent (dedupe against the
snapshot or replay); a write with a usable ``requestId`` is always answered by ``result``,
even when malformed; more than ``malformed_limit`` malformed messages in a row close 1008.

Limits (``protocol.limits``): every frame takes a token of the connection's bucket; a refused
one is answered ``rate_limited`` (a write: ``result`` ``rate_limited``) and not served, and
a sustained flood closes 1008. At most ``max_subscriptions`` dates at once
(``too_many_subscriptions``); reads of dates outside the window are ``bad_message``.
A live event that would leave more than ``max_unacked`` live events unacked is not sent
and the connection is closed 4002 (``limits.MAX_UNACKED``); the client resumes from its
position, which that event is past.
Replays are sent in pages of ``replay_page`` events, each page read from the log only after
the previous one was handed to the adapter (which waits for its send queue to drain in
between); a connection serves one request at a time, so at most one replay is in flight.

The connection's ``Authorisation`` (``protocol.authz``) is applied to every request: outside
it, ``forbidden`` and no store operation; once it has expired, close 4003.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from datetime import date as Date
from typing import Any

from synccli.domain.values import Event, Position
from synccli.errors import DatabaseUnavailable, ProtocolError
from synccli.protocol import messages as m
from synccli.protocol.acks import AckTracker
from synccli.protocol.authz import FULL_ACCESS, Authorisation
from synccli.protocol.limits import UNACKED_REASON, DateWindow, RateLimit, TokenBucket
from synccli.protocol.replay import Replay, read_page, serve_replay
from synccli.protocol.server_ops import (
    SEND_AS_IS,
    Channels,
    Close,
    Effects,
    ReadChannel,
    ReadSnapshot,
    SendPolicy,
    ServerSessionConfig,
    StoreOp,
    Subscriber,
    Write,
)

log = logging.getLogger(__name__)

#: A request being served: yields store operations, is sent their results.
Step = Generator[StoreOp, Any, None]


@dataclass(slots=True)
class _Subscription:
    epoch: str = ""
    pos: int = 0
    # Live events that arrive while the ``subscribed`` answer is being prepared.
    buffer: list[Event] | None = field(default_factory=list)


class ServerSession:
    """One connection's protocol state. ``subscriber`` is what the session registers in
    ``channels`` (the adapter, which hands live events back to ``deliver``)."""

    def __init__(
        self,
        config: ServerSessionConfig,
        channels: Channels,
        subscriber: Subscriber,
        now: float,
        policy: SendPolicy = SEND_AS_IS,
        counts: Counter[str] | None = None,
        writes_failed: Counter[str] | None = None,
        today: Callable[[], Date] = Date.today,
        auth: Authorisation = FULL_ACCESS,
    ) -> None:
        self.config = config
        self.channels = channels
        self.subscriber = subscriber
        self.policy = policy
        self.auth = auth
        self.shapes_live = policy.shapes_live
        self.acks = AckTracker(config.ack_timeout, config.max_retries)
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.writes_failed: Counter[str] = Counter() if writes_failed is None else writes_failed
        self.subs: dict[str, _Subscription] = {}
        self.malformed = 0
        self.rate = RateLimit(
            TokenBucket(config.message_rate, config.message_burst), config.rate_strikes
        )
        self.window = DateWindow(config.days_back, config.days_ahead)
        self.today = today
        self.next_heartbeat = now + config.heartbeat
        self._step: Step | None = None
        self._out = Effects()
        self._now = now
        #: Set when a live event found the unacked limit reached: the adapter closes.
        self.close_due: Close | None = None

    # ------------------------------------------------------------------ requests

    def receive(self, frame: str | bytes, now: float) -> Effects:
        """One client frame. The previous request must be finished (no operation pending)."""
        if self._step is not None:
            raise RuntimeError("a request is still waiting for its store operation")
        if not self.rate.admit(now):
            return self._rate_limited(frame)
        return self._run(lambda: self._start(frame), now)

    def _start(self, frame: str | bytes) -> tuple[Step, StoreOp] | None:
        step = self._handle(frame)
        return None if step is None else (step, next(step))

    def _rate_limited(self, frame: str | bytes) -> Effects:
        """A frame over the connection's message rate: refused unread (a write is still
        answered by ``result``), or the close once the flood is sustained."""
        out = Effects()
        self.counts["rate_limited_total"] += 1
        if self.rate.sustained:
            self.counts["rate_limit_closes_total"] += 1
            out.close = Close(m.CLOSE_POLICY, "message rate exceeded")
            return out
        text = f"more than {self.config.message_rate:g} messages per second; slow down"
        request_id = _write_request_id(frame)
        if request_id is not None:
            self.writes_failed["rate_limited"] += 1
            answer: Any = m.Result(request_id, False, error_code="rate_limited", error_message=text)
        else:
            answer = m.ErrorMessage("rate_limited", text)
        out.send.append(_frame(answer))
        return out

    def resume(self, result: Any, now: float) -> Effects:
        """The result of the pending store operation."""
        step = self._pending()
        return self._run(lambda: (step, step.send(result)), now)

    def fail(self, exc: BaseException, now: float) -> Effects:
        """The pending store operation raised ``exc``."""
        step = self._pending()
        return self._run(lambda: (step, step.throw(exc)), now)

    def close(self) -> None:
        """The connection is gone: abandon the pending request, leave every channel."""
        if self._step is not None:
            step, self._step = self._step, None
            step.close()
        for date in list(self.subs):
            self.channels.unsubscribe(date, self.subscriber)
        self.subs.clear()

    def _pending(self) -> Step:
        if self._step is None:
            raise RuntimeError("no store operation is pending")
        step, self._step = self._step, None
        return step

    def _run(self, advance: Callable[[], tuple[Step, StoreOp] | None], now: float) -> Effects:
        """The effects of ``advance``: a request run up to its next store operation (which
        stays pending), or to its end; None when nothing was left to run."""
        saved, out = self._out, Effects()
        self._out, self._now = out, now
        try:
            started = advance()
            if started is not None:
                self._step, out.op = started
        except StopIteration:
            pass
        finally:
            self._out = saved
        return out

    def _handle(self, frame: str | bytes) -> Step | None:
        """Read one frame and serve it. A request that needs the store comes back as a step
        to run; the rest (acks above all, the most frequent frame) is served on return,
        without building one."""
        if self._expired():
            return None
        try:
            data = m.loads(frame)
            if data["type"] == m.UpdateAppointmentState.type and _request_id(data):
                return self._write(data)
            message = m.parse_client_message(data)
            self._check_window(message)
        except ProtocolError as exc:
            self._malformed_message(exc)
            return None
        self.malformed = 0
        if isinstance(message, m.Ack):
            try:
                self._ack(message)
            except Exception:
                self._internal_error(message.type)
            return None
        return self._serve(message)

    def _serve(self, message: m.ClientMessage) -> Step:
        try:
            yield from self._dispatch(message)
        except DatabaseUnavailable as exc:
            self.counts["db_errors_total"] += 1
            self._send(
                m.ErrorMessage(
                    "db_unavailable", f"the database is unavailable: {exc}", message.type
                )
            )
        except Exception:
            self._internal_error(message.type)

    def _internal_error(self, kind: str) -> None:
        log.exception("internal error handling %s", kind)
        self.counts["internal_errors_total"] += 1
        self._send(
            m.ErrorMessage("internal", "internal server error; the request was not served", kind)
        )

    def _check_window(self, message: m.ClientMessage) -> None:
        if isinstance(message, (m.Subscribe, m.GetSnapshot, m.RequestMissedEvents)):
            self.window.check(message.date, self.today())

    def _malformed_message(self, exc: ProtocolError) -> None:
        self.malformed += 1
        self.counts["malformed_total"] += 1
        log.info("malformed message: %s %r", exc.code, exc.message)
        self._send(m.ErrorMessage(exc.code, exc.message))
        if self.malformed > self.config.malformed_limit:
            self.counts["policy_closes_total"] += 1
            self._out.close = Close(m.CLOSE_POLICY, "too many malformed messages")

    def _failed(self, request_id: str, code: str, message: str) -> m.Result:
        self.writes_failed[code] += 1
        return m.Result(request_id, False, error_code=code, error_message=message)

    def _write(self, data: dict[str, Any]) -> Step:
        request_id: str = data["requestId"]
        try:
            request = m.UpdateAppointmentState.parse(data)
        except ProtocolError as exc:
            self.malformed += 1
            self.counts["malformed_total"] += 1
            self._send(self._failed(request_id, exc.code, exc.message))
            return
        if not self.auth.may_write(request.appointment_id):
            self.counts["forbidden_total"] += 1
            self.malformed = 0
            self._send(self._failed(request_id, "forbidden", _FORBIDDEN_WRITE))
            return
        if self.auth.actor is not None:
            request = dataclasses.replace(request, actor=self.auth.actor)
        try:
            result = yield Write(request)
        except Exception:
            log.exception("internal error in write %r", request_id)
            self.counts["internal_errors_total"] += 1
            result = self._failed(
                request_id, "internal", "internal server error; nothing was stored"
            )
        self.malformed = 0
        self._send(result)

    def _dispatch(self, message: m.ClientMessage) -> Step:
        if isinstance(message, _READS) and not self.auth.may_read(message.date):
            self.counts["forbidden_total"] += 1
            self._send(m.ErrorMessage("forbidden", _FORBIDDEN_READ, message.type))
            return
        if isinstance(message, m.Subscribe):
            yield from self._subscribe(message)
        elif isinstance(message, m.Unsubscribe):
            self._leave(message.date)
        elif isinstance(message, m.RequestMissedEvents):
            yield from self._missed(message)
        elif isinstance(message, m.GetSnapshot):
            channel, rows = yield ReadSnapshot(message.date)
            self.counts["snapshots_total"] += 1
            self._send(m.Snapshot(message.date, channel.epoch, channel.head_seq, rows))

    def _leave(self, date: str) -> None:
        if self.subs.pop(date, None) is not None:
            self.channels.unsubscribe(date, self.subscriber)
            self.acks.drop_date(date)

    def _ack(self, message: m.Ack) -> None:
        before = self.acks.counters.acked
        if message.message_id is not None:
            self.acks.ack_message(message.message_id)
        elif message.date is not None and message.seq is not None:
            self.acks.ack_upto(message.date, message.seq, message.epoch)
        self.counts["acks_total"] += self.acks.counters.acked - before

    def _subscribe(self, message: m.Subscribe) -> Step:
        date, channels = message.date, self.channels
        followed = channels.known(date)  # before leaving: a re-subscribe needs no read
        self._leave(date)
        if len(self.subs) >= self.config.max_subscriptions:
            self.counts["subscription_limit_total"] += 1
            self._send(
                m.ErrorMessage(
                    "too_many_subscriptions",
                    f"at most {self.config.max_subscriptions} dates per connection; "
                    "unsubscribe from one first",
                    message.type,
                )
            )
            return
        if not followed:
            channel = yield ReadChannel(date)
            if channels.sync(channel):
                self._out.wake_relay = True
        # Register before reading (guarantee 5): live events meanwhile go to the buffer.
        # Until the answer is out the position is the one being resumed from (``needs``).
        sub = _Subscription(pos=0 if message.since is None else message.since.seq)
        self.subs[date] = sub
        channels.subscribe(date, self.subscriber)
        try:
            answer, rest = yield from self._subscribe_answer(message)
            if self.subs.get(date) is not sub:
                return  # the epoch changed meanwhile; the client was told to resync
            self._send(answer)
            self._track(answer.events)
            try:
                end = yield from self._stream(date, rest)
            except DatabaseUnavailable:
                # The answer is out: the client must start over rather than wait.
                self.counts["db_errors_total"] += 1
                end = "history_truncated"
        except BaseException:
            if self.subs.get(date) is sub:
                del self.subs[date]
                channels.unsubscribe(date, self.subscriber)
            raise
        if self.subs.get(date) is not sub:
            return  # the epoch changed meanwhile; the client was told to resync
        if isinstance(end, str):
            self._leave(date)  # the log was pruned under the replay: start over
            self.counts["resyncs_total"] += 1
            self._send(m.ResyncRequired(date, end))
            return
        sub.epoch, sub.pos = end.epoch, end.seq
        buffered, sub.buffer = sub.buffer or [], None
        for event in buffered:
            self._live(event)

    def _subscribe_answer(
        self, message: m.Subscribe
    ) -> Generator[StoreOp, Any, tuple[m.Subscribed, Replay]]:
        """The ``subscribed`` answer (with a replay's first page) and what remains to send."""
        date, since = message.date, message.since
        if since is not None:
            outcome = yield from self._replay(date, since.epoch, since.seq)
            if isinstance(outcome, Replay):
                first, rest = self._first_page(outcome)
                self.counts["replays_total"] += len(first.events)
                end = first.position
                return m.Subscribed(date, end.epoch, end.seq, True, first.events), rest
            self.counts["resyncs_total"] += 1
        channel, rows = yield ReadSnapshot(date)
        self.counts["snapshots_total"] += 1
        done = Replay([], Position(channel.epoch, channel.head_seq), channel.head_seq)
        return m.Subscribed(date, channel.epoch, channel.head_seq, False, snapshot=rows), done

    def _missed(self, message: m.RequestMissedEvents) -> Step:
        date = message.date
        outcome = yield from self._replay(date, message.epoch, message.last_seq)
        end = (
            outcome if isinstance(outcome, str) else (yield from self._stream(date, outcome, True))
        )
        if isinstance(end, str):
            self.counts["resyncs_total"] += 1
            self._send(m.ResyncRequired(date, end))

    def _first_page(self, replay: Replay) -> tuple[Replay, Replay]:
        """Split the first ``replay_page`` events off ``replay`` (the rest may be empty)."""
        page, events = self.config.replay_page, replay.events
        if len(events) <= page:
            return replay, Replay([], replay.position, replay.target)
        end = Position(replay.position.epoch, events[page - 1].seq)
        return Replay(events[:page], end, end.seq), Replay(
            events[page:], replay.position, replay.target
        )

    def _stream(
        self, date: str, replay: Replay, first: bool = False
    ) -> Generator[StoreOp, Any, Position | str]:
        """Send ``replay`` as ``missed_events`` pages, reading further pages from the log
        until its target; the position reached, or why the replay had to stop."""
        page, size = replay, self.config.replay_page
        send_empty = first
        while True:
            while page.events or send_empty:
                head, page = self._first_page(page)
                self.counts["replays_total"] += len(head.events)
                end = head.position
                self._send(m.MissedEvents(date, end.epoch, end.seq, head.events))
                self._track(head.events)
                send_empty = False
            if page.complete:
                return page.position
            outcome = yield from read_page(date, page.position, page.target, size, self.policy)
            if isinstance(outcome, str):
                return outcome
            page = outcome

    def _replay(
        self, date: str, epoch: str | None, after: int
    ) -> Generator[StoreOp, Any, Replay | str]:
        config = self.config
        return serve_replay(
            self.channels, self.policy, config.max_replay, config.replay_page, date, epoch, after
        )

    # ------------------------------------------------------------------ live events

    def deliver(self, event: Event, now: float) -> bool:
        """A live event from the hub, on the fast path (the policy does not shape live
        traffic): True when its shared frame must be sent; its ack is tracked already."""
        sub = self.subs.get(event.date)
        if sub is None:
            return False
        if sub.buffer is not None:
            sub.buffer.append(event)
            return False
        if event.epoch != sub.epoch or event.seq <= sub.pos:
            return False  # already covered by the snapshot or replay this client got
        if self.acks.live >= self.config.max_unacked:
            self._unacked_close()
            return False
        sub.pos = event.seq
        self.acks.track(event, now, live=True)
        self.counts["events_sent_total"] += 1
        return True

    def live(self, event: Event, now: float) -> Effects:
        """A live event from the hub, for any policy: the frames to send."""
        saved, out = self._out, Effects()
        self._out, self._now = out, now
        try:
            sub = self.subs.get(event.date)
            if sub is not None and sub.buffer is not None:
                sub.buffer.append(event)
            elif sub is not None:
                self._live(event)
        finally:
            self._out = saved
        return out

    def _live(self, event: Event) -> None:
        sub = self.subs[event.date]
        if event.epoch != sub.epoch or event.seq <= sub.pos:
            return
        if self.acks.live >= self.config.max_unacked:
            self._out.close = self._unacked_close()
            return
        sub.pos = event.seq
        self._send_events(self.policy.live(event, self._now), live=True)

    def _unacked_close(self) -> Close:
        if self.close_due is None:
            self.counts["unacked_closes_total"] += 1
            self.close_due = Close(m.CLOSE_UNACKED, UNACKED_REASON)
        return self.close_due

    def _send_events(self, events: list[Event], live: bool = False) -> None:
        copies = self.policy.copies
        for event in events:
            frame = event.wire_json(False).encode()
            self._out.send.extend([frame] * copies)
        self._track(events, live)

    def needs(self, date: str) -> int | None:
        """The position this client would resume ``date`` from: just below its oldest
        unacked event, else the position it was last sent (the retention floor, see
        ``Hub.holds``); None when it does not subscribe to ``date``."""
        sub = self.subs.get(date)
        if sub is None:
            return None
        oldest = self.acks.oldest(date)
        return sub.pos if oldest is None else min(sub.pos, oldest - 1)

    def resync(self, date: str, reason: str) -> Effects:
        """The channel's epoch changed: the client must subscribe again."""
        out = Effects()
        if self.subs.pop(date, None) is not None:
            self.acks.drop_date(date)
            self.counts["resyncs_total"] += 1
            out.send.append(_frame(m.ResyncRequired(date, reason)))
        return out

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> Effects:
        """Re-send overdue events, close 4000 once retries are exhausted, send heartbeats
        and held-back live events that are due."""
        saved, out = self._out, Effects()
        self._out, self._now = out, now
        try:
            if self._expired():
                return out
            acks = self.acks
            before = (acks.counters.retries, acks.counters.timeouts)
            out.send.extend(event.wire_json(False).encode() for event in acks.due(now))
            exhausted = acks.exhausted(now)
            self.counts["retries_total"] += acks.counters.retries - before[0]
            self.counts["ack_timeouts_total"] += acks.counters.timeouts - before[1]
            if exhausted:
                self.counts["ack_exhausted_closes_total"] += 1
                out.close = Close(m.CLOSE_ACK_RETRIES, "ack retries exhausted")
                return out
            if now >= self.next_heartbeat:
                self._send(self.heartbeat())
                self.next_heartbeat = now + self.config.heartbeat
            if self.shapes_live:
                self._send_events(self.policy.due(now), live=True)
        finally:
            self._out = saved
        return out

    def next_deadline(self) -> float:
        """The earliest ``now`` at which ``tick`` has something to do."""
        wake_at = self.next_heartbeat
        if self.shapes_live:
            held = self.policy.deadline()
            if held is not None:
                wake_at = min(wake_at, held)
        if self.auth.expires is not None:
            wake_at = min(wake_at, self.auth.expires)
        deadline = self.acks.next_deadline()
        return wake_at if deadline is None else min(wake_at, deadline)

    def heartbeat(self) -> m.Heartbeat:
        """The published position of every subscribed date whose answer was sent, in the
        epoch the client follows."""
        positions: dict[str, Position] = {}
        for date, sub in self.subs.items():
            if sub.buffer is not None:
                continue
            position = self.channels.position(date)
            if position is not None and position.epoch == sub.epoch:
                positions[date] = position
        return m.Heartbeat(positions)

    # ------------------------------------------------------------------ helpers

    def _expired(self) -> bool:
        """Close 4003 once the credential has expired (the client reconnects with a fresh
        one); nothing more is served."""
        if not self.auth.expired(self._now):
            return False
        if self._out.close is None:
            self.counts["token_expired_closes_total"] += 1
            self._out.close = Close(m.CLOSE_TOKEN_EXPIRED, "token expired")
        return True

    def _send(self, message: Any) -> None:
        self._out.send.append(_frame(message))

    def _track(self, events: list[Event], live: bool = False) -> None:
        for event in events:
            self.acks.track(event, self._now, live)
        self.counts["events_sent_total"] += len(events)


_READS = (m.Subscribe, m.GetSnapshot, m.RequestMissedEvents)
_FORBIDDEN_READ = "this date is outside the channels your token grants"
_FORBIDDEN_WRITE = "your token does not allow writes to this appointment's date; nothing was stored"


def _frame(message: Any) -> bytes:
    events = getattr(message, "events", None)
    if events and isinstance(message, m.Subscribed | m.MissedEvents):
        # A resume carries up to max_replay events: splice each event's serialised form,
        # shared with every other answer that sends it, instead of encoding them again.
        head = m.dumps(replace(message, events=[]).to_wire())
        if head.endswith('"events":[]}'):
            body = ",".join(event.wire_json(True) for event in events)
            return f"{head[:-2]}{body}]}}".encode()
    return m.dumps(message.to_wire()).encode()


def _write_request_id(frame: str | bytes) -> str | None:
    """The usable requestId of a frame that is a write, else None (a refused frame is only
    parsed this far, to keep the promise that every such write gets a ``result``)."""
    try:
        data = m.loads(frame)
    except ProtocolError:
        return None
    if data.get("type") == m.UpdateAppointmentState.type and _request_id(data):
        request_id: str = data["requestId"]
        return request_id
    return None


def _request_id(data: dict[str, Any]) -> bool:
    """Whether a write carries a usable string requestId (then it is answered by ``result``)."""
    request_id = data.get("requestId")
    return m.valid_id(request_id)
