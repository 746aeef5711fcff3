/**
 * Each tenant's unfinished jobs, one sorted set per tenant and priority level (scored by the
 * submission time in Redis microseconds): the API counts them for quotas and places each new job
 * after the tenant's earlier jobs of the same or a higher priority (atomically, so a burst of
 * concurrent submissions still gets distinct places); workers remove a job when it reaches its
 * final state. Entries older than a day are dropped, so a lost job cannot hold a quota forever.
 */
import type { Redis } from 'ioredis';

const MAX_AGE_US = 24 * 3600 * 1e6;

/** Adds the job at Redis' time; returns how many of the tenant's jobs are ahead of it. */
const ENQUEUE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local level = tonumber(ARGV[2])
redis.call('ZADD', KEYS[level], now, ARGV[1])
local ahead = redis.call('ZRANK', KEYS[level], ARGV[1])
for i = 1, level - 1 do ahead = ahead + redis.call('ZCARD', KEYS[i]) end
return ahead`;

/** Job priorities: 1 (first) … 10 (last); 5 unless a request says otherwise. */
export const PRIORITY_LEVELS = 10;

export class TenantJobs {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  private key(tenant: string, priority: number): string {
    return `${this.keyPrefix}:tenant:${tenant}:unfinished:${priority}`;
  }

  private keys(tenant: string): string[] {
    return Array.from({ length: PRIORITY_LEVELS }, (_, i) => this.key(tenant, i + 1));
  }

  /** Unfinished jobs of the tenant (old entries pruned). */
  async count(tenant: string, now = Date.now()): Promise<number> {
    const multi = this.redis.multi();
    for (const key of this.keys(tenant)) multi.zremrangebyscore(key, '-inf', now * 1000 - MAX_AGE_US).zcard(key);
    const replies = (await multi.exec())!;
    return replies.filter((_, i) => i % 2 === 1).reduce((sum, [, n]) => sum + Number(n), 0);
  }

  /** Records a new job; returns the number of the tenant's unfinished jobs that go before it. */
  async enqueue(tenant: string, priority: number, jobId: string): Promise<number> {
    return Number(await this.redis.eval(ENQUEUE, PRIORITY_LEVELS, ...this.keys(tenant), jobId, priority));
  }

  async finished(tenant: string, priority: number, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(tenant, priority), jobId);
  }
}
