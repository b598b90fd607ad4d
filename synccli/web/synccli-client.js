// synccli-client.js: the browser's client of the synccli wire protocol v1.
//
// A dependency-free ES module, the browser's copy of the Python client core
// (synccli/protocol/channel.py, session.py, backoff.py): the same rules, the same names,
// the same history records, checked by the same JSON vectors (tests/vectors/).
//
//   ChannelState   one date as the client keeps it: (epoch, last applied seq), rows,
//                  reorder buffer, missed-events request with deadline, optimistic writes.
//   ClientSession  a ChannelState per date, pending writes, batched cumulative acks.
//                  Sans-I/O: every method takes `now` (seconds) and returns Effects.
//   SyncClient     the adapter: a WebSocket, timers, reconnect with full-jitter backoff,
//                  sessionStorage for positions and rows, events for the page.
//
// Rules a channel applies (docs/client.md): a duplicate (seq <= last) is acked and
// ignored; seq == last + 1 is applied with its buffered successors; an event past a gap is
// buffered and ONE request_missed_events is sent, re-sent only after gapTimeout, and after
// maxMissedRequests from one position the channel resyncs; another epoch, or
// resync_required, resubscribes without `since` (a fresh snapshot). A malformed server
// frame is reported (an `error` record) and never throws; what it carried is lost, so the
// dates it may have carried resync from a snapshot (malformedDates).

export const SYNCED = "synced";
export const SYNCING = "syncing";
export const OUT_OF_SYNC = "out_of_sync";

/** The appointment state machine (synccli/domain/states.py). */
export const TRANSITIONS = Object.freeze({
  Scheduled: Object.freeze(["Cancelled", "NoShow", "Present"]),
  Present: Object.freeze(["Scheduled", "Seated"]),
  Seated: Object.freeze(["Dismissed", "Present"]),
  Dismissed: Object.freeze(["Seated"]),
  NoShow: Object.freeze(["Present", "Scheduled"]),
  Cancelled: Object.freeze(["Scheduled"]),
});

/** The states `state` may move to, in a stable (sorted) order. */
export function allowedTargets(state) {
  return TRANSITIONS[state] ?? [];
}

// ---------------------------------------------------------------------------- backoff

/** Reconnect delays (seconds): the n-th is uniform in [0, min(maximum, initial * factor**n)]. */
export function* backoff(initial = 0.05, maximum = 5.0, factor = 2.0, random = Math.random) {
  if (!(initial > 0) || maximum < initial || factor < 1) {
    throw new RangeError("backoff needs 0 < initial <= maximum and factor >= 1");
  }
  let ceiling = initial;
  for (;;) {
    yield random() * ceiling;
    ceiling = Math.min(maximum, ceiling * factor);
  }
}

// ---------------------------------------------------------------------------- parsing

/** A server frame that does not follow the protocol (code: bad_json, bad_message, unknown_type). */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const MAX_FIELD_LEN = 64;
const MAX_ID_LEN = 128;

function bad(message) {
  return new ProtocolError("bad_message", message);
}

function checkDate(value, name = "date") {
  if (typeof value !== "string" || !DATE_RE.test(value)) {
    throw bad(`'${name}' must be a date YYYY-MM-DD`);
  }
  const [y, m, d] = value.split("-").map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) {
    throw bad(`'${name}' is not a calendar date: ${value}`);
  }
  return value;
}

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field(data, name) {
  if (!(name in data)) throw bad(`lacks '${name}'`);
  return data[name];
}

function nonEmpty(data, name, limit = MAX_FIELD_LEN) {
  const value = data[name];
  if (typeof value !== "string" || value === "") throw bad(`'${name}' must be a non-empty string`);
  if (value.length > limit) throw bad(`'${name}' is longer than ${limit} characters`);
  return value;
}

function seqField(data, name) {
  const value = data[name];
  if (!Number.isSafeInteger(value) || value < 0) throw bad(`'${name}' must be an integer >= 0`);
  return value;
}

function optSeq(data, name) {
  return data[name] == null ? null : seqField(data, name);
}

/** An appointment row, as the server sends it (the object is kept as it came). */
export function parseRow(data) {
  if (!isObject(data)) throw bad("an appointment must be an object");
  for (const name of ["appointmentId", "date", "patient", "state", "version", "updatedAt"]) {
    field(data, name);
  }
  if (typeof data.appointmentId !== "string" || !Number.isInteger(data.version)) {
    throw bad("appointmentId must be a string, version an int");
  }
  return data;
}

function parseEvent(data) {
  if (!isObject(data)) throw bad("an event must be an object");
  for (const name of ["date", "appointment"]) field(data, name);
  const date = checkDate(data.date);
  if (typeof data.epoch !== "string") throw bad("'epoch' must be a string");
  if (!Number.isInteger(data.sequenceNum)) throw bad("'sequenceNum' must be an integer");
  const row = parseRow(data.appointment);
  if (typeof data.committedAt !== "string") throw bad("'committedAt' must be a string");
  return {
    date,
    epoch: data.epoch,
    seq: data.sequenceNum,
    row,
    actionId: data.actionId ?? null,
    committedAt: data.committedAt,
    id: `${date}:${data.epoch}:${data.sequenceNum}`,
  };
}

