/**
 * `npm run bench:load`: the API under a loopback load, then the farm draining it. Concurrent
 * clients submit --jobs small jobs (default 2000) in bursts, with no worker running, so the API
 * alone is measured (submissions/s, latency percentiles); then one worker drains the queue and
 * the run checks that every accepted job succeeded, none twice, none lost.
 *
 * Options: --jobs=N --clients=N (default 32) --burst=N (jobs per client burst, default 25) --port=P
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEFAULT_MODEL, modelQueueName } from '@farm/platform';
import { authed, intArg, sleep, startLocalFarm } from './bench-support';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main(): Promise<void> {
  const jobs = intArg('jobs', 2000);
  const clients = intArg('clients', 32);
  const burst = intArg('burst', 25);
  const farm = await startLocalFarm({
    port: intArg('port', 18081),
    workers: 0,
    env: { TENANT_RATE_PER_SECOND: '100000', TENANT_BURST: '100000', TENANT_MAX_QUEUED: '100000' },
  });
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const queue = new Queue(modelQueueName(farm.queueName, DEFAULT_MODEL), { connection: redis, prefix: '{farm}' });
  try {
    const latencies: number[] = [];
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        while (next < jobs) {
          // A burst: up to `burst` submissions back to back, then a short pause.
          for (let b = 0; b < burst && next < jobs; b++) {
            const i = next++;
            const started = performance.now();
            const res = await fetch(`${farm.base}/v1/jobs`, authed(farm, {
              method: 'POST',
              body: JSON.stringify({ type: 'generate', prompt: `a red circle on a blue background`, width: 64, height: 64, steps: 1, seed: i }),
            }));
            latencies.push(performance.now() - started);
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            if (res.status === 202) accepted.push(((await res.json()) as { id: string }).id);
            else await res.body?.cancel();
          }
          await sleep(5 + (c % 5));
        }
      }),
    );
    const submitS = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);

    const t1 = performance.now();
    farm.startWorker('drain', { MAX_IN_FLIGHT: '32', MAX_UNET_BATCH: '32', PROGRESS_PREVIEWS: 'false' });
    for (;;) {
      const counts = await queue.getJobCounts('completed', 'failed');
      if (counts.completed + counts.failed >= accepted.length) break;
      await sleep(500);
    }
    const drainS = (performance.now() - t1) / 1000;
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
    let twice = 0;
    let missing = 0;
    for (let i = 0; i < accepted.length; i += 200) {
      const batch = await Promise.all(accepted.slice(i, i + 200).map((id) => queue.getJob(id)));
      for (const job of batch) {
        if (!job || job.finishedOn === undefined || job.returnvalue == null) missing++;
        else if (job.attemptsMade !== 1) twice++;
      }
    }
    console.log(`load benchmark: ${jobs} submissions by ${clients} concurrent clients in bursts of ${burst}, loopback, API process alone (no worker running)`);
    console.log(`  answers            : ${[...statuses].map(([s, n]) => `${n}x ${s}`).join(', ')}`);
    console.log(`  submissions/s      : ${(jobs / submitS).toFixed(0)} (${submitS.toFixed(2)} s)`);
    console.log(`  submit latency ms  : p50 ${percentile(latencies, 0.5).toFixed(1)}, p95 ${percentile(latencies, 0.95).toFixed(1)}, p99 ${percentile(latencies, 0.99).toFixed(1)}, max ${latencies[latencies.length - 1].toFixed(1)}`);
    console.log(`  drained by 1 worker: ${accepted.length} jobs in ${drainS.toFixed(1)} s (${(accepted.length / drainS).toFixed(1)} images/s, 64x64, 1 step)`);
    console.log(`  final counts       : ${JSON.stringify(counts)}`);
    console.log(`  accepted but lost  : ${missing}; run more than once: ${twice}`);
    if (missing > 0 || twice > 0 || counts.failed > 0) process.exitCode = 1;
  } finally {
    await queue.close();
    redis.disconnect();
    await farm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
