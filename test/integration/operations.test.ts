/**
 * What operators rely on, against a real farm: liveness apart from readiness on the API and the
 * worker (a worker whose engine holds jobs without finishing a step in time is reported stalled),
 * stable worker ids claimed in Redis, and both Prometheus expositions as `promtool check
 * metrics` wants them.
 */
import { spawnSync } from 'node:child_process';
import { claimWorkerId } from '@farm/platform';
import type { FarmWorker } from '@farm/worker';
import { ADMIN_KEY, Harness, TestApi, postJob, waitForJob } from '../support/harness';

let farm: Harness;
let api: TestApi;
let worker: FarmWorker;
let workerBase: string;

beforeAll(async () => {
  farm = new Harness();
  api = await farm.startApi();
  // A stall limit shorter than any step: while a job denoises, every probe between two step ends sees a stall.
  worker = await farm.startWorker({ statusPort: 0, engineStallMs: 1 });
  workerBase = `http://127.0.0.1:${worker.statusPort}`;
});
afterAll(() => farm.close());

describe('probes', () => {
  it('API: /livez answers without asking Redis or S3; /readyz and /healthz ask both', async () => {
    expect(await (await api.as(null).fetch('/livez')).json()).toEqual({ status: 'ok' });
    for (const path of ['/readyz', '/healthz']) {
      const res = await api.as(null).fetch(path);
      expect({ path, status: res.status, body: await res.json() }).toEqual({ path, status: 200, body: { status: 'ok', redis: true, s3: true } });
    }
  });

  it('worker: /livez reports a stalled engine while it holds a job past the stall limit, and recovers when idle', async () => {
    const idle = await fetch(`${workerBase}/livez`);
    expect({ status: idle.status, body: await idle.json() }).toEqual({ status: 200, body: { status: 'ok', engine: { alive: true, busy: false, sinceProgressMs: 0 } } });
    const { body } = await postJob(api, { type: 'generate', prompt: 'a red circle on a blue background', width: 256, height: 256, steps: 8, seed: 1 });
    const seen: Array<{ status: number; body: any }> = [];
    for (;;) {
      const res = await fetch(`${workerBase}/livez`);
      seen.push({ status: res.status, body: await res.json() });
      const job = (await (await api.fetch(`/v1/jobs/${body.id}`)).json()) as { status: string };
      if (job.status === 'succeeded' || job.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await waitForJob(api, body.id)).status).toBe('succeeded');
    expect(seen).toContainEqual({ status: 503, body: { status: 'stalled', engine: { alive: false, busy: true, sinceProgressMs: expect.any(Number) } } });
    const after = await fetch(`${workerBase}/livez`);
    expect(after.status).toBe(200);
    expect((await fetch(`${workerBase}/readyz`)).status).toBe(200);
  });
});

describe('worker ids', () => {
  it('claims <host>-<index>: the lowest free index, given back on release, lost when it runs out', async () => {
    const prefix = farm.keyPrefix;
    const first = await claimWorkerId(farm.redis, prefix, 'gpu box.local');
    const second = await claimWorkerId(farm.redis, prefix, 'gpu box.local');
    expect([first.id, second.id]).toEqual(['gpu-box.local-0', 'gpu-box.local-1']);
    await first.release();
    const again = await claimWorkerId(farm.redis, prefix, 'gpu box.local');
    expect(again.id).toBe('gpu-box.local-0'); // a restarted worker gets its id back
    expect(await again.renew()).toBe(true);
    // A holder that stopped renewing (a crash) loses its id to the next worker.
    await farm.redis.pexpire(`${prefix}:worker-ids:gpu-box.local-1`, 1);
    await new Promise((r) => setTimeout(r, 20));
    const successor = await claimWorkerId(farm.redis, prefix, 'gpu box.local');
    expect(successor.id).toBe('gpu-box.local-1');
    expect(await second.renew()).toBe(false);
    await Promise.all([again.release(), successor.release(), second.release()]);
    expect(await farm.redis.keys(`${prefix}:worker-ids:*`)).toEqual([]);
  });
});

describe('Prometheus expositions', () => {
  const promtool = (text: string) => spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });

  it('passes `promtool check metrics`, API and worker, with series of every kind', async () => {
    expect(spawnSync('promtool', ['--version']).status).toBe(0); // .ci/run installs it (Debian's prometheus)
    const apiText = await (await api.as(ADMIN_KEY).fetch('/metrics')).text();
    const workerText = await (await fetch(`${workerBase}/metrics`)).text();
    expect(apiText).toContain('farm_jobs_submitted_total{');
    expect(workerText).toMatch(/farm_images_total\{[^}]*worker="[^"]+"/);
    expect(workerText).toMatch(/farm_job_latency_seconds_bucket\{[^}]*model="shapes-ldm"/);
    for (const [app, text] of [['api', apiText], ['worker', workerText]]) {
      const { status, stdout, stderr } = promtool(text);
      expect({ app, status, problems: `${stdout}${stderr}` }).toEqual({ app, status: 0, problems: '' });
    }
  });

  it('exports counters for rates, not precomputed per-second gauges', async () => {
    const text = `${await (await api.as(ADMIN_KEY).fetch('/metrics')).text()}${await (await fetch(`${workerBase}/metrics`)).text()}`;
    expect(text).not.toMatch(/per_second/);
    expect(text).toMatch(/# TYPE farm_images_total counter/);
    expect(text).toMatch(/# TYPE farm_denoise_steps_total counter/);
  });
});
