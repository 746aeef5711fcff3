/**
 * Worker processes under stress, with real processes, Redis and S3 servers: a rolling-deploy
 * SIGTERM hands in-flight jobs back at once and exits 0; jobs wait out an S3 outage without
 * spending attempts, within the storage budget.
 */
import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { EmbeddedS3 } from '@farm/farm';
import { DEFAULT_MODEL, FarmQueue, ModelQueues, ObjectStore, openQueue } from '@farm/platform';
import { faultFigures } from '../support/fault-figures';
import { ADMIN_KEY, Harness, adminWorkers, inspectJob, postJob, QUEUE_PREFIX, TestApi, testStoreOptions, until, useFarm, waitForJob } from '../support/harness';
import { scratchDir } from '../support/scratch-dir';

const WORKER_MAIN = path.resolve(__dirname, '../../apps/worker/dist/main.js');

function startWorkerProcess(farm: Harness, env: Record<string, string>): ChildProcess {
  return fork(WORKER_MAIN, [], {
    env: { ...process.env, QUEUE_NAME: farm.queueName, QUEUE_PREFIX, WORKER_METRICS_PORT: '0', ...env },
    stdio: 'pipe',
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('worker shutdown (SIGTERM)', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  });

  it('hands in-flight jobs back to the queue at once, exits 0, and another worker finishes them once each', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await postJob(api, { type: 'generate', prompt: 'a red square on a blue background', width: 256, height: 256, steps: 8, seed: i })).body.id);
    }
    // Grace 0: nothing may wait; every held job must go straight back to waiting.
    const first = startWorkerProcess(farm, { SHUTDOWN_GRACE_MS: '0', MAX_IN_FLIGHT: '3', LOCK_DURATION_MS: '60000' });
    await until(async () => (await farm.queue.getActiveCount()) > 0);
    const exited = exitOf(first);
    first.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Back in the queue at once, not stuck in "active" until a 60 s lock expires.
    expect(await farm.queue.getActiveCount()).toBe(0);
    expect(await farm.queue.getJobCountByTypes('waiting', 'prioritized')).toBeGreaterThan(0);

    const second = startWorkerProcess(farm, { SHUTDOWN_GRACE_MS: '20000' });
    try {
      const jobs = await Promise.all(ids.map((id) => waitForJob(api, id, 120000)));
      expect(jobs.map((j) => j.status)).toEqual(Array(6).fill('succeeded'));
      expect(await farm.queue.getCompletedCount()).toBe(6);
      expect(await farm.queue.getFailedCount()).toBe(0);
      expect(await faultFigures('worker SIGTERM mid-batch, no grace', api, farm.store, ids)).toEqual({ accepted: 6, succeeded: 6, failed: 0, canceled: 0, lost: 0, twice: 0 });
    } finally {
      const done = exitOf(second);
      second.kill('SIGTERM');
      expect(await done).toBe(0);
    }
  }, 120000);
});

describe('a fleet of worker processes', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  });

  it('announces both workers, spreads jobs over them, and finishes every job exactly once', async () => {
    const workers = ['fleet-a', 'fleet-b'].map((id) => startWorkerProcess(farm, { WORKER_ID: id, MAX_IN_FLIGHT: '2' }));
    try {
      await until(async () => (await adminWorkers(api)).length === 2);
      const listed = await adminWorkers(api);
      expect(listed.map((w) => w.id).sort()).toEqual(['fleet-a', 'fleet-b']);
      expect(listed[0]).toMatchObject({ model: 'shapes-ldm', executionProvider: 'cpu', maxInFlight: 2, host: expect.any(String), pid: expect.any(Number) });

      const ids: string[] = [];
      for (let i = 0; i < 16; i++) {
        ids.push((await postJob(api, { type: 'generate', prompt: 'a green square on a red background', width: 128, height: 128, seed: i })).body.id);
      }
      const jobs = await Promise.all(ids.map((id) => waitForJob(api, id, 120000)));
      expect(jobs.every((j) => j.status === 'succeeded')).toBe(true);
      const ran = await Promise.all(ids.map((id) => inspectJob(api, id)));
      expect(new Set(ran.map((j) => j.workerId))).toEqual(new Set(['fleet-a', 'fleet-b']));
      expect(jobs.every((j) => j.attempts === 1)).toBe(true);
      expect(await farm.queue.getCompletedCount()).toBe(16);
    } finally {
      await Promise.all(workers.map((w) => { const done = exitOf(w); w.kill('SIGTERM'); return done; }));
    }
    // A stopped worker leaves the list at once.
    expect(await adminWorkers(api)).toEqual([]);
  });
});

