/** Redis connections for BullMQ, and the start-up check with a one-line hint when none answers. */
import { Redis, RedisOptions, ReplyError } from 'ioredis';
import { StartupError } from './startup-error';

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

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return url;
  }
}

/** A connection as `createRedis` makes it, resolved once it is ready for commands. */
export async function connectRedis(url: string, options: { failFast?: boolean } & RedisOptions = {}): Promise<Redis> {
  const redis = createRedis(url, { ...options, lazyConnect: true });
  await redis.connect();
  return redis;
}

/** Resolves when Redis answers PING within the timeout; otherwise a StartupError says why, on one line. */
export async function checkRedis(url: string, timeoutMs = 2000): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    // An error reply (a wrong password, say) is an answer: Redis is there but refuses us.
    if (err instanceof ReplyError) throw new StartupError(`Redis at ${redactedUrl(url)} refused the connection: ${(err as Error).message}; check REDIS_URL`);
    throw new StartupError(`Redis does not answer at ${redactedUrl(url)}: ${REDIS_START_HINT}`);
  } finally {
    client.disconnect();
  }
}
