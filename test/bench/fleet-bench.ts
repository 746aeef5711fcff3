/**
 * `npm run bench:fleet`: the fleet curve — the same N jobs through the whole farm with 1, 2 and 4
 * worker processes on one Redis, side by side in one run: aggregate images/s and aggregate ÷
 * single. Each worker runs with the shipped settings; on a machine with fewer cores than workers
 * they share the cores (one onnxruntime thread each beyond the first), so the curve shows what
 * the farm's coordination costs, not more hardware.
 *
 * Options: --jobs=N (default 64) --size=PX (default 256) --steps=N (default 4) --port=P (default 18082)
 */
import os from 'node:os';
import { intArg, startLocalFarm, throughputRound } from './bench-support';

async function imagesPerSecond(workers: number, jobs: number, size: number, steps: number, port: number): Promise<number> {
  const cores = os.availableParallelism();
  const farm = await startLocalFarm({ port, workers: 0, env: { TENANT_RATE_PER_SECOND: '100000', TENANT_BURST: '100000' } });
  for (let i = 0; i < workers; i++) farm.startWorker(`fleet-${i}`, workers > 1 ? { ORT_THREADS: String(Math.max(1, Math.floor(cores / workers))) } : {});
  try {
    const request = (i: number) => ({ type: 'generate', prompt: 'a green square and a red circle on a white background', width: size, height: size, steps, seed: i });
    await throughputRound(farm, Array.from({ length: workers * 8 }, (_, i) => request(i))); // every worker loaded and warm
    return jobs / (await throughputRound(farm, Array.from({ length: jobs }, (_, i) => request(1000 + i))));
  } finally {
    await farm.close();
  }
}

async function main(): Promise<void> {
  const jobs = intArg('jobs', 64);
  const size = intArg('size', 256);
  const steps = intArg('steps', 4);
  const port = intArg('port', 18082);
  const rates = new Map<number, number>();
  for (const workers of [1, 2, 4]) rates.set(workers, await imagesPerSecond(workers, jobs, size, steps, port + workers));
  console.log(`fleet benchmark: ${jobs} jobs ${size}x${size}, ${steps} steps, through the whole farm, one Redis, ${os.availableParallelism()} cores`);
  for (const [workers, rate] of rates) {
    console.log(`  ${workers} worker process${workers > 1 ? 'es' : '  '}: ${rate.toFixed(2)} images/s, aggregate ÷ single ${(rate / rates.get(1)!).toFixed(2)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
