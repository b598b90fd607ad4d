// Types of synccli-client.js (wire protocol v1, docs/protocol.md).

export type SyncStatus = "synced" | "syncing" | "out_of_sync";
export declare const SYNCED: "synced";
export declare const SYNCING: "syncing";
export declare const OUT_OF_SYNC: "out_of_sync";

export type State = "Scheduled" | "Present" | "Seated" | "Dismissed" | "NoShow" | "Cancelled";
export declare const TRANSITIONS: Readonly<Record<State, readonly State[]>>;
export declare function allowedTargets(state: string): readonly State[];

export declare function backoff(
  initial?: number,
  maximum?: number,
  factor?: number,
  random?: () => number,
): Generator<number, never, void>;

/** An appointment, the same object in snapshots and events. */
export interface Row {
  appointmentId: string;
  date: string;
  patient: string;
  state: string;
  stateTime: string | null;
  version: number;
  updatedAt: string;
}

export interface Position {
  epoch: string;
  seq: number;
}

export interface Event {
  date: string;
  epoch: string;
  seq: number;
  row: Row;
  actionId: string | null;
  committedAt: string;
  id: string;
}

export type ServerMessage =
  | { type: "appointments_updated"; event: Event; replay: boolean }
  | { type: "subscribed"; date: string; epoch: string; seq: number; recovered: boolean; events: Event[]; snapshot: Row[] | null }
  | { type: "missed_events"; date: string; epoch: string; seq: number; events: Event[] }
  | { type: "resync_required"; date: string; reason: string }
  | { type: "snapshot"; date: string; epoch: string; seq: number; appointments: Row[] }
  | { type: "result"; requestId: string; ok: true; row: Row; seq: number | null }
  | { type: "result"; requestId: string; ok: false; errorCode: string | null; errorMessage: string | null }
  | { type: "heartbeat"; positions: Record<string, Position> }
  | { type: "error"; code: string; message: string; ref: string | null };

/** A client message, in its wire form. */
export type ClientMessage =
  | { type: "subscribe"; date: string; since?: { epoch: string; sequenceNum: number } }
  | { type: "ack"; date: string; sequenceNum: number; epoch: string }
  | { type: "request_missed_events"; date: string; lastSequenceNum: number; epoch?: string }
  | { type: "update_appointment_state"; requestId: string; appointmentId: string; state: string; expectedVersion?: number };

/** A history record (docs/history.md): `k` names its kind. */
export interface HistoryRecord {
  k: string;
  [field: string]: unknown;
}

export declare class ProtocolError extends Error {
  code: "bad_json" | "bad_message" | "unknown_type";
  constructor(code: string, message: string);
}

export declare function parseRow(data: unknown): Row;
export declare function parseServerMessage(text: string): ServerMessage;
/** The subscribed dates a malformed frame may have carried (all of them if it names none). */
export declare function malformedDates(text: string, subscribed: Iterable<string>): string[];

export declare class Effects {
  send: ClientMessage[];
  records: HistoryRecord[];
  constructor(send?: ClientMessage[], records?: HistoryRecord[]);
  extend(other: Effects): void;
}

export declare class ChannelState {
  readonly date: string;
  epoch: string | null;
  seq: number;
  rows: Map<string, Row>;
  optimistic: Map<string, { requestId: string; state: string; confirmedSeq: number | null }>;
  missedDeadline: number | null;
  constructor(date: string, options?: { gapTimeout?: number; maxBuffer?: number; maxMissedRequests?: number });
  readonly status: SyncStatus;
  readonly position: Position | null;
  readonly ackDue: boolean;
  viewState(appointmentId: string): string | null;
  finalRecord(): HistoryRecord;
  restore(epoch: string, seq: number, rows: Row[]): void;
}

export interface SessionOptions {
  clientId: string;
  dates: string[];
  gapTimeout?: number;
  writeTimeout?: number;
  maxWriteAttempts?: number;
}

export declare class ClientSession {
  readonly channels: Map<string, ChannelState>;
  connected: boolean;
  constructor(options: SessionOptions);
  onConnected(now: number): Effects;
  onDisconnected(): void;
  onFrame(text: string, now: number): Effects;
  /** A frame that could not be parsed: an `error` record, then a resync of its date(s). */
  onMalformed(error: ProtocolError, text: string): Effects;
  onMessage(message: ServerMessage, now: number): Effects;
  flushAcks(): ClientMessage[];
  acksDue(): boolean;
  tick(now: number): Effects;
  nextDeadline(): number | null;
  beginWrite(appointmentId: string, state: string, requestId: string, now: number, expectedVersion?: number | null): Effects;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** `url` with `client=<clientId>` (the actor of this client's writes) and `token=`. */
export declare function socketUrl(url: string, clientId: string, token?: string | null): string;

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface SyncClientOptions extends Omit<SessionOptions, "clientId"> {
  url: string;
  token?: string | null;
  clientId?: string;
  ackDelay?: number;
  /** Seconds between two saves of the positions and rows to storage (default 1). */
  saveDelay?: number;
  backoffInitial?: number;
  backoffMax?: number;
  /** Seconds within which a refused attempt is retried (`probe/2..probe`); null: backoff. */
  probe?: number | null;
  healthyAfter?: number;
  WebSocket?: new (url: string) => WebSocket;
  timers?: Timers;
  storage?: StorageLike | null;
  storagePrefix?: string;
  now?: () => number;
  random?: () => number;
  window?: Pick<Window, "addEventListener" | "removeEventListener"> | null;
}

export interface ViewRow {
  row: Row;
  state: string | null;
  pending: boolean;
}

export interface WriteOutcome {
  ok: boolean;
  code: string | null;
  seq: number | null;
}

export interface SyncClientEvents {
  status: { date: string; status: SyncStatus; position: Position | null };
  /** `ids`: the appointments whose view may have changed; null: any (a snapshot). */
  rows: { date: string; ids: string[] | null };
  connection: { state: "connecting" | "open" | "closed"; attempt: number; delay: number };
  record: HistoryRecord;
  write: HistoryRecord;
}

export declare class SyncClient {
  readonly clientId: string;
  readonly session: ClientSession;
  attempt: number;
  constructor(options: SyncClientOptions);
  on<K extends keyof SyncClientEvents>(name: K, listener: (detail: SyncClientEvents[K]) => void): () => void;
  start(): this;
  close(): void;
  readonly connected: boolean;
  status(date: string): SyncStatus;
  position(date: string): Position | null;
  rows(date: string): ViewRow[];
  /** One row as the user sees it, or null when `date` does not hold it. */
  view(date: string, appointmentId: string): ViewRow | null;
  write(appointmentId: string, state: string, options?: { expectedVersion?: number | null; requestId?: string | null }): Promise<WriteOutcome>;
  finalRecords(): HistoryRecord[];
}
