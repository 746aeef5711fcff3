/**
 * `npm run bench:e2e`: the farm's overhead. The same N jobs (same model, size, steps), measured
 * side by side in one run: through the whole farm (HTTP → Redis queue → worker process → S3,
 * polled over HTTP) and through the pipeline called in-process. Prints images/s and the ratio.
 *
 * Options: --jobs=N (default 32) --size=PX (default 256) --steps=N (default 4) --port=P (default 18080)
 */
import { DiffusionPipeline, GenerateParams } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { intArg, runJob, startLocalFarm } from './bench-support';

async function main(): Promise<void> {
  const jobs = intArg('jobs', 32);
  const size = intArg('size', 256);
  const steps = intArg('steps', 4);
  const prompt = 'a red circle and a blue square on a yellow background';
  const params = (i: number): GenerateParams => ({ id: `p${i}`, prompt, width: size, height: size, steps, guidanceScale: 1, seed: i, format: 'png' });
  const request = (i: number) => ({ type: 'generate', prompt, width: size, height: size, steps, seed: i });

  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR, { maxBatch: 8 });
  await pipeline.generate({ ...params(0), id: 'warm' });
  let t0 = performance.now();
  // In-process: the same concurrency the worker allows (MAX_IN_FLIGHT 8) shares the stream batch.
  const inFlight = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < jobs) {
        const i = next++;
        await pipeline.generate(params(i));
      }
    }),
  );
  const inProcessS = (performance.now() - t0) / 1000;
  await pipeline.close();

  const farm = await startLocalFarm({ port: intArg('port', 18080), env: { MAX_IN_FLIGHT: String(inFlight), MAX_UNET_BATCH: '8' } });
  try {
    await runJob(farm, request(0)); // warm-up: model load, first inference
    t0 = performance.now();
    const results = await Promise.all(Array.from({ length: jobs }, (_, i) => runJob(farm, request(i))));
    const farmS = (performance.now() - t0) / 1000;
    const queueMs = results.map((r) => r.timings.queueMs).sort((a, b) => a - b);
    console.log(`e2e benchmark: ${jobs} jobs, ${size}x${size}, ${steps} steps, bundled model, CPU`);
    console.log(`  pipeline in-process : ${(jobs / inProcessS).toFixed(2)} images/s (${inProcessS.toFixed(2)} s)`);
    console.log(`  whole farm          : ${(jobs / farmS).toFixed(2)} images/s (${farmS.toFixed(2)} s), median queue wait ${queueMs[Math.floor(jobs / 2)]} ms`);
    console.log(`  farm / in-process   : ${(inProcessS / farmS).toFixed(3)} (overhead ${((farmS / inProcessS - 1) * 100).toFixed(1)}%)`);
  } finally {
    await farm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
