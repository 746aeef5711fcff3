/**
 * Stable worker ids: a worker without a WORKER_ID claims `<host>-<index>`, the lowest index no
 * live worker of its host holds (a Redis key per id, with a time-to-live its holder renews). A
 * restarted worker gets its id back — its metrics' `worker` label stays the same — once the
 * previous holder released it (on shutdown) or its claim ran out (a crash).
 */
import { randomUUID } from 'node:crypto';
import type { FarmRedis } from './redis-connection';

/** Most workers one host may run before the claim gives up. */
const MAX_INDEX = 1024;

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface WorkerIdClaim {
  id: string;
  /** Keeps the claim alive; false when it was lost (expired and taken by another worker). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

/** Host names as ids use them: letters, digits, ".", "_" and "-". */
export function idSafeHost(host: string): string {
  return host.replace(/[^\w.-]/g, '-').slice(0, 64) || 'host';
}

export async function claimWorkerId(redis: FarmRedis, keyPrefix: string, host: string, ttlMs = 60_000): Promise<WorkerIdClaim> {
  const token = randomUUID();
  const base = idSafeHost(host);
  for (let index = 0; index < MAX_INDEX; index++) {
    const id = `${base}-${index}`;
    const key = `${keyPrefix}:worker-ids:${id}`;
    if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') continue;
    return {
      id,
      renew: async () => Number(await redis.eval(RENEW, 1, key, token, ttlMs)) === 1,
      release: async () => {
        await redis.eval(RELEASE, 1, key, token);
      },
    };
  }
  throw new Error(`${MAX_INDEX} workers of host ${base} hold ids already; set WORKER_ID`);
}
