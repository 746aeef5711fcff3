/**
 * Running and settling jobs, in this process: the runner and the settler with the real bundled
 * model, Redis (BullMQ) and the S3 API server, each job leased the way the intake leases it.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import sharp from 'sharp';
import { DEFAULT_LIMITS, InferenceError, JobName, JobOutput, QueuedJob, parseJobRequest, queuedJob, queuedJobSchema } from '@farm/contracts';
import { BusyMeter, DiffusionPipeline } from '@farm/pipeline';
import { FollowedJobs, JobCancellation, JobProgressWriter, ModelQueues, ObjectStore, ProgressUpdate, TenantJobs } from '@farm/platform';
import { Attempt, EditAffinity, EditSourceCache, JobRunner, JobWebhooks, JobSettler, Lease, StorageGate, TickProgress, WorkerMetrics } from '@farm/worker';
import { Harness, MODEL_DIR, QUEUE_PREFIX, testStoreOptions } from '../support/harness';

let farm: Harness;
let pipeline: DiffusionPipeline;
let fetcher: Worker<QueuedJob, JobOutput, JobName>;
let progress: TickProgress;
const progressWrites: ProgressUpdate[][] = [];
const followed = () => new FollowedJobs(farm.redis, farm.keyPrefix);
/** Every worker's edit-source cache: stored before Redis closes, as a stopping worker does. */
const caches: EditSourceCache[] = [];

/** A worker's runner and settler over `store` (the test farm's S3 unless given), keeping edit state in `stateStore`. */
function workerParts(store: ObjectStore = farm.store, stateStore: ObjectStore = store) {
  const editSources = new EditSourceCache({ store: stateStore, redis: farm.redis, keyPrefix: `${farm.keyPrefix}:edit-source`, ttlSeconds: 600, capacity: 8, capacityBytes: 2 ** 30, onHeldChanged: () => undefined });
  caches.push(editSources);
  const gate = new StorageGate(() => store.ping(), { firstProbeMs: 50, maxProbeMs: 100, holdMs: 60000 });
  const runner = new JobRunner({
    pipeline,
    store,
    editSources,
    affinity: new EditAffinity({ holders: async () => [], holds: () => false, affinityMs: 0, retryMs: 150 }),
    progress,
    webhooks: new JobWebhooks(null),
    schema: queuedJobSchema(DEFAULT_LIMITS),
    workerId: 'unit-worker',
    finalState: (id) => farm.finalStates.get(id),
    isFollowed: (id) => followed().isFollowed(id),
    onEditSource: () => undefined,
    memoryOf: () => 0,
  });
  const settler = new JobSettler({
    redis: farm.redis,
    keyPrefix: farm.keyPrefix,
    finalStates: farm.finalStates,
    store,
    editSources,
    tenantJobs: new TenantJobs(farm.redis, farm.keyPrefix),
    webhooks: new JobWebhooks(null),
    metrics: new WorkerMetrics('unit-worker', new ModelQueues(new Map([['shapes-ldm', farm.queue]])), () => 0, () => 0, new BusyMeter()),
    gate,
    storage: { budgetMs: 60000, retryMs: 1000 },
  });
  return { runner, settler, editSources, gate };
}

/** Queues a job and leases it as the intake does. */
async function lease(data: unknown, attempts = 3): Promise<Lease> {
  const id = randomUUID();
  await farm.queue.add('generate', data as QueuedJob, { jobId: id, attempts, backoff: { type: 'fixed', delay: 60000 } });
  return leaseAgain(id);
}

/** Leases the job at the head of the queue, which must be `id`. */
async function leaseAgain(id: string): Promise<Lease> {
  const token = randomUUID();
  const job = await fetcher.getNextJob(token, { block: false });
  expect(job?.id).toBe(id);
  return new Lease(job!, token, () => undefined);
}

const generation = (seed: number, extra: Partial<QueuedJob['request']> = {}) =>
  queuedJob({ type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 2, guidanceScale: 1, format: 'png', priority: 5, ...extra } as never, {
    seed,
    model: 'shapes-ldm',
    tenant: 'tenant-a',
  });

/** Prepares and runs a lease to its attempt. */
async function run(runner: JobRunner, l: Lease): Promise<Attempt> {
  expect(await runner.prepare(l)).toBeNull();
  return runner.run(l);
}

beforeAll(async () => {
  farm = new Harness();
  const writer = new JobProgressWriter(farm.redis, farm.queue, followed());
  progress = new TickProgress({ write: (updates) => (progressWrites.push([...updates]), writer.write(updates)) }, true);
  pipeline = await DiffusionPipeline.load(MODEL_DIR, { maxBatch: 8, onTick: () => progress.flush() });
  fetcher = new Worker<QueuedJob, JobOutput, JobName>(farm.queue.name, null, { connection: farm.redis, prefix: QUEUE_PREFIX, autorun: false });
});
afterAll(async () => {
  await Promise.all(caches.map((c) => c.allStored()));
  await fetcher.close(true);
  await pipeline.close();
  await farm.close();
});

