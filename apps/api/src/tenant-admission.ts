/**
 * Admission of a submission, in one atomic step in Redis (one Lua script): the Idempotency-Key
 * claim, the tenant's rate limit (a token bucket) and quota (unfinished jobs), the job's place in
 * its tenant's line, the job's locator and its entry in the tenant's job index (GET /v1/jobs,
 * written here so that a submission costs two round trips: this and the job's add). Either all of it happens or — when the request is
 * refused — none of it, so concurrent submissions cannot overshoot a quota and a refused request
 * leaves no trace (no claim, no token spent). Time is Redis' own, the same for every API replica.
 *
 * Jobs are ordered round-robin across tenants, by priority within a tenant: a job's BullMQ priority
 * is (the tenant's unfinished jobs of the same or a higher priority) × 10 + its own priority, so
 * one tenant's burst of 1,000 queues behind another tenant's single job, and a tenant's urgent job
 * overtakes its own backlog of ordinary ones.
 */
import type { Result } from 'ioredis';
import type { FarmRedis } from '@farm/platform';
import { INDEX_TRIM_EVERY_MS, JobLocator, PRIORITY_LEVELS, TenantJobIndex, TenantJobs, indexInsertLua, indexTrimLua } from '@farm/platform';
import type { BucketPolicy } from './rate-limit-headers';

export interface AdmissionOptions {
  /** Sustained submissions per second per tenant. */
  ratePerSecond: number;
  /** Submissions a tenant may make at once. */
  burst: number;
  /** Unfinished jobs a tenant may have. */
  maxQueued: number;
}

export interface Submission {
  tenant: string;
  jobId: string;
  model: string;
  /** The request's priority, 1 (first) … 10 (last). */
  priority: number;
  /** How long the job's locator is kept (the job's retention and a margin). */
  locatorTtlSeconds: number;
  /** The Idempotency-Key's Redis key, the request's fingerprint and how long the claim holds. */
  idempotency?: { key: string; fingerprint: string; ttlSeconds: number };
}

/** An earlier submission with the same Idempotency-Key and fingerprint: its job, model and queue priority. */
export interface EarlierSubmission {
  jobId: string;
  model: string;
  queuePriority: number;
}

/** The tenant's token bucket after the decision (RateLimit-* headers). */
export interface RateLimitState {
  /** Tokens left (submissions possible at once now), fractional. */
  tokens: number;
}

export type Admission =
  | ({ kind: 'admitted'; queuePriority: number } & RateLimitState)
  | ({ kind: 'refused'; reason: 'rate_limited' | 'quota_exceeded'; retryAfterSeconds: number; message: string } & RateLimitState)
  | { kind: 'replay'; earlier: EarlierSubmission }
  | { kind: 'conflict' };

/** BullMQ's largest priority. */
const MAX_PRIORITY = 2 ** 21;

/** A line's entries older than this are dropped, so a lost job cannot hold a quota forever… */
const MAX_AGE_MS = 24 * 3600 * 1000;
/** …checked at most this often per tenant, when the tenant's job index is trimmed too. */
const PRUNE_EVERY_MS = INDEX_TRIM_EVERY_MS;

/**
 * KEYS: token bucket, the tenant's line, job locator, the tenant's job index[, idempotency claim].
 * ARGV: rate/s, burst, max unfinished, job id, priority, model, locator ttl s, index retention ms[, fingerprint, claim ttl s].
 * The line's scores are priority × BAND + submission time (ms), so one ZCOUNT counts the jobs of
 * the same or a higher priority; entries older than a day (lost jobs) are pruned once a minute,
 * and so are the job index's entries past their retention (after the add, so the key exists).
 */
const ADMIT = `
local claimKey = KEYS[5]
if claimKey then
  local earlier = redis.call('HMGET', claimKey, 'fingerprint', 'jobId', 'model', 'priority')
  if earlier[1] then
    if earlier[1] ~= ARGV[9] then return {'conflict'} end
    return {'replay', earlier[2], earlier[3], tonumber(earlier[4])}
  end
end
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, maxQueued = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'pruned')
local tokens = math.min(burst, (tonumber(bucket[1]) or burst) + math.max(0, nowMs - (tonumber(bucket[2]) or nowMs)) / 1000 * rate)
local milliTokens = math.floor(tokens * 1000)
if tokens < 1 then return {'rate_limited', math.ceil((1 - tokens) / rate * 1000), milliTokens} end
local band = ${TenantJobs.BAND}
local pruned = tonumber(bucket[3]) or 0
local prune = nowMs - pruned > ${PRUNE_EVERY_MS}
if prune then
  for level = 1, ${PRIORITY_LEVELS} do redis.call('ZREMRANGEBYSCORE', KEYS[2], level * band, level * band + nowMs - ${MAX_AGE_MS}) end
  pruned = nowMs
end
local unfinished = redis.call('ZCARD', KEYS[2])
if unfinished >= maxQueued then return {'quota_exceeded', unfinished, milliTokens} end
local priority = tonumber(ARGV[5])
local ahead = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ((priority + 1) * band))
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', nowMs, 'pruned', pruned)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
redis.call('ZADD', KEYS[2], priority * band + nowMs, ARGV[4])
redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[7])
${indexInsertLua('KEYS[4]', 'nowMs', 'ARGV[4]')}
if prune then
${indexTrimLua('KEYS[4]', 'nowMs', 'tonumber(ARGV[8])')}
end
local queuePriority = math.min(${MAX_PRIORITY}, ahead * ${PRIORITY_LEVELS} + priority)
if claimKey then
  redis.call('HSET', claimKey, 'fingerprint', ARGV[9], 'jobId', ARGV[4], 'model', ARGV[6], 'priority', queuePriority)
  redis.call('EXPIRE', claimKey, ARGV[10])
end
return {'admitted', queuePriority, milliTokens - 1000}`;

