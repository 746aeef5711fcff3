/**
 * `npm run bench:fairness`: what one tenant's heavy job does to another tenant's light jobs, on one
 * worker process of a local farm (real API, Redis, S3), side by side in one run.
 *
 * 1. Light jobs alone, one at a time: submission → `succeeded` event (SSE).
 * 2. A heavy job from another tenant (by default issue 14's: 1024×1024, 8 full-canvas regions,
 *    guidance 2, 6 steps), and once it runs, the same light jobs again beside it.
 * 3. The heavy job to its end, then the light jobs alone again.
 * Printed: each series' p50, p90 and max, the ratios beside / alone, the heavy job's time, and the
 * worker's memory (resident set) before, at its peak and after the heavy job.
 *
 * Options: --light=N light jobs per series (default 12) --heavy-size=PX (1024) --heavy-steps=N (6)
 *          --heavy-regions=N (8) --port=P (18090) --cancel (cancel the heavy job instead of waiting for it)
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { BENCH_KEY, intArg, median, quantile, sleep, startLocalFarm, timeToSucceeded } from './bench-support';

const HEAVY_KEY = 'fk_benchmark-heavy-tenant-key-00000';

/** A process's resident set and its peak, in MiB (Linux /proc). */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Math.round(Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)![1]) / 1024);
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

async function main(): Promise<void> {
  const n = intArg('light', 12);
  const side = intArg('heavy-size', 1024);
  const steps = intArg('heavy-steps', 6);
  const regionCount = intArg('heavy-regions', 8);
  const port = intArg('port', 18090);
  const cancel = process.argv.includes('--cancel');
  const light = (i: number) => ({ type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 4, seed: i });
  const regions = Array.from({ length: regionCount }, (_, i) => ({ prompt: `a ${['red', 'green', 'blue', 'yellow'][i % 4]} square`, mask: { rects: [[0, 0, side, side]] } }));
  const heavy = { type: 'generate', prompt: 'a white background', width: side, height: side, steps, guidanceScale: 2, seed: 1, regions };

  const farm = await startLocalFarm({
    port,
    workers: 0,
    env: { API_KEYS: `bench:${BENCH_KEY},heavy:${HEAVY_KEY}`, TENANT_RATE_PER_SECOND: '100000', TENANT_BURST: '100000' },
  });
  const worker = farm.startWorker('fairness-0');
  const asHeavy = (init: RequestInit = {}) => ({ ...init, headers: { Authorization: `Bearer ${HEAVY_KEY}`, 'Content-Type': 'application/json' } });
  const series = async (from: number) => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) ms.push(await timeToSucceeded(farm, light(from + i)));
    return ms;
  };
  const heavyJob = async (id: string) => (await (await fetch(`${farm.base}/v1/jobs/${id}`, asHeavy())).json()) as Record<string, any>;
  try {
    for (let i = 0; i < 3; i++) await timeToSucceeded(farm, light(9000 + i)); // warm-up
    const alone = await series(0);
    const baseline = memory(worker.pid!);

    const submitted = await fetch(`${farm.base}/v1/jobs`, asHeavy({ method: 'POST', body: JSON.stringify(heavy) }));
    if (submitted.status !== 202) throw new Error(`the heavy job was refused: ${submitted.status} ${await submitted.text()}`);
    const heavyId = ((await submitted.json()) as { id: string }).id;
    while ((await heavyJob(heavyId)).status === 'queued') await sleep(100);
    await sleep(1000); // its first ticks
    const beside = await series(1000);
    const stillRunning = (await heavyJob(heavyId)).status === 'running';

    const t0 = performance.now();
    if (cancel) await fetch(`${farm.base}/v1/jobs/${heavyId}`, asHeavy({ method: 'DELETE' }));
    let done = await heavyJob(heavyId);
    while (!['succeeded', 'failed', 'canceled'].includes(done.status)) {
      await sleep(500);
      done = await heavyJob(heavyId);
    }
    const heavyLeft = (performance.now() - t0) / 1000;
    await sleep(1000);
    const after = await series(2000);
    const settled = memory(worker.pid!);

    const fmt = (ms: number[]) => `p50 ${median(ms).toFixed(0)} ms, p90 ${quantile(ms, 0.9).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`;
    const ratio = (a: number[], b: number[]) => `p50 ${(median(a) / median(b)).toFixed(2)}×, p90 ${(quantile(a, 0.9) / quantile(b, 0.9)).toFixed(2)}×, max ${(Math.max(...a) / Math.max(...b)).toFixed(2)}×`;
    const both = [...alone, ...after];
    console.log(`fairness benchmark: light 64x64, 4 steps (tenant bench), one at a time, beside a heavy ${side}x${side} job with ${regionCount} full-canvas regions, guidance 2, ${steps} steps (tenant heavy); one worker process, bundled model, CPU`);
    console.log(`  light alone, before : ${fmt(alone)} (${n} jobs)`);
    console.log(`  light beside heavy  : ${fmt(beside)} (${n} jobs; the heavy job ${stillRunning ? 'still running after them' : 'ENDED during them'})`);
    console.log(`  light alone, after  : ${fmt(after)} (${n} jobs)`);
    console.log(`  beside / alone      : ${ratio(beside, both)} (alone: both alone series)`);
    console.log(`  heavy job           : ${done.status}, ${cancel ? 'canceled' : `${heavyLeft.toFixed(1)} s from the last light job to its end`}, compute ${((done.timings?.computeMs ?? 0) / 1000).toFixed(1)} s`);
    console.log(`  worker memory (RSS) : ${baseline.rss} MiB before the heavy job, ${settled.peak} MiB at its peak (VmHWM), ${settled.rss} MiB after it`);
    console.log(`  load average        : ${os.loadavg().map((l) => l.toFixed(2)).join(', ')} on ${os.cpus().length} cores`);
  } finally {
    await farm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
