/**
 * The whole path with real components: HTTP API → BullMQ on the real Redis → a worker running
 * the bundled ONNX model → the S3 API server → a presigned URL downloaded over plain HTTP.
 */
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import type { FarmWorker } from '@farm/worker';
import { EventStreamReader, ServerEvent } from '../support/event-stream';
import { ADMIN_KEY, Harness, postJob, TestApi, useFarm, waitForJob } from '../support/harness';

let farm: Harness;
let api: TestApi;
let worker: FarmWorker;

useFarm(async (f, a) => {
  farm = f;
  api = a;
  worker = await f.startWorker();
});

describe('the farm end to end', () => {
  it('generates an image and serves it through a presigned URL', async () => {
    const submit = await postJob(api, {
      type: 'generate',
      prompt: 'a red circle on a blue background',
      width: 192,
      height: 128,
      steps: 4,
      seed: 42,
    });
    expect(submit.status).toBe(202);
    expect(submit.body).toMatchObject({ links: { self: `/v1/jobs/${submit.body.id}` } });
    expect(submit.body.status).toBe('queued');
    expect(submit.headers.get('location')).toBe(`/v1/jobs/${submit.body.id}`);

    const job = await waitForJob(api, submit.body.id);
    expect(job.status).toBe('succeeded');
    expect(job.progress).toEqual({ step: 4, total: 4 });
    expect(job.timings.queueMs).toBeGreaterThanOrEqual(0);
    expect(job.timings.computeMs).toBeGreaterThan(0);
    expect(job.timings.totalMs).toBeGreaterThanOrEqual(job.timings.computeMs);
    expect(job.result).toMatchObject({ width: 192, height: 128, contentType: 'image/png', key: `results/${job.id}.png` });

    const download = await fetch(job.result.url);
    expect(download.status).toBe(200);
    const meta = await sharp(Buffer.from(await download.arrayBuffer())).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 192, height: 128 });
  });

  it('gives the same image for the same seed and another for another seed', async () => {
    const body = { type: 'generate', prompt: 'a green square on a white background', width: 128, height: 128, format: 'png' };
    const ids = await Promise.all([7, 7, 8].map(async (seed) => (await postJob(api, { ...body, seed })).body.id as string));
    const images = await Promise.all(
      ids.map(async (id) => {
        const job = await waitForJob(api, id);
        return sharp(Buffer.from(await (await fetch(job.result.url)).arrayBuffer())).raw().toBuffer();
      }),
    );
    // The same seed gives the same image up to float rounding: the two jobs may share UNet calls
    // with different partners (batch sizes), whose kernels round the last bits differently.
    expect(levelsApart(images[0], images[1])).toBeLessThanOrEqual(1);
    expect(levelsApart(images[0], images[2])).toBeGreaterThan(16);
  });

  it('encodes jpeg and webp on request', async () => {
    for (const format of ['jpeg', 'webp'] as const) {
      const { body } = await postJob(api, { type: 'generate', prompt: 'a blue background', width: 64, height: 64, format });
      const job = await waitForJob(api, body.id);
      expect(job.result.contentType).toBe(`image/${format}`);
      const meta = await sharp(Buffer.from(await (await fetch(job.result.url)).arrayBuffer())).metadata();
      expect(meta.format).toBe(format);
    }
  });

  it('reports a job that fails in the worker as failed with a reason, and keeps working', async () => {
    // A producer that bypasses the API's validation (an old client, a script) enqueues garbage.
    const garbage = { request: { type: 'generate', prompt: 'a red circle', width: 13, steps: 4, seed: 1, model: 'shapes-ldm' }, tenant: 'tenant-a' };
    const bad = await farm.queue.add('generate', garbage as never, { jobId: 'bad-job-1', attempts: 3 });
    const failed = await waitForJob(api, bad.id!);
    expect(failed.status).toBe('failed');
    expect(failed.error.code).toBe('invalid_job');
    expect(failed.error.message).toMatch(/request\.width/);
    expect(failed.attempts).toBe(1); // bad input is not retried

    const next = await postJob(api, { type: 'generate', prompt: 'a yellow triangle on a black background', width: 64, height: 64 });
    expect((await waitForJob(api, next.body.id)).status).toBe('succeeded');
  });

  it('answers 404 for an unknown job', async () => {
    const res = await api.fetch(`/v1/jobs/does-not-exist`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no job with id does-not-exist' } });
  });

  it('exposes health and Prometheus metrics that count what happened', async () => {
    const health = await api.fetch(`/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', redis: true, s3: true });

    const apiMetrics = await (await api.as(ADMIN_KEY).fetch(`/metrics`)).text(); // operator information: the admin key
    expect(apiMetrics).toMatch(/farm_jobs_submitted_total\{type="generate",app="api"\} [1-9]/);
    expect(apiMetrics).toMatch(/farm_queue_jobs\{state="completed",model="shapes-ldm",app="api"\} [1-9]/);
    expect(apiMetrics).toMatch(/farm_http_request_duration_seconds_bucket\{.*route="\/v1\/jobs\/:id"/);

    const text = await worker.metrics.registry.metrics();
    expect(text).toMatch(/farm_jobs_total\{type="generate",outcome="succeeded",app="worker",worker="[^"]+",model="shapes-ldm"\} [1-9]/);
    expect(text).toMatch(/farm_job_failures_total\{type="generate",reason="invalid_job"/);
    expect(text).toMatch(/farm_denoise_steps_total\{app="worker",worker="[^"]+",model="shapes-ldm"\} [1-9]/);
    expect(text).toMatch(/farm_unet_batch_size_count/);
    expect(text).toMatch(/farm_job_queue_wait_seconds_bucket/);

    // Prometheus' own linter, where installed (Debian: apt-get install prometheus).
    if (spawnSync('promtool', ['--version']).status === 0) {
      for (const exposition of [apiMetrics, text]) {
        const check = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
        expect(check.stdout + check.stderr).toBe('');
        expect(check.status).toBe(0);
      }
    }
  });
});

describe('DELETE /v1/jobs/:id', () => {
  it('cancels a running job at its next step; its lanes leave the batch and others go on', async () => {
    const { body: long } = await postJob(api, { type: 'generate', prompt: 'a red background', width: 512, height: 512, steps: 40 });
    const { body: other } = await postJob(api, { type: 'generate', prompt: 'a blue background', width: 64, height: 64, steps: 4 });
    // It is running: the worker holds it and has taken at least one of its steps.
    let before: Record<string, any> = {};
    for (let i = 0; i < 400 && !(before.status === 'running' && before.progress.step >= 1); i++) {
      await new Promise((r) => setTimeout(r, 25));
      before = (await (await api.fetch(`/v1/jobs/${long.id}`)).json()) as Record<string, any>;
    }
    expect(before.status).toBe('running');
    expect(before.progress.step).toBeGreaterThanOrEqual(1);
    expect(await farm.queue.getJobState(long.id)).toBe('active');
    const res = await api.fetch(`/v1/jobs/${long.id}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { status: string }).status).toBe('canceled');
    const job = await waitForJob(api, long.id);
    expect(job.status).toBe('canceled');
    expect(job.progress.step).toBeLessThan(40); // its lanes left the batch before its last step
    expect(await farm.store.keys(`results/${long.id}`)).toEqual([]);
    expect((await waitForJob(api, other.id)).status).toBe('succeeded');
    expect((await api.fetch(`/v1/jobs/${long.id}`, { method: 'DELETE' })).status).toBe(409);
  });

  it('cancels a queued job at once, and the worker never renders it', async () => {
    await farm.queue.pause();
    try {
      const { body } = await postJob(api, { type: 'generate', prompt: 'a red background', width: 64, height: 64 });
      const res = await api.fetch(`/v1/jobs/${body.id}`, { method: 'DELETE' });
      expect(((await res.json()) as { status: string }).status).toBe('canceled');
      expect(((await (await api.fetch(`/v1/jobs/${body.id}`)).json()) as { status: string }).status).toBe('canceled');
      await farm.queue.resume();
      // The worker takes it, sees the cancellation and fails it without rendering.
      for (let i = 0; i < 200 && (await farm.queue.getJobState(body.id)) !== 'failed'; i++) await new Promise((r) => setTimeout(r, 25));
      expect((await farm.queue.getJob(body.id))?.failedReason).toBe('canceled before it started');
      const job = await waitForJob(api, body.id);
      expect(job).toMatchObject({ status: 'canceled', error: { code: 'canceled' } });
      expect(job.result).toBeUndefined();
    } finally {
      await farm.queue.resume();
    }
  });
});

