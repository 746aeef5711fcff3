/**
 * One client's WebSocket on a live session. Client messages are checked here — size, JSON, the
 * message schema, the state they lead to, new mask images — and a bad one gets an error message
 * (the socket stays open). Messages are handled one after another, in order; while a few wait, the
 * socket is paused (TCP pushes back on the client). Updates are applied to the session's state in Redis and announced to
 * its worker with at most one write in flight: updates that arrive meanwhile are coalesced into
 * the next write, so a client faster than Redis or the worker never queues work without bound.
 * The session's outbox is relayed to the socket: frames numbered here, then their tiles as binary
 * messages; while the client does not read, frames and previews are dropped, and once it reads
 * again it gets a whole frame. The session's worker is watched and replaced when it dies; the
 * session ends when the socket closes or when it has been idle too long.
 */
import type { WebSocket, RawData } from 'ws';
import {
  CanvasState,
  ClientMessage,
  RequestLimits,
  ServerMessage,
  SessionUpdate,
  applyUpdate,
  clientMessageSchema,
  parseClientMessage,
} from '@farm/contracts';
import type { OutboxEntry, OutboxMessage, SessionHosts, SessionRecord, SessionStore } from '@farm/platform';
import type { OutboxReader } from './outbox-reader';
import { canvasStateProblems } from './session-checks';
import type { SessionMetrics } from './session-metrics';

export interface SessionConnectionDeps {
  sessions: SessionStore;
  hosts: SessionHosts;
  outbox: OutboxReader;
  metrics: SessionMetrics;
  limits: RequestLimits;
  messageSchema: ReturnType<typeof clientMessageSchema>;
  maxMessageBytes: number;
  /** Socket buffer above which frames are dropped instead of sent (the client is not reading). */
  maxBufferedBytes: number;
  /** Records a commit's snapshot as a finished job; resolves with the job's id, image URL and link. */
  recordCommit(record: SessionRecord, snapshot: Extract<OutboxMessage, { type: 'snapshot' }>): Promise<{ id: string; url: string; links: { self: string } }>;
}

/** How often the session's worker, expiry and socket claim are checked. */
export const WATCH_MS = 1000;
/** Client messages waiting to be handled before the socket stops reading. */
const MAX_WAITING_MESSAGES = 8;
/** Updates whose latency is still measured (the oldest are forgotten beyond that). */
const TIMED_UPDATES = 64;