describe('the runner', () => {
  it('refuses a queued job that breaks the schema as invalid_job, and the settler ends it without a retry', async () => {
    const { runner, settler } = workerParts();
    const bad = await lease({ ...generation(1), request: { ...generation(1).request, width: 100 } });
    const attempt = (await runner.prepare(bad))!;
    expect(attempt.outcome).toMatchObject({ kind: 'failed', failure: { code: 'invalid_job', message: expect.stringMatching(/^request\.width: /) } });
    await settler.settle(bad, attempt);
    expect(await farm.queue.getJobState(bad.id)).toBe('failed');
    expect((await farm.queue.getJob(bad.id))!.attemptsMade).toBe(1); // 3 allowed, none retried
    expect(await farm.finalStates.get(bad.id)).toMatchObject({ status: 'failed', error: { code: 'invalid_job' } });
  });

  it('refuses a job its model cannot serve (valid for the model the API checked) as invalid_job before any compute, and the settler ends it without a retry', async () => {
    const { runner, settler } = workerParts();
    const upload = (await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c00' } }).png().toBuffer()).toString('base64');
    // 40 steps at strength 0.1: the bundled model's LCM scheduler has ⌊50 × 0.1⌋ = 5 to pick from.
    const parsed = parseJobRequest({ type: 'edit', source: { image: upload }, prompt: 'a blue square', mask: { rects: [[0, 0, 32, 32]] }, steps: 40, strength: 0.1 });
    if (!parsed.ok) throw new Error('the edit should parse');
    const l = await lease(queuedJob(parsed.value, { seed: 1, model: 'shapes-ldm', tenant: 'tenant-a' }));
    const attempt = (await runner.prepare(l))!;
    expect(attempt?.outcome).toMatchObject({
      kind: 'failed',
      failure: { code: 'invalid_job', message: 'request.strength: steps must be at most 5 at strength 0.1 for this model (50 distilled steps × strength)' },
    });
    await settler.settle(l, attempt);
    expect((await farm.queue.getJob(l.id))!.attemptsMade).toBe(1); // 3 allowed, none retried
    expect(await farm.finalStates.get(l.id)).toMatchObject({ status: 'failed', error: { code: 'invalid_job' } });
  });

  it('ends a job whose image reached it corrupt (a valid header, broken data) as invalid_job, not retried', async () => {
    const { runner, settler } = workerParts();
    const noise = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 256)), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    const corrupt = Buffer.from(noise);
    for (let i = corrupt.length / 2; i < corrupt.length / 2 + 50; i++) corrupt[i] ^= 0xff; // inside the pixel data
    const edits = [
      { source: { image: corrupt.toString('base64') }, mask: { rects: [[0, 0, 32, 32]] } },
      { source: { image: noise.toString('base64') }, mask: { png: corrupt.toString('base64') } },
    ];
    const states: unknown[] = [];
    for (const edit of edits) {
      const parsed = parseJobRequest({ type: 'edit', prompt: 'a blue square', steps: 2, ...edit });
      if (!parsed.ok) throw new Error('the edit should parse');
      const l = await lease(queuedJob(parsed.value, { seed: 1, model: 'shapes-ldm', tenant: 'tenant-a' }));
      const attempt = await run(runner, l);
      await settler.settle(l, attempt);
      expect(attempt.outcome).toMatchObject({ kind: 'failed', failure: { code: 'invalid_job' } });
      expect((await farm.queue.getJob(l.id))!.attemptsMade).toBe(1); // 3 allowed, none retried
      states.push(await farm.finalStates.get(l.id));
    }
    expect(states).toEqual([
      expect.objectContaining({ status: 'failed', error: { code: 'invalid_job', message: expect.stringMatching(/^the source image cannot be decoded: /) } }),
      expect.objectContaining({ status: 'failed', error: { code: 'invalid_job', message: expect.stringMatching(/^mask image cannot be used: /) } }),
    ]);
  });

  it('ends a job that was canceled before it started without rendering it', async () => {
    const { runner, settler } = workerParts();
    const l = await lease(generation(2));
    await new JobCancellation(farm.redis, farm.keyPrefix, farm.finalStates).cancel(l.id);
    const attempt = (await runner.prepare(l))!;
    expect(attempt.outcome).toMatchObject({ kind: 'failed', failure: { code: 'canceled', message: 'canceled before it started' } });
    await settler.settle(l, attempt);
    expect((await farm.finalStates.get(l.id))?.status).toBe('canceled');
    expect((await farm.queue.getJob(l.id))!.progress).toBe(0); // never a step
    await expect(farm.store.get(`results/${l.id}.png`)).rejects.toThrow();
  });

  it('renders jobs together, writes their progress once per tick for all of them, with previews only for the followed one', async () => {
    const { runner, settler } = workerParts();
    const [watched, unwatched] = [await lease(generation(3)), await lease(generation(4))];
    await followed().follow(watched.id);
    progressWrites.length = 0;
    const attempts = await Promise.all([run(runner, watched), run(runner, unwatched)]);
    expect(attempts.map((a) => a.outcome.kind)).toEqual(['succeeded', 'succeeded']);
    // Two ticks of two jobs: two writes, each carrying both jobs' step.
    expect(progressWrites.map((w) => w.map((u) => [u.jobId, u.step, u.preview !== undefined]))).toEqual([
      [[watched.id, 1, true], [unwatched.id, 1, false]],
      [[watched.id, 2, true], [unwatched.id, 2, false]],
    ]);
    await Promise.all([settler.settle(watched, attempts[0]), settler.settle(unwatched, attempts[1])]);
    for (const l of [watched, unwatched]) {
      expect(await farm.queue.getJobState(l.id)).toBe('completed');
      expect((await farm.queue.getJob(l.id))!.progress).toEqual({ step: 2, total: 2 }); // what GET shows: no preview
      expect((await farm.finalStates.get(l.id))?.status).toBe('succeeded');
      expect((await farm.store.get(`results/${l.id}.png`)).length).toBeGreaterThan(0);
    }
  });
});

