/**
 * One BullMQ QueueEvents subscription per API process, fanned out to the clients following
 * individual jobs (SSE). Events arrive in the order Redis recorded them.
 */
import { QueueEvents } from 'bullmq';
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

export class JobEventHub {
  private readonly events: QueueEvents[];
  private readonly connections: FarmRedis[] = [];
  private readonly listeners = new Map<string, Set<Listener>>();
  private unsubscribeCancels: Promise<() => void>;

  constructor(queueNames: readonly string[], prefix: string, connection: FarmRedis, cancellation: JobCancellation) {
    this.events = queueNames.map((name) => {
      // QueueEvents blocks on XREAD, so each needs a connection of its own.
      const own = blockingDuplicate(connection);
      own.on('error', () => undefined);
      this.connections.push(own);
      const events = new QueueEvents(name, { connection: own, prefix });
      events.on('error', () => undefined); // reconnects by itself; the API's redis handler reports outages
      events.on('active', ({ jobId }) => this.emit(jobId, { kind: 'active' }));
      events.on('progress', ({ jobId, data }) => {
        if (data && typeof data === 'object' && 'step' in data) this.emit(jobId, { kind: 'progress', progress: data as JobProgress });
      });
      events.on('waiting', ({ jobId }) => this.emit(jobId, { kind: 'waiting' }));
      events.on('delayed', ({ jobId }) => this.emit(jobId, { kind: 'waiting' }));
      events.on('completed', ({ jobId }) => this.emit(jobId, { kind: 'completed' }));
      events.on('failed', ({ jobId, failedReason }) => this.emit(jobId, { kind: 'failed', reason: failedReason }));
      return events;
    });
    // A queued job canceled (by any API replica) ends its streams at once.
    this.unsubscribeCancels = cancellation.subscribe((jobId) => this.emit(jobId, { kind: 'canceled' }));
  }

  /** Resolves once the subscription is live, so no event after this point is missed. */
  ready(): Promise<void> {
    return Promise.all([...this.events.map((e) => e.waitUntilReady()), this.unsubscribeCancels]).then(() => undefined);
  }

  subscribe(jobId: string, listener: Listener): () => void {
    const set = this.listeners.get(jobId) ?? new Set();
    set.add(listener);
    this.listeners.set(jobId, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
    };
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
    await Promise.all(this.events.map((e) => e.close()));
    for (const c of this.connections) c.disconnect();
    (await this.unsubscribeCancels)();
  }
}
