/**
 * MAX_WORKER_MEMORY: the intake (real BullMQ on the test Redis) starts a job only while the jobs'
 * estimated memory fits the worker's budget — a job that does not fit waits while a smaller later
 * one starts, and starts once memory is freed; a job larger than all the room runs alone —, a
 * worker whose model alone needs more than the limit refuses to start, saying so, and the edit
 * sources a worker keeps stay within their bytes.
 */
import { EditSourceCache, JobIntake, Lease, MemoryBudget, StorageGate } from '@farm/worker';
import type { QueuedJob } from '@farm/contracts';
import { Harness, QUEUE_PREFIX, until } from '../support/harness';

let farm: Harness;
beforeAll(() => {
  farm = new Harness();
});
afterAll(() => farm.close());

it("starts jobs while their memory fits, lets a smaller one pass a waiting one, and runs one larger than all the room alone", async () => {
  const started: string[] = [];
  const finish = new Map<string, () => void>();
  const intake = new JobIntake(
    {
      prepare: async (lease: Lease) => {
        lease.memoryBytes = (lease.job.data as unknown as { bytes: number }).bytes;
        return true;
      },
      run: (lease: Lease) =>
        new Promise<void>((resolve) => {
          started.push(lease.id);
          finish.set(lease.id, resolve);
        }),
      abort: () => undefined,
    },
    {
      workerId: 'memory-test',
      queueName: farm.queue.name,
      prefix: QUEUE_PREFIX,
      connection: farm.redis,
      maxInFlight: 4,
      lockDurationMs: 10000,
      gate: new StorageGate(async () => true, { firstProbeMs: 50, maxProbeMs: 100, holdMs: 60000 }),
      memory: new MemoryBudget(100, 0),
    },
  );
  const add = (id: string, bytes: number) => farm.queue.add('generate', { bytes } as unknown as QueuedJob, { jobId: id });
  for (const [id, bytes] of [['a', 60], ['b', 60], ['c', 30]] as const) await add(id, bytes);
  const running = intake.start();
  try {
    await until(() => started.length === 2);
    expect(started).toEqual(['a', 'c']); // b (60) does not fit beside a (60); c (30) does
    finish.get('a')!();
    await until(() => started.length === 3);
    expect(started[2]).toBe('b');
    await add('huge', 500);
    await new Promise((r) => setTimeout(r, 300));
    expect(started).toHaveLength(3); // waits for the others
    finish.get('b')!();
    finish.get('c')!();
    await until(() => started.length === 4);
    expect(started[3]).toBe('huge'); // alone
    finish.get('huge')!();
  } finally {
    await intake.stop(1000);
    await running;
  }
});

it('refuses to start a worker whose model needs more memory than MAX_WORKER_MEMORY allows', async () => {
  await expect(farm.startWorker({ maxMemoryBytes: 64 * 2 ** 20 })).rejects.toThrow(/^MAX_WORKER_MEMORY_MB=64 is less than this worker needs before any job \(\d+ MiB: the model, one tick's working memory and EDIT_CACHE_MB\); raise it$/);
});

it('keeps edit sources within EDIT_CACHE_MB, dropping the least recently used', async () => {
  // A 64×64 source: 12288 bytes of pixels and 1024 of latent (4 channels of 8×8 float32).
  const cache = new EditSourceCache({ store: farm.store, redis: farm.redis, keyPrefix: `${farm.keyPrefix}:edit-source`, ttlSeconds: 60, capacity: 32, capacityBytes: 30000, onHeldChanged: () => undefined });
  const source = () => ({ latent: new Float32Array(4 * 8 * 8), rgb: Buffer.alloc(64 * 64 * 3), width: 64, height: 64 });
  for (const id of ['s1', 's2', 's3']) cache.put(id, source(), `results/${id}.png`);
  await Promise.all(['s1', 's2', 's3'].map((id) => cache.stored(id)));
  expect(['s1', 's2', 's3'].map((id) => cache.holds(id))).toEqual([false, true, true]);
});