/** Reads an SSE stream to its end; returns the events in order. */
async function readEvents(path: string): Promise<ServerEvent[]> {
  const stream = await EventStreamReader.open(api, path);
  expect(stream.response.headers.get('content-type')).toMatch(/text\/event-stream/);
  return stream.all();
}

describe('GET /v1/jobs/:id/events', () => {
  it('streams queued/started, progress in order, and ends with the final job', async () => {
    // Hold the queue until the stream is open, so every step is relayed live.
    await farm.queue.pause();
    const { body } = await postJob(api, { type: 'generate', prompt: 'a purple circle on a green background', width: 128, height: 128, steps: 6 });
    const stream = await EventStreamReader.open(api, `/v1/jobs/${body.id}/events`);
    await stream.waitFor('queued'); // the stream is live: nothing after this can be missed
    await farm.queue.resume();
    const events = await stream.all();
    const names = events.map((e) => e.event);
    expect(names[names.length - 1]).toBe('succeeded');
    const steps = events.filter((e) => e.event === 'progress').map((e) => e.data.step);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(steps[steps.length - 1]).toBe(6);
    expect(names[0]).toBe('queued');
    const preview = events.find((e) => e.event === 'progress')!.data.preview as string;
    expect(preview).toMatch(/^data:image\/png;base64,/);
    const previewMeta = await sharp(Buffer.from(preview.split(',')[1], 'base64')).metadata();
    expect([previewMeta.width, previewMeta.height]).toEqual([16, 16]); // latent resolution
    expect(events[events.length - 1].data).toMatchObject({ id: body.id, status: 'succeeded', result: { width: 128 } });
  });

  it('sends a finished job’s final state at once, and 404s unknown ids', async () => {
    const { body } = await postJob(api, { type: 'generate', prompt: 'a white background', width: 64, height: 64 });
    await waitForJob(api, body.id);
    const events = await readEvents(`/v1/jobs/${body.id}/events`);
    expect(events.map((e) => e.event)).toEqual(['succeeded']);
    expect((await api.fetch(`/v1/jobs/nope/events`)).status).toBe(404);
  });
});

/** The largest difference between two images' bytes, in levels of 255. */
function levelsApart(a: Buffer, b: Buffer): number {
  let most = 0;
  for (let i = 0; i < a.length; i++) most = Math.max(most, Math.abs(a[i] - b[i]));
  return most;
}
