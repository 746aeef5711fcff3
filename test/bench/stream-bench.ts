/**
 * `npm run bench:stream`: what the shared stream batch buys, measured side by side in one run
 * on one pipeline: N concurrent jobs (default 16, 4 steps, 256×256) with stream batching, the
 * same jobs one at a time, and the ceiling — the UNet alone called directly with the batch
 * sizes the stream batch used.
 *
 * Options: --jobs=N --size=PX --steps=N --batch=N (max UNet batch, default = jobs)
 */
import { DiffusionPipeline, GenerateParams, TickReport } from '@farm/pipeline';
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
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
