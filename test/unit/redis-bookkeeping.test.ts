/**
 * The farm's per-job bookkeeping in Redis, on the suite's real Redis: marks of followed jobs
 * (expired ones dropped once per interval, never counted as followed).
 */
import { randomUUID } from 'node:crypto';
import { FollowedJobs, createRedis } from '@farm/platform';
import { removeKeys } from '../support/farm-keys';

const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const prefix = `{farm-test}:bookkeeping-${randomUUID()}`;

afterAll(async () => {
  await removeKeys(prefix, redis);
  redis.disconnect();
});

describe('followed jobs', () => {
  it('marks a job for ttlMs, and drops expired marks at most once per trim interval', async () => {
    const followed = new FollowedJobs(redis, prefix, 1000, 5000);
    const t0 = 1_000_000;
    await followed.follow('a', t0); // trims (the first follow of a process)
    expect(await followed.isFollowed('a', t0 + 999)).toBe(true);
    expect(await followed.isFollowed('a', t0 + 1000)).toBe(false);
    await followed.follow('b', t0 + 2000); // a's mark expired, but no trim is due: it stays, not followed
    expect(await redis.zrange(followed.key, 0, -1)).toEqual(['a', 'b']);
    expect(await followed.isFollowed('a', t0 + 2000)).toBe(false);
    expect(await followed.isFollowed('b', t0 + 2000)).toBe(true);
    await followed.follow('b', t0 + 5000); // the refresh a heartbeat sends: due, so a's mark goes
    expect(await redis.zrange(followed.key, 0, -1)).toEqual(['b']);
    expect(await followed.isFollowed('b', t0 + 5999)).toBe(true);
  });
});