function parseEvents(data) {
  if (!Array.isArray(data.events)) throw bad("'events' must be a list");
  return data.events.map(parseEvent);
}

function parseRows(items) {
  if (!Array.isArray(items)) throw bad("a snapshot must be a list of appointments");
  return items.map(parseRow);
}

const PARSERS = {
  appointments_updated: (d) => ({ event: parseEvent(d), replay: Boolean(d.replay) }),
  subscribed: (d) => {
    const recovered = Boolean(d.recovered);
    return {
      date: checkDate(d.date),
      epoch: nonEmpty(d, "epoch"),
      seq: seqField(d, "sequenceNum"),
      recovered,
      events: recovered ? parseEvents(d) : [],
      snapshot: recovered ? null : parseRows(d.snapshot),
    };
  },
  missed_events: (d) => ({
    date: checkDate(d.date),
    epoch: nonEmpty(d, "epoch"),
    seq: seqField(d, "sequenceNum"),
    events: parseEvents(d),
  }),
  resync_required: (d) => ({ date: checkDate(d.date), reason: nonEmpty(d, "reason") }),
  snapshot: (d) => ({
    date: checkDate(d.date),
    epoch: nonEmpty(d, "epoch"),
    seq: seqField(d, "sequenceNum"),
    appointments: parseRows(d.appointments),
  }),
  result: (d) => {
    const requestId = nonEmpty(d, "requestId", MAX_ID_LEN);
    if (d.ok) return { requestId, ok: true, row: parseRow(d.appointment), seq: optSeq(d, "sequenceNum") };
    const error = isObject(d.error) ? d.error : {};
    return { requestId, ok: false, errorCode: error.code ?? null, errorMessage: error.message ?? null };
  },
  heartbeat: (d) => {
    if (!isObject(d.positions)) throw bad("'positions' must be an object");
    const positions = {};
    for (const [date, pos] of Object.entries(d.positions)) {
      if (!isObject(pos)) throw bad("a position must be {epoch, sequenceNum}");
      positions[checkDate(date)] = { epoch: nonEmpty(pos, "epoch"), seq: seqField(pos, "sequenceNum") };
    }
    return { positions };
  },
  error: (d) => ({ code: nonEmpty(d, "code"), message: String(d.message ?? ""), ref: d.ref ?? null }),
};

/** Decode and validate one server frame; throws ProtocolError. */
export function parseServerMessage(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (exc) {
    throw new ProtocolError("bad_json", `frame is not valid JSON: ${exc.message}`);
  }
  if (!isObject(data)) throw bad("a message must be a JSON object");
  if (typeof data.type !== "string") throw bad("a message needs a string 'type'");
  const parse = Object.hasOwn(PARSERS, data.type) ? PARSERS[data.type] : null;
  if (parse === null) {
    throw new ProtocolError("unknown_type", `unknown message type '${data.type.slice(0, 64)}'`);
  }
  return { type: data.type, ...parse(data) };
}

// ---------------------------------------------------------------------------- effects

/** What the adapter must do after a call: send `send` (wire objects), record `records`. */
export class Effects {
  constructor(send = [], records = []) {
    this.send = send;
    this.records = records;
  }

  extend(other) {
    this.send.push(...other.send);
    this.records.push(...other.records);
  }
}

function applyRecord(event, replay) {
  const row = event.row;
  return {
    k: "apply",
    date: event.date,
    epoch: event.epoch,
    seq: event.seq,
    id: event.id,
    committedAt: event.committedAt,
    replay,
    appointmentId: row.appointmentId,
    version: row.version,
    state: row.state,
  };
}

function subscribeMessage(date, position) {
  const message = { type: "subscribe", date };
  if (position !== null) message.since = { epoch: position.epoch, sequenceNum: position.seq };
  return message;
}

// ---------------------------------------------------------------------------- channel

/** The client's view of one date, kept across reconnects (and page reloads). */
export class ChannelState {
  constructor(date, { gapTimeout = 2.0, maxBuffer = 10_000, maxMissedRequests = 3 } = {}) {
    this.date = date;
    this.gapTimeout = gapTimeout;
    this.maxBuffer = maxBuffer;
    this.maxMissedRequests = maxMissedRequests;
    this.epoch = null;
    this.seq = 0;
    this.rows = new Map();
    this.optimistic = new Map();
    this.buffer = new Map();
    this.awaitingSubscribe = false;
    this.missedDeadline = null;
    this._missedRequests = 0;
    this._missedFrom = null;
    this._resyncing = false;
    this._gapTarget = null;
    this._acked = 0;
    this._ackDue = false;
  }

  /** `out_of_sync` while a resync is pending, `syncing` while a subscribe or gap is open. */
  get status() {
    if (this._resyncing) return OUT_OF_SYNC;
    if (this.awaitingSubscribe || this._gapTarget !== null || this.epoch === null) return SYNCING;
    return SYNCED;
  }

