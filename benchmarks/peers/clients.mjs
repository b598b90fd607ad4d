// Receivers and a writer for one server under test, driven by run.py over stdin/stdout.
//
//   node clients.mjs --kind synccli|socketio --server URL --urls URL,URL,URL --clients N --date D
//
// `--kind synccli` runs N copies of synccli's own browser client (`SyncClient` from
// synccli/web/synccli-client.js, on the `ws` package's WebSocket: reconnects, resumes from
// its position, acks cumulatively); `--kind socketio` runs N `socket.io-client`s that join
// the date's room and rely on connection-state recovery. Receiver i connects through
// `--urls[i % len]` (one proxy per group); the writer connects to `--server` directly and is
// never cut (four connections, like several front desks). Each stdin line is a JSON command, answered by one JSON line:
//
//   {"cmd": "connect"}                                   every receiver subscribed
//   {"cmd": "run", "seconds": S, "rate": R}              write R/s for S s, drain; latencies
//   {"cmd": "run", ..., "cut": {"api", "proxy", "at", "for", "group"}}
//                                                        and cut one group's proxy meanwhile
//   {"cmd": "stop"}
//
// A receiver applies each event in sequence order (a duplicate is skipped, a jump counted
// as a gap) and measures commit→apply from `committedAt` (millisecond resolution). After a
// cut, a cut receiver is caught up once its position reaches the last sequence number the
// writer had been answered at the heal.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

import { io } from "socket.io-client";
import WebSocket from "ws";

import { SyncClient } from "../../synccli/web/synccli-client.js";

const { values: args } = parseArgs({
  options: {
    kind: { type: "string" },
    server: { type: "string" },
    urls: { type: "string" },
    clients: { type: "string" },
    date: { type: "string" },
    "ack-delay": { type: "string", default: "0.25" },
  },
});
const DATE = args.date;
const URLS = args.urls.split(",");
const COUNT = Number(args.clients);
const ACK_DELAY = Number(args["ack-delay"]);
const APPOINTMENTS = 64;
// Writer connections, like several front desks: a server answers one connection's
// messages in order, so one connection alone would measure write latency, not fan-out.
const WRITERS = 4;
const DRAIN_MS = 20_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Stats {
  constructor() {
    this.reset();
  }
  reset() {
    this.latencies = [];
    this.delivered = 0;
    this.gaps = 0;
  }
}
const stats = new Stats();

/** One receiver's bookkeeping, whatever its client. */
class Receiver {
  constructor(index) {
    this.index = index;
    this.group = index % URLS.length;
    this.pos = 0;
    this.connects = 0;
    this.drops = 0;
    this.caughtUpAt = null;
  }
  apply(seq, committedAt, live) {
    if (seq <= this.pos) return;
    if (seq !== this.pos + 1 && this.pos !== 0) stats.gaps += 1;
    this.pos = seq;
    stats.delivered += 1;
    if (live && this.group !== 0) stats.latencies.push(Date.now() - Date.parse(committedAt));
    if (this.target !== undefined && this.caughtUpAt === null && this.pos >= this.target) {
      this.caughtUpAt = Date.now();
    }
  }
  jump(seq) {
    // A snapshot (synccli) or a fresh subscribe (Socket.IO without recovery): the position
    // moves without the events in between being applied.
    if (seq > this.pos) {
      stats.gaps += 1;
      this.pos = seq;
    }
  }
}

function synccliReceiver(index) {
  const receiver = new Receiver(index);
  const client = new SyncClient({
    url: URLS[receiver.group],
    dates: [DATE],
    clientId: `peer-${index}`,
    ackDelay: ACK_DELAY,
    WebSocket,
    storage: null,
  });
  let subscribed;
  receiver.ready = new Promise((resolve) => (subscribed = resolve));
  client.on("record", (record) => {
    if (record.k === "apply") receiver.apply(record.seq, record.committedAt, !record.replay);
    else if (record.k === "subscribed") {
      if (receiver.pos === 0) receiver.pos = record.seq;
      subscribed();
    } else if (record.k === "snapshot") receiver.jump(record.seq);
    else if (record.k === "connect") receiver.connects += 1;
    else if (record.k === "disconnect") receiver.drops += 1;
  });
  client.start();
  receiver.close = () => client.close();
  return receiver;
}

function socketioReceiver(index) {
  const receiver = new Receiver(index);
  const socket = io(URLS[receiver.group], { transports: ["websocket"], forceNew: true });
  let subscribed;
  receiver.ready = new Promise((resolve) => (subscribed = resolve));
  socket.on("connect", () => {
    receiver.connects += 1;
    if (socket.recovered) return; // the room and the missed packets came back
    socket.emit("subscribe", DATE, (answer) => {
      if (receiver.pos === 0) receiver.pos = answer.sequenceNum;
      else receiver.jump(answer.sequenceNum); // not recovered: what was missed is lost
      subscribed();
    });
  });
  socket.on("disconnect", () => (receiver.drops += 1));
  socket.on("appointments_updated", (event) => receiver.apply(event.sequenceNum, event.committedAt, true));
  receiver.close = () => socket.close();
  return receiver;
}

