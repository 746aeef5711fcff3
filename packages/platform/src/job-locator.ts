/**
 * Which model's queue holds a job: one small key per job (`<prefix>:job-model:<id>` → model),
 * written by admission in the same atomic step that accepts the job, so a lookup goes straight to
 * the right queue instead of asking every model's. Jobs without one (queued by another producer)
 * are looked for on the default model's queue. A job's model never changes, so each process
 * remembers the models it wrote or read (the most recent CACHED_LOCATORS): the reads of a job
 * submitted or looked up here before — its event stream, its GET, its final event — cost no
 * round trip. Only found models are remembered: a job not located yet is asked for again.
 */
import type { FarmRedis } from './redis-connection';

/** A job's locator outlives its retention by this much. */
export const LOCATOR_MARGIN_SECONDS = 24 * 3600;

/** How many jobs' models a process remembers. */
const CACHED_LOCATORS = 10_000;

export class JobLocator {
  private readonly known = new Map<string, string>();

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
    this.remember(jobId, model);
  }

  /** Remembers a job's model that was written to Redis some other way (admission's script). */
  remember(jobId: string, model: string): void {
    this.known.set(jobId, model);
    if (this.known.size > CACHED_LOCATORS) this.known.delete(this.known.keys().next().value!);
  }

  /** Forgets a job's model (its admission was withdrawn). */
  forget(jobId: string): void {
    this.known.delete(jobId);
  }

  /** The model the job was queued for, or null when admission did not record it. */
  async modelOf(jobId: string): Promise<string | null> {
    const known = this.known.get(jobId);
    if (known !== undefined) return known;
    const model = await this.redis.get(this.key(jobId));
    if (model !== null) this.remember(jobId, model);
    return model;
  }
}