describe('several models', () => {
  let farm: Harness;
  let api: TestApi;
  let alt: FarmQueue;
  beforeAll(async () => {
    farm = new Harness();
    alt = openQueue({ QUEUE_NAME: farm.queueName, QUEUE_PREFIX }, farm.redis, 'shapes-alt');
    api = await farm.startApi({ queues: new ModelQueues(new Map([[DEFAULT_MODEL, farm.queue], ['shapes-alt', alt]])) });
  });
  afterAll(async () => {
    await alt.obliterate({ force: true });
    await alt.close();
    await farm.close();
  });

  it('sends a job only to workers that serve its model', async () => {
    const workers = [
      startWorkerProcess(farm, { WORKER_ID: 'serves-default' }),
      startWorkerProcess(farm, { WORKER_ID: 'serves-alt', MODEL_NAME: 'shapes-alt' }),
    ];
    try {
      const submit = (model?: string, seed = 0) => postJob(api, { type: 'generate', prompt: 'a blue square', width: 64, height: 64, seed, ...(model ? { model } : {}) });
      const ids = [];
      for (let i = 0; i < 4; i++) ids.push((await submit(undefined, i)).body.id, (await submit('shapes-alt', i)).body.id);
      const jobs = await Promise.all(ids.map((id) => waitForJob(api, id, 120000)));
      for (const job of jobs) {
        expect(job.status).toBe('succeeded');
        expect((await inspectJob(api, job.id)).workerId).toBe(job.request.model === 'shapes-alt' ? 'serves-alt' : 'serves-default');
      }
      expect(jobs.filter((j) => j.request.model === DEFAULT_MODEL)).toHaveLength(4);
      const unknown = await submit('no-such-model');
      expect(unknown.status).toBe(400);
      expect(unknown.body.error.fields).toEqual([{ path: 'model', message: 'unknown model "no-such-model"; this farm serves: shapes-ldm, shapes-alt' }]);
      expect(Object.fromEntries((await adminWorkers(api)).map((w) => [w.id, w.model]))).toEqual({ 'serves-default': 'shapes-ldm', 'serves-alt': 'shapes-alt' });
    } finally {
      await Promise.all(workers.map((w) => { const done = exitOf(w); w.kill('SIGTERM'); return done; }));
    }
  });
});

