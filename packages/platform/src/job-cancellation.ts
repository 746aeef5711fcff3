/**
 * Cancelling jobs across processes: a marker key per canceled job (so any API replica reports
 * it and any worker skips it when fetched) and a pub/sub message (so the worker holding a
 * running job drops its lanes at the next step). Keys and channel carry the queue's hash tag.
 */
import type { Redis } from 'ioredis';

export class JobCancellation {
  private readonly channel: string;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    /** How long the marker outlives the request (default: a week, the job retention). */
    private readonly ttlSeconds = 7 * 24 * 3600,
  ) {
    this.channel = `${keyPrefix}:cancel`;
  }

  private key(id: string): string {
    return `${this.keyPrefix}:canceled:${id}`;
  }

  async cancel(id: string): Promise<void> {
    await this.redis.set(this.key(id), '1', 'EX', this.ttlSeconds);
    await this.redis.publish(this.channel, id);
  }

  async isCanceled(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key(id))) === 1;
  }

  /** Calls `onCancel(id)` for every cancellation from now on; resolves to an unsubscribe. */
  async subscribe(onCancel: (id: string) => void): Promise<() => void> {
    const subscriber = this.redis.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true });
    subscriber.on('error', () => undefined); // reconnects by itself
    subscriber.on('message', (channel: string, id: string) => channel === this.channel && onCancel(id));
    await subscriber.subscribe(this.channel);
    return () => subscriber.disconnect();
  }
}
