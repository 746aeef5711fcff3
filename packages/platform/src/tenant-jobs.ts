/**
 * Each tenant's unfinished jobs, one sorted set per tenant and priority level (scored by the
 * submission time in Redis microseconds). The API's admission counts them for quotas and places
 * each new job after the tenant's earlier jobs of the same or a higher priority, in one atomic
 * script; workers remove a job when it reaches its final state.
 */
import type { Redis } from 'ioredis';

/** Job priorities: 1 (first) … 10 (last); 5 unless a request says otherwise. */
export const PRIORITY_LEVELS = 10;

export class TenantJobs {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  key(tenant: string, priority: number): string {
    return `${this.keyPrefix}:tenant:${tenant}:unfinished:${priority}`;
  }

  /** The tenant's lines, priority 1 first. */
  keys(tenant: string): string[] {
    return Array.from({ length: PRIORITY_LEVELS }, (_, i) => this.key(tenant, i + 1));
  }

  async finished(tenant: string, priority: number, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(tenant, priority), jobId);
  }
}
