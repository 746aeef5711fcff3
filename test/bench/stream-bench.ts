/**
 * `npm run bench:stream`: what the shared stream batch buys, measured side by side in one run
 * on one pipeline: N concurrent jobs (default 16, 4 steps, 256×256) with stream batching, the
 * same jobs one at a time, and the ceiling — the UNet alone called directly with the batch
 * sizes the stream batch used.
 *
 * Then what rank-0 timestep exports cost (rank0Cost, below).
 *
 * Options: --jobs=N --size=PX --steps=N --batch=N (max UNet batch, default = jobs)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeOptimumFixture } from '@farm/model-tools';
import { DiffusionPipeline, GaussianRng, GenerateParams, SdModel, StreamBatch, TickReport, canvasComposition, createScheduler, tileCanvas } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { intArg } from './bench-support';

async function main(): Promise<void> {
  const jobs = intArg('jobs', 16);
  const size = intArg('size', 256);
  const steps = intArg('steps', 4);
  const maxBatch = intArg('batch', jobs);
  const ticks: TickReport[] = [];
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR, { maxBatch, onTick: (t) => ticks.push(t) });
  const prompts = ['a red circle on a blue background', 'a green square and a yellow triangle on a black background', 'a purple triangle on a white background', 'an orange background'];
  const params = (i: number): GenerateParams => ({ id: `j${i}`, prompt: prompts[i % prompts.length], width: size, height: size, steps, guidanceScale: 1, seed: i, format: 'png' });
  await pipeline.generate({ ...params(0), id: 'warm' });

  ticks.length = 0;
  let t0 = performance.now();
  await Promise.all(Array.from({ length: jobs }, (_, i) => pipeline.generate(params(i))));
  const streamS = (performance.now() - t0) / 1000;
  const batchSizes = ticks.flatMap((t) => t.batchSizes);

  t0 = performance.now();
  for (let i = 0; i < jobs; i++) await pipeline.generate(params(i));
  const serialS = (performance.now() - t0) / 1000;

  // The ceiling: the UNet alone, same batch sizes, same shapes, no engine, no decode.
  const canvas = pipeline.latentCanvas(size, size);
  const [{ context }] = await pipeline.textCache.get([prompts[0]]);
  const lane = canvas.channels * canvas.height * canvas.width;
  t0 = performance.now();
  for (const b of batchSizes) {
    const sample = new Float32Array(b * lane).fill(0.1);
    const ctx = new Float32Array(b * context.length);
    for (let i = 0; i < b; i++) ctx.set(context, i * context.length);
    await pipeline.model.unet(sample, Array(b).fill(499), ctx, canvas.height, canvas.width);
  }
  const unetS = (performance.now() - t0) / 1000;

  const rate = (s: number) => (jobs / s).toFixed(2);
  console.log(`stream-batch benchmark: ${jobs} concurrent jobs, ${size}x${size}, ${steps} steps, max UNet batch ${maxBatch}, bundled model, CPU`);
  console.log(`  UNet calls made by the stream batch: ${batchSizes.length} (sizes ${[...new Set(batchSizes)].join(', ')})`);
  console.log(`  stream batching     : ${rate(streamS)} images/s (${streamS.toFixed(2)} s)`);
  console.log(`  one job at a time   : ${rate(serialS)} images/s (${serialS.toFixed(2)} s)`);
  console.log(`  UNet-only ceiling   : ${rate(unetS)} images/s (${unetS.toFixed(2)} s for the same UNet batches, no decode)`);
  console.log(`  stream / one-at-a-time: ${(serialS / streamS).toFixed(2)}x   stream / ceiling: ${(unetS / streamS).toFixed(2)}`);
  await pipeline.close();
  await rank0Cost(jobs, size, steps, maxBatch);
}

/**
 * What rank-0 timestep exports (Optimum ≥ 1.24: one timestep per UNet call) cost the stream
 * batch: the bundled UNet, jobs spread over every step as in a steady stream (job i joins at step
 * i mod steps), once with one timestep per sample and once grouped by timestep as such an export
 * needs. Then the same through a rank-0 SD-Turbo fixture, for its call pattern.
 */
