/**
 * Workers that render live sessions, with their load: each beats every second or so (a sorted
 * set of last beats and a hash of model and load, under the farm's prefix). A session goes to
 * the least loaded live host of its model; a host that stopped beating for `ttlMs` is dead, and
 * its sessions move to another.
 */
import type { FarmRedis } from './redis-connection';

export interface SessionHostLoad {
  model: string;
  /** Jobs in flight plus sessions held. */
  load: number;
}

export class SessionHosts {
  private readonly seen: string;
  private readonly loads: string;

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    /** How long a host counts as alive after its last beat (default 3 s; beat at a third of it). */
    readonly ttlMs = 3000,
  ) {
    this.seen = `${keyPrefix}:session-hosts`;
    this.loads = `${keyPrefix}:session-hosts:load`;
  }

  async beat(worker: string, host: SessionHostLoad, now = Date.now()): Promise<void> {
    await this.redis.multi().zadd(this.seen, now, worker).hset(this.loads, worker, JSON.stringify(host)).exec();
  }

  async leave(worker: string): Promise<void> {
    await this.redis.multi().zrem(this.seen, worker).hdel(this.loads, worker).exec();
  }

  async isAlive(worker: string, now = Date.now()): Promise<boolean> {
    const last = await this.redis.zscore(this.seen, worker);
    return last !== null && Number(last) > now - this.ttlMs;
  }

  /** The least loaded live host of `model` other than `except`; null when there is none. */
  async pick(model: string, except?: string, now = Date.now()): Promise<string | null> {
    const live = (await this.redis.zrangebyscore(this.seen, now - this.ttlMs, '+inf')).filter((id) => id !== except);
    if (live.length === 0) return null;
    const loads = await this.redis.hmget(this.loads, ...live);
    let best: { id: string; load: number } | null = null;
    live.forEach((id, i) => {
      const host = loads[i] ? (JSON.parse(loads[i]!) as SessionHostLoad) : null;
      if (host?.model === model && (!best || host.load < best.load)) best = { id, load: host.load };
    });
    return (best as { id: string } | null)?.id ?? null;
  }
}
