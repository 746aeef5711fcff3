/**
 * @farm/client and the `farm` command line against the real farm: the API on a free port, an
 * in-process worker on the bundled model, Redis and the embedded S3 — real HTTP all the way.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { FarmApiError, FarmClient, type JobEvent, type JobProgress } from '@farm/client';
import { type CliIo, ProgressBar, renderBar, run } from '@farm/cli';
import { Harness, TestApi } from '../support/harness';

let farm: Harness;
let api: TestApi;
let base: string;
let key: string;
let client: FarmClient;
let tmp: string;

beforeAll(async () => {
  farm = new Harness();
  api = await farm.startApi(); // authentication on, with a tenant's key
  base = api.base;
  key = api.key!;
  await farm.startWorker();
  client = new FarmClient({ baseUrl: base, apiKey: key });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'farm-cli-'));
});
afterAll(async () => {
  await farm.close();
  rmSync(tmp, { recursive: true, force: true });
});

const SMALL = { type: 'generate', prompt: 'a red circle on a blue background', width: 128, height: 128, steps: 4, seed: 5 } as const;

/** Runs the CLI with in-memory streams. */
async function cli(argv: string[], options: { tty?: boolean; env?: Record<string, string> } = {}) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isTTY: options.tty },
    env: options.env ?? { FARM_API_KEY: key },
    cwd: tmp,
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

