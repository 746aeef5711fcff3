/**
 * Live workers, announced by heartbeat: a sorted set (id → last heartbeat) and a hash (id →
 * description) under the queue's key prefix, so the farm's keys stay in one Redis Cluster slot.
 * Entries older than the time-to-live are dropped by whoever reads or writes next.
 */
import type { FarmRedis } from './redis-connection';
import type { WorkerInfo } from '@farm/contracts';

export type { WorkerInfo };

export class WorkerRegistry {
  private readonly seen: string;
  private readonly info: string;
  private readonly held: string;

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    /** How long a worker stays listed after its last heartbeat (default 15 s). */
    readonly ttlMs = 15000,
  ) {
    this.seen = `${keyPrefix}:workers`;
    this.info = `${keyPrefix}:workers:info`;
    this.held = `${keyPrefix}:workers:held`;
  }

  /** Records which edit sources (job ids) a worker holds in memory; kept out of the public listing. */
  async holds(workerId: string, jobIds: readonly string[]): Promise<void> {
    await this.redis.hset(this.held, workerId, JSON.stringify(jobIds));
  }

  /** Live workers other than `except` that hold the edit source `jobId`. */
  async holders(jobId: string, except: string, now = Date.now()): Promise<string[]> {
    const live = await this.redis.zrangebyscore(this.seen, now - this.ttlMs, '+inf');
    const others = live.filter((id) => id !== except);
    if (others.length === 0) return [];
    const lists = await this.redis.hmget(this.held, ...others);
    return others.filter((_, i) => lists[i] !== null && (JSON.parse(lists[i]!) as string[]).includes(jobId));
  }

  async heartbeat(worker: Omit<WorkerInfo, 'lastHeartbeat'>, now = Date.now()): Promise<void> {
    const entry: WorkerInfo = { ...worker, lastHeartbeat: new Date(now).toISOString() };
    await this.redis.multi().zadd(this.seen, now, worker.id).hset(this.info, worker.id, JSON.stringify(entry)).exec();
    await this.prune(now);
  }

  async remove(id: string): Promise<void> {
    await this.redis.multi().zrem(this.seen, id).hdel(this.info, id).hdel(this.held, id).exec();
  }

  async list(now = Date.now()): Promise<WorkerInfo[]> {
    await this.prune(now);
    const ids = await this.redis.zrange(this.seen, 0, -1);
    if (ids.length === 0) return [];
    const raw = await this.redis.hmget(this.info, ...ids);
    return raw.flatMap((r) => (r ? [JSON.parse(r) as WorkerInfo] : []));
  }

  private async prune(now: number): Promise<void> {
    const stale = await this.redis.zrangebyscore(this.seen, '-inf', now - this.ttlMs);
    if (stale.length > 0) await this.redis.multi().zrem(this.seen, ...stale).hdel(this.info, ...stale).hdel(this.held, ...stale).exec();
  }
}
