/**
 * Edit state stored in packs (edit-source-cache.ts), against the test Redis and the S3 API
 * server: jobs finishing while a pack uploads go together as the next pack — one object, their
 * index entries each naming its range —, within the pack limits; another worker reads a job's
 * latent back with a ranged GET, as the worker that stored it holds it; an entry from before
 * packs is still read; a forgotten job has no entry; a pack that could not be stored leaves none;
 * `allStored` resolves once every pack put so far is stored.
 */
import sharp from 'sharp';
import { EditSource } from '@farm/pipeline';
import { ObjectStore } from '@farm/platform';
import { EditSourceCache } from '@farm/worker';
import { Harness, testStoreOptions } from '../support/harness';

let farm: Harness;
beforeAll(() => {
  farm = new Harness();
});
afterAll(() => farm.close());

/** A worker's cache (nothing in its memory yet), keeping state in `store` (the test S3 unless given). */
const cache = (packLimits?: { maxJobs: number; maxBytes: number }, store: ObjectStore = farm.store) =>
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

it('stores jobs that finish while a pack uploads as one pack, each entry naming its range', async () => {
  const c = cache();
  const { jobs, stored } = await finishTogether(c, 5, 'group', 1);
  await stored;
  const entries = await Promise.all(jobs.map((id) => entryOf(c, id)));
  // The first went at once, alone; the other four waited for it and went together.
  const packs = entries.map((e) => e!.latent!.key);
  expect(new Set(packs).size).toBe(2);
  expect(packs[0]).not.toBe(packs[1]);
  expect(packs.slice(1).every((k) => k === packs[1])).toBe(true);
  expect(packs.every((k) => k.startsWith('cache/packs/'))).toBe(true);
  expect(entries.slice(1).map((e) => e!.latent!.range)).toEqual([0, 1, 2, 3].map((i) => ({ offset: i * 512, length: 512 })));
  expect((await farm.store.get(packs[1])).byteLength).toBe(4 * 512);
});

it('tells when everything put so far is stored (a stopping worker waits for it)', async () => {
  const c = cache({ maxJobs: 2, maxBytes: 2 ** 20 });
  const { jobs } = await finishTogether(c, 5, 'all', 20);
  expect(await entryOf(c, jobs[4])).toBeNull(); // still waiting behind two packs
  await c.allStored();
  expect((await Promise.all(jobs.map((id) => entryOf(c, id)))).every((e) => e?.latent)).toBe(true);
});

it('keeps each pack within its limits; the rest go in the next', async () => {
  const c = cache({ maxJobs: 3, maxBytes: 2 ** 20 });
  const { jobs, stored } = await finishTogether(c, 6, 'limits', 10);
  await stored;
  const packs = (await Promise.all(jobs.map((id) => entryOf(c, id)))).map((e) => e!.latent!.key);
  const sizes = [...new Set(packs)].map((k) => packs.filter((p) => p === k).length);
  expect(sizes).toEqual([1, 3, 2]);
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
