/**
 * Each tenant's unfinished jobs (a sorted set per tenant, scored by submission time): the API
 * counts them for quotas and for fair ordering, workers remove a job when it reaches its final
 * state. Entries older than a day are dropped, so a lost job cannot hold a quota forever.
 */
import type { Redis } from 'ioredis';

const MAX_AGE_MS = 24 * 3600 * 1000;

export class TenantJobs {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  private key(tenant: string): string {
    return `${this.keyPrefix}:tenant:${tenant}:unfinished`;
  }

  async count(tenant: string, now = Date.now()): Promise<number> {
    const key = this.key(tenant);
    const [, count] = (await this.redis.multi().zremrangebyscore(key, '-inf', now - MAX_AGE_MS).zcard(key).exec())!;
    return Number(count[1]);
  }

  async add(tenant: string, jobId: string, now = Date.now()): Promise<void> {
    await this.redis.zadd(this.key(tenant), now, jobId);
  }

  async finished(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(tenant), jobId);
  }
}
