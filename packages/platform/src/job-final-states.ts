/**
 * Each job's final state, decided once: whichever of its completion, its final failure and its
 * cancellation claims it first wins (one `SET NX`), and it never changes afterwards. Everything
 * that reports a job — GET, the event stream, webhooks, the dead-letter list — reads how it ended
 * from here, failure codes included. Keys carry the queue's hash tag.
 */
import type { FarmRedis } from './redis-connection';
import { FinalState, finalStateSchema } from '@farm/contracts';

export class JobFinalStates {
  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
    /** How long a decision is kept: at least as long as finished jobs are (JOB_RETENTION_SECONDS). */
    private readonly ttlSeconds: number,
  ) {}

  key(id: string): string {
    return `${this.keyPrefix}:final:${id}`;
  }

  /** Claims `state` as the job's final state; resolves to whether it won and to the state that holds. */
  async claim(id: string, state: FinalState): Promise<{ won: boolean; state: FinalState }> {
    const earlier = (await this.redis.call('SET', this.key(id), JSON.stringify(state), 'NX', 'GET', 'EX', this.ttlSeconds)) as string | null;
    return earlier === null ? { won: true, state } : { won: false, state: parse(earlier) };
  }

  /** An operator retries a failed job: its decision is taken back, so the new attempt can end it again. */
  async reopen(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }

  /** The job's final state, or null while it has none. */
  async get(id: string): Promise<FinalState | null> {
    const raw = await this.redis.get(this.key(id));
    return raw === null ? null : parse(raw);
  }
}

function parse(raw: string): FinalState {
  return finalStateSchema.parse(JSON.parse(raw));
}
