/**
 * Each tenant's jobs in submission order, for `GET /v1/jobs`: a sorted set per tenant (job id
 * scored by its submission time) under the farm's prefix, trimmed to the jobs' retention by
 * admission once a minute (and by every add outside admission). Pages run newest first from a
 * cursor — the (time, id) of the last job of the previous page — so jobs submitted meanwhile
 * neither repeat nor shift a page.
 *
 * A submission's entry is written by admission, in the script that accepts the job and before
 * the job is in its queue (no round trip of its own); so an entry may name a job that is not
 * there yet, or never will be (its add failed and its API died before withdrawing it). Readers
 * skip such entries, and drop them once they are older than MISSING_JOB_GRACE_MS.
 */
import type { Result } from 'ioredis';
import type { FarmRedis } from './redis-connection';

/** An entry whose job is not in its queue this long after it was written is dropped: the add is not under way. */
export const MISSING_JOB_GRACE_MS = 5 * 60 * 1000;

/**
 * Admission trims a tenant's index at most this often (with the tenant's line), and the index's
 * key lives this much past the retention, so that it outlives every entry added between trims.
 */
export const INDEX_TRIM_EVERY_MS = 60 * 1000;

/**
 * Lua that drops the index's entries older than the retention and keeps its key for the
 * retention and INDEX_TRIM_EVERY_MS; each argument is a Lua expression (the index's key, the time
 * in ms, the retention in ms). Run it after an add, so that the key it sets a TTL on exists.
 */
export function indexTrimLua(key: string, at: string, retentionMs: string): string {
  return `redis.call('ZREMRANGEBYSCORE', ${key}, '-inf', '(' .. (${at} - ${retentionMs}))
redis.call('PEXPIRE', ${key}, ${retentionMs} + ${INDEX_TRIM_EVERY_MS})`;
}

/** Lua that adds an entry (the index's key, the time in ms and the job's id, as Lua expressions). */
export function indexInsertLua(key: string, at: string, id: string): string {
  return `redis.call('ZADD', ${key}, ${at}, ${id})`;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    farmIndexAdd(key: string, at: number, id: string, retentionMs: number): Result<null, Context>;
  }
}

export interface IndexEntry {
  id: string;
  /** Submission time, ms since the epoch. */
  at: number;
}

export class TenantJobIndex {
  /** How long jobs stay queryable (JOB_RETENTION_SECONDS): older entries are dropped. */
  readonly retentionMs: number;

  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
    retentionSeconds: number,
  ) {
    this.retentionMs = retentionSeconds * 1000;
    redis.defineCommand('farmIndexAdd', { numberOfKeys: 1, lua: `${indexInsertLua('KEYS[1]', 'tonumber(ARGV[1])', 'ARGV[2]')}\n${indexTrimLua('KEYS[1]', 'tonumber(ARGV[1])', 'tonumber(ARGV[3])')}` });
  }

  key(tenant: string): string {
    return `${this.keyPrefix}:tenant:${tenant}:jobs`;
  }

  /** Adds a job queued outside admission (a session's commit, a replayed submission). */
  async add(tenant: string, id: string, at: number): Promise<void> {
    await this.redis.farmIndexAdd(this.key(tenant), at, id, this.retentionMs);
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
