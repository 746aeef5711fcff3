/**
 * Whether a tenant may submit now, and where its job goes in line. Requests per second are a
 * token bucket per tenant in Redis (atomic Lua); queued jobs are capped per tenant. Jobs are
 * ordered round-robin across tenants, by priority within a tenant: a job's BullMQ priority is
 * (the tenant's unfinished jobs of the same or a higher priority) × 10 + its own priority, so
 * one tenant's burst of 1,000 queues behind another tenant's single job, and a tenant's urgent
 * job overtakes its own backlog of ordinary ones.
 */
import type { Redis } from 'ioredis';
import { PRIORITY_LEVELS, TenantJobs } from '@farm/platform';

export interface AdmissionOptions {
  /** Sustained submissions per second per tenant. */
  ratePerSecond: number;
  /** Submissions a tenant may make at once. */
  burst: number;
  /** Unfinished jobs a tenant may have. */
  maxQueued: number;
}

export type Admission =
  | { ok: true }
  | { ok: false; reason: 'rate_limited' | 'quota_exceeded'; retryAfterSeconds: number; message: string };

/** BullMQ's largest priority. */
const MAX_PRIORITY = 2 ** 21;

const TOKEN_BUCKET = `
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) / 1000 * rate)
if tokens < 1 then return math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return 0`;

export class TenantAdmission {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly jobs: TenantJobs,
    private readonly options: AdmissionOptions,
  ) {}

  async admit(tenant: string, now = Date.now()): Promise<Admission> {
    const { ratePerSecond, burst, maxQueued } = this.options;
    const waitMs = Number(await this.redis.eval(TOKEN_BUCKET, 1, `${this.keyPrefix}:tenant:${tenant}:bucket`, ratePerSecond, burst, now));
    if (waitMs > 0) {
      return { ok: false, reason: 'rate_limited', retryAfterSeconds: Math.ceil(waitMs / 1000), message: `over ${ratePerSecond} submissions per second` };
    }
    const unfinished = await this.jobs.count(tenant, now);
    if (unfinished >= maxQueued) {
      return { ok: false, reason: 'quota_exceeded', retryAfterSeconds: 5, message: `${unfinished} jobs unfinished; the quota is ${maxQueued}` };
    }
    return { ok: true };
  }

  /**
   * Records an admitted job and returns its BullMQ priority: (the tenant's unfinished jobs of the
   * same or a higher priority, submitted before it) × 10 + its own priority (1 … 10).
   */
  async place(tenant: string, priority: number, jobId: string): Promise<number> {
    const ahead = await this.jobs.enqueue(tenant, priority, jobId);
    return Math.min(MAX_PRIORITY, ahead * PRIORITY_LEVELS + priority);
  }
}
