// The JS client's apply path against a bare JSON.parse loop, measured in the same run.
//
//   node benchmarks/js_client.mjs [--events 100000] [--rounds 5]
//
// Both loops take the same pre-serialised `appointments_updated` frames (one date, in
// order). `bare` only JSON.parses each frame; `client` hands it to ClientSession.onFrame:
// parse, validate, apply in order, build the history record, and take one cumulative ack
// per 100 frames. Best of --rounds alternating rounds; the ratio is what to watch.
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import { ClientSession } from "../synccli/web/synccli-client.js";

const { values } = parseArgs({
  options: { events: { type: "string", default: "100000" }, rounds: { type: "string", default: "5" } },
});
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
const D = "2026-11-26";
const E = "bench";

function frame(seq) {
  return JSON.stringify({
    type: "appointments_updated", id: `${D}:${E}:${seq}`, date: D, epoch: E, sequenceNum: seq,
    requiresAck: true, actionId: `w-${seq}`, replay: false, committedAt: "2026-11-26T08:00:00.000Z",
    appointment: {
      appointmentId: `${D}-${String(1 + (seq % 200)).padStart(4, "0")}`, date: D, patient: "Patient",
      state: "Present", stateTime: "2026-11-26T08:00:00.000Z", version: seq + 1, updatedAt: "2026-11-26T08:00:00.000Z",
    },
  });
}

const frames = Array.from({ length: EVENTS }, (_, i) => frame(i + 1));

function bare() {
  let sink = 0;
  for (const text of frames) sink += JSON.parse(text).sequenceNum;
  return sink;
}

function client() {
  const session = new ClientSession({ clientId: "bench", dates: [D] });
  session.onConnected(0);
  session.onFrame(JSON.stringify({ type: "subscribed", date: D, epoch: E, sequenceNum: 0, recovered: false, snapshot: [] }), 0);
  let records = 0;
  frames.forEach((text, i) => {
    records += session.onFrame(text, i).records.length;
    if (i % 100 === 99) session.flushAcks();
  });
  if (session.channels.get(D).seq !== EVENTS) throw new Error("not every event was applied");
  return records;
}

const best = { bare: Infinity, client: Infinity };
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of [["bare", bare], ["client", client]]) {
    const start = performance.now();
    run();
    best[name] = Math.min(best[name], (performance.now() - start) / 1000);
  }
}
const rate = (s) => Math.round(EVENTS / s).toLocaleString("en");
console.log(`events per round: ${EVENTS}, best of ${ROUNDS}`);
console.log(`bare JSON.parse   ${rate(best.bare).padStart(12)} events/s`);
console.log(`client onFrame    ${rate(best.client).padStart(12)} events/s`);
console.log(`ratio client/bare ${(best.client / best.bare).toFixed(2)}x the time`);
