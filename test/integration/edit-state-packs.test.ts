/**
 * Edit state stored in packs (edit-source-cache.ts), against the test Redis and the S3 API
 * server: jobs finishing within the linger, or while a pack uploads, go together as the next
 * pack — one object, their index entries each naming its range —, within the pack limits; a full
 * pack and one somebody waits for go at once; another worker reads a job's
 * latent back with a ranged GET, as the worker that stored it holds it; an entry from before
 * packs is still read; a forgotten job has no entry; a pack that could not be stored leaves none;
 * `allStored` resolves once every pack put so far is stored.
 */
import sharp from 'sharp';
import { EditSource } from '@farm/pipeline';
import { ObjectStore } from '@farm/platform';
import { EditSourceCache } from '@farm/worker';
import type { PackLimits } from '../../apps/worker/src/edit-state-pack';
import { Harness, testStoreOptions, until } from '../support/harness';

let farm: Harness;
beforeAll(() => {
  farm = new Harness();
});
afterAll(() => farm.close());

/** A worker's cache (nothing in its memory yet), keeping state in `store` (the test S3 unless given). */
const cache = (packLimits?: PackLimits, store: ObjectStore = farm.store) =>
  new EditSourceCache({ store, redis: farm.redis, keyPrefix: `${farm.keyPrefix}:edit-source`, ttlSeconds: 60, capacity: 32, capacityBytes: 2 ** 26, onHeldChanged: () => undefined, packLimits });

/** A 64×64 source (4×8×8 latent) whose values tell it apart; its image is stored under `imageKey`. */
async function source(id: string, seed: number): Promise<{ source: EditSource; imageKey: string }> {
  const latent = Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(seed * 100 + i) * 3);
  const imageKey = `results/${id}.png`;
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: seed, g: 0, b: 0 } } }).png().toBuffer();
  await farm.store.put(imageKey, png, 'image/png');
  return { source: { latent, rgb: Buffer.alloc(64 * 64 * 3), width: 64, height: 64, prompt: `source ${seed}` }, imageKey };
}

/** The index entry of a job, as stored. */
async function entryOf(c: EditSourceCache, id: string): Promise<{ latent?: { key: string; range: { offset: number; length: number } } } | null> {
  const raw = await farm.redis.get(c.indexKey(id));
  return raw ? JSON.parse(raw) : null;
}

