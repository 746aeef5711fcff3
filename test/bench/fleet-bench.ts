/**
 * `npm run bench:fleet`: images/s through the whole farm with 1 and then 2 worker processes, on
 * this machine, side by side in one run. With 2 cores, two workers compete for the same cores:
 * each gets one onnxruntime thread (ORT_THREADS=1) and the single worker gets both, so the
 * comparison shows scheduling overhead and batching effects, not more hardware.
 *
 * Options: --jobs=N (default 48) --size=PX (default 128) --port=P
 */
import { intArg, runJob, startLocalFarm } from './bench-support';

async function imagesPerSecond(workers: number, jobs: number, size: number, port: number): Promise<number> {
  const threads = String(Math.max(1, Math.floor(2 / workers)));
  const farm = await startLocalFarm({ port, workers: 0 });
  for (let i = 0; i < workers; i++) farm.startWorker(`fleet-${i}`, { ORT_THREADS: threads, MAX_IN_FLIGHT: '8', PROGRESS_PREVIEWS: 'false' });
  try {
    const request = (i: number) => ({ type: 'generate', prompt: 'a green square and a red circle on a white background', width: size, height: size, steps: 4, seed: i });
    await Promise.all(Array.from({ length: workers * 2 }, (_, i) => runJob(farm, request(i)))); // warm every worker
    const t0 = performance.now();
    await Promise.all(Array.from({ length: jobs }, (_, i) => runJob(farm, request(i))));
    return jobs / ((performance.now() - t0) / 1000);
  } finally {
    await farm.close();
  }
}

async function main(): Promise<void> {
  const jobs = intArg('jobs', 48);
  const size = intArg('size', 128);
  const one = await imagesPerSecond(1, jobs, size, intArg('port', 18082));
  const two = await imagesPerSecond(2, jobs, size, intArg('port', 18082) + 1);
  console.log(`fleet benchmark: ${jobs} jobs ${size}x${size}, 4 steps, through the whole farm, 2-core machine`);
  console.log(`  1 worker process  : ${one.toFixed(2)} images/s`);
  console.log(`  2 worker processes: ${two.toFixed(2)} images/s  (${(two / one).toFixed(2)}x; same 2 cores shared)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
