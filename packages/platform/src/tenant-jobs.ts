/**
 * Each tenant's unfinished jobs, one sorted set per tenant and priority level (scored by
 * submission time): the API counts them for quotas and for fair ordering, workers remove a job
 * when it reaches its final state. Entries older than a day are dropped, so a lost job cannot
 * hold a quota forever.
 */
import type { Redis } from 'ioredis';

const MAX_AGE_MS = 24 * 3600 * 1000;

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

  /** Unfinished jobs of the tenant per priority level (index 0 = priority 1). */
  async counts(tenant: string, now = Date.now()): Promise<number[]> {
    const multi = this.redis.multi();
    for (let p = 1; p <= PRIORITY_LEVELS; p++) {
      multi.zremrangebyscore(this.key(tenant, p), '-inf', now - MAX_AGE_MS).zcard(this.key(tenant, p));
    }
    const replies = (await multi.exec())!;
    return Array.from({ length: PRIORITY_LEVELS }, (_, i) => Number(replies[2 * i + 1][1]));
  }

  async add(tenant: string, priority: number, jobId: string, now = Date.now()): Promise<void> {
    await this.redis.zadd(this.key(tenant, priority), now, jobId);
  }

  async finished(tenant: string, priority: number, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(tenant, priority), jobId);
  }
}