/** The writer: check-ins and undos over APPOINTMENTS appointments, `lastSeq` answered. */
class Writer {
  constructor() {
    this.count = 0;
    this.answered = 0;
    this.ok = 0;
    this.lastSeq = 0;
  }
  next() {
    const n = this.count % APPOINTMENTS;
    const state = Math.floor(this.count / APPOINTMENTS) % 2 === 0 ? "Present" : "Scheduled";
    this.count += 1;
    const appointmentId = `${DATE}-${String(n + 1).padStart(4, "0")}`;
    return { appointmentId, state, requestId: `w${process.pid}-${this.count}` };
  }
  answer(ok, seq) {
    this.answered += 1;
    if (ok) {
      this.ok += 1;
      this.lastSeq = Math.max(this.lastSeq, seq);
    }
  }
}

async function synccliWriter() {
  const writer = new Writer();
  const sockets = [];
  for (let i = 0; i < WRITERS; i++) {
    const ws = new WebSocket(args.server, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === "result") writer.answer(message.ok, message.sequenceNum ?? 0);
    });
    sockets.push(ws);
  }
  // Appointment n always goes through connection n % WRITERS (APPOINTMENTS % WRITERS == 0).
  writer.send = () => {
    const socket = sockets[writer.count % WRITERS];
    socket.send(JSON.stringify({ type: "update_appointment_state", ...writer.next() }));
  };
  writer.close = () => sockets.forEach((ws) => ws.close());
  return writer;
}

async function socketioWriter() {
  const writer = new Writer();
  const sockets = [];
  for (let i = 0; i < WRITERS; i++) {
    const socket = io(args.server, { transports: ["websocket"], forceNew: true });
    await new Promise((resolve) => socket.once("connect", resolve));
    sockets.push(socket);
  }
  writer.send = () => {
    const socket = sockets[writer.count % WRITERS];
    socket.emit("update", writer.next(), (answer) => writer.answer(answer.ok, answer.seq));
  };
  writer.close = () => sockets.forEach((socket) => socket.close());
  return writer;
}

async function setProxy(api, name, enabled) {
  const response = await fetch(`${api}/proxies/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ enabled }),
  });
  if (!response.ok) throw new Error(`proxy ${name}: HTTP ${response.status}`);
}

function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null;
}

let receivers = [];
let writer = null;

async function connect() {
  const make = args.kind === "synccli" ? synccliReceiver : socketioReceiver;
  for (let i = 0; i < COUNT; i++) {
    receivers.push(make(i));
    if (i % 50 === 49) await Promise.all(receivers.slice(-50).map((r) => r.ready));
  }
  await Promise.all(receivers.map((r) => r.ready));
  writer = await (args.kind === "synccli" ? synccliWriter() : socketioWriter());
  return { connected: receivers.length };
}

async function run({ seconds, rate, cut = null }) {
  stats.reset();
  for (const r of receivers) {
    r.target = undefined;
    r.caughtUpAt = null;
    r.connectsBefore = r.connects;
    r.dropsBefore = r.drops;
  }
  const start = Date.now();
  const writesBefore = writer.ok;
  const cutAt = cut === null ? Infinity : start + cut.at * 1000;
  let healAt = null;
  let sent = 0;
  while (Date.now() < start + seconds * 1000) {
    const now = Date.now();
    if (now >= cutAt && cut.state === undefined) {
      cut.state = "down";
      await setProxy(cut.api, cut.proxy, false);
    } else if (cut?.state === "down" && now >= cutAt + cut.for * 1000) {
      cut.state = "healed";
      await setProxy(cut.api, cut.proxy, true);
      healAt = Date.now();
      for (const r of receivers) if (r.group === cut.group) r.target = writer.lastSeq;
      for (const r of receivers) if (r.target !== undefined && r.pos >= r.target) r.caughtUpAt = healAt;
    }
    const due = start + (sent / rate) * 1000;
    if (due > now) {
      await sleep(Math.min(due - now, 5));
      continue;
    }
    writer.send();
    sent += 1;
  }
  const drainUntil = Date.now() + DRAIN_MS;
  while (writer.answered < sent && Date.now() < drainUntil) await sleep(10);
  const head = writer.lastSeq;
  while (receivers.some((r) => r.pos < head) && Date.now() < drainUntil) await sleep(20);
  const elapsed = (Math.max(Date.now(), start + 1) - start) / 1000;
  const latencies = stats.latencies.sort((a, b) => a - b);
  const writes = writer.ok - writesBefore;
  const answer = {
    writes,
    delivered: stats.delivered,
    missing: receivers.reduce((sum, r) => sum + Math.max(0, head - r.pos), 0),
    gaps: stats.gaps,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    elapsed,
  };
  if (healAt !== null) {
    const cutOnes = receivers.filter((r) => r.group === cut.group);
    const times = cutOnes.filter((r) => r.caughtUpAt !== null).map((r) => r.caughtUpAt - healAt);
    times.sort((a, b) => a - b);
    answer.recovery = {
      cut: cutOnes.length,
      never: cutOnes.length - times.length,
      p50: percentile(times, 0.5),
      p99: percentile(times, 0.99),
      max: times.length ? times[times.length - 1] : null,
      connects: cutOnes.reduce((sum, r) => sum + r.connects - r.connectsBefore, 0) / cutOnes.length,
      drops: cutOnes.reduce((sum, r) => sum + r.drops - r.dropsBefore, 0) / cutOnes.length,
      behind: cutOnes.filter((r) => r.caughtUpAt !== healAt).length,
    };
  }
  return answer;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  let answer;
  if (command.cmd === "connect") answer = await connect();
  else if (command.cmd === "run") answer = await run(command);
  else break;
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
for (const r of receivers) r.close();
writer?.close();
process.exit(0);
