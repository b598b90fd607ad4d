// SyncClient (the adapter) with a fake WebSocket, fake timers and an in-memory storage:
// batching of acks, reconnect with backoff, the `online` shortcut, resume after a reload,
// writes kept across reconnects, events for the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SyncClient, backoff } from "../../synccli/web/synccli-client.js";

const D = "2026-11-26";
const E = "e1";

function row(n, state = "Scheduled", version = 1) {
  return { appointmentId: `${D}-${n}`, date: D, patient: `P${n}`, state, stateTime: null, version, updatedAt: "t" };
}

function ev(seq, n, state, action = null) {
  return {
    type: "appointments_updated", id: `${D}:${E}:${seq}`, date: D, epoch: E, sequenceNum: seq,
    requiresAck: true, actionId: action, appointment: row(n, state, seq + 1), committedAt: "t", replay: false,
  };
}

class Clock {
  constructor() {
    this.t = 0;
    this.queue = [];
    this.ids = 0;
  }
  now = () => this.t;
  timers = {
    setTimeout: (fn, ms) => {
      const id = ++this.ids;
      this.queue.push({ id, at: this.t + ms / 1000, fn });
      return id;
    },
    clearTimeout: (id) => {
      this.queue = this.queue.filter((timer) => timer.id !== id);
    },
  };
  /** Run every timer due up to t + seconds, in order. */
  advance(seconds) {
    const end = this.t + seconds;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.queue[0];
      if (next === undefined || next.at > end) break;
      this.queue.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
}

function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code = 1000) {
      this.drop(code);
    }
    open() {
      this.onopen?.({});
    }
    receive(message) {
      this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
    }
    drop(code = 1006) {
      if (this.closed) return;
      this.closed = true;
      this.onclose?.({ code, reason: "" });
    }
  }
  return { sockets, FakeSocket };
}

class MemoryStorage {
  map = new Map();
  getItem(key) {
    return this.map.get(key) ?? null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

class FakeWindow {
  listeners = new Map();
  addEventListener(name, fn) {
    this.listeners.set(name, fn);
  }
  removeEventListener(name) {
    this.listeners.delete(name);
  }
  fire(name) {
    this.listeners.get(name)?.();
  }
}

function setup(extra = {}) {
  const clock = new Clock();
  const { sockets, FakeSocket } = fakeSockets();
  const storage = extra.storage ?? new MemoryStorage();
  const win = new FakeWindow();
  const client = new SyncClient({
    url: "ws://127.0.0.1:1/ws", dates: [D], clientId: "b", WebSocket: FakeSocket,
    timers: clock.timers, now: clock.now, storage, window: win, random: () => 0.5, ...extra,
  });
  return { clock, sockets, storage, win, client };
}

test("backoff grows with full jitter up to the cap", () => {
  const delays = backoff(1, 8, 2, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => delays.next().value), [1, 2, 4, 8, 8]);
  assert.throws(() => backoff(0).next(), RangeError);
});

test("subscribes on open, and one cumulative ack covers a burst", () => {
  const { clock, sockets, client } = setup({ token: "s e/cret" });
  const statuses = [];
  client.on("status", (s) => statuses.push(`${s.status}:${s.position?.seq}`));
  client.start();
  const ws = sockets[0];
  // The client id names the actor of this page's writes (the server's `?client=`).
  assert.equal(ws.url, "ws://127.0.0.1:1/ws?client=b&token=s%20e%2Fcret");
  ws.open();
  assert.deepEqual(ws.sent, [{ type: "subscribe", date: D }]);
  ws.receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 0, recovered: false, snapshot: [row(1), row(2)] });
  for (let seq = 1; seq <= 3; seq++) ws.receive(ev(seq, 1 + (seq % 2), "Present"));
  assert.equal(ws.sent.length, 1, "acks are held back");
  clock.advance(0.24);
  assert.equal(ws.sent.length, 1, "for the ack delay (250 ms, as the Python client)");
  clock.advance(0.01);
  assert.deepEqual(ws.sent.slice(1), [{ type: "ack", date: D, sequenceNum: 3, epoch: E }]);
  assert.equal(client.status(D), "synced");
  assert.deepEqual(statuses, ["syncing:undefined", "synced:0", "synced:1", "synced:2", "synced:3"]);
  assert.deepEqual(client.position(D), { epoch: E, seq: 3 });
});