async function rank0Cost(jobs: number, size: number, steps: number, maxBatch: number): Promise<void> {
  const model = await SdModel.load(DEFAULT_MODEL_DIR, { skipEncoder: true });
  const scheduler = createScheduler(model.schedulerConfig);
  const [text] = await model.encodeText(['a red circle on a blue background']);
  const plan = scheduler.timesteps(steps);
  const canvas = { channels: model.info.latentChannels, height: size / model.info.vaeScale, width: size / model.info.vaeScale };
  const run = async (sharedTimestep: boolean) => {
    const sizes: number[] = [];
    const engine = new StreamBatch(model, scheduler, { maxBatch, sharedTimestep, onTick: (t) => sizes.push(...t.batchSizes) });
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: jobs }, (_, i) => {
        const rng = new GaussianRng(i);
        return engine.add({
          id: `r${i}`, canvas, latent: rng.normals(canvas.channels * canvas.height * canvas.width), timesteps: plan.slice(i % steps), landings: scheduler.landings(plan, steps).slice(i % steps), rng,
          composition: canvasComposition({ canvas, context: { context: text.context }, guidance: { kind: 'none' }, tiles: tileCanvas(canvas.height, canvas.width, 64, 16, model.info.latentAlignment), schedule: scheduler.schedule }),
        });
      }),
    );
    return { s: (performance.now() - t0) / 1000, sizes };
  };
  await run(false); // warm
  const perSample = await run(false);
  const grouped = await run(true);
  const steps0 = Array.from({ length: jobs }, (_, i) => steps - (i % steps)).reduce((a, b) => a + b, 0);
  console.log(`rank-0 timestep grouping: ${jobs} jobs spread over ${steps} steps (${steps0} denoising steps), ${size}x${size}, bundled UNet, max batch ${maxBatch}`);
  console.log(`  one timestep per sample  : ${(steps0 / perSample.s).toFixed(1)} steps/s, ${perSample.sizes.length} UNet calls (sizes ${[...new Set(perSample.sizes)].join(', ')})`);
  console.log(`  grouped by timestep      : ${(steps0 / grouped.s).toFixed(1)} steps/s, ${grouped.sizes.length} UNet calls (sizes ${[...new Set(grouped.sizes)].join(', ')})`);
  console.log(`  grouped / per sample     : ${(perSample.s / grouped.s).toFixed(2)}x throughput`);
  await model.release();

  const fixtures = mkdtempSync(path.join(os.tmpdir(), 'bench-rank0-'));
  try {
    const dir = writeOptimumFixture(path.join(fixtures, 'sd-turbo'), { family: 'sd-turbo', generation: 'optimum-1.24' });
    const ticks: TickReport[] = [];
    const pipeline = await DiffusionPipeline.load(dir, { maxBatch, onTick: (t) => ticks.push(t) });
    const params = (i: number): GenerateParams => ({ id: `f${i}`, prompt: 'a red circle', width: size, height: size, steps, guidanceScale: 1, seed: i, format: 'png' });
    const started: Promise<unknown>[] = [];
    for (let i = 0; i < jobs; i++) {
      started.push(pipeline.generate(params(i)));
      if (i % 4 === 3) await new Promise((r) => setTimeout(r, 2)); // arrivals spread over ticks
    }
    await Promise.all(started);
    const calls = ticks.flatMap((t) => t.batchSizes);
    console.log(`  rank-0 SD-Turbo fixture (fake weights, optimum 1.24 signature): ${calls.length} UNet calls for ${jobs} jobs × ${steps} steps (sizes ${[...new Set(calls)].join(', ')})`);
    await pipeline.close();
  } finally {
    rmSync(fixtures, { recursive: true, force: true });
  }
}


main().catch((err) => {
  console.error(err);
  process.exit(1);
});