describe('S3 outage', () => {
  let farm: Harness;
  let api: TestApi;
  let s3: EmbeddedS3;
  let port: number;
  let store: ObjectStore;
  const directory = scratchDir('farm-s3-outage-');
  // The credentials the worker's store signs with, across every restart of this S3.
  const credentials = { accessKeyId: testStoreOptions().accessKeyId!, secretAccessKey: testStoreOptions().secretAccessKey! };

  beforeAll(async () => {
    farm = new Harness();
    api = await farm.startApi({ jobAttempts: 2, jobBackoffMs: 100 });
    s3 = await EmbeddedS3.start({ directory, bucket: 'outage', credentials });
    port = Number(new URL(s3.endpoint).port);
    store = new ObjectStore({ ...testStoreOptions(), endpoint: s3.endpoint, bucket: 'outage' });
  });
  afterAll(async () => {
    await farm.close();
    store.close();
    await s3.close().catch(() => undefined);
  });

  it('puts jobs back without spending attempts while S3 is down, and finishes them once it is back', async () => {
    const worker = await farm.startWorker({ store }); // the worker stores results in the S3 that will go away
    await s3.close(); // S3 goes away
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await postJob(api, { type: 'generate', prompt: 'a blue circle on a yellow background', width: 64, height: 64, seed: i })).body.id);
    // Jobs that found storage down went back to the queue, their attempts not spent, and the
    // worker holds none while the store is away.
    await until(async () => (await farm.queue.getDelayedCount()) > 0 && (await farm.queue.getActiveCount()) === 0);
    for (const id of ids) {
      expect((await farm.queue.getJob(id))?.attemptsMade).toBe(0);
      expect(((await (await api.fetch(`/v1/jobs/${id}`)).json()) as { status: string }).status).toBe('queued');
    }

    s3 = await EmbeddedS3.start({ directory, bucket: 'outage', port, credentials }); // S3 returns
    const jobs = await Promise.all(ids.map((id) => waitForJob(api, id, 60000)));
    expect(jobs.map((j) => j.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(jobs.map((j) => j.attempts)).toEqual([1, 1, 1]); // the completion is the only attempt
    expect(await faultFigures('S3 down before jobs arrive, then back', api, store, ids)).toEqual({ accepted: 3, succeeded: 3, failed: 0, canceled: 0, lost: 0, twice: 0 });
    await farm.stopWorker(worker);
  });

  it('fails none of 200 jobs for a 30-second outage: a worker process stops taking jobs, puts back what found S3 down, and finishes everything once S3 returns', async () => {
    // Jobs of this queue that ended before this test (the test above).
    const ended = async () => (await farm.queue.getCompletedCount()) + (await farm.queue.getFailedCount());
    const endedBefore = await ended();
    // The default storage budget (STORAGE_OUTAGE_BUDGET_MS, 5 minutes) covers the outage; tiny
    // jobs (64×64, one step), many at a time, keep the test short.
    const worker = startWorkerProcess(farm, { WORKER_ID: 'outage-worker', MAX_IN_FLIGHT: '32', S3_ENDPOINT: s3.endpoint, S3_BUCKET: 'outage', S3_FORCE_PATH_STYLE: 'true' });
    try {
      const ids: string[] = [];
      const submitting = (async () => {
        for (let i = 0; i < 200; i++) {
          const { status, body } = await postJob(api, { type: 'generate', prompt: 'a white square on a black background', width: 64, height: 64, steps: 1, seed: i });
          if (status === 202) ids.push(body.id);
        }
      })();
      await until(async () => (await ended()) > endedBefore, 60000); // the worker is at work
      await s3.close(); // S3 goes away for 30 s
      await new Promise((r) => setTimeout(r, 30000));
      s3 = await EmbeddedS3.start({ directory, bucket: 'outage', port, credentials });
      // The outage hit jobs: some found S3 down and went back to the queue (the settler notes
      // when each first did), and jobs were still waiting when it ended.
      const putBack = await farm.redis.exists(...ids.map((id) => `${farm.keyPrefix}:storage-wait:${id}`));
      const waiting = ids.length - ((await ended()) - endedBefore);
      await submitting;
      // Every accepted job ends (or the deadline passes: those still unfinished are lost).
      await until(async () => (await ended()) - endedBefore >= ids.length, 120000).catch(() => undefined);
      console.log(`S3 outage of 30 s: ${putBack} jobs put back after finding S3 down, ${waiting} waiting when it returned`);
      expect(await faultFigures('S3 down for 30 s under 200 jobs', api, store, ids)).toEqual({ accepted: 200, succeeded: 200, failed: 0, canceled: 0, lost: 0, twice: 0 });
      expect(putBack).toBeGreaterThan(0);
      expect(waiting).toBeGreaterThan(0);
    } finally {
      const done = exitOf(worker);
      worker.kill('SIGTERM');
      expect(await done).toBe(0);
    }
  }, 180000);

  it('fails a job with a clear reason once the outage outlasts its budget and its retries are spent, lists it as dead letter, and retries it on request', async () => {
    const worker = await farm.startWorker({ store, storageOutageBudgetMs: 0 });
    await s3.close();
    const { body } = await postJob(api, { type: 'generate', prompt: 'a black background', width: 64, height: 64 });
    const failed = await waitForJob(api, body.id, 60000);
    expect(failed).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'storage_unavailable' } });
    expect(failed.error.message).toMatch(/could not store the result/);

    const admin = api.as(ADMIN_KEY);
    const deadLetter = (await (await admin.fetch('/admin/dead-letter')).json()) as { jobs: Array<Record<string, any>> };
    expect(deadLetter.jobs).toContainEqual(expect.objectContaining({ id: body.id, tenant: 'tenant-a', error: expect.objectContaining({ code: 'storage_unavailable' }) }));

    s3 = await EmbeddedS3.start({ directory, bucket: 'outage', port, credentials });
    expect(await faultFigures('S3 down past the storage budget (0 here)', api, store, [body.id])).toEqual({ accepted: 1, succeeded: 0, failed: 1, canceled: 0, lost: 0, twice: 0 });
    expect((await admin.fetch(`/admin/dead-letter/${body.id}/retry`, { method: 'POST' })).status).toBe(202);
    expect((await waitForJob(api, body.id, 60000)).status).toBe('succeeded');
    await farm.stopWorker(worker);
  });
});

