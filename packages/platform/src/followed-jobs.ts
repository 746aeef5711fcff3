/**
 * Which jobs someone is watching: the API marks a job while an event stream of it is open
 * (refreshed with the stream's heartbeat, expiring by itself), and workers build progress
 * previews only for marked jobs. One sorted set per farm, scored by when each mark expires;
 * readers compare the score with the time, so expired marks are dropped at most once per
 * `trimEveryMs` per process (one ZADD per mark otherwise, not a MULTI of ZADD and trim).
 */
import type { FarmRedis } from './redis-connection';

export class FollowedJobs {
  readonly key: string;
  private trimmedAt = -Infinity;

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    /** How long a mark lasts unless refreshed (default 40 s: two event-stream heartbeats and some). */
    readonly ttlMs = 40000,
    /** How often a process drops expired marks (default 10 s): the set holds at most this much more. */
    private readonly trimEveryMs = 10000,
  ) {
    this.key = `${keyPrefix}:followed`;
  }

  /** Marks the job as followed for `ttlMs` from now (and drops expired marks, when due). */
  async follow(id: string, now = Date.now()): Promise<void> {
    if (now - this.trimmedAt < this.trimEveryMs) {
      await this.redis.zadd(this.key, now + this.ttlMs, id);
      return;
    }
    this.trimmedAt = now;
    await this.redis.multi().zadd(this.key, now + this.ttlMs, id).zremrangebyscore(this.key, '-inf', now).exec();
  }

  async isFollowed(id: string, now = Date.now()): Promise<boolean> {
    const expires = await this.redis.zscore(this.key, id);
    return expires !== null && Number(expires) > now;
  }
}
