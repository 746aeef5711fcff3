/**
 * What the pipeline feeds real Optimum exports (fake-weight fixtures, real onnxruntime): the
 * timesteps of each family's scheduler config against diffusers' values (diffusers v0.40.0's
 * set_timesteps/get_timesteps, computed as in test/unit/schedulers.test.ts), one timestep per call
 * for rank-0 exports, where DDIM's steps land, SDXL's zero unconditional embeddings, and the fp16
 * SDXL VAE decoding without NaN.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Family, Generation } from '@farm/model-tools';
import { DiffusionPipeline, GaussianRng, GenerateParams, SdModel, canvasComposition, nextTimesteps, tileCanvas } from '@farm/pipeline';
import { ModelFixtures } from '../support/model-fixtures';

const fixtures = new ModelFixtures();
afterAll(() => fixtures.remove());

/** Loads a fixture and records the timesteps of every UNet call the pipeline makes. */
async function recorded(family: Family, generation: Generation, dtype: 'fp32' | 'fp16' = 'fp32') {
  const pipeline = await DiffusionPipeline.load(fixtures.dir(family, generation, { dtype }));
  const calls: number[][] = [];
  const unet = pipeline.model.unet.bind(pipeline.model);
  pipeline.model.unet = (sample, timesteps, ...rest) => {
    calls.push([...timesteps]);
    return unet(sample, timesteps, ...rest);
  };
  return { pipeline, calls };
}

const job = (id: string, steps: number, extra: Partial<GenerateParams> = {}): GenerateParams => ({
  id, prompt: 'a red circle', width: 64, height: 64, steps, guidanceScale: 1, seed: 1, format: 'png', ...extra,
});

describe('timesteps fed to the UNet match diffusers', () => {
  it.each([
    // family, generation, steps, diffusers' timesteps (scheduler config as published)
    ['sd-turbo', 'optimum-1.24', 1, [999]], // EulerDiscreteScheduler, trailing
    ['sd-turbo', 'optimum-1.22', 4, [999, 749, 499, 249]],
    ['sdxl-turbo', 'optimum-onnx', 4, [999, 749, 499, 249]], // EulerAncestralDiscreteScheduler, trailing
    ['sd15', 'optimum-1.22', 4, [751, 501, 251, 1]], // PNDM config: leading, steps_offset 1
    ['sd21-base', 'optimum-1.23', 1, [1]],
    ['lcm-dreamshaper-v7', 'optimum-1.24', 4, [999, 759, 499, 259]], // LCMScheduler, 50 original steps
    ['lcm-lora-sd15', 'optimum-1.22', 2, [999, 499]],
  ] as [Family, Generation, number, number[]][])('%s (%s), %i step(s)', async (family, generation, steps, expected) => {
    const { pipeline, calls } = await recorded(family, generation);
    await pipeline.generate(job('a', steps));
    expect(calls).toEqual(expected.map((t) => [t]));
    await pipeline.close();
  });

  it('starts an image-to-image edit where diffusers’ get_timesteps starts (4 steps × 0.5 → [499, 249])', async () => {
    const { pipeline, calls } = await recorded('sd-turbo', 'optimum-1.24');
    const source = await pipeline.encodeSource(Buffer.alloc(64 * 64 * 3, 128), 64, 64);
    await pipeline.edit({ id: 'e', source, prompt: 'a cat', mask: { rects: [[0, 0, 32, 32]] }, steps: 4, strength: 0.5, guidanceScale: 1, seed: 2, format: 'png' });
    expect(calls).toEqual([[499], [249]]);
    await pipeline.close();
  });
});

