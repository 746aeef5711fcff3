/** Removing what a test wrote to Redis: every key of a farm lives under `{farm}:<QUEUE_NAME>`. */
import type { Redis } from 'ioredis';
import { createRedis } from '@farm/platform';

/** Deletes every key that starts with `prefix`, through `redis` or a connection of its own to the suite's Redis. */
export async function removeKeys(prefix: string, redis?: Redis): Promise<void> {
  const client = redis ?? createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  try {
    for await (const batch of client.scanStream({ match: `${prefix}*`, count: 1000 })) {
      if ((batch as string[]).length > 0) await client.unlink(...(batch as string[]));
    }
  } finally {
    if (!redis) client.disconnect();
  }
}