  get position() {
    return this.epoch === null ? null : { epoch: this.epoch, seq: this.seq };
  }

  /** The state the user sees: an unconfirmed local write wins over the stored row. */
  viewState(appointmentId) {
    const pending = this.optimistic.get(appointmentId);
    if (pending !== undefined) return pending.state;
    return this.rows.get(appointmentId)?.state ?? null;
  }

  /** The `final` history record: what this client ends up believing. */
  finalRecord() {
    const rows = {};
    for (const id of [...this.rows.keys()].sort()) {
      const row = this.rows.get(id);
      rows[id] = [row.version, row.state];
    }
    return { k: "final", date: this.date, epoch: this.epoch, seq: this.seq, rows, status: this.status };
  }

  /** Take a position and rows saved before a page reload; the next subscribe resumes there. */
  restore(epoch, seq, rows) {
    this.epoch = epoch;
    this.seq = seq;
    this.rows = new Map(rows.map((row) => [row.appointmentId, row]));
    this._acked = seq;
  }

  subscribe() {
    this.awaitingSubscribe = true;
    return subscribeMessage(this.date, this.position);
  }

  onDisconnected() {
    this.buffer.clear();
    this.awaitingSubscribe = false;
    this.missedDeadline = null;
    this._gapTarget = null;
    this._acked = this.seq;
    this._ackDue = false;
  }

  get ackDue() {
    return this.epoch !== null && (this.seq > this._acked || this._ackDue);
  }

  /** One cumulative ack for everything applied (or re-received) since the last one. */
  takeAck() {
    if (!this.ackDue) return null;
    this._acked = this.seq;
    this._ackDue = false;
    return { type: "ack", date: this.date, sequenceNum: this.seq, epoch: this.epoch };
  }

  onEvent(event, replay, now) {
    const effects = new Effects();
    this._receive(event, replay, now, effects);
    return effects;
  }

  onSubscribed(msg, now) {
    const effects = new Effects();
    const held = this._positionAnswered();
    effects.records.push({
      k: "subscribed",
      date: this.date,
      epoch: msg.epoch,
      seq: msg.seq,
      recovered: msg.recovered,
      events: msg.events.length,
    });
    if (!msg.recovered) {
      this._replace(msg.epoch, msg.seq, msg.snapshot ?? []);
    } else if (this.epoch !== msg.epoch) {
      this._resync("epoch_changed", effects);
      return effects;
    }
    for (const event of msg.events) this._receive(event, true, now, effects);
    this._applyHeld(held, now, effects);
    this._expectHead(msg.seq, now, effects, "subscribed");
    return effects;
  }

  onSnapshot(msg, now) {
    const effects = new Effects();
    const held = this._positionAnswered();
    effects.records.push({ k: "snapshot", date: this.date, epoch: msg.epoch, seq: msg.seq });
    this._replace(msg.epoch, msg.seq, msg.appointments);
    this._applyHeld(held, now, effects);
    return effects;
  }

  onMissed(msg, now) {
    const effects = new Effects();
    if (msg.epoch !== this.epoch) {
      this._resync("epoch_changed", effects);
      return effects;
    }
    for (const event of msg.events) this._receive(event, true, now, effects);
    this._expectHead(msg.seq, now, effects, "missed_events");
    return effects;
  }

  onResync(msg) {
    const effects = new Effects();
    this._resync(msg.reason, effects);
    return effects;
  }

  onHead(head, now) {
    const effects = new Effects();
    if (this.awaitingSubscribe || this.epoch === null) return effects;
    if (head.epoch !== this.epoch) {
      this._resync("epoch_changed", effects);
      return effects;
    }
    if (this.buffer.size === 0) this._expectHead(head.seq, now, effects, "heartbeat");
    return effects;
  }

  tick(now) {
    const effects = new Effects();
    if (this.missedDeadline !== null && now >= this.missedDeadline) this._requestMissed(now, effects);
    return effects;
  }

  beginOptimistic(appointmentId, requestId, state) {
    this.optimistic.set(appointmentId, { requestId, state, confirmedSeq: null });
  }

  confirm(appointmentId, requestId, seq) {
    const pending = this.optimistic.get(appointmentId);
    if (pending === undefined || pending.requestId !== requestId) return;
    if (seq === null || seq <= this.seq) this.optimistic.delete(appointmentId);
    else pending.confirmedSeq = seq;
  }

  rollback(appointmentId, requestId) {
    const pending = this.optimistic.get(appointmentId);
    if (pending === undefined || pending.requestId !== requestId) return false;
    this.optimistic.delete(appointmentId);
    return true;
  }

  _positionAnswered() {
    this.awaitingSubscribe = false;
    this._resyncing = false;
    const held = [...this.buffer.values()].sort((a, b) => a[0].seq - b[0].seq);
    this.buffer.clear();
    return held;
  }

