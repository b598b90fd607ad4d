// The shared protocol vectors (tests/vectors/*.json) against the JS client core.
// The same files drive the Python core (tests/protocol/test_vectors.py).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { newSession, runStep } from "./run_vector.mjs";

const DIR = new URL("../vectors/", import.meta.url);
const FILES = readdirSync(DIR).filter((name) => name.endsWith(".json")).sort();

function check(session, effects, expect, where) {
  assert.deepEqual(effects.send, expect.send ?? [], where);
  if (expect.records) {
    assert.equal(effects.records.length, expect.records.length, `${where}: ${JSON.stringify(effects.records)}`);
    expect.records.forEach((want, i) => {
      const got = Object.fromEntries(Object.keys(want).map((k) => [k, effects.records[i][k] ?? null]));
      assert.deepEqual(got, want, where);
    });
  }
  for (const [date, status] of Object.entries(expect.status ?? {})) {
    assert.equal(session.channels.get(date).status, status, where);
  }
  for (const [date, position] of Object.entries(expect.position ?? {})) {
    const pos = session.channels.get(date).position;
    assert.deepEqual(pos === null ? null : [pos.epoch, pos.seq], position, where);
  }
  for (const [id, state] of Object.entries(expect.view ?? {})) {
    const views = new Set([...session.channels.values()].map((c) => c.viewState(id)).filter((v) => v !== null));
    assert.deepEqual([...views], [state], where);
  }
  for (const [id, [version, state]] of Object.entries(expect.rows ?? {})) {
    const rows = [...session.channels.values()].filter((c) => c.rows.has(id)).map((c) => c.rows.get(id));
    assert.deepEqual(rows.map((r) => [r.version, r.state]), [[version, state]], where);
  }
  if (expect.pending) assert.deepEqual([...session.pending.keys()].sort(), [...expect.pending].sort(), where);
}

export function runVector(vector, name) {
  const session = newSession(vector.config);
  vector.steps.forEach((step, index) => {
    const effects = runStep(session, step);
    check(session, effects, step.expect ?? {}, `${name} step ${index}`);
  });
}

test("there are vectors", () => assert.ok(FILES.length >= 10));

for (const name of FILES) {
  test(`vector ${name}`, () => runVector(JSON.parse(readFileSync(new URL(name, DIR), "utf8")), name));
}

test("a wrong expectation fails", () => {
  const vector = JSON.parse(readFileSync(new URL("write_rolled_back.json", DIR), "utf8"));
  vector.steps.at(-1).expect.view = Object.fromEntries(
    Object.keys(vector.steps.at(-1).expect.view).map((id) => [id, "Seated"]),
  );
  assert.throws(() => runVector(vector, "tampered"));
});
