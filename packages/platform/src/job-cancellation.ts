/**
 * Cancelling jobs across processes: a cancel claims the job's final state (so it wins only if the
 * job has not ended, and the job then ends canceled everywhere) and, when it won, a pub/sub message
 * tells the worker holding a running job to drop its lanes at the next step and tells every API
 * replica to end the job's event streams. The channel carries the queue's hash tag.
 */
import { FarmRedis, blockingDuplicate } from './redis-connection';
import type { FinalState } from '@farm/contracts';
import type { JobFinalStates } from './job-final-states';

export class JobCancellation {
  private readonly channel: string;

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    private readonly finalStates: JobFinalStates,
  ) {
    this.channel = `${keyPrefix}:cancel`;
  }

  /** Cancels the job unless it already ended; resolves to its final state (`canceled` when the cancel won). */
  async cancel(id: string): Promise<{ won: boolean; state: FinalState }> {
    const claim = await this.finalStates.claim(id, { status: 'canceled', at: Date.now() });
    if (claim.won) await this.redis.publish(this.channel, id);
    return claim;
  }

  /** Calls `onCancel(id)` for every cancellation from now on; resolves to an unsubscribe. */
  async subscribe(onCancel: (id: string) => void): Promise<() => void> {
    const subscriber = blockingDuplicate(this.redis);
    subscriber.on('error', () => undefined); // reconnects by itself
    subscriber.on('message', (channel: string, id: string) => channel === this.channel && onCancel(id));
    await subscriber.subscribe(this.channel);
    return () => subscriber.disconnect();
  }
}