  _applyHeld(held, now, effects) {
    for (const [event, replay] of held) {
      if (event.epoch === this.epoch && event.seq > this.seq) this._receive(event, replay, now, effects);
    }
  }

  _receive(event, replay, now, effects) {
    if (this.awaitingSubscribe) {
      this.buffer.set(event.seq, [event, replay]);
      return;
    }
    if (event.epoch !== this.epoch) {
      this._resync("epoch_changed", effects);
      return;
    }
    if (event.seq <= this.seq) {
      effects.records.push({ k: "dup", date: this.date, epoch: event.epoch, seq: event.seq });
      this._ackDue = true;
      return;
    }
    if (event.seq === this.seq + 1) {
      this._apply(event, replay, effects);
      this._drain(effects);
      return;
    }
    if (this.buffer.size >= this.maxBuffer) {
      this._resync("too_far_behind", effects);
      return;
    }
    if (this._gapTarget === null) {
      effects.records.push({ k: "gap", date: this.date, have: this.seq, got: event.seq });
    }
    this.buffer.set(event.seq, [event, replay]);
    this._gapTarget = Math.max(this._gapTarget ?? 0, event.seq);
    if (this.missedDeadline === null) this._requestMissed(now, effects);
  }

  _apply(event, replay, effects) {
    const row = event.row;
    this.rows.set(row.appointmentId, row);
    this.seq = event.seq;
    const pending = this.optimistic.get(row.appointmentId);
    if (
      pending !== undefined &&
      (pending.requestId === event.actionId || (pending.confirmedSeq !== null && pending.confirmedSeq <= this.seq))
    ) {
      this.optimistic.delete(row.appointmentId);
    }
    effects.records.push(applyRecord(event, replay));
  }

  _drain(effects) {
    for (const seq of [...this.buffer.keys()]) if (seq <= this.seq) this.buffer.delete(seq);
    for (let held = this.buffer.get(this.seq + 1); held !== undefined; held = this.buffer.get(this.seq + 1)) {
      this.buffer.delete(this.seq + 1);
      this._apply(held[0], held[1], effects);
    }
    this._closeGapIfFilled(effects);
  }

  _closeGapIfFilled(effects) {
    if (this._gapTarget === null || this.buffer.size > 0 || this.seq < this._gapTarget) return;
    this._gapTarget = null;
    this.missedDeadline = null;
    this._missedRequests = 0;
    effects.records.push({ k: "gap_recovered", date: this.date, seq: this.seq });
  }

  _expectHead(head, now, effects, via) {
    if (head <= this.seq || this.awaitingSubscribe) {
      this._closeGapIfFilled(effects);
      return;
    }
    if (this._gapTarget === null) {
      effects.records.push({ k: "gap", date: this.date, have: this.seq, got: head, via });
    }
    this._gapTarget = Math.max(this._gapTarget ?? 0, head);
    if (this.missedDeadline === null) this._requestMissed(now, effects);
  }

  _requestMissed(now, effects) {
    if (this._missedFrom !== this.seq) {
      this._missedFrom = this.seq;
      this._missedRequests = 0;
    }
    if (this._missedRequests >= this.maxMissedRequests) {
      this._resync("gap_unfilled", effects);
      return;
    }
    const request = { type: "request_missed_events", date: this.date, lastSequenceNum: this.seq };
    if (this.epoch !== null) request.epoch = this.epoch;
    effects.send.push(request);
    this.missedDeadline = now + this.gapTimeout;
    this._missedRequests += 1;
  }

  _resync(reason, effects) {
    effects.records.push({ k: "resync", date: this.date, reason });
    this.buffer.clear();
    this.missedDeadline = null;
    this._missedRequests = 0;
    this._gapTarget = null;
    this._resyncing = true;
    this.awaitingSubscribe = true;
    effects.send.push(subscribeMessage(this.date, null));
  }

  _replace(epoch, seq, rows) {
    for (const [id, pending] of this.optimistic) {
      const stale = pending.confirmedSeq !== null && (epoch !== this.epoch || pending.confirmedSeq <= seq);
      if (stale) this.optimistic.delete(id);
    }
    this.epoch = epoch;
    this.seq = seq;
    this.rows = new Map(rows.map((row) => [row.appointmentId, row]));
    this.buffer.clear();
    this.missedDeadline = null;
    this._missedRequests = 0;
    this._gapTarget = null;
    this._acked = seq;
    this._ackDue = false;
  }
}

// ---------------------------------------------------------------------------- session

const MALFORMED = "malformed_frame";
// Frames that carry no channel state: a lost `result` is recovered by re-sending the
// write with its request id, a lost `error` needs nothing.
const DATELESS_TYPES = new Set(["result", "error"]);

/**
 * The subscribed dates a malformed frame may have carried: those it names (`date`, or a
 * heartbeat's `positions`), none for a `result` or `error`, else every one (an unreadable
 * frame could have been about any).
 */
