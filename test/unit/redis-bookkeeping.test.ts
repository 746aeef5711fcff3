/**
 * The farm's per-job bookkeeping in Redis, on the suite's real Redis: marks of followed jobs
 * (expired ones dropped once per interval, never counted as followed); a tenant's job index as
 * admission writes it (trimmed to the retention once a minute, its key outliving every entry);
 * job locators, remembered by the process that wrote or found them; progress writes, which look
 * up whether a job is followed only while it has a next step.
 */
import { randomUUID } from 'node:crypto';
import { TenantAdmission } from '@farm/api';
import { FollowedJobs, INDEX_TRIM_EVERY_MS, JobLocator, JobProgressWriter, TenantJobIndex, createRedis, openQueue } from '@farm/platform';
import { removeKeys } from '../support/farm-keys';

const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const name = `bookkeeping-${randomUUID()}`;
const prefix = `{farm-test}:${name}`;

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

describe('the job index as admission writes it', () => {
  it('trims entries past the retention once a minute, after the add, and keeps the key past the retention of its newest entry', async () => {
    const index = new TenantJobIndex(redis, prefix, 1); // entries are kept 1 s
    const admission = new TenantAdmission(redis, prefix, new JobLocator(redis, prefix), index, { ratePerSecond: 1000, burst: 1000, maxQueued: 100 });
    const admit = async (jobId: string) =>
      expect((await admission.admit({ tenant: 't', jobId, model: 'shapes-ldm', priority: 5, locatorTtlSeconds: 60 })).kind).toBe('admitted');
    const entries = () => redis.zrange(index.key('t'), 0, -1);
    await admit('a'); // the tenant's first admission trims: its key gets a TTL
    await new Promise((r) => setTimeout(r, 1100));
    await admit('b'); // a is past the retention, but the next trim is a minute away
    expect(await entries()).toEqual(['a', 'b']);
    expect(await redis.pttl(index.key('t'))).toBeGreaterThan(1000 + INDEX_TRIM_EVERY_MS - 1500); // set at a's admission, 1.1 s ago
    await redis.hset(`${prefix}:tenant:t:bucket`, 'pruned', 0); // as if the last trim were a minute old
    await admit('c');
    expect(await entries()).toEqual(['b', 'c']);
    expect(await redis.pttl(index.key('t'))).toBeGreaterThan(1000 + INDEX_TRIM_EVERY_MS - 200);
  });

  it('gives the key a TTL when a trim empties it before the add', async () => {
    const index = new TenantJobIndex(redis, prefix, 1);
    const admission = new TenantAdmission(redis, prefix, new JobLocator(redis, prefix), index, { ratePerSecond: 1000, burst: 1000, maxQueued: 100 });
    await redis.zadd(index.key('u'), Date.now() - 5000, 'old'); // an entry past the retention, the only one
    expect((await admission.admit({ tenant: 'u', jobId: 'new', model: 'shapes-ldm', priority: 5, locatorTtlSeconds: 60 })).kind).toBe('admitted');
    expect(await redis.zrange(index.key('u'), 0, -1)).toEqual(['new']);
    expect(await redis.pttl(index.key('u'))).toBeGreaterThan(INDEX_TRIM_EVERY_MS);
  });
});

describe('job locators', () => {
  it('remembers the model of a job it admitted or found, and asks again for one it did not find', async () => {
    const locator = new JobLocator(redis, prefix);
    const admission = new TenantAdmission(redis, prefix, locator, new TenantJobIndex(redis, prefix, 60), { ratePerSecond: 1000, burst: 1000, maxQueued: 100 });
    expect((await admission.admit({ tenant: 'v', jobId: 'admitted', model: 'model-a', priority: 5, locatorTtlSeconds: 60 })).kind).toBe('admitted');
    await redis.del(locator.key('admitted')); // the key's reads from here on would say null
    expect(await locator.modelOf('admitted')).toBe('model-a');

    const reader = new JobLocator(redis, prefix); // another process
    expect(await reader.modelOf('recorded')).toBeNull();
    await locator.record('recorded', 'model-b', 60);
    expect(await reader.modelOf('recorded')).toBe('model-b'); // not located before: asked again
    await redis.del(locator.key('recorded'));
    expect(await reader.modelOf('recorded')).toBe('model-b');
  });
});

describe('progress writes', () => {
  it('write each job\'s step and tell which are followed, of the jobs that have a next step', async () => {
    const queue = openQueue({ QUEUE_NAME: name, QUEUE_PREFIX: '{farm-test}' }, redis, 'shapes-ldm');
    const followed = new FollowedJobs(redis, prefix);
    const writer = new JobProgressWriter(redis, queue, followed);
    for (const id of ['mid', 'last', 'quiet']) await queue.add('generate', {} as never, { jobId: id });
    await followed.follow('mid');
    await followed.follow('last');
    const flags = await writer.write([
      { jobId: 'mid', step: 1, total: 2 },
      { jobId: 'last', step: 2, total: 2 },
      { jobId: 'quiet', step: 1, total: 2 },
    ]);
    expect(flags).toEqual([true, false, false]); // 'last' has no next tick to preview
    expect((await queue.getJob('last'))!.progress).toEqual({ step: 2, total: 2 });
    expect((await queue.getJob('mid'))!.progress).toEqual({ step: 1, total: 2 });
    await queue.close();
  });
});
