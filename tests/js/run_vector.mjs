// Runs one vector step against a ClientSession; shared by the node tests and by
// tests/protocol/test_vectors.py, which compares every record with the Python core's.
import { readFileSync } from "node:fs";

import { ClientSession, Effects } from "../../synccli/web/synccli-client.js";

export function newSession(config) {
  const { clientId, dates, gapTimeout, writeTimeout } = config;
  return new ClientSession({ clientId, dates, gapTimeout, writeTimeout });
}

export function runStep(session, step) {
  const now = step.at;
  if (step.connect) return session.onConnected(now);
  if (step.disconnect) {
    session.onDisconnected();
    return new Effects();
  }
  if (step.tick) return session.tick(now);
  if (step.flushAcks) return new Effects(session.flushAcks());
  if (step.write) {
    const { appointmentId, state, requestId } = step.write;
    return session.beginWrite(appointmentId, state, requestId, now);
  }
  const frame = "frame" in step ? step.frame : JSON.stringify(step.receive);
  return session.onFrame(frame, now);
}

/** Every step's effects of the vector at `path`, as JSON: [{send, records}, ...]. */
export function effectsOf(path) {
  const vector = JSON.parse(readFileSync(path, "utf8"));
  const session = newSession(vector.config);
  return vector.steps.map((step) => {
    const { send, records } = runStep(session, step);
    return { send, records };
  });
}
