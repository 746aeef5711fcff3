/**
 * Reads the outboxes of every session whose socket this API replica holds, with one blocking
 * XREAD over all of them on a connection of its own; a wake stream of the replica's interrupts
 * the read when a session joins, so its first frame does not wait for the read's timeout.
 */
import { randomUUID } from 'node:crypto';
import { FarmRedis, OutboxEntry, SessionStore, blockingDuplicate, outboxEntry } from '@farm/platform';

type Deliver = (entry: OutboxEntry) => void;

export class OutboxReader {
  private readonly subscribers = new Map<string, { last: string; deliver: Deliver }>();
  private readonly wakeKey: string;
  private reader: FarmRedis | null = null;
  private loop: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly redis: FarmRedis,
    private readonly sessions: SessionStore,
    keyPrefix: string,
  ) {
    this.wakeKey = `${keyPrefix}:session-wake:${randomUUID()}`;
  }

  /** Delivers the session's outbox entries after `from`, in order, until unsubscribed. */
  subscribe(session: string, from: string, deliver: Deliver): () => void {
    const key = this.sessions.outboxKey(session);
    this.subscribers.set(key, { last: from, deliver });
    this.loop ??= this.run();
    void this.wake();
    return () => {
      this.subscribers.delete(key);
    };
  }

  private wake(): Promise<unknown> {
    return this.redis.xadd(this.wakeKey, 'MAXLEN', 1, '*', 'w', '1').catch(() => undefined);
  }

  private async run(): Promise<void> {
    this.reader = blockingDuplicate(this.redis);
    this.reader.on('error', () => undefined); // the API's own connection reports outages
    let woken = '0-0';
    while (!this.closed) {
      const keys = [...this.subscribers.keys()];
      const ids = keys.map((key) => this.subscribers.get(key)!.last);
      let reply: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
      try {
        reply = (await this.reader.xreadBuffer('BLOCK', 5000, 'STREAMS', this.wakeKey, ...keys, woken, ...ids)) as typeof reply;
      } catch (err) {
        if (this.closed) return;
        console.error(`api: reading session outboxes failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [rawKey, entries] of reply ?? []) {
        const key = rawKey.toString();
        if (key === this.wakeKey) {
          woken = entries[entries.length - 1][0].toString();
          continue;
        }
        for (const [rawId, fields] of entries) {
          const subscriber = this.subscribers.get(key);
          if (!subscriber) break;
          subscriber.last = rawId.toString();
          subscriber.deliver(outboxEntry(subscriber.last, fields));
        }
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reader?.disconnect();
    await this.loop;
    await this.redis.del(this.wakeKey).catch(() => undefined);
  }
}