describe('rank-0 timestep exports in the stream batch', () => {
  it.each([
    ['optimum-1.24', [[999], [499], [499]]], // one timestep per call: the two steps apart
    ['optimum-1.23', [[999, 499], [499]]], // [b] timesteps: both jobs' lanes in one call
  ] as const)('%s: lanes share a call only when the export takes their timesteps', async (generation, expected) => {
    const { pipeline, calls } = await recorded('sd-turbo', generation);
    const [text] = await pipeline.textCache.get(['a red circle']);
    const conditioning = pipeline.model.conditioning(text, { width: 64, height: 64, guidanceScale: 1 });
    const canvas = { channels: 4, height: 8, width: 8 };
    const request = (id: string, timesteps: number[]) => ({
      id, canvas, latent: new Float32Array(4 * 64).fill(0.5), timesteps, landings: nextTimesteps(timesteps), rng: new GaussianRng(1),
      composition: canvasComposition({ canvas, context: conditioning, guidance: { kind: 'none' }, tiles: tileCanvas(8, 8, 64, 16, 8), schedule: pipeline.engine.scheduler.schedule }),
    });
    // Added in the same turn, so both are in the first tick: one at 999, the other already at 499.
    await Promise.all([pipeline.engine.add(request('a', [999, 499])), pipeline.engine.add(request('b', [499]))]);
    expect(calls).toEqual(expected);
    await pipeline.close();
  });

  it('gives the same image alone as grouped with another job', async () => {
    const { pipeline } = await recorded('sdxl-turbo', 'optimum-1.24');
    const alone = await pipeline.generate(job('a', 2));
    const [together] = await Promise.all([pipeline.generate(job('b', 2)), pipeline.generate(job('c', 4, { seed: 9 }))]);
    expect(Buffer.compare(alone.rgb, together.rgb)).toBe(0);
    await pipeline.close();
  });
});

describe('as diffusers v0.40.0 computes it', () => {
  it('steps DDIM to t − T//N: linspace, 4 steps, the UNet at 999, 666, 333, 0 and the first step landing at 749', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'farm-ddim-linspace-'));
    try {
      cpSync(fixtures.dir('sd15', 'optimum-1.22'), dir, { recursive: true });
      const configFile = path.join(dir, 'scheduler', 'scheduler_config.json');
      const config = JSON.parse(readFileSync(configFile, 'utf8'));
      writeFileSync(configFile, JSON.stringify({ ...config, _class_name: 'DDIMScheduler', timestep_spacing: 'linspace', steps_offset: 0 }));
      const pipeline = await DiffusionPipeline.load(dir);
      const calls: Array<{ sample: Float32Array; t: number[]; out: Float32Array }> = [];
      const unet = pipeline.model.unet.bind(pipeline.model);
      pipeline.model.unet = async (sample, timesteps, ...rest) => {
        const out = await unet(sample, timesteps, ...rest);
        calls.push({ sample: sample.slice(), t: [...timesteps], out });
        return out;
      };
      await pipeline.generate(job('d', 4));
      expect(calls.map((c) => c.t)).toEqual([[999], [666], [333], [0]]);
      // One lane over the whole 8×8 latent: the second call's input is the first step's result.
      const { scheduler } = pipeline.engine;
      const x0 = scheduler.denoise(calls[0].out, calls[0].sample, 999);
      const at = (landing: number) => scheduler.advance(x0, calls[0].sample, 999, landing, new Float32Array(x0.length));
      const gap = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
      expect(gap(calls[1].sample, at(749))).toBeLessThan(1e-5);
      expect(gap(calls[1].sample, at(666))).toBeGreaterThan(1e-2); // the plan's next timestep is not where it lands
      await pipeline.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['sdxl-turbo', 'optimum-onnx', undefined, true], // force_zeros_for_empty_prompt: zeros, pooled embedding included
    ['sdxl-turbo', 'optimum-onnx', '', false], // a negative prompt given, even "": encoded
    ['sd-turbo', 'optimum-1.24', undefined, false], // not an SDXL pipeline: the encoded ""
  ] as [Family, Generation, string | undefined, boolean][])('%s (%s): negativePrompt %j, an all-zero unconditional lane: %s', async (family, generation, negativePrompt, zeros) => {
    const pipeline = await DiffusionPipeline.load(fixtures.dir(family, generation));
    const rows: Array<{ context: Float32Array; pooled?: Float32Array; timeIds?: Float32Array }> = [];
    const unet = pipeline.model.unet.bind(pipeline.model);
    pipeline.model.unet = (sample, timesteps, context, h, w, extras, controls) => {
      const n = timesteps.length;
      const row = (x: Float32Array | undefined, i: number) => x?.slice((i * x.length) / n, ((i + 1) * x.length) / n);
      for (let i = 0; i < n; i++) rows.push({ context: row(context, i)!, pooled: row(extras?.text_embeds, i), timeIds: row(extras?.time_ids, i) });
      return unet(sample, timesteps, context, h, w, extras, controls);
    };
    await pipeline.generate(job('z', 1, { guidanceScale: 2, negativePrompt }));
    expect(rows).toHaveLength(2); // the prompt's lane and the unconditional one
    const allZero = (x?: Float32Array) => x !== undefined && x.every((v) => v === 0);
    expect(rows.filter((r) => allZero(r.context))).toHaveLength(zeros ? 1 : 0);
    if (family === 'sdxl-turbo') {
      expect(rows.filter((r) => allZero(r.pooled))).toHaveLength(zeros ? 1 : 0);
      expect(rows[0].timeIds).toEqual(rows[1].timeIds); // the same time_ids for both lanes
    }
    await pipeline.close();
  });
});

