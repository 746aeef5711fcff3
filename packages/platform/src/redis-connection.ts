/** Redis connections for BullMQ, and the start-up check with a one-line hint when none answers. */
import { Redis, RedisOptions } from 'ioredis';

export const REDIS_START_HINT =
  'start one with: redis-server --daemonize yes --port 6379 --save "" --appendonly no (Debian: apt-get install redis-server), or set REDIS_URL';

/**
 * A connection as BullMQ wants it: no per-command retry limit (blocking commands), and
 * offline commands fail fast instead of queueing forever when `failFast` is set (the API uses
 * that so requests get a 503 instead of hanging while Redis is away).
 */
export function createRedis(url: string, options: { failFast?: boolean } & RedisOptions = {}): Redis {
  const { failFast, ...rest } = options;
  return new Redis(url, {
    maxRetriesPerRequest: failFast ? 1 : null,
    enableOfflineQueue: !failFast,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...rest,
  });
}

/** Resolves when Redis answers PING within the timeout, rejects with a hint otherwise. */
export async function checkRedis(url: string, timeoutMs = 2000): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch {
    throw new Error(`Redis does not answer at ${url}: ${REDIS_START_HINT}`);
  } finally {
    client.disconnect();
  }
}
