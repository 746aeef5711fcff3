/**
 * Each tenant's unfinished jobs: one sorted set per tenant, each job scored by its priority band
 * and submission time (priority × BAND + Redis time in ms), so the jobs of the same or a higher
 * priority are one range. The API's admission counts them for quotas and places each new job
 * after the tenant's earlier jobs of the same or a higher priority, in one atomic script; workers
 * remove a job when it reaches its final state.
 */
import type { FarmRedis } from './redis-connection';

/** Job priorities: 1 (first) … 10 (last); 5 unless a request says otherwise. */
export const PRIORITY_LEVELS = 10;

export class TenantJobs {
  /** Width of a priority's band of scores: larger than any time in ms, exact in a double up to 10 bands. */
  static readonly BAND = 1e13;

  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
  ) {}

  key(tenant: string): string {
    return `${this.keyPrefix}:tenant:${tenant}:unfinished`;
  }

  async finished(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(tenant), jobId);
  }
}
