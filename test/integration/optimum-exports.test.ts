/**
 * Real Stable Diffusion exports drop in: every family, in the Optimum folder layout of each export
 * generation, served through the whole farm (HTTP in, PNG out) from fake-weight fixtures with the
 * exact ONNX signatures (test/support/model-fixtures.ts). Each family: generation at 1 and 4
 * steps, a mask edit of an uploaded image, a region job. A model the farm cannot serve is refused
 * when the worker starts, with one sentence.
 */
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { parseJobRequest, queuedJob } from '@farm/contracts';
import type { Family, Generation } from '@farm/model-tools';
import { DEFAULT_MODEL } from '@farm/platform';
import { Harness, TestApi, download, postJob, useFarm, waitForJob } from '../support/harness';
import { ModelFixtures } from '../support/model-fixtures';

const fixtures = new ModelFixtures();
afterAll(() => fixtures.remove());

/** Each family on one export generation; together they cover every generation and both dtypes. */
const CASES: [Family, Generation, 'fp32' | 'fp16'][] = [
  ['sd-turbo', 'optimum-1.24', 'fp16'],
  ['sd21-base', 'optimum-1.23', 'fp32'],
  ['sd15', 'optimum-1.22', 'fp32'],
  ['lcm-dreamshaper-v7', 'optimum-onnx', 'fp32'],
  ['lcm-lora-sd15', 'optimum-1.24', 'fp32'],
  ['sdxl-turbo', 'optimum-onnx', 'fp16'],
];

async function rendered(api: TestApi, body: Record<string, unknown>): Promise<{ job: Record<string, any>; pixels: Buffer; width: number; height: number }> {
  const submitted = await postJob(api, body);
  expect(submitted.status).toBe(202);
  const job = await waitForJob(api, submitted.body.id);
  expect({ status: job.status, error: job.error }).toEqual({ status: 'succeeded', error: undefined });
  const { data, info } = await sharp(await download(job.result.url)).raw().toBuffer({ resolveWithObject: true });
  expect(info.format).toBe('raw');
  return { job, pixels: data, width: info.width, height: info.height };
}

/** Not one flat colour (a NaN decode is all black). */
const varied = (pixels: Buffer) => new Set(pixels).size > 8;

describe.each(CASES)('%s (%s, %s)', (family, generation, dtype) => {
  let farm: Harness;
  let api: TestApi;
  useFarm(async (f, client) => {
    farm = f;
    api = client;
    await f.startWorker({ modelDir: fixtures.dir(family, generation, { dtype }) });
  });
  const guidance = family.startsWith('lcm-dreamshaper') ? 8 : 1;

  it.each([1, 4])('generates a PNG at %i step(s)', async (steps) => {
    const { pixels, width, height, job } = await rendered(api, { type: 'generate', prompt: 'a red circle', width: 128, height: 96, steps, guidanceScale: guidance, seed: 3 });
    expect([width, height]).toEqual([128, 96]);
    expect(job.progress).toEqual({ step: steps, total: steps });
    expect(varied(pixels)).toBe(true);
  });

  it('edits an uploaded image under a mask', async () => {
    const upload = await sharp({ create: { width: 128, height: 128, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();
    const { pixels, width } = await rendered(api, {
      type: 'edit', source: { image: upload.toString('base64') }, prompt: 'a blue square', mask: { rects: [[32, 32, 48, 48]] }, steps: 2, guidanceScale: guidance, seed: 5,
    });
    expect(width).toBe(128);
    // Far from the mask the upload comes back as it went in.
    expect([...pixels.subarray(0, 3)]).toEqual([200, 40, 40]);
  });

  it('renders a panorama, then edits it by prompt alone', async () => {
    const { job, width } = await rendered(api, { type: 'generate', prompt: 'a red circle', width: 640, height: 128, steps: 2, guidanceScale: guidance, seed: 4 });
    expect(width).toBe(640);
    const edited = await rendered(api, { type: 'edit', source: job.id, prompt: 'a blue square', steps: 2, guidanceScale: guidance, seed: 4 });
    expect(edited.width).toBe(640);
    expect(edited.job.result.edit ?? edited.job.result).toBeDefined();
  });

  it('answers 400 naming the field for a request the model cannot serve; one that reaches the worker anyway fails invalid_job, not retried', async () => {
    const lcm = family.startsWith('lcm');
    const upload = (await sharp({ create: { width: 64, height: 64, channels: 3, background: '#888' } }).png().toBuffer()).toString('base64');
    const body = family === 'lcm-dreamshaper-v7'
      ? { type: 'generate', prompt: 'a cat', width: 64, height: 64, guidanceScale: 0.5 } // below the embedded guidance range
      : { type: 'edit', source: { image: upload }, prompt: 'a cat', mask: { rects: [[0, 0, 8, 8]] }, steps: lcm ? 40 : 1, strength: 0.5 };
    const { status, body: answer } = await postJob(api, body);
    expect(status).toBe(400);
    const field = family === 'lcm-dreamshaper-v7' ? 'guidanceScale' : 'strength';
    const message = expect.stringMatching(lcm && field === 'strength' ? /^steps must be at most 25 at strength 0.5 for this model/ : /for this model|makes none/);
    expect(answer.error.fields).toContainEqual({ path: field, message });

    // Queued anyway (an API that checked another model's capabilities, a producer that bypassed
    // it): the worker checks the job against its own model before any compute.
    const parsed = parseJobRequest(body);
    if (!parsed.ok) throw new Error(`the request should parse: ${JSON.stringify(parsed.problems)}`);
    const queued = await farm.queue.add(parsed.value.type, queuedJob(parsed.value, { seed: 1, model: DEFAULT_MODEL, tenant: 'tenant-a' }), { jobId: randomUUID(), attempts: 3 });
    const failed = await waitForJob(api, queued.id!);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'invalid_job', message: expect.stringContaining(`request.${field}: `) } });
    expect(failed.error.message.slice(`request.${field}: `.length)).toEqual(message);
  });

  it('paints a region job', async () => {
    const { pixels } = await rendered(api, {
      type: 'generate', prompt: 'a blue background', width: 128, height: 128, steps: 2, guidanceScale: guidance, seed: 9,
      regions: [{ prompt: 'a green square', mask: { rects: [[16, 16, 64, 64]] } }],
    });
    expect(varied(pixels)).toBe(true);
  });
});

describe('a model the farm cannot serve', () => {
  it('is refused at worker start-up with one sentence, before any job is taken', async () => {
    const farm = new Harness();
    try {
      const start = farm.startWorker({ modelDir: fixtures.dir('sdxl-turbo', 'optimum-1.24', { omit: ['text_encoder_2'] }) });
      await expect(start).rejects.toThrow('text_encoder_2/model.onnx is missing (this is an SDXL export: its UNet takes text_embeds and time_ids)');
      expect(await farm.queue.getWorkers()).toHaveLength(0);
    } finally {
      await farm.close();
    }
  });
});