/**
 * Undoes an admission whose job never reached its queue (the add failed): its place in line, its
 * locator, its index entry and its claim — unless the job is there after all (the add succeeded,
 * its answer lost). KEYS: the job's hash, its line, its locator, its tenant's index[, its claim].
 * ARGV: job id.
 */
const WITHDRAW = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[5] and redis.call('HGET', KEYS[5], 'jobId') == ARGV[1] then redis.call('DEL', KEYS[5]) end
return 1`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    farmAdmit(numKeys: number, ...keysAndArgs: Array<string | number>): Result<Array<string | number>, Context>;
    farmWithdraw(numKeys: number, ...keysAndArgs: string[]): Result<number, Context>;
  }
}

export class TenantAdmission {
  private readonly jobs: TenantJobs;

  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
    private readonly locator: JobLocator,
    private readonly index: TenantJobIndex,
    private readonly options: AdmissionOptions,
  ) {
    this.jobs = new TenantJobs(redis, keyPrefix);
    // Sent by hash (EVALSHA), loaded on first use.
    redis.defineCommand('farmAdmit', { lua: ADMIT });
    redis.defineCommand('farmWithdraw', { lua: WITHDRAW });
  }

  /** The token bucket's shape, for the RateLimit-* headers. */
  get policy(): BucketPolicy {
    return { ratePerSecond: this.options.ratePerSecond, burst: this.options.burst };
  }

  /** The keys a submission's admission and withdrawal both touch: bucket, line, locator, index. */
  private keys(s: Submission): [string, string, string, string] {
    return [`${this.keyPrefix}:tenant:${s.tenant}:bucket`, this.jobs.key(s.tenant), this.locator.key(s.jobId), this.index.key(s.tenant)];
  }

  async admit(s: Submission): Promise<Admission> {
    const { ratePerSecond, burst, maxQueued } = this.options;
    const [kind, ...rest] = await (s.idempotency
      ? this.redis.farmAdmit(5, ...this.keys(s), s.idempotency.key, ratePerSecond, burst, maxQueued, s.jobId, s.priority, s.model, s.locatorTtlSeconds, this.index.retentionMs, s.idempotency.fingerprint, s.idempotency.ttlSeconds)
      : this.redis.farmAdmit(4, ...this.keys(s), ratePerSecond, burst, maxQueued, s.jobId, s.priority, s.model, s.locatorTtlSeconds, this.index.retentionMs));
    switch (kind) {
      case 'admitted':
        this.locator.remember(s.jobId, s.model);
        return { kind, queuePriority: Number(rest[0]), tokens: Number(rest[1]) / 1000 };
      case 'rate_limited':
        return { kind: 'refused', reason: kind, retryAfterSeconds: Math.ceil(Number(rest[0]) / 1000), message: `over ${ratePerSecond} submissions per second`, tokens: Number(rest[1]) / 1000 };
      case 'quota_exceeded':
        return { kind: 'refused', reason: kind, retryAfterSeconds: 5, message: `${rest[0]} jobs unfinished; the quota is ${maxQueued}`, tokens: Number(rest[1]) / 1000 };
      case 'replay':
        return { kind, earlier: { jobId: String(rest[0]), model: String(rest[1]), queuePriority: Number(rest[2]) } };
      case 'conflict':
        return { kind };
      default:
        throw new Error(`admission script answered ${kind}`);
    }
  }

  /** Undoes `admit` for a job that did not reach its queue (`jobKey`: its BullMQ hash). Best effort. */
  async withdraw(s: Submission, jobKey: string): Promise<void> {
    const [, line, locator, index] = this.keys(s);
    const keys = [jobKey, line, locator, index, ...(s.idempotency ? [s.idempotency.key] : [])];
    this.locator.forget(s.jobId);
    await this.redis.farmWithdraw(keys.length, ...keys, s.jobId).catch(() => undefined);
  }
}
