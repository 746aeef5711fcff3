/**
 * Which model's queue holds a job: one small key per job (`<prefix>:job-model:<id>` → model),
 * written by admission in the same atomic step that accepts the job, so a lookup goes straight to
 * the right queue instead of asking every model's. Jobs without one (queued by another producer)
 * are looked for on the default model's queue.
 */
import type { FarmRedis } from './redis-connection';

/** A job's locator outlives its retention by this much. */
export const LOCATOR_MARGIN_SECONDS = 24 * 3600;

export class JobLocator {
  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
  ) {}

  key(jobId: string): string {
    return `${this.keyPrefix}:job-model:${jobId}`;
  }

  /** Records the model of a job queued outside admission (a session's commit), for `ttlSeconds`. */
  async record(jobId: string, model: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.key(jobId), model, 'EX', ttlSeconds);
  }

  /** The model the job was queued for, or null when admission did not record it. */
  modelOf(jobId: string): Promise<string | null> {
    return this.redis.get(this.key(jobId));
  }
}
