// The live appointment board (GET /?date=YYYY-MM-DD): one day's appointments, kept in sync
// by synccli-client.js. Every string from the database goes in as text (textContent or an
// attribute value), never as HTML. `?token=` is passed on to the socket; `?history=1`
// keeps every client record in `window.synccliBoard.records` (or hands them to
// `window.synccliHistory(records)` when the harness defines it), `&follow=D2,D3` keeps more
// dates in sync without showing them and `&client=ID` names the client.
import { SyncClient, allowedTargets } from "/client.js";

const ERROR_SHOWN_MS = 3000;
const ACTIONS = {
  Scheduled: { Present: "Check in", NoShow: "No-show", Cancelled: "Cancel" },
  Present: { Seated: "Seat", Scheduled: "Undo check-in" },
  Seated: { Dismissed: "Dismiss", Present: "Undo seat" },
  Dismissed: { Seated: "Undo dismiss" },
  NoShow: { Present: "Check in", Scheduled: "Undo no-show" },
  Cancelled: { Scheduled: "Reinstate" },
};
const ERRORS = {
  invalid_transition: "not allowed from the current state",
  conflict: "someone else changed it first",
  not_found: "no such appointment",
  db_unavailable: "the database is unavailable",
  timeout: "no answer from the server",
  rate_limited: "too many changes, try again",
};
const STATE_LABELS = { NoShow: "No-show" };
const STATUS_TEXT = { synced: "synced", syncing: "syncing", out_of_sync: "out of sync" };

function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function shiftDate(date, days) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

// One formatter for every row: toLocaleTimeString builds a new one per call, the costliest
// step of drawing a row.
const TIME = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });

