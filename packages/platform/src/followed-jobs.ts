/**
 * Which jobs someone is watching: the API marks a job while an event stream of it is open
 * (refreshed with the stream's heartbeat, expiring by itself), and workers build progress
 * previews only for marked jobs. One sorted set per farm, scored by when each mark expires.
 */
import type { FarmRedis } from './redis-connection';

export class FollowedJobs {
  readonly key: string;

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    /** How long a mark lasts unless refreshed (default 40 s: two event-stream heartbeats and some). */
    readonly ttlMs = 40000,
  ) {
    this.key = `${keyPrefix}:followed`;
  }

  /** Marks the job as followed for `ttlMs` from now (and drops expired marks). */
  async follow(id: string, now = Date.now()): Promise<void> {
    await this.redis.multi().zadd(this.key, now + this.ttlMs, id).zremrangebyscore(this.key, '-inf', now).exec();
  }

  async isFollowed(id: string, now = Date.now()): Promise<boolean> {
    const expires = await this.redis.zscore(this.key, id);
    return expires !== null && Number(expires) > now;
  }
}
