/** Removing what a farm process wrote to the suite's Redis: every key of a farm lives under `{farm}:<QUEUE_NAME>`. */
import { createRedis } from '@farm/platform';

/** Deletes every key of the farms whose QUEUE_NAME starts with `queueNamePrefix`. */
export async function removeFarmKeys(queueNamePrefix: string): Promise<void> {
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  try {
    for await (const batch of redis.scanStream({ match: `{farm}:${queueNamePrefix}*`, count: 1000 })) {
      if ((batch as string[]).length > 0) await redis.unlink(...(batch as string[]));
    }
  } finally {
    redis.disconnect();
  }
}
