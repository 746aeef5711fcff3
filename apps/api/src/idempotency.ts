/**
 * `Idempotency-Key` on submit: the first request with a key claims it (per tenant, for a day);
 * the same key with the same body answers with the same job; with another body, 409.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export type Claim = { kind: 'new' } | { kind: 'replay'; jobId: string } | { kind: 'conflict' };

export class IdempotencyKeys {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly ttlSeconds = 24 * 3600,
  ) {}

  static fingerprint(body: unknown): string {
    return createHash('sha256').update(JSON.stringify(body)).digest('hex');
  }

  /** Claims `key` for `jobId` unless it was claimed before. */
  async claim(tenant: string, key: string, fingerprint: string, jobId: string): Promise<Claim> {
    const redisKey = `${this.keyPrefix}:idempotency:${tenant}:${createHash('sha256').update(key).digest('hex')}`;
    const set = await this.redis.set(redisKey, JSON.stringify({ fingerprint, jobId }), 'EX', this.ttlSeconds, 'NX');
    if (set === 'OK') return { kind: 'new' };
    const raw = await this.redis.get(redisKey);
    if (!raw) return this.claim(tenant, key, fingerprint, jobId); // expired in between
    const earlier = JSON.parse(raw) as { fingerprint: string; jobId: string };
    return earlier.fingerprint === fingerprint ? { kind: 'replay', jobId: earlier.jobId } : { kind: 'conflict' };
  }
}
