/**
 * A queued job's place in its model's queue: how many jobs a worker of that model takes before
 * it (0: it is next). BullMQ hands out plain waiting jobs first, in order, then prioritized ones
 * by score — the farm's jobs all carry a priority — so the place is the waiting list's length
 * plus the job's rank among the prioritized. A delayed job (waiting to be retried) has none.
 */
import type { FarmRedis } from './redis-connection';
import type { FarmQueue } from './job-queue';

export class QueuePositions {
  constructor(private readonly redis: FarmRedis) {}

  async of(queue: FarmQueue, jobId: string): Promise<number | null> {
    const [waiting, rank, index] = await Promise.all([
      this.redis.llen(queue.keys.wait),
      this.redis.zrank(queue.keys.prioritized, jobId),
      this.redis.lpos(queue.keys.wait, jobId),
    ]);
    if (rank !== null) return waiting + rank;
    // The waiting list is pushed on the left and taken from the right.
    if (index !== null) return waiting - 1 - index;
    return null;
  }
}