describe('FarmClient', () => {
  it('submits, follows progress in order to the final job, and downloads the image', async () => {
    const queued = await client.submit(SMALL);
    expect(['queued', 'running']).toContain(queued.status);
    expect(queued).toMatchObject({ type: 'generate', request: { width: 128, height: 128, steps: 4 } });

    const progress: JobProgress[] = [];
    const events: JobEvent['type'][] = [];
    const job = await client.waitFor(queued.id, { onProgress: (p) => progress.push(p), onEvent: (e) => events.push(e.type) });
    expect(job).toMatchObject({ id: queued.id, status: 'succeeded', result: { width: 128, height: 128, contentType: 'image/png' } });
    const steps = progress.map((p) => p.step);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
    expect(progress[progress.length - 1]).toMatchObject({ step: 4, total: 4 });
    expect(events[events.length - 1]).toBe('succeeded');

    const image = await client.download(job.result!.url!);
    expect(await sharp(image).metadata()).toMatchObject({ format: 'png', width: 128, height: 128 });
  });

  it('streams typed events that end with the final job', async () => {
    await farm.queue.pause(); // so the stream opens before the job starts
    const { id } = await client.submit({ ...SMALL, seed: 6 });
    const seen: JobEvent[] = [];
    try {
      for await (const event of client.events(id)) {
        if (seen.push(event) === 1) await farm.queue.resume();
      }
    } finally {
      await farm.queue.resume();
    }
    expect(seen[0]).toMatchObject({ type: 'queued', job: { id, status: 'queued' } });
    const last = seen[seen.length - 1];
    expect(last.type).toBe('succeeded');
    expect(last.type === 'succeeded' && last.job.id).toBe(id);
    expect(seen.filter((e) => e.type === 'progress').length).toBeGreaterThan(0);
  });

  it('throws FarmApiError with the code and the offending fields for a bad request', async () => {
    const err = await client.submit({ ...SMALL, width: 100, steps: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmApiError);
    expect(err).toMatchObject({ status: 400, code: 'invalid_request' });
    const fields = (err as FarmApiError).fields!.map((f) => f.path);
    expect(fields).toEqual(expect.arrayContaining(['width', 'steps']));
    expect((err as FarmApiError).message).toMatch(/width: width must be a multiple of 8/);
  });

  it('answers 409 job_finished when canceling a finished job, and 404 for unknown ids', async () => {
    const { id } = await client.submit({ ...SMALL, width: 64, height: 64 });
    await client.waitFor(id);
    await expect(client.cancel(id)).rejects.toMatchObject({ name: 'FarmApiError', status: 409, code: 'job_finished' });
    await expect(client.get('no-such-job')).rejects.toMatchObject({ status: 404, code: 'not_found' });
    await expect(client.waitFor('no-such-job')).rejects.toMatchObject({ status: 404, code: 'not_found' });
  });

  it('cancels a queued job', async () => {
    await farm.queue.pause();
    try {
      const { id } = await client.submit(SMALL);
      expect((await client.cancel(id)).status).toBe('canceled');
      expect(await client.waitFor(id)).toMatchObject({ status: 'canceled', error: { code: 'canceled' } });
    } finally {
      await farm.queue.resume();
    }
  });

  it('falls back to polling when the event stream breaks', async () => {
    const flaky: typeof fetch = async (input, init) => {
      if (String(input).endsWith('/events')) throw new TypeError('fetch failed');
      return fetch(input, init);
    };
    const polling = new FarmClient({ baseUrl: base, apiKey: key, fetch: flaky });
    const { id } = await polling.submit({ ...SMALL, seed: 7 });
    const progress: number[] = [];
    const job = await polling.waitFor(id, { pollIntervalMs: 50, onProgress: (p) => progress.push(p.step) });
    expect(job.status).toBe('succeeded');
    expect(progress[progress.length - 1]).toBe(4);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it('sends the API key to the API only, never to the presigned download URL', async () => {
    const seen: Array<{ url: string; authorization: string | null }> = [];
    const spy: typeof fetch = async (input, init) => {
      seen.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
      return fetch(input, init);
    };
    const keyed = FarmClient.fromEnv({ FARM_API_URL: base, FARM_API_KEY: key }, { fetch: spy });
    const job = await keyed.waitFor((await keyed.submit({ ...SMALL, width: 64, height: 64 })).id);
    expect(job).toMatchObject({ status: 'succeeded' });
    await keyed.download(job.result!.url!);
    expect(await keyed.health()).toEqual({ status: 'ok', redis: true, s3: true });
    const toApi = seen.filter((s) => s.url.startsWith(base));
    expect(toApi.length).toBeGreaterThanOrEqual(3);
    expect(toApi.every((s) => s.authorization === `Bearer ${key}`)).toBe(true);
    const s3 = seen.filter((s) => !s.url.startsWith(base));
    expect(s3).toHaveLength(1);
    expect(s3[0].authorization).toBeNull();
  });

  it('answers 401 without a key, and replays a submission with the same Idempotency-Key', async () => {
    await expect(new FarmClient({ baseUrl: base }).workers()).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    const first = await client.submit({ ...SMALL, width: 64, height: 64, seed: 9 }, { idempotencyKey: 'client-cli-1' });
    const again = await client.submit({ ...SMALL, width: 64, height: 64, seed: 9 }, { idempotencyKey: 'client-cli-1' });
    expect(again.id).toBe(first.id);
    expect((await client.waitFor(first.id)).status).toBe('succeeded');
  });

  it('reports an unreachable API as a network_error', async () => {
    const nowhere = new FarmClient({ baseUrl: 'http://127.0.0.1:1' });
    await expect(nowhere.health()).rejects.toMatchObject({ status: 0, code: 'network_error', message: /cannot reach http:\/\/127\.0\.0\.1:1\/healthz: ECONNREFUSED/ });
  });
});

describe('farm (CLI)', () => {
  let generatedId: string;
  const outFile = () => path.join(tmp, 'out.png');

  it('generate: writes the image, draws progress on stderr, prints a JSON summary', async () => {
    const { code, stdout, stderr } = await cli(['generate', 'a red circle on a blue background', '--width', '128', '--height', '128', '--seed', '3', '-o', outFile(), '--api', base]);
    expect(stderr).toMatch(/\[#+\] 4\/4\n/);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({ status: 'succeeded', output: outFile(), width: 128, height: 128, contentType: 'image/png', seed: 3 });
    generatedId = summary.id;
    expect(stderr).toContain(`job ${generatedId} queued`);
    // Not a terminal: one line per step, no carriage returns.
    expect(stderr).not.toContain('\r');
    expect(await sharp(readFileSync(outFile())).metadata()).toMatchObject({ format: 'png', width: 128, height: 128 });
  });

  it('status: prints the job JSON (key from --key)', async () => {
    const { code, stdout } = await cli(['status', generatedId, '--api', base, '--key', key], { env: {} });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ id: generatedId, status: 'succeeded', progress: { step: 4, total: 4 }, result: { width: 128 } });
  });

  it('takes the API URL from FARM_API_URL, and redraws the bar with \\r on a terminal', async () => {
    const file = path.join(tmp, 'env.webp');
    const { code, stdout, stderr } = await cli(['generate', 'a blue background', '--width', '64', '--height', '64', '-o', file], { tty: true, env: { FARM_API_URL: base, FARM_API_KEY: key } });
    expect(stderr).toMatch(/\r\[#+\] 4\/4\n/);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).contentType).toBe('image/webp'); // format from the file name
    expect((await sharp(readFileSync(file)).metadata()).format).toBe('webp');
  });

  it('edit: re-renders a rectangle of a finished job, and edits an uploaded image with a mask file', async () => {
    const rectOut = path.join(tmp, 'edit-rect.png');
    const byId = await cli(['edit', generatedId, 'a yellow square', '--rect', '32,32,48,48', '--seed', '1', '-o', rectOut, '--api', base]);
    expect(byId.stderr).toMatch(/4\/4/);
    expect(byId.code).toBe(0);
    expect(JSON.parse(byId.stdout)).toMatchObject({ type: 'edit', status: 'succeeded', width: 128, height: 128 });

    const mask = await sharp({ create: { width: 128, height: 128, channels: 3, background: '#000' } })
      .composite([{ input: await sharp({ create: { width: 32, height: 32, channels: 3, background: '#fff' } }).png().toBuffer(), left: 48, top: 48 }])
      .png()
      .toBuffer();
    writeFileSync(path.join(tmp, 'mask.png'), mask);
    const byFile = await cli(['edit', 'out.png', 'a green circle', '--mask', 'mask.png', '--strength', '0.9', '-o', 'edit-mask.jpg', '--api', base]);
    expect(byFile.code).toBe(0);
    const summary = JSON.parse(byFile.stdout);
    expect(summary).toMatchObject({ type: 'edit', status: 'succeeded', contentType: 'image/jpeg' });
    const job = await client.get(summary.id);
    expect(job.result).toMatchObject({ source: 'upload' });
    expect(await sharp(readFileSync(path.join(tmp, 'edit-mask.jpg'))).metadata()).toMatchObject({ format: 'jpeg', width: 128, height: 128 });

    writeFileSync(path.join(tmp, 'paint.json'), JSON.stringify([{ prompt: 'a red background', mask: { rects: [[16, 16, 48, 48]] } }]));
    const painted = await cli(['edit', generatedId, 'a blue background', '--regions', 'paint.json', '--api', base]);
    expect(painted.code).toBe(0);
    const paintedJob = await client.get(JSON.parse(painted.stdout).id);
    expect(paintedJob.request).toMatchObject({ regions: [{ prompt: 'a red background', mask: { rects: [[16, 16, 48, 48]] } }] });
    expect(paintedJob.result?.recomputedFraction).toBeGreaterThan(0);
  });

  it('exits non-zero and names the field when the API refuses the request', async () => {
    const { code, stdout, stderr } = await cli(['generate', 'a red circle', '--width', '100', '-o', path.join(tmp, 'bad.png'), '--api', base]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/width: width must be a multiple of 8/);
    expect(stderr).toMatch(/HTTP 400 invalid_request/);
  });

  it('exits 2 on a usage error, without calling the API', async () => {
    const { code, stderr } = await cli(['generate', 'x', '--width', 'wide', '--api', 'http://127.0.0.1:1']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/--width <n>.*expected an integer/);
  });

  it('cancel: a finished job is an error with the API message', async () => {
    const { code, stderr } = await cli(['cancel', generatedId, '--api', base]);
    expect(code).toBe(1);
    expect(stderr).toContain(`job ${generatedId} already succeeded (HTTP 409 job_finished)`);
  });

  it('workers: lists the in-process worker and its model, as a tenant sees them (no id or host)', async () => {
    const { code, stdout } = await cli(['workers', '--api', base]);
    expect(code).toBe(0);
    const { workers, models } = JSON.parse(stdout);
    expect(workers).toEqual([{ model: 'shapes-ldm', executionProvider: 'cpu', maxBatch: expect.any(Number), maxInFlight: expect.any(Number), inFlight: expect.any(Number) }]);
    expect(models).toEqual([expect.objectContaining({ model: 'shapes-ldm', workers: 1 })]);
  });

  it('without a key: exits 1 with the API message and a hint', async () => {
    const { code, stderr } = await cli(['workers', '--api', base], { env: {} });
    expect(code).toBe(1);
    expect(stderr).toMatch(/Authorization: Bearer <key>.*HTTP 401 unauthorized/);
    expect(stderr).toMatch(/--key or FARM_API_KEY/);
  });

  it('reports an unreachable API', async () => {
    const { code, stderr } = await cli(['status', 'abc', '--api', 'http://127.0.0.1:1']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1\/v1\/jobs\/abc/);
  });
});

describe('the progress bar', () => {
  it('renders proportionally, and redraws only on a terminal', () => {
    expect(renderBar(5, 10, 10)).toBe('[#####-----] 5/10');
    expect(renderBar(0, 4, 4)).toBe('[----] 0/4');
    let out = '';
    const bar = new ProgressBar({ write: (s: string) => (out += s), isTTY: true }, 4);
    bar.update(1, 4);
    bar.update(4, 4);
    bar.end();
    expect(out).toBe('\r[#---] 1/4\r[####] 4/4\n');
  });
});
