/**
 * The events of the farm's queues (BullMQ QueueEvents, one per model queue), fanned out to the
 * clients following individual jobs (event streams, `Prefer: wait`). Events arrive in the order
 * Redis recorded them.
 *
 * The queues' event streams are read only while someone follows a job, and for IDLE_MS after the
 * last one leaves: submissions nobody follows cost the API no events to read (two per job).
 * Starting late misses nothing: a first subscription reads each stream's last event id on the
 * shared connection at once, so before anything its subscriber reads next (the job's state, on
 * that connection and node), and the reading starts after that id; the first follower's events
 * just come once the reader's connection is up (milliseconds). Should that read fail (Redis away),
 * reading starts from the streams' end when it comes back, as a running reader would.
 */
import { QueueEvents, QueueKeys } from 'bullmq';
import type { JobProgress } from '@farm/contracts';
import { type FarmRedis, type JobCancellation, blockingDuplicate } from '@farm/platform';

export type HubEvent =
  | { kind: 'active' }
  | { kind: 'progress'; progress: JobProgress }
  | { kind: 'waiting' }
  | { kind: 'completed' }
  | { kind: 'failed'; reason: string }
  | { kind: 'canceled' };

type Listener = (event: HubEvent) => void;

/** How long the streams are still read after the last subscriber leaves (a next one often follows). */
const IDLE_MS = 30000;

/** One queue's reader and its blocking connection. */
interface Reader {
  events: QueueEvents;
  connection: FarmRedis;
}

export class JobEventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly keys: QueueKeys;
  /** The readers while the streams are read; null while nobody follows. */
  private readers: Promise<Reader[]> | null = null;
  private idle: NodeJS.Timeout | undefined;
  private readonly unsubscribeCancels: Promise<() => void>;

  constructor(
    private readonly queueNames: readonly string[],
    private readonly prefix: string,
    private readonly connection: FarmRedis,
    cancellation: JobCancellation,
    private readonly idleMs = IDLE_MS,
  ) {
    this.keys = new QueueKeys(prefix);
    // A queued job canceled (by any API replica) ends its streams at once.
    this.unsubscribeCancels = cancellation.subscribe((jobId) => this.emit(jobId, { kind: 'canceled' }));
  }

  subscribe(jobId: string, listener: Listener): () => void {
    const set = this.listeners.get(jobId) ?? new Set();
    set.add(listener);
    this.listeners.set(jobId, set);
    clearTimeout(this.idle);
    this.readers ??= Promise.all(this.queueNames.map((name) => this.read(name)));
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
      if (this.listeners.size === 0) this.idle = setTimeout(() => void this.stopReading(), this.idleMs).unref();
    };
  }

  /** Whether the queues' event streams are being read now. */
  get reading(): boolean {
    return this.readers !== null;
  }

  /** Reads a queue's events from its stream's last id as of now (the read is sent before this returns). */
  private async read(name: string): Promise<Reader> {
    const last = await this.connection.xrevrange(this.keys.toKey(name, 'events'), '+', '-', 'COUNT', 1).catch(() => null);
    // QueueEvents blocks on XREAD, so each needs a connection of its own.
    const connection = blockingDuplicate(this.connection);
    connection.on('error', () => undefined);
    const events = new QueueEvents(name, { connection, prefix: this.prefix, lastEventId: last === null ? '$' : (last[0]?.[0] ?? '0-0') });
    events.on('error', () => undefined); // reconnects by itself; the API's redis handler reports outages
    events.on('active', ({ jobId }) => this.emit(jobId, { kind: 'active' }));
    events.on('progress', ({ jobId, data }) => {
      if (data && typeof data === 'object' && 'step' in data) this.emit(jobId, { kind: 'progress', progress: data as JobProgress });
    });
    events.on('waiting', ({ jobId }) => this.emit(jobId, { kind: 'waiting' }));
    events.on('delayed', ({ jobId }) => this.emit(jobId, { kind: 'waiting' }));
    events.on('completed', ({ jobId }) => this.emit(jobId, { kind: 'completed' }));
    events.on('failed', ({ jobId, failedReason }) => this.emit(jobId, { kind: 'failed', reason: failedReason }));
    return { events, connection };
  }

  private async stopReading(): Promise<void> {
    const readers = this.readers;
    this.readers = null;
    for (const { events, connection } of (await readers?.catch((): Reader[] => [])) ?? []) {
      await events.close().catch(() => undefined);
      connection.disconnect();
    }
  }

  /** Subscriptions held now (one per open event stream). */
  get subscriptions(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /**
   * Resolves at the job's next completed, failed or canceled event, or after `timeoutMs` (or
   * when `signal` aborts), whichever comes first. Listening starts at the call.
   */
  settles(jobId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const unsubscribe = this.subscribe(jobId, (event) => {
        if (event.kind === 'completed' || event.kind === 'failed' || event.kind === 'canceled') done();
      });
      signal?.addEventListener('abort', done);
    });
  }

  private emit(jobId: string, event: HubEvent): void {
    for (const listener of this.listeners.get(jobId) ?? []) listener(event);
  }

  async close(): Promise<void> {
    clearTimeout(this.idle);
    await this.stopReading();
    (await this.unsubscribeCancels)();
  }
}
