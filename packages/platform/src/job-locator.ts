/**
 * Which model's queue holds a job: one small key per job (`<prefix>:job-model:<id>` → model),
 * written by admission in the same atomic step that accepts the job, so a lookup goes straight to
 * the right queue instead of asking every model's. Jobs without one (queued by another producer)
 * are looked for on the default model's queue.
 */
import type { Redis } from 'ioredis';

export class JobLocator {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  key(jobId: string): string {
    return `${this.keyPrefix}:job-model:${jobId}`;
  }

  /** The model the job was queued for, or null when admission did not record it. */
  modelOf(jobId: string): Promise<string | null> {
    return this.redis.get(this.key(jobId));
  }
}