describe('a worker killed with SIGKILL in the middle of a stream batch', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  });

  it('loses no job: another worker takes them over after the lock expires, one final image each', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await postJob(api, { type: 'generate', prompt: 'a yellow circle on a purple background', width: 256, height: 256, steps: 12, seed: i })).body.id);
    }
    const doomed = startWorkerProcess(farm, { WORKER_ID: 'doomed', LOCK_DURATION_MS: '2000', MAX_IN_FLIGHT: '4' });
    await until(async () => {
      const active = await farm.queue.getActive();
      return active.some((j) => typeof j.progress === 'object' && (j.progress as { step: number }).step >= 1);
    });
    const died = exitOf(doomed);
    doomed.kill('SIGKILL');
    await died;
    expect(await farm.queue.getActiveCount()).toBeGreaterThan(0); // its jobs are orphaned, still locked

    // The rescuer checks for stalled jobs every lock duration; a longer lock than the doomed
    // worker's keeps its own jobs' locks safe while model calls hold its event loop on a loaded machine.
    const rescuer = startWorkerProcess(farm, { WORKER_ID: 'rescuer', LOCK_DURATION_MS: '5000' });
    try {
      const jobs = await Promise.all(ids.map((id) => waitForJob(api, id, 120000)));
      expect(jobs.map((j) => j.status)).toEqual(Array(6).fill('succeeded'));
      const ran = await Promise.all(ids.map((id) => inspectJob(api, id)));
      expect(ran.every((j) => j.workerId === 'rescuer' || j.workerId === 'doomed')).toBe(true);
      expect(ran.some((j) => j.workerId === 'rescuer')).toBe(true);
      expect(await farm.queue.getCompletedCount()).toBe(6);
      // Exactly one image per job, under its own key, though some were rendered twice.
      for (const job of jobs) expect(await farm.store.keys(`results/${job.id}`)).toEqual([job.result.key]);
      expect(await faultFigures('worker SIGKILL mid-batch, another takes over', api, farm.store, ids)).toEqual({ accepted: 6, succeeded: 6, failed: 0, canceled: 0, lost: 0, twice: 0 });
    } finally {
      const done = exitOf(rescuer);
      rescuer.kill('SIGTERM');
      await done;
    }
  });
});