export class SessionConnection {
  private writing = false;
  /** The write loop under way (commits and keyframes wait for it, so they follow the updates before them). */
  private written = Promise.resolve();
  /** An update arrived while a write was in flight: write the state again after it. */
  private dirty = false;
  private frames = 0;
  /** Frames were dropped: the client needs a whole frame when it reads again. */
  private behind = false;
  /** Arrival time of updates not yet reflected in a frame, by seq. */
  private readonly arrivals = new Map<number, number>();
  private unsubscribe: (() => void) | null = null;
  private watch: NodeJS.Timeout | null = null;
  private noWorkerSaid = false;
  /** The client messages being handled, in order, and how many wait. */
  private inbound = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly ws: WebSocket,
    private record: SessionRecord,
    private state: CanvasState,
    private readonly deps: SessionConnectionDeps,
  ) {}

  start(): void {
    const { outbox, metrics } = this.deps;
    metrics.open.inc();
    this.ws.on('message', (data, isBinary) => this.enqueue(data, isBinary));
    this.ws.on('close', () => void this.end());
    // From the outbox's start: the session's one socket gets everything since it opened (the
    // first frame and its previews may well be rendered before the client connects).
    this.unsubscribe = outbox.subscribe(this.record.id, '0-0', (entry) => this.relay(entry));
    this.watch = setInterval(() => void this.check().catch(() => undefined), WATCH_MS);
  }

  private send(message: ServerMessage): void {
    this.ws.send(JSON.stringify(message));
  }

  private error(code: string, message: string, extra: Partial<Extract<ServerMessage, { type: 'error' }>> = {}): void {
    this.send({ type: 'error', code, message, ...extra });
  }

  /** Handles messages in the order they came; too many waiting pause the socket until they are done. */
  private enqueue(data: RawData, isBinary: boolean): void {
    if (++this.waiting === MAX_WAITING_MESSAGES) this.ws.pause();
    this.inbound = this.inbound
      .then(() => this.receive(data, isBinary))
      .finally(() => {
        if (this.waiting-- === MAX_WAITING_MESSAGES) this.ws.resume();
      });
  }

  private async receive(data: RawData, isBinary: boolean): Promise<void> {
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
    if (bytes > this.deps.maxMessageBytes) return this.reject('message_too_large', `messages are limited to ${this.deps.maxMessageBytes} bytes; this one has ${bytes}`);
    if (isBinary) return this.reject('invalid_message', 'send JSON text messages; binary messages are not accepted');
    let body: unknown;
    try {
      body = JSON.parse(data.toString());
    } catch (err) {
      return this.reject('invalid_json', `the message is not valid JSON: ${(err as Error).message}`);
    }
    const parsed = parseClientMessage(body, this.deps.messageSchema);
    if (!parsed.ok) return this.reject('invalid_message', parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; '), { fields: parsed.problems });
    try {
      await this.handle(parsed.value);
    } catch (err) {
      this.error('unavailable', `the session could not be updated: ${(err as Error).message}`);
    }
  }

  private reject(code: string, message: string, extra: Partial<Extract<ServerMessage, { type: 'error' }>> = {}): void {
    this.deps.metrics.updates.inc({ outcome: 'rejected' });
    this.error(code, message, extra);
  }

  private async handle(message: ClientMessage): Promise<void> {
    const { sessions } = this.deps;
    if (message.type === 'update') return this.update(message);
    await this.written;
    await sessions.touch(this.record.id);
    await sessions.send(this.record.worker, { kind: message.type, session: this.record.id });
  }

  private async update(update: SessionUpdate): Promise<void> {
    if (update.seq <= this.state.seq) return this.reject('stale_seq', `seq must grow: ${update.seq} after ${this.state.seq}`, { seq: update.seq });
    const next = applyUpdate(this.state, update);
    const problems = await canvasStateProblems(next, this.record.spec, this.deps.limits, Object.keys(update.regions ?? {}).filter((id) => update.regions![id]));
    if (problems.length > 0) return this.reject('invalid_update', problems.map((p) => `${p.path}: ${p.message}`).join('; '), { seq: update.seq, fields: problems });
    this.state = next;
    this.arrivals.set(update.seq, Date.now());
    if (this.arrivals.size > TIMED_UPDATES) this.arrivals.delete(this.arrivals.keys().next().value as number);
    if (this.writing) {
      if (this.dirty) this.deps.metrics.updates.inc({ outcome: 'coalesced' });
      this.dirty = true;
      return;
    }
    this.written = this.write();
  }

  /** Writes the state and tells the worker, again while updates came meanwhile (only the newest state). */
  private async write(): Promise<void> {
    this.writing = true;
    try {
      do {
        this.dirty = false;
        this.deps.metrics.updates.inc({ outcome: 'accepted' });
        await this.deps.sessions.saveState(this.record.id, this.state);
        await this.deps.sessions.send(this.record.worker, { kind: 'update', session: this.record.id });
      } while (this.dirty);
    } catch (err) {
      this.error('unavailable', `the session could not be updated: ${(err as Error).message}`);
    } finally {
      this.writing = false;
    }
  }

  private relay({ message, tiles }: OutboxEntry): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const slow = this.ws.bufferedAmount > this.deps.maxBufferedBytes;
    const { metrics } = this.deps;
    switch (message.type) {
      case 'frame': {
        if (slow) {
          this.behind = true;
          metrics.dropped.inc();
          return;
        }
        const { width, height } = this.record.spec;
        const whole = message.tiles.length === 1 && message.tiles[0].w === width && message.tiles[0].h === height;
        this.send({ ...message, seq: ++this.frames });
        for (const tile of tiles) this.ws.send(tile, { binary: true });
        metrics.frames.inc({ kind: whole ? 'whole' : 'partial' });
        metrics.tiles.inc(tiles.length);
        metrics.bytes.inc(tiles.reduce((n, t) => n + t.length, 0));
        const now = Date.now();
        for (const [seq, at] of this.arrivals) {
          if (seq > message.basedOn) continue;
          metrics.latency.observe((now - at) / 1000);
          this.arrivals.delete(seq);
        }
        return;
      }
      case 'progress':
        if (slow) metrics.dropped.inc();
        else this.send(message);
        return;
      case 'snapshot':
        void this.commit(message);
        return;
      default:
        this.send(message);
    }
  }

  private async commit(snapshot: Extract<OutboxMessage, { type: 'snapshot' }>): Promise<void> {
    try {
      const job = await this.deps.recordCommit(this.record, snapshot);
      await this.deps.sessions.setCommitted(this.record.id, { jobId: job.id, state: snapshot.state });
      if (this.ws.readyState === this.ws.OPEN) this.send({ type: 'committed', basedOn: snapshot.basedOn, job });
    } catch (err) {
      this.error('commit_failed', `the frame could not be committed: ${(err as Error).message}`);
    }
  }

  /** Once a second: the session still alive, its socket still ours, its worker alive, the client reading again. */
  private async check(): Promise<void> {
    const { sessions, hosts } = this.deps;
    const { id } = this.record;
    if (!(await sessions.exists(id))) {
      this.ws.close(4408, 'the session expired (idle)');
      return;
    }
    await sessions.holdSocket(id, 3 * WATCH_MS);
    if (this.behind && this.ws.bufferedAmount <= this.deps.maxBufferedBytes) {
      this.behind = false;
      await sessions.send(this.record.worker, { kind: 'keyframe', session: id });
    }
    if (await hosts.isAlive(this.record.worker)) return;
    await this.failover();
  }

  /** The worker died: the session moves to the least loaded live one, which resumes it. */
  private async failover(): Promise<void> {
    const { sessions, hosts } = this.deps;
    const dead = this.record.worker;
    const next = await hosts.pick(this.record.spec.model, dead);
    if (!next) {
      if (!this.noWorkerSaid) this.error('no_worker', `the session's worker stopped and no other serves model ${this.record.spec.model}; waiting for one`);
      this.noWorkerSaid = true;
      return;
    }
    this.noWorkerSaid = false;
    if (await sessions.reassign(this.record.id, dead, next)) {
      this.record = { ...this.record, worker: next };
      await sessions.send(next, { kind: 'open', session: this.record.id, resume: true });
    } else {
      const moved = await sessions.get(this.record.id);
      if (moved) this.record = moved;
    }
  }

  /** The socket closed: the session ends. */
  private async end(): Promise<void> {
    this.deps.metrics.open.dec();
    if (this.watch) clearInterval(this.watch);
    this.unsubscribe?.();
    const { sessions } = this.deps;
    await sessions.send(this.record.worker, { kind: 'close', session: this.record.id }).catch(() => undefined);
    await sessions.remove(this.record.id).catch(() => undefined);
  }
}
