/**
 * Each tenant's jobs in submission order, for `GET /v1/jobs`: a sorted set per tenant (job id
 * scored by its submission time) under the farm's prefix, trimmed to the jobs' retention on every
 * write. Pages run newest first from a cursor — the (time, id) of the last job of the previous
 * page — so jobs submitted meanwhile neither repeat nor shift a page.
 */
import type { FarmRedis } from './redis-connection';

export interface IndexEntry {
  id: string;
  /** Submission time, ms since the epoch. */
  at: number;
}

export class TenantJobIndex {
  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
    /** How long jobs stay queryable (JOB_RETENTION_SECONDS): older entries are dropped. */
    private readonly retentionSeconds: number,
  ) {}

  key(tenant: string): string {
    return `${this.keyPrefix}:tenant:${tenant}:jobs`;
  }

  async add(tenant: string, id: string, at: number): Promise<void> {
    const key = this.key(tenant);
    await this.redis
      .multi()
      .zadd(key, at, id)
      .zremrangebyscore(key, '-inf', `(${at - this.retentionSeconds * 1000}`)
      .pexpire(key, this.retentionSeconds * 1000)
      .exec();
  }

  /** Forgets jobs that no longer exist. */
  async remove(tenant: string, ids: string[]): Promise<void> {
    if (ids.length > 0) await this.redis.zrem(this.key(tenant), ...ids);
  }

  /** Up to `count` entries older than `after` (newest first; from the newest without one). */
  async page(tenant: string, count: number, after?: IndexEntry): Promise<IndexEntry[]> {
    const entries: IndexEntry[] = [];
    const max = after ? String(after.at) : '+inf';
    let offset = 0;
    while (entries.length < count) {
      const batch = await this.redis.zrevrangebyscore(this.key(tenant), max, '-inf', 'WITHSCORES', 'LIMIT', offset, count);
      if (batch.length === 0) break;
      for (let i = 0; i < batch.length; i += 2) {
        const entry = { id: batch[i], at: Number(batch[i + 1]) };
        // Entries of the cursor's own time come in reverse id order: the ones after it have smaller ids.
        if (after && entry.at === after.at && entry.id >= after.id) continue;
        if (entries.length < count) entries.push(entry);
      }
      offset += batch.length / 2;
      if (batch.length / 2 < count) break;
    }
    return entries;
  }
}

/** A page cursor as clients carry it: opaque, URL-safe. */
export function encodeCursor(entry: IndexEntry): string {
  return Buffer.from(`${entry.at}:${entry.id}`).toString('base64url');
}

export function decodeCursor(cursor: string): IndexEntry | null {
  const match = /^(\d+):([\w-]{1,128})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return match ? { at: Number(match[1]), id: match[2] } : null;
}