export function malformedDates(text, subscribed) {
  const dates = [...subscribed];
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return dates;
  }
  if (!isObject(data)) return dates;
  if (typeof data.type === "string" && DATELESS_TYPES.has(data.type)) return [];
  const named = new Set(typeof data.date === "string" ? [data.date] : []);
  if (isObject(data.positions)) for (const date of Object.keys(data.positions)) named.add(date);
  const ours = dates.filter((date) => named.has(date));
  return ours.length ? ours : dates;
}

/** The sans-I/O client: channels, acks, optimistic writes (synccli/protocol/session.py). */
export class ClientSession {
  constructor({ clientId, dates, gapTimeout = 2.0, writeTimeout = 5.0, maxWriteAttempts = 5 }) {
    this.clientId = clientId;
    this.writeTimeout = writeTimeout;
    this.maxWriteAttempts = maxWriteAttempts;
    this.channels = new Map(dates.map((date) => [date, new ChannelState(date, { gapTimeout })]));
    this.pending = new Map();
    this.connected = false;
  }

  /** Subscribe every date (resuming from its position) and re-send pending writes. */
  onConnected(now) {
    this.connected = true;
    const effects = new Effects([...this.channels.values()].map((channel) => channel.subscribe()));
    for (const pending of [...this.pending.values()]) this._sendWrite(pending, now, effects);
    return effects;
  }

  onDisconnected() {
    this.connected = false;
    for (const channel of this.channels.values()) channel.onDisconnected();
  }

  /** One raw frame: parsed, validated and applied. A malformed frame is an `error` record. */
  onFrame(text, now) {
    let message;
    try {
      message = parseServerMessage(text);
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      return this.onMalformed(exc, text);
    }
    return this.onMessage(message, now);
  }

  /** A frame that could not be parsed: an `error` record, then a resync (reason
   *  `malformed_frame`) of every date it may have carried (malformedDates). */
  onMalformed(error, text) {
    const record = { k: "error", code: error.code, message: `server sent: ${error.message}`, ref: null };
    const effects = new Effects([], [record]);
    for (const date of malformedDates(text, this.channels.keys())) {
      this.channels.get(date)._resync(MALFORMED, effects);
    }
    return effects;
  }

  /** Apply one parsed server message (from parseServerMessage). */
  onMessage(msg, now) {
    switch (msg.type) {
      case "appointments_updated":
        return this._channelCall(msg.event.date, (c) => c.onEvent(msg.event, msg.replay, now));
      case "subscribed":
        return this._channelCall(msg.date, (c) => c.onSubscribed(msg, now));
      case "missed_events":
        return this._channelCall(msg.date, (c) => c.onMissed(msg, now));
      case "snapshot":
        return this._channelCall(msg.date, (c) => c.onSnapshot(msg, now));
      case "resync_required":
        return this._channelCall(msg.date, (c) => c.onResync(msg, now));
      case "heartbeat": {
        const effects = new Effects();
        for (const [date, head] of Object.entries(msg.positions)) {
          const channel = this.channels.get(date);
          if (channel !== undefined) effects.extend(channel.onHead(head, now));
        }
        return effects;
      }
      case "result":
        return this._onResult(msg, now);
      default:
        return new Effects([], [{ k: "error", code: msg.code, message: msg.message, ref: msg.ref }]);
    }
  }

  /** One cumulative ack per date with something new to acknowledge. */
  flushAcks() {
    if (!this.connected) return [];
    const acks = [];
    for (const channel of this.channels.values()) {
      const ack = channel.takeAck();
      if (ack !== null) acks.push(ack);
    }
    return acks;
  }

  acksDue() {
    return this.connected && [...this.channels.values()].some((c) => c.ackDue);
  }

  /** Time-outs: overdue missed-events requests and unanswered writes. */
  tick(now) {
    const effects = new Effects();
    if (!this.connected) return effects;
    for (const channel of this.channels.values()) effects.extend(channel.tick(now));
    for (const pending of [...this.pending.values()]) {
      if (now - pending.lastSent >= this.writeTimeout) this._sendWrite(pending, now, effects);
    }
    return effects;
  }

  /** The earliest `now` at which tick has something to do, or null. */
  nextDeadline() {
    const deadlines = [];
    for (const c of this.channels.values()) if (c.missedDeadline) deadlines.push(c.missedDeadline);
    for (const p of this.pending.values()) deadlines.push(p.lastSent + this.writeTimeout);
    return deadlines.length ? Math.min(...deadlines) : null;
  }

  dateOf(appointmentId) {
    for (const [date, channel] of this.channels) if (channel.rows.has(appointmentId)) return date;
    return null;
  }

  /** Send a state change and show it locally at once (processing). */
  beginWrite(appointmentId, state, requestId, now, expectedVersion = null) {
    const date = this.dateOf(appointmentId);
    if (date === null) throw new Error(`appointment '${appointmentId}' is not in this client's view`);
    if (this.pending.has(requestId)) throw new Error(`request id '${requestId}' is already in flight`);
    const message = { type: "update_appointment_state", requestId, appointmentId, state };
    if (expectedVersion !== null) message.expectedVersion = expectedVersion;
    this.channels.get(date).beginOptimistic(appointmentId, requestId, state);
    const pending = { message, date, firstSent: now, lastSent: now, attempt: 0 };
    this.pending.set(requestId, pending);
    const effects = new Effects();
    if (this.connected) this._sendWrite(pending, now, effects);
    return effects;
  }