describe('the settler', () => {
  it('keeps no result of a completion that a cancel beat, and ends the job canceled', async () => {
    const { runner, settler, editSources } = workerParts();
    const l = await lease(generation(5));
    const attempt = await run(runner, l);
    expect(attempt.outcome.kind).toBe('succeeded');
    await editSources.stored(l.id);
    expect(await farm.redis.exists(editSources.indexKey(l.id))).toBe(1);
    expect((await new JobCancellation(farm.redis, farm.keyPrefix, farm.finalStates).cancel(l.id)).won).toBe(true);
    await settler.settle(l, attempt);
    expect((await farm.finalStates.get(l.id))?.status).toBe('canceled');
    expect(await farm.queue.getJobState(l.id)).toBe('failed');
    await expect(farm.store.get(`results/${l.id}.png`)).rejects.toThrow(); // the image it stored is gone
    expect(await farm.redis.exists(editSources.indexKey(l.id))).toBe(0); // and so is its edit state
  });

  it('puts a job that found storage down back without spending an attempt, and closes the gate', async () => {
    const down = new ObjectStore({ ...testStoreOptions(), endpoint: 'http://127.0.0.1:9' });
    const { runner, settler, gate } = workerParts(down);
    const l = await lease(generation(6));
    const attempt = await run(runner, l);
    expect(attempt.outcome).toMatchObject({ kind: 'failed', failure: { code: 'storage_unavailable' } });
    await settler.settle(l, attempt);
    expect(await farm.queue.getJobState(l.id)).toBe('delayed');
    expect((await farm.queue.getJob(l.id))!.attemptsMade).toBe(0);
    expect(await farm.finalStates.get(l.id)).toBeNull();
    expect(gate.isOpen()).toBe(false);
    gate.stop();
    down.close();
  });

  it('spends an attempt on a transient failure and ends the job failed with its code on the last one', async () => {
    const { settler } = workerParts();
    const l = await lease(generation(7), 2);
    const failed: Attempt = { job: generation(7), outcome: { kind: 'failed', failure: new InferenceError('the UNet fell over') } };
    await settler.settle(l, failed);
    expect(await farm.queue.getJobState(l.id)).toBe('delayed');
    expect((await farm.queue.getJob(l.id))!.attemptsMade).toBe(1);
    expect(await farm.finalStates.get(l.id)).toBeNull();

    await (await farm.queue.getJob(l.id))!.promote(); // its backoff over
    const last = await leaseAgain(l.id);
    await settler.settle(last, failed);
    expect(await farm.queue.getJobState(l.id)).toBe('failed');
    expect(await farm.finalStates.get(l.id)).toMatchObject({ status: 'failed', error: { code: 'inference_failed', message: 'the UNet fell over' } });
  });
});

describe('the edit state, stored after completion', () => {
  it('never delays a job; when it could not be stored, an edit of the job encodes its image again', async () => {
    const down = new ObjectStore({ ...testStoreOptions(), endpoint: 'http://127.0.0.1:9' });
    // The first worker cannot store edit state (that S3 is down); its images go to the real one.
    const first = workerParts(farm.store, down);
    const source = await lease(generation(8));
    const attempt = await run(first.runner, source);
    expect(attempt.outcome.kind).toBe('succeeded'); // completed although its edit state is not stored
    await first.settler.settle(source, attempt);
    expect(await farm.queue.getJobState(source.id)).toBe('completed');
    await first.editSources.stored(source.id);
    expect(await farm.redis.exists(first.editSources.indexKey(source.id))).toBe(0);

    const other = workerParts(); // another worker: nothing in memory
    const edit = await lease(
      queuedJob({ type: 'edit', source: source.id, prompt: 'a yellow background', mask: { rects: [[0, 0, 32, 32]] }, steps: 2, guidanceScale: 1, format: 'png', priority: 5, webhookEvents: ['completed'] }, {
        seed: 9,
        model: 'shapes-ldm',
        tenant: 'tenant-a',
        sourceJob: { imageKey: `results/${source.id}.png`, prompt: 'a red circle on a blue background' },
      }),
    );
    const edited = await run(other.runner, edit);
    expect(edited.outcome).toMatchObject({ kind: 'succeeded', output: { edit: { source: 'reencoded' } } });
    down.close();
  });
});