test("a malformed frame is reported, then resynced, never thrown", () => {
  const { sockets, client } = setup();
  const records = [];
  client.on("record", (r) => records.push(r));
  client.start();
  const ws = sockets[0];
  ws.open();
  ws.receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 2, recovered: false, snapshot: [row(1)] });
  const before = ws.sent.length;
  assert.doesNotThrow(() => ws.receive("{oops"));
  assert.deepEqual(records.slice(-2).map((r) => [r.k, r.code ?? r.reason]), [["error", "bad_json"], ["resync", "malformed_frame"]]);
  assert.deepEqual(ws.sent.slice(before), [{ type: "subscribe", date: D }], "a fresh snapshot, no since");
  assert.equal(client.status(D), "out_of_sync");
  ws.receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 3, recovered: false, snapshot: [row(1, "Present", 2)] });
  assert.equal(client.status(D), "synced");
  assert.deepEqual(client.position(D), { epoch: E, seq: 3 });
});

test("reconnects with backoff, faster on `online`, resumes with since and re-sends the write", async () => {
  const { clock, sockets, client, win } = setup({ backoffInitial: 1, backoffMax: 4, probe: null });
  const connection = [];
  client.on("connection", (c) => connection.push(c.state));
  client.start();
  sockets[0].open();
  sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 2, recovered: false, snapshot: [row(1)] });
  const outcome = client.write(`${D}-1`, "Present");
  assert.equal(client.rows(D)[0].state, "Present");
  assert.equal(client.rows(D)[0].pending, true);
  sockets[0].drop();
  assert.equal(client.status(D), "syncing", "never synced while disconnected");
  assert.equal(client.rows(D)[0].state, "Present", "the optimistic state survives");
  clock.advance(0.49);
  assert.equal(sockets.length, 1, "waits for the jittered delay (0.5 s)");
  clock.advance(0.02);
  assert.equal(sockets.length, 2);
  sockets[1].drop(); // the server is still down: the next delay is up to 2 s
  clock.advance(0.9);
  assert.equal(sockets.length, 2);
  win.fire("online");
  assert.equal(sockets.length, 3, "the network came back: try at once");
  sockets[2].open();
  assert.deepEqual(sockets[2].sent, [
    { type: "subscribe", date: D, since: { epoch: E, sequenceNum: 2 } },
    { type: "update_appointment_state", requestId: "b-1", appointmentId: `${D}-1`, state: "Present" },
  ]);
  assert.deepEqual(connection.slice(0, 4), ["connecting", "open", "closed", "connecting"]);
  sockets[2].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 2, recovered: true, events: [] });
  sockets[2].receive({ type: "result", requestId: "b-1", ok: true, appointment: row(1, "Present", 4), sequenceNum: 3 });
  assert.deepEqual(await outcome, { ok: true, code: null, seq: 3 });
  sockets[2].receive(ev(3, 1, "Present", "b-1"));
  assert.deepEqual(client.rows(D)[0], { row: row(1, "Present", 4), state: "Present", pending: false });
});

test("an attempt refused at once is retried within probe/2..probe, not after a grown backoff", () => {
  const { clock, sockets, client } = setup({ backoffInitial: 1, backoffMax: 4, probe: 0.5 });
  client.start();
  sockets[0].open();
  sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 2, recovered: false, snapshot: [row(1)] });
  clock.advance(2); // a healthy connection
  sockets[0].drop(); // an open connection lost: the backoff decides (up to 1 s, here 0.5 s)
  clock.advance(0.51);
  assert.equal(sockets.length, 2);
  for (let n = 2; n <= 8; n++) {
    sockets[n - 1].drop(); // nothing listens: refused at once
    clock.advance(0.37);
    assert.equal(sockets.length, n, "not before probe/2 + random × probe/2 (0.375 s)");
    clock.advance(0.01);
    assert.equal(sockets.length, n + 1, "the backoff did not grow: back within the probe delay");
  }
  clock.advance(0.2);
  sockets[8].drop(); // closed 0.2 s after the attempt, never opened: a struggling server, backoff
  clock.advance(0.99);
  assert.equal(sockets.length, 9, "a slow failure waits for the backoff (up to 2 s, here 1 s)");
  clock.advance(0.02);
  assert.equal(sockets.length, 10);
});