function clock(iso) {
  if (typeof iso !== "string") return "—";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? "—" : TIME.format(moment);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (tag === "td") node.setAttribute("role", "cell");
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const params = new URLSearchParams(location.search);
const requested = params.get("date");
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const date = requested && DATE_RE.test(requested) ? requested : today();
const token = params.get("token");
const keepHistory = params.get("history") === "1";
const follow = (params.get("follow") ?? "").split(",").filter((d) => DATE_RE.test(d) && d !== date);
const scheme = location.protocol === "https:" ? "wss" : "ws";

const options = { url: `${scheme}://${location.host}/ws`, dates: [date, ...new Set(follow)], token };
if (params.get("client")) options.clientId = params.get("client");
const client = new SyncClient(options);
const records = [];
const failed = new Map(); // appointmentId -> {state, message}: shown for 3 s, then rolled back
const rowsById = new Map(); // appointmentId -> <tr>
window.synccliBoard = { client, date, records, failed };

function link(id, day) {
  const next = new URLSearchParams(params);
  next.set("date", day);
  document.getElementById(id).href = `?${next}`;
}

document.getElementById("date").textContent = date;
document.title = `Appointments ${date}`;
link("prev", shiftDate(date, -1));
link("next", shiftDate(date, 1));
link("today", today());

function write(appointmentId, state) {
  let outcome;
  try {
    outcome = client.write(appointmentId, state);
  } catch {
    return; // the row left the view meanwhile
  }
  failed.delete(appointmentId);
  outcome.then((result) => {
    if (result.ok) return;
    const why = ERRORS[result.code] ?? result.code ?? "refused";
    failed.set(appointmentId, { state, message: `Not saved: ${why}.` });
    schedule({ date, ids: [appointmentId] });
    setTimeout(() => {
      if (failed.get(appointmentId)?.state === state) failed.delete(appointmentId);
      schedule({ date, ids: [appointmentId] });
    }, ERROR_SHOWN_MS);
  });
}

function renderRow(tr, { row, state, pending }) {
  const failure = failed.get(row.appointmentId);
  const shown = failure?.state ?? state;
  const key = JSON.stringify([row.patient, shown, row.stateTime, pending, failure?.message ?? null]);
  if (tr.dataset.key === key) return;
  const hadFocus = tr.contains(document.activeElement);
  tr.dataset.key = key;
  tr.dataset.state = shown;
  tr.className = [pending ? "processing" : "", failure ? "failed" : ""].join(" ").trim();
  tr.setAttribute("aria-busy", String(pending));
  tr.replaceChildren();
  tr.append(el("td", "patient", row.patient));
  const stateCell = el("td");
  stateCell.append(el("span", `state state-${shown}`, STATE_LABELS[shown] ?? shown));
  if (failure) {
    const error = el("span", "error", failure.message);
    error.setAttribute("role", "alert");
    stateCell.append(error);
  }
  tr.append(stateCell, el("td", "since", clock(row.stateTime)));
  const actions = el("td");
  const box = el("div", "actions");
  const allowed = allowedTargets(shown);
  for (const [target, label] of Object.entries(ACTIONS[shown] ?? {})) {
    if (!allowed.includes(target)) continue;
    const button = el("button", "", label);
    button.type = "button";
    button.dataset.target = target;
    button.setAttribute("aria-label", `${label}: ${row.patient}`);
    button.disabled = pending || Boolean(failure);
    button.addEventListener("click", () => write(row.appointmentId, target));
    box.append(button);
  }
  actions.append(box);
  tr.append(actions);
  if (hadFocus) (box.querySelector("button:not(:disabled)") ?? tr).focus();
}

// New rows made per turn: the first render of a busy day is a few short tasks, not one
// long one that freezes the page.
const NEW_ROWS_PER_TURN = 50;

function render() {
  const body = document.getElementById("rows");
  const view = client.rows(date);
  const seen = new Set();
  let created = 0;
  for (const [index, item] of view.entries()) {
    const id = item.row.appointmentId;
    seen.add(id);
    let tr = rowsById.get(id);
    if (tr === undefined) {
      if (created === NEW_ROWS_PER_TURN) {
        schedule({ date, ids: null }); // the rest on the next turn
        return;
      }
      created += 1;
      tr = document.createElement("tr");
      tr.setAttribute("role", "row");
      tr.dataset.id = id;
      tr.tabIndex = -1;
      rowsById.set(id, tr);
    }
    renderRow(tr, item);
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
  }
  for (const [id, tr] of rowsById) {
    if (!seen.has(id)) {
      tr.remove();
      rowsById.delete(id);
    }
  }
  document.getElementById("empty").hidden = view.length > 0 || client.position(date) === null;
}

// What to draw on the next turn: every row (a snapshot, a new row), or only those whose
// view changed. An event repaints one row, not the whole day: a busy day of 1,000
// appointments stays cheap to keep up with.
let scheduled = false;
let everything = true;
const dirty = new Set();
function schedule({ date: changed, ids }) {
  if (changed !== date) return;
  if (ids === null) everything = true;
  else for (const id of ids) dirty.add(id);
  if (scheduled) return;
  scheduled = true;
  setTimeout(flush, 0);
}

function flush() {
  scheduled = false;
  const ids = everything ? null : [...dirty];
  everything = false;
  dirty.clear();
  if (ids === null) {
    render();
    return;
  }
  for (const id of ids) {
    const item = client.view(date, id);
    if (item === null) continue;
    const tr = rowsById.get(id);
    if (tr === undefined) {
      render(); // a row the table does not have yet: it goes in its place
      return;
    }
    renderRow(tr, item);
  }
}

function showStatus() {
  const status = client.status(date);
  const position = client.position(date);
  const badge = document.getElementById("badge");
  badge.className = `badge ${status}`;
  badge.dataset.status = status;
  document.getElementById("badge-status").textContent = STATUS_TEXT[status];
  document.getElementById("badge-position").textContent =
    position === null ? "" : `epoch ${position.epoch.slice(0, 8)} · #${position.seq}`;
}

client.on("rows", schedule);
client.on("status", showStatus);
client.on("connection", ({ state }) => {
  const lost = state === "closed" || (state === "connecting" && client.attempt > 1);
  document.getElementById("banner").hidden = !lost;
  showStatus();
});
if (typeof window.synccliHistory === "function") {
  // The harness's sink (a Playwright binding): records leave the page in one call per turn.
  let batch = [];
  client.on("record", (record) => {
    if (batch.length === 0) setTimeout(() => window.synccliHistory(batch.splice(0)), 0);
    batch.push(record);
  });
} else if (keepHistory) {
  client.on("record", (record) => records.push(record));
}
window.addEventListener("pagehide", () => client.close());
render();
showStatus();
client.start();
