/**
 * `Idempotency-Key` on submit: the first request with a key claims it for its tenant (admission
 * does that, in the same atomic step that accepts the job); the same key with the same request
 * answers with the same job, with another request 409. "The same request" is judged on the
 * request as parsed — defaults applied, model resolved — in its RFC 8785 canonical JSON, so key
 * order and spelled-out defaults do not matter. A claim lasts a day, or the job's retention if
 * shorter: it never outlives its job.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { JobRequest } from '@farm/contracts';

const DAY_SECONDS = 24 * 3600;

export class IdempotencyKeys {
  readonly ttlSeconds: number;

  constructor(
    private readonly keyPrefix: string,
    jobRetentionSeconds: number,
  ) {
    this.ttlSeconds = Math.min(DAY_SECONDS, jobRetentionSeconds);
  }

  /** The claim's Redis key (the client's key is hashed: any visible ASCII, bounded length). */
  redisKey(tenant: string, key: string): string {
    return `${this.keyPrefix}:idempotency:${tenant}:${createHash('sha256').update(key).digest('hex')}`;
  }

  static fingerprint(request: JobRequest & { model: string }): string {
    return createHash('sha256').update(canonicalize(request)!).digest('hex');
  }
}
