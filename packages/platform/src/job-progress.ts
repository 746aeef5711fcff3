/**
 * Progress of many jobs written in one script call (once per engine tick), in BullMQ's own
 * format: each job's `progress` field (what GET shows: step and total) and a `progress` event on
 * the queue's event stream (what QueueEvents relays to event streams, with a preview when there is
 * one). The same call says which of the jobs someone follows, for the next tick's previews — of
 * the jobs that have a next tick: a job at its last step is not looked up (one ZSCORE less per job).
 */
import type { Result } from 'ioredis';
import type { FarmRedis } from './redis-connection';
import type { JobProgress } from '@farm/contracts';
import type { FollowedJobs } from './followed-jobs';
import type { FarmQueue } from './job-queue';

/** KEYS: event stream, queue meta, followed set, then one job hash per update. ARGV: now, then (id, progress, event data, 1 if the last step else 0) per update. */
const WRITE_PROGRESS = `
local maxEvents = redis.call('HGET', KEYS[2], 'opts.maxLenEvents')
if not maxEvents then
  maxEvents = 10000
  redis.call('HSET', KEYS[2], 'opts.maxLenEvents', maxEvents)
end
local now = tonumber(ARGV[1])
local followed = {}
for i = 4, #KEYS do
  local a = (i - 4) * 4 + 2
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HSET', KEYS[i], 'progress', ARGV[a + 1])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxEvents, '*', 'event', 'progress', 'jobId', ARGV[a], 'data', ARGV[a + 2])
  end
  local expires = ARGV[a + 3] == '0' and redis.call('ZSCORE', KEYS[3], ARGV[a])
  followed[#followed + 1] = (expires and tonumber(expires) > now) and 1 or 0
end
return followed`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    farmWriteProgress(numKeys: number, ...keysAndArgs: Array<string | number>): Result<number[], Context>;
  }
}

export interface ProgressUpdate extends JobProgress {
  jobId: string;
}

export class JobProgressWriter {
  constructor(
    private readonly redis: FarmRedis,
    private readonly queue: FarmQueue,
    private readonly followed: FollowedJobs,
  ) {
    // Sent by hash (EVALSHA), loaded on first use.
    redis.defineCommand('farmWriteProgress', { lua: WRITE_PROGRESS });
  }

  /** Writes every update at once; resolves to whether each job is followed now (false for a job at its last step). */
  async write(updates: readonly ProgressUpdate[], now = Date.now()): Promise<boolean[]> {
    if (updates.length === 0) return [];
    const keys = [this.queue.keys.events, this.queue.keys.meta, this.followed.key, ...updates.map((u) => this.queue.toKey(u.jobId))];
    const args = updates.flatMap(({ jobId, step, total, preview }) => [
      jobId,
      JSON.stringify({ step, total }),
      JSON.stringify(preview === undefined ? { step, total } : { step, total, preview }),
      step >= total ? 1 : 0,
    ]);
    const flags = await this.redis.farmWriteProgress(keys.length, ...keys, now, ...args);
    return flags.map((f) => f === 1);
  }
}