  _sendWrite(pending, now, effects) {
    const message = pending.message;
    if (pending.attempt >= this.maxWriteAttempts) {
      this._finishWrite(message.requestId, false, now, effects, "timeout");
      return;
    }
    pending.attempt += 1;
    pending.lastSent = now;
    effects.send.push(message);
    effects.records.push({
      k: "write",
      requestId: message.requestId,
      appointmentId: message.appointmentId,
      state: message.state,
      date: pending.date,
      attempt: pending.attempt,
    });
  }

  _onResult(msg, now) {
    const effects = new Effects();
    if (this.pending.has(msg.requestId)) {
      this._finishWrite(msg.requestId, msg.ok, now, effects, msg.ok ? null : msg.errorCode, msg.ok ? msg.seq : null);
    }
    return effects;
  }

  _finishWrite(requestId, ok, now, effects, code = null, seq = null) {
    const pending = this.pending.get(requestId);
    this.pending.delete(requestId);
    const { appointmentId } = pending.message;
    const channel = this.channels.get(pending.date);
    effects.records.push({
      k: "write_result",
      requestId,
      ok,
      code,
      seq,
      ms: Math.round((now - pending.firstSent) * 1e6) / 1000,
    });
    if (ok) channel.confirm(appointmentId, requestId, seq);
    else if (channel.rollback(appointmentId, requestId)) {
      effects.records.push({ k: "rollback", requestId, appointmentId });
    }
  }

  _channelCall(date, call) {
    const channel = this.channels.get(date);
    return channel === undefined ? new Effects() : call(channel);
  }
}

// ---------------------------------------------------------------------------- adapter

function defaultNow() {
  return globalThis.performance.now() / 1000;
}