test("a refused write resolves ok:false and is rolled back", async () => {
  const { sockets, client } = setup();
  client.start();
  sockets[0].open();
  sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 0, recovered: false, snapshot: [row(1)] });
  const outcome = client.write(`${D}-1`, "Seated");
  sockets[0].receive({ type: "result", requestId: "b-1", ok: false, error: { code: "invalid_transition", message: "no" } });
  assert.deepEqual(await outcome, { ok: false, code: "invalid_transition", seq: null });
  assert.equal(client.rows(D)[0].state, "Scheduled");
});

test("a reload resumes from the stored position and rows", () => {
  const first = setup();
  first.client.start();
  first.sockets[0].open();
  first.sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 0, recovered: false, snapshot: [row(1), row(2)] });
  first.sockets[0].receive(ev(1, 2, "Cancelled"));
  const saves = [];
  const setItem = first.storage.setItem.bind(first.storage);
  first.storage.setItem = (key, value) => saves.push(JSON.parse(value).seq) && setItem(key, value);
  first.sockets[0].receive(ev(2, 1, "Present"));
  first.clock.advance(0.99);
  assert.deepEqual(saves, [], "saves wait saveDelay (1 s)");
  first.clock.advance(0.01);
  assert.deepEqual(saves, [2], "one save covers both events");
  first.storage.setItem = setItem;
  const reloaded = setup({ storage: first.storage });
  assert.deepEqual(reloaded.client.position(D), { epoch: E, seq: 2 });
  assert.equal(reloaded.client.rows(D)[1].state, "Cancelled");
  reloaded.client.start();
  reloaded.sockets[0].open();
  assert.deepEqual(reloaded.sockets[0].sent, [{ type: "subscribe", date: D, since: { epoch: E, sequenceNum: 2 } }]);
  reloaded.sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 3, recovered: true, events: [{ ...ev(3, 1, "Seated"), replay: true }] });
  assert.deepEqual(reloaded.client.position(D), { epoch: E, seq: 3 });
  assert.equal(reloaded.client.status(D), "synced");
});

test("a damaged storage entry is dropped, not trusted", () => {
  const storage = new MemoryStorage();
  storage.setItem(`synccli:v1:${D}`, '{"epoch":"e1","seq":4,"rows":"nope"}');
  const { client } = setup({ storage });
  assert.equal(client.position(D), null);
  assert.equal(storage.getItem(`synccli:v1:${D}`), null);
});

test("a write made while offline shows at once and goes out on the next connection", () => {
  const { clock, sockets, client } = setup({ backoffInitial: 1 });
  const rows = [];
  client.on("rows", () => rows.push(client.rows(D)[0].state));
  client.start();
  sockets[0].open();
  sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 0, recovered: false, snapshot: [row(1)] });
  sockets[0].drop();
  client.write(`${D}-1`, "NoShow");
  assert.equal(rows.at(-1), "NoShow");
  assert.equal(client.rows(D)[0].pending, true);
  clock.advance(1);
  sockets[1].open();
  assert.deepEqual(sockets[1].sent.at(-1), {
    type: "update_appointment_state", requestId: "b-1", appointmentId: `${D}-1`, state: "NoShow",
  });
});

test("close() stops for good: no reconnect, the position is saved", () => {
  const { clock, sockets, client, storage } = setup();
  client.start();
  sockets[0].open();
  sockets[0].receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 7, recovered: false, snapshot: [] });
  client.close();
  clock.advance(60);
  assert.equal(sockets.length, 1);
  assert.deepEqual(JSON.parse(storage.getItem(`synccli:v1:${D}`)), { epoch: E, seq: 7, rows: [] });
});

test("`rows` names the appointments whose view changed, null for a snapshot", async () => {
  const { sockets, client } = setup();
  const changes = [];
  client.on("rows", ({ ids }) => changes.push(ids));
  client.start();
  const ws = sockets[0];
  ws.open();
  ws.receive({ type: "subscribed", date: D, epoch: E, sequenceNum: 0, recovered: false, snapshot: [row(1), row(2)] });
  ws.receive(ev(1, 2, "Present"));
  const outcome = client.write(`${D}-1`, "NoShow");
  ws.receive({ type: "result", requestId: "b-1", ok: true, appointment: row(1, "NoShow", 2), sequenceNum: 2 });
  await outcome;
  ws.receive(ev(1, 2, "Present")); // a duplicate changes nothing: no `rows`
  assert.deepEqual(changes, [null, [`${D}-2`], [`${D}-1`], [`${D}-1`]]);
  assert.deepEqual(client.view(D, `${D}-1`), { row: row(1), state: "NoShow", pending: true });
  assert.equal(client.view(D, `${D}-9`), null);
});
