/**
 * One BullMQ QueueEvents subscription per API process, fanned out to the clients following
 * individual jobs (SSE). Events arrive in the order Redis recorded them.
 */
import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobProgress } from '@farm/contracts';
import type { JobCancellation } from '@farm/platform';

export type HubEvent =
  | { kind: 'active' }
  | { kind: 'progress'; progress: JobProgress }
  | { kind: 'waiting' }
  | { kind: 'completed' }
  | { kind: 'failed'; reason: string }
  | { kind: 'canceled' };

type Listener = (event: HubEvent) => void;

export class JobEventHub {
  private readonly events: QueueEvents;
  private readonly connection: Redis;
  private readonly listeners = new Map<string, Set<Listener>>();
  private unsubscribeCancels: Promise<() => void>;

  constructor(queueName: string, prefix: string, connection: Redis, cancellation: JobCancellation) {
    // QueueEvents blocks on XREAD, so it needs a connection of its own.
    this.connection = connection.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true });
    this.connection.on('error', () => undefined);
    this.events = new QueueEvents(queueName, { connection: this.connection, prefix });
    this.events.on('error', () => undefined); // reconnects by itself; the API's redis handler reports outages
    this.events.on('active', ({ jobId }) => this.emit(jobId, { kind: 'active' }));
    this.events.on('progress', ({ jobId, data }) => {
      if (data && typeof data === 'object' && 'step' in data) this.emit(jobId, { kind: 'progress', progress: data as JobProgress });
    });
    this.events.on('waiting', ({ jobId }) => this.emit(jobId, { kind: 'waiting' }));
    this.events.on('delayed', ({ jobId }) => this.emit(jobId, { kind: 'waiting' }));
    this.events.on('completed', ({ jobId }) => this.emit(jobId, { kind: 'completed' }));
    this.events.on('failed', ({ jobId, failedReason }) => this.emit(jobId, { kind: 'failed', reason: failedReason }));
    // A queued job canceled (by any API replica) ends its streams at once.
    this.unsubscribeCancels = cancellation.subscribe((jobId) => this.emit(jobId, { kind: 'canceled' }));
  }

  /** Resolves once the subscription is live, so no event after this point is missed. */
  ready(): Promise<void> {
    return Promise.all([this.events.waitUntilReady(), this.unsubscribeCancels]).then(() => undefined);
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

  private emit(jobId: string, event: HubEvent): void {
    for (const listener of this.listeners.get(jobId) ?? []) listener(event);
  }

  async close(): Promise<void> {
    await this.events.close();
    this.connection.disconnect();
    (await this.unsubscribeCancels)();
  }
}
