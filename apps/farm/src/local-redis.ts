/**
 * Makes sure a Redis answers for the local farm: the configured cluster or Sentinels, else
 * REDIS_URL or 127.0.0.1:6379, and when nothing answers there and REDIS_URL is unset, starts a
 * `redis-server` child if one is installed.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { REDIS_START_HINT, RedisSettings, RedisTarget, StartupError, checkRedis, redisTarget } from '@farm/platform';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface LocalRedis {
  target: RedisTarget;
  /** Whether we started a redis-server child. */
  started: boolean;
}

/** `adopt` receives the redis-server child as soon as it is spawned, if one is. */
export async function ensureRedis(settings: Partial<RedisSettings>, adopt: (child: ChildProcess) => void): Promise<LocalRedis> {
  const target = redisTarget({ ...settings, REDIS_URL: settings.REDIS_URL ?? DEFAULT_REDIS_URL });
  try {
    await checkRedis(target);
    return { target, started: false };
  } catch (err) {
    if (settings.REDIS_URL || target.kind !== 'server') throw err;
  }
  const url = DEFAULT_REDIS_URL;
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    throw new StartupError(`no Redis answers at ${url} and redis-server is not installed: ${REDIS_START_HINT}`);
  }
  const child = spawn('redis-server', ['--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  adopt(child);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      await checkRedis(url, 500);
      return { target, started: true };
    } catch {
      if (child.exitCode !== null) break;
    }
  }
  child.kill();
  throw new StartupError(`started redis-server but it does not answer at ${url}: ${REDIS_START_HINT}`);
}