function randomId() {
  const bytes = new Uint8Array(6);
  globalThis.crypto.getRandomValues(bytes);
  return `b-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A failed attempt that ended this soon after it began was refused (nothing listens). */
const REFUSED_WITHIN_S = 0.05;

/**
 * The socket URL with `client=<id>` (the server records it as the actor of this page's
 * writes when no signed token names the user; synccli/protocol/client_id.py) and `token=`.
 */
export function socketUrl(url, clientId, token = null) {
  const params = [["client", clientId]];
  if (token !== null) params.push(["token", token]);
  const query = params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
  return `${url}${url.includes("?") ? "&" : "?"}${query}`;
}

const defaultTimers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
};

function defaultStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage disabled: positions live only as long as the page
  }
}

/**
 * The reconnecting client for a page. Events (`on(name, fn)`): `status` {date, status,
 * position}, `rows` {date}, `connection` {state: "connecting" | "open" | "closed",
 * attempt, delay}, `record` (every history record), `write` {requestId, appointmentId,
 * state, ok, code}.
 */
export class SyncClient {
  constructor({
    url,
    dates,
    token = null,
    clientId = randomId(),
    gapTimeout = 2.0,
    writeTimeout = 5.0,
    maxWriteAttempts = 5,
    ackDelay = 0.25, // as the Python client (DEFAULT_ACK_DELAY_S): one ack covers several events
    saveDelay = 1.0,
    backoffInitial = 0.25,
    backoffMax = 5.0,
    probe = 0.5,
    healthyAfter = 1.0,
    WebSocket = globalThis.WebSocket,
    timers = defaultTimers,
    storage = defaultStorage(),
    storagePrefix = "synccli:v1",
    now = defaultNow,
    random = Math.random,
    window: win = globalThis.window ?? null,
  }) {
    this.url = socketUrl(url, clientId, token);
    this.clientId = clientId;
    this.session = new ClientSession({ clientId, dates, gapTimeout, writeTimeout, maxWriteAttempts });
    this.ackDelay = ackDelay;
    this.saveDelay = saveDelay;
    this.backoffInitial = backoffInitial;
    this.backoffMax = backoffMax;
    this.probe = probe;
    this._attemptAt = null;
    this.healthyAfter = healthyAfter;
    this.WebSocket = WebSocket;
    this.timers = timers;
    this.storage = storage;
    this.storagePrefix = storagePrefix;
    this.now = now;
    this.random = random;
    this.window = win;
    this.attempt = 0;
    this._ws = null;
    this._open = false;
    this._openedAt = null;
    this._closing = false;
    this._listeners = new Map();
    this._reconnectTimer = null;
    this._tickTimer = null;
    this._tickAt = null;
    this._ackTimer = null;
    this._saveTimer = null;
    this._writes = 0;
    this._outbox = [];
    this._waiters = new Map();
    this._writeTargets = new Map(); // requestId -> appointmentId, until its result
    this._statuses = new Map();
    this._delays = this._newBackoff();
    this._onOnline = () => this._reconnectNow();
    this._restore();
  }

  // ------------------------------------------------------------------ public API

  on(name, listener) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(listener);
    return () => this._listeners.get(name).delete(listener);
  }

  start() {
    this._closing = false;
    this.window?.addEventListener?.("online", this._onOnline);
    this._connect();
    return this;
  }

  close() {
    this._closing = true;
    this.window?.removeEventListener?.("online", this._onOnline);
    for (const name of ["_reconnectTimer", "_tickTimer", "_ackTimer", "_saveTimer"]) this._clear(name);
    this._save();
    if (this._ws !== null) this._ws.close(1000, "client closing");
  }

  get connected() {
    return this._open;
  }

  /** The status shown to a user: never `synced` while the connection is down. */
  status(date) {
    const channel = this.session.channels.get(date);
    if (channel === undefined) return SYNCING;
    const status = channel.status;
    return this._open || status === OUT_OF_SYNC ? status : SYNCING;
  }

  position(date) {
    return this.session.channels.get(date)?.position ?? null;
  }

  /** The rows of `date` as the user sees them: `{row, state, pending}` sorted by id. */
  rows(date) {
    const channel = this.session.channels.get(date);
    if (channel === undefined) return [];
    return [...channel.rows.keys()].sort().map((id) => this.view(date, id));
  }

  /** One row of `date` as the user sees it (`{row, state, pending}`), or null. */
  view(date, appointmentId) {
    const channel = this.session.channels.get(date);
    const row = channel?.rows.get(appointmentId);
    if (row === undefined) return null;
    return { row, state: channel.viewState(appointmentId), pending: channel.optimistic.has(appointmentId) };
  }

  /** Write a state change optimistically; resolves with {ok, code, seq} once answered. */
  write(appointmentId, state, { expectedVersion = null, requestId = null } = {}) {
    this._writes += 1;
    const id = requestId ?? `${this.clientId}-${this._writes}`;
    const effects = this.session.beginWrite(appointmentId, state, id, this.now(), expectedVersion);
    const done = new Promise((resolve) => this._waiters.set(id, resolve));
    this._writeTargets.set(id, appointmentId);
    this._handle(effects);
    // Offline nothing is sent or recorded yet, but the optimistic state shows at once.
    if (effects.records.length === 0) this._emitRows([appointmentId]);
    this._pump();
    return done;
  }

  /** The `final` history record of every date. */
  finalRecords() {
    return [...this.session.channels.values()].map((channel) => channel.finalRecord());
  }

  // ------------------------------------------------------------------ connection

  _newBackoff() {
    return backoff(this.backoffInitial, this.backoffMax, 2.0, this.random);
  }

  _connect() {
    this._reconnectTimer = null;
    if (this._closing) return;
    this.attempt += 1;
    this._attemptAt = this.now();
    this._emit("connection", { state: "connecting", attempt: this.attempt, delay: 0 });
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onFrame(ws, event.data);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => {}; // a close event follows; it decides
  }

  _onOpen(ws) {
    if (ws !== this._ws) return;
    this._open = true;
    this._openedAt = this.now();
    this._record({ k: "connect", attempt: this.attempt });
    this._emit("connection", { state: "open", attempt: this.attempt, delay: 0 });
    this._handle(this.session.onConnected(this.now()));
    this._pump();
  }

  _onFrame(ws, data) {
    if (ws !== this._ws || !this._open) return;
    this._handle(this.session.onFrame(data, this.now()));
    this._pump();
  }

  _onClose(ws, event) {
    if (ws !== this._ws) return;
    const wasOpen = this._open;
    let refused = false;
    this._ws = null;
    this._open = false;
    for (const name of ["_tickTimer", "_ackTimer"]) this._clear(name);
    if (wasOpen) {
      this.session.onDisconnected();
      this._record({ k: "disconnect", code: event?.code ?? null, reason: event?.reason ?? "" });
      if (this.now() - this._openedAt >= this.healthyAfter) this._delays = this._newBackoff();
    } else {
      refused = this.probe !== null && this.now() - this._attemptAt < REFUSED_WITHIN_S;
      this._record({ k: "connect_failed", attempt: this.attempt, error: `closed (${event?.code ?? "?"})` });
    }
    this._emitStatuses();
    this._save();
    if (!this._closing) this._scheduleReconnect(refused);
  }

  /** The next attempt: after a refused one (nothing listens, so it cost the server
   * nothing) within `probe/2..probe`, else the next backoff delay (protocol/backoff.py). */
  _scheduleReconnect(refused = false) {
    const delay = refused ? this.probe * (0.5 + this.random() / 2) : this._delays.next().value;
    this._emit("connection", { state: "closed", attempt: this.attempt, delay });
    this._reconnectTimer = this.timers.setTimeout(() => this._connect(), delay * 1000);
  }

  /** The network is back (`online`): try at once with a fresh backoff. */
  _reconnectNow() {
    if (this._closing || this._ws !== null) return;
    this._clear("_reconnectTimer");
    this._delays = this._newBackoff();
    this._connect();
  }

  // ------------------------------------------------------------------ effects and timers

  _handle(effects) {
    // Before the records: a write's result forgets which appointment it was for.
    const changed = this._changedRows(effects.records);
    for (const record of effects.records) this._record(record);
    if (this._open) for (const message of effects.send) this._outbox.push(message);
    this._emitStatuses();
    if (effects.records.length) {
      this._emitRows(changed);
      this._scheduleSave();
    }
  }

  /** Send what is queued (with the acks), or hold the acks up to ackDelay; re-arm tick. */
  _pump() {
    if (!this._open) return;
    this._handle(this.session.tick(this.now()));
    const outgoing = this._outbox.splice(0);
    if (outgoing.length) {
      this._clear("_ackTimer");
      outgoing.push(...this.session.flushAcks());
    } else if (this._ackTimer === null && this.session.acksDue()) {
      this._ackTimer = this.timers.setTimeout(() => {
        this._ackTimer = null;
        this._sendAll(this.session.flushAcks());
      }, this.ackDelay * 1000);
    }
    this._sendAll(outgoing);
    this._armTick();
  }

  _sendAll(messages) {
    if (this._ws === null || !this._open) return;
    for (const message of messages) this._ws.send(JSON.stringify(message));
  }

  _armTick() {
    const deadline = this.session.nextDeadline();
    if (deadline === this._tickAt && this._tickTimer !== null) return;
    this._clear("_tickTimer");
    this._tickAt = deadline;
    if (deadline === null) return;
    const delay = Math.max(0, deadline - this.now());
    this._tickTimer = this.timers.setTimeout(() => {
      this._tickTimer = null;
      this._tickAt = null;
      this._pump();
    }, delay * 1000);
  }

  _clear(name) {
    if (this[name] !== null) {
      this.timers.clearTimeout(this[name]);
      this[name] = null;
    }
  }

  _record(record) {
    this._emit("record", record);
    if (record.k === "write_result") {
      const pending = this._waiters.get(record.requestId);
      this._waiters.delete(record.requestId);
      this._writeTargets.delete(record.requestId);
      this._emit("write", record);
      pending?.({ ok: record.ok, code: record.code, seq: record.seq });
    } else if (record.k === "write") {
      this._emit("write", record);
    }
  }

  _emit(name, detail) {
    for (const listener of this._listeners.get(name) ?? []) {
      try {
        listener(detail);
      } catch (exc) {
        globalThis.console?.error?.("synccli listener failed", exc);
      }
    }
  }

  _emitStatuses() {
    for (const date of this.session.channels.keys()) {
      const status = this.status(date);
      const position = this.position(date);
      const key = `${status}|${position?.epoch}|${position?.seq}`;
      if (this._statuses.get(date) !== key) {
        this._statuses.set(date, key);
        this._emit("status", { date, status, position });
      }
    }
  }

  /** The appointments `records` may have changed the view of, or null: any (a snapshot). */
  _changedRows(records) {
    const ids = new Set();
    for (const record of records) {
      if (record.k === "subscribed" || record.k === "snapshot" || record.k === "resync") return null;
      const id = record.appointmentId ?? this._writeTargets.get(record.requestId);
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  /** `rows` {date, ids}: `ids` the appointments whose view may have changed (null: any). */
  _emitRows(ids = null) {
    if (ids !== null && ids.length === 0) return;
    for (const date of this.session.channels.keys()) this._emit("rows", { date, ids });
  }

  // ------------------------------------------------------------------ storage

  _key(date) {
    return `${this.storagePrefix}:${date}`;
  }

  _restore() {
    if (this.storage === null) return;
    for (const [date, channel] of this.session.channels) {
      try {
        const saved = JSON.parse(this.storage.getItem(this._key(date)) ?? "null");
        if (saved && typeof saved.epoch === "string" && Number.isSafeInteger(saved.seq)) {
          channel.restore(saved.epoch, saved.seq, saved.rows.map(parseRow));
        }
      } catch {
        this.storage.removeItem(this._key(date)); // a damaged entry: start fresh
      }
    }
  }

  /** At most one save per `saveDelay`: a date's entry holds all its rows, and writing it
   *  for every event of a busy day would cost more than the event. A reload (`pagehide`
   *  saves) or a crash between two saves resumes from the older pair, which is consistent. */
  _scheduleSave() {
    if (this.storage === null || this._saveTimer !== null) return;
    this._saveTimer = this.timers.setTimeout(() => {
      this._saveTimer = null;
      this._save();
    }, this.saveDelay * 1000);
  }

  /** Position and rows together in one entry, so a reload resumes from a consistent pair. */
  _save() {
    if (this.storage === null) return;
    for (const [date, channel] of this.session.channels) {
      if (channel.epoch === null) continue;
      const entry = { epoch: channel.epoch, seq: channel.seq, rows: [...channel.rows.values()] };
      try {
        this.storage.setItem(this._key(date), JSON.stringify(entry));
      } catch {
        // quota exceeded: the next load starts from a snapshot, which is always correct
      }
    }
  }
}