const ids = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}-${i}-${Date.now()}`);

/** `n` jobs finishing together: their sources (seeds `seed`, `seed` + 1, …) put into `c` at once; `stored` resolves once all are stored. */
async function finishTogether(c: EditSourceCache, n: number, tag: string, seed: number) {
  const jobs = ids(n, tag);
  const sources = await Promise.all(jobs.map((id, i) => source(id, seed + i)));
  for (const [i, id] of jobs.entries()) c.put(id, sources[i].source, sources[i].imageKey);
  return { jobs, sources, stored: Promise.all(jobs.map((id) => c.stored(id))) };
}

/** Limits whose linger outlasts any test: a pack goes only when full or waited for. */
const noLinger = (maxJobs = 64) => ({ maxJobs, maxBytes: 2 ** 20, lingerMs: 600_000 });

it('stores jobs that finish within the linger as one pack, each entry naming its range', async () => {
  const c = cache({ maxJobs: 64, maxBytes: 2 ** 20, lingerMs: 1000 });
  const jobs = ids(4, 'linger');
  const sources = await Promise.all(jobs.map((id, i) => source(id, 1 + i)));
  const put = (i: number) => c.put(jobs[i], sources[i].source, sources[i].imageKey);
  put(0);
  await new Promise((r) => setTimeout(r, 100));
  expect(await entryOf(c, jobs[0])).toBeNull(); // still lingering for company
  put(1);
  put(2);
  put(3);
  await until(async () => (await entryOf(c, jobs[3])) !== null, 5000);
  const entries = await Promise.all(jobs.map((id) => entryOf(c, id)));
  const packs = entries.map((e) => e!.latent!.key);
  expect(new Set(packs).size).toBe(1);
  expect(packs[0].startsWith('cache/packs/')).toBe(true);
  expect(entries.map((e) => e!.latent!.range)).toEqual([0, 1, 2, 3].map((i) => ({ offset: i * 512, length: 512 })));
  expect((await farm.store.get(packs[0])).byteLength).toBe(4 * 512);
});

it('stores jobs that finish while a pack uploads as the next pack, at once; a pack somebody waits for does not linger', async () => {
  const c = cache(noLinger());
  const jobs = ids(5, 'group');
  const sources = await Promise.all(jobs.map((id, i) => source(id, 10 + i)));
  c.put(jobs[0], sources[0].source, sources[0].imageKey);
  const first = c.stored(jobs[0]); // sends it now
  for (let i = 1; i < 5; i++) c.put(jobs[i], sources[i].source, sources[i].imageKey);
  await first;
  // The four that came while the first uploaded go when it is done, without their linger.
  await until(async () => (await entryOf(c, jobs[4])) !== null, 5000);
  const packs = (await Promise.all(jobs.map((id) => entryOf(c, id)))).map((e) => e!.latent!.key);
  expect(new Set(packs).size).toBe(2);
  expect(packs.slice(1).every((k) => k === packs[1])).toBe(true);
});

it('tells when everything put so far is stored (a stopping worker waits for it)', async () => {
  const c = cache(noLinger(2));
  const jobs = ids(5, 'all');
  const sources = await Promise.all(jobs.map((id, i) => source(id, 20 + i)));
  for (const [i, id] of jobs.entries()) c.put(id, sources[i].source, sources[i].imageKey);
  expect(await entryOf(c, jobs[4])).toBeNull(); // still waiting behind two packs
  await c.allStored(); // without lingering
  expect((await Promise.all(jobs.map((id) => entryOf(c, id)))).every((e) => e?.latent)).toBe(true);
});

it('keeps each pack within its limits, sending a full one at once; the rest go in the next, as soon as it is stored', async () => {
  const c = cache(noLinger(3));
  const jobs = ids(7, 'limits');
  const sources = await Promise.all(jobs.map((id, i) => source(id, 30 + i)));
  for (const [i, id] of jobs.entries()) c.put(id, sources[i].source, sources[i].imageKey);
  // Nothing lingers: full packs go at once, and the seventh (put while the first uploaded) after them.
  await until(async () => (await entryOf(c, jobs[6])) !== null, 5000);
  const packs = (await Promise.all(jobs.map((id) => entryOf(c, id)))).map((e) => e!.latent!.key);
  const sizes = [...new Set(packs)].map((k) => packs.filter((p) => p === k).length);
  expect(sizes).toEqual([3, 3, 1]);
});

it("gives another worker a job's latent from its pack, as the worker that stored it holds it", async () => {
  const first = cache();
  const { jobs, sources, stored } = await finishTogether(first, 3, 'read', 20);
  await stored;
  const other = cache();
  for (const [i, id] of jobs.entries()) {
    const held = (await first.get(id))!;
    const read = (await other.get(id))!;
    expect(held.from).toBe('memory');
    expect(read.from).toBe('cache');
    expect(read.source.latent).toEqual(held.source.latent); // the same fp16-rounded values, bit for bit
    expect(read.source.latent).not.toEqual(sources[(i + 1) % jobs.length].source.latent);
    expect(read.source).toMatchObject({ width: 64, height: 64, prompt: `source ${i + 20}` });
    expect(read.source.rgb.subarray(0, 3)).toEqual(Buffer.from([i + 20, 0, 0])); // its own image
  }
});

it('reads an entry written before packs: the whole object its latentKey names', async () => {
  const [id] = ids(1, 'old');
  const { source: s, imageKey } = await source(id, 30);
  const writer = cache();
  writer.put(id, s, imageKey);
  await writer.stored(id);
  const expected = (await writer.get(id))!.source.latent;
  // The previous version's layout: the latent alone in its own object, the entry naming it.
  const { latent } = (await entryOf(writer, id))!;
  const own = `cache/${id}.latent.f16`;
  await farm.store.put(own, (await farm.store.get(latent!.key, latent!.range)), 'application/octet-stream');
  await farm.redis.set(writer.indexKey(id), JSON.stringify({ width: 64, height: 64, prompt: 'source 30', latentKey: own, imageKey }), 'EX', 60);
  const read = (await cache().get(id))!;
  expect(read.from).toBe('cache');
  expect(read.source.latent).toEqual(expected);
});

it('forgets a job: no entry is left, so no edit can start from it', async () => {
  const c = cache();
  const [id] = ids(1, 'forget');
  const { source: s, imageKey } = await source(id, 40);
  c.put(id, s, imageKey);
  await c.stored(id);
  expect(await cache().get(id)).not.toBeNull();
  await c.forget(id);
  expect(await farm.redis.exists(c.indexKey(id))).toBe(0);
  expect(await c.get(id)).toBeNull();
  expect(await cache().get(id)).toBeNull();
});

it('leaves no entry for any job of a pack that could not be stored, and settles them all', async () => {
  const down = new ObjectStore({ ...testStoreOptions(), endpoint: 'http://127.0.0.1:9' });
  try {
    const c = cache(undefined, down);
    const { jobs, stored } = await finishTogether(c, 4, 'down', 50);
    await stored;
    expect(await Promise.all(jobs.map((id) => farm.redis.exists(c.indexKey(id))))).toEqual([0, 0, 0, 0]);
    expect(c.holds(jobs[0])).toBe(true); // this worker still edits them from memory
  } finally {
    down.close();
  }
});
