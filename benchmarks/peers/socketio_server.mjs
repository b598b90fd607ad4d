// The peer under test: a Socket.IO 4 server with connection-state recovery on and the
// in-memory adapter (the defaults a user would start with), serving the same board.
//
//   node socketio_server.mjs PORT DATE
//
// A receiver emits `subscribe` (date) and joins that date's room; a writer emits `update`
// ({appointmentId, state, requestId}) and gets `{ok, seq}`. Each write becomes the same
// `appointments_updated` payload synccli sends (sequence number, row, committedAt), emitted
// to the room once. Nothing is stored durably: the state and the packets kept for
// recovery live in this process's memory. Prints "listening" once it accepts connections.
import { createServer } from "node:http";

import { Server } from "socket.io";

const port = Number(process.argv[2]);
const date = process.argv[3];
const epoch = "socketio";
const versions = new Map();
let seq = 0;

const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  perMessageDeflate: false,
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true },
});

io.on("connection", (socket) => {
  socket.on("subscribe", (day, answer) => {
    socket.join(day);
    answer({ date: day, epoch, sequenceNum: seq });
  });
  socket.on("update", (write, answer) => {
    const version = (versions.get(write.appointmentId) ?? 1) + 1;
    versions.set(write.appointmentId, version);
    const now = new Date().toISOString();
    const number = write.appointmentId.slice(write.appointmentId.lastIndexOf("-") + 1);
    seq += 1;
    const appointment = {
      appointmentId: write.appointmentId, date, patient: `Patient ${number}`, state: write.state,
      stateTime: now, version, updatedAt: now,
    };
    io.to(date).emit("appointments_updated", {
      type: "appointments_updated", id: `${date}:${epoch}:${seq}`, date, epoch, sequenceNum: seq,
      requiresAck: false, actionId: write.requestId, appointment, committedAt: now, replay: false,
    });
    answer({ ok: true, seq, appointment });
  });
});

http.listen(port, "127.0.0.1", () => process.stdout.write("listening\n"));
process.on("SIGTERM", () => process.exit(0));