describe('the fp16 SDXL VAE', () => {
  it('overflows to NaN as exported, and decodes when upcast at load (force_upcast)', async () => {
    const dir = fixtures.dir('sdxl-turbo', 'optimum-onnx', { dtype: 'fp16' });
    const latent = new Float32Array(4 * 8 * 8).fill(0.6 / 0.13025); // an ordinary latent, unscaled by 0.13025
    const raw = await ort.InferenceSession.create(path.join(dir, 'vae_decoder', 'model.onnx'));
    const { toFloat16, fromFloat16 } = await import('@farm/model-tools');
    const out = await raw.run({ latent_sample: new ort.Tensor('float16', toFloat16(latent), [1, 4, 8, 8]) });
    expect(fromFloat16(out.sample.data as Uint16Array).some(Number.isNaN)).toBe(true);
    await raw.release();

    const model = await SdModel.load(dir, { skipEncoder: true });
    const pixels = await model.decode(Float32Array.from(latent, (v) => v * 0.13025), 1, 8, 8);
    expect(pixels.some(Number.isNaN)).toBe(false);
    await model.release();
  });
});

describe('GPU batch shapes, run on the CPU', () => {
  it('pads calls to power-of-two buckets without changing the predictions, and warms up every bucket', async () => {
    const dir = fixtures.dir('sdxl-turbo', 'optimum-1.24');
    const [plain, bucketed] = await Promise.all([SdModel.load(dir, { skipEncoder: true }), SdModel.load(dir, { skipEncoder: true, batchBuckets: 8 })]);
    const [text] = await plain.encodeText(['a red circle']);
    const cond = plain.conditioning(text, { width: 64, height: 64, guidanceScale: 1 });
    const rows = (x: Float32Array, n: number) => Float32Array.from({ length: n * x.length }, (_, i) => x[i % x.length]);
    const sample = Float32Array.from({ length: 3 * 4 * 64 }, (_, i) => Math.sin(i));
    const extras = Object.fromEntries(Object.entries(cond.extras!).map(([k, v]) => [k, rows(v, 3)]));
    const args = [sample, [999, 999, 999], rows(cond.context, 3), 8, 8, extras] as const;
    expect(await bucketed.unet(...args)).toEqual(await plain.unet(...args));

    const { pipeline, calls } = await recorded('sdxl-turbo', 'optimum-1.24');
    await pipeline.warmUp();
    expect(calls.map((c) => c.length)).toEqual([1, 2, 4, 8]); // native 64 = the panorama tile's side: one set
    await Promise.all([plain.release(), bucketed.release(), pipeline.close()]);
  });
});
