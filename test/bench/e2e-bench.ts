/**
 * `npm run bench:e2e`: the farm's overhead, measured side by side in one run with the worker
 * settings as shipped (MAX_IN_FLIGHT, MAX_UNET_BATCH, ORT_THREADS and MODEL_THREAD_NICE from the
 * configuration's defaults or the environment, the same on both sides).
 *
 * 1. Throughput: the same N jobs through the whole farm (HTTP submit → Redis queue → one worker
 *    process → S3; completion read from the queue) and through the pipeline in-process, both
 *    keeping MAX_IN_FLIGHT jobs in the stream batch (a job's slot frees when it is denoised).
 *    After a warm-up round on each side, rounds alternate; the ratio is of the medians. Next to
 *    it: the model's busy fraction on each side (time in model calls ÷ wall time), the mean UNet
 *    batch (median of rounds), the Redis commands and CPU ms per job in the farm (INFO
 *    commandstats, commands inside scripts included; the benchmark runs its own redis-server),
 *    and what a fleet of 16 GPU workers at 100 images/s each would ask of one Redis; and the CPU
 *    time per job of the worker's main thread, the worker whole, the API, the embedded S3 (a
 *    process of its own) and the benchmark's client (Linux /proc).
 * 2. The machine's share in it: the same in-process rounds while another process keeps one core
 *    busy (a spinning loop), alternated with the others. On a small VM the model slows when the
 *    other core works — its cores share the host's — so the farm's own work on the second core
 *    costs model speed beyond its CPU time; this figure bounds what any farm here can reach.
 * 3. Idle-farm latency: one job at a time, submission → its `succeeded` event (SSE), minus the
 *    pipeline's own time for the same job alone in-process (alternated, p50 and p90), and the Redis
 *    commands per job (the benchmark's own SSE reads included).
 *
 * Options: --jobs=N (default 64) --size=PX (default 256) --steps=N (default 4) --rounds=N (default 3)
 *          --latency=N jobs for the latency figure (default 20) --port=P (default 18080)
 *          --all-commands lists up to 100 Redis commands per job, not the 8 most frequent
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { BusyMeter, DiffusionPipeline, GenerateParams } from '@farm/pipeline';
import { loadConfig, workerEnv } from '@farm/platform';
import { DEFAULT_MODEL_DIR, modelThreadPriority, priorityInWords } from '@farm/worker';
import { commandDelta, cpuMs, intArg, median, quantile, redisCommandCounts, redisCpuMs, scrapeCounter, startLocalFarm, throughputRound, timeToSucceeded } from './bench-support';

/** N jobs through the pipeline in-process with `slots` of them in the stream batch at once; returns seconds. */
function inProcessRound(pipeline: DiffusionPipeline, jobs: number, slots: number, params: (i: number) => GenerateParams): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let next = 0;
    let inBatch = 0;
    let finished = 0;
    const fill = () => {
      while (inBatch < slots && next < jobs) {
        const i = next++;
        inBatch++;
        let left = false;
        const leave = () => {
          if (left) return;
          left = true;
          inBatch--;
          fill();
        };
        pipeline
          .generate(params(i), (step, total) => step === total && leave())
          .then(() => {
            leave();
            if (++finished === jobs) resolve((performance.now() - t0) / 1000);
          }, reject);
      }
    };
    fill();
  });
}

/**
 * A process that keeps a core busy: it spins, yielding every 50 ms only to notice that the
 * benchmark is gone (its IPC channel closed), and then exits.
 */
const SPINNER = `process.on('disconnect', () => process.exit(0));
const spin = () => { const until = Date.now() + 50; while (Date.now() < until); setImmediate(spin); };
process.send(0);
spin();`;

/** Runs `work` while another process keeps a core busy (started and spinning before it). */
async function besideSpinner<T>(work: () => Promise<T>): Promise<T> {
  const spinner = spawn(process.execPath, ['-e', SPINNER], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  try {
    await new Promise((resolve) => spinner.once('message', resolve));
    return await work();
  } finally {
    spinner.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const jobs = intArg('jobs', 64);
  const size = intArg('size', 256);
  const steps = intArg('steps', 4);
  const rounds = intArg('rounds', 3);
  const latencyJobs = intArg('latency', 20);
  const port = intArg('port', 18080);
  const { MAX_IN_FLIGHT: slots, MAX_UNET_BATCH: maxBatch, ORT_THREADS: threads, MODEL_THREAD_NICE: nice } = loadConfig(workerEnv);
  const priority = modelThreadPriority(nice, threads, availableParallelism());
  const prompt = 'a red circle and a blue square on a yellow background';
  const params = (i: number): GenerateParams => ({ id: `p${i}-${Math.random()}`, prompt, width: size, height: size, steps, guidanceScale: 1, seed: i, format: 'png' });
  const request = (i: number) => ({ type: 'generate', prompt, width: size, height: size, steps, seed: i });

  const busy = new BusyMeter();
  const batches = { calls: 0, lanes: 0 };
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR, {
    maxBatch,
    threads,
    threadNice: 'nice' in priority ? priority.nice : undefined,
    busy,
    onTick: (t) => {
      batches.calls += t.batchSizes.length;
      batches.lanes += t.lanes;
    },
  });
  const metricsPort = port + 1;
  const farm = await startLocalFarm({
    port,
    // The benchmark tenant submits faster than a tenant's default rate allows.
    env: { TENANT_RATE_PER_SECOND: '100000', TENANT_BURST: '100000', WORKER_METRICS_PORT: String(metricsPort) },
  });
  const workerMetrics = `http://127.0.0.1:${metricsPort}/metrics`;
  try {
    // Warm-up, a round of the same jobs on each side: first inferences, allocations, and the JIT
    // of the farm's three processes (a first farm round of 64 jobs ran 10-20% slower than the next).
    const warmUp = rounds * jobs; // seeds after the measured rounds'
    await inProcessRound(pipeline, jobs, slots, (i) => params(warmUp + i));
    await throughputRound(farm, Array.from({ length: jobs }, (_, i) => request(warmUp + i)));

    const inProcess: number[] = [];
    const inProcessBusy: number[] = [];
    const besideBusy: number[] = [];
    const farmS: number[] = [];
    const farmBusy: number[] = [];
    // Mean UNet batch (lanes ÷ calls) of each round.
    const inProcessBatch: number[] = [];
    const farmBatch: number[] = [];
    let commands: Array<[string, number]> = [];
    let redisMsPerJob = 0;
    // CPU time per job of the farm's own processes: the worker's main thread (its per-job work,
    // which on a GPU must stay under the model's time per image), the worker whole, the API, the
    // embedded S3 (its own process here, as S3 is in a deployment) — and this benchmark's client.
    const worker = farm.workers[0].pid!;
    const cpu = () => ({ main: cpuMs(worker, worker), worker: cpuMs(worker), api: cpuMs(farm.api.pid!), s3: cpuMs(farm.s3.pid!), client: cpuMs(process.pid) });
    const cpuPerJob: Array<Record<keyof ReturnType<typeof cpu>, number>> = [];
    for (let r = 0; r < rounds; r++) {
      const busy0 = busy.busyMs();
      const batches0 = { ...batches };
      const s = await inProcessRound(pipeline, jobs, slots, params);
      inProcessBatch.push((batches.lanes - batches0.lanes) / (batches.calls - batches0.calls));
      inProcess.push(s);
      inProcessBusy.push((busy.busyMs() - busy0) / 1000 / s);
      besideBusy.push(await besideSpinner(() => inProcessRound(pipeline, jobs, slots, params)));

      const scrape = () =>
        Promise.all([
          scrapeCounter(workerMetrics, 'farm_model_busy_seconds_total'),
          scrapeCounter(workerMetrics, 'farm_unet_batch_size_sum'),
          scrapeCounter(workerMetrics, 'farm_unet_batch_size_count'),
          redisCommandCounts(farm.redis),
          redisCpuMs(farm.redis),
        ]);
      const [workerBusy0, lanes0, calls0, redis0, redisCpu0] = await scrape();
      const cpu0 = cpu();
      const f = await throughputRound(farm, Array.from({ length: jobs }, (_, i) => request(r * jobs + i)));
      const cpu1 = cpu();
      const [workerBusy1, lanes1, calls1, redis1, redisCpu1] = await scrape();
      if (cpu0.main !== null) cpuPerJob.push(Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, (v! - cpu0[k as keyof typeof cpu0]!) / jobs])) as (typeof cpuPerJob)[number]);
      farmBatch.push((lanes1 - lanes0) / (calls1 - calls0));
      farmS.push(f);
      farmBusy.push((workerBusy1 - workerBusy0) / f);
      commands = commandDelta(redis0, redis1);
      redisMsPerJob = (redisCpu1 - redisCpu0) / jobs;
    }

    // Idle farm: one job at a time, each next to the same job in-process.
    const overheads: number[] = [];
    const idleRedis0 = await redisCommandCounts(farm.redis);
    for (let i = 0; i < latencyJobs; i++) {
      const t0 = performance.now();
      await pipeline.generate(params(10_000 + i));
      const own = performance.now() - t0;
      overheads.push((await timeToSucceeded(farm, request(10_000 + i))) - own);
    }
    const idleCommands = commandDelta(idleRedis0, await redisCommandCounts(farm.redis)).reduce((sum, [, n]) => sum + n, 0);

    const rate = (s: number) => (jobs / s).toFixed(1);
    const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
    console.log(`e2e benchmark: ${jobs} jobs ${size}x${size}, ${steps} steps, MAX_IN_FLIGHT ${slots}, MAX_UNET_BATCH ${maxBatch}, ${priorityInWords(priority, pipeline.model.threadPriority)}, bundled model, CPU, ${rounds} rounds alternated`);
    console.log(`  pipeline in-process : ${rate(median(inProcess))} images/s (rounds: ${inProcess.map(rate).join(', ')}), model busy ${pct(median(inProcessBusy))}, UNet batch ${median(inProcessBatch).toFixed(1)}`);
    console.log(`  whole farm          : ${rate(median(farmS))} images/s (rounds: ${farmS.map(rate).join(', ')}), model busy ${pct(median(farmBusy))}, UNet batch ${median(farmBatch).toFixed(1)} (rounds: ${farmBatch.map((b) => b.toFixed(1)).join(', ')})`);
    console.log(`  farm / in-process   : ${(median(inProcess) / median(farmS)).toFixed(3)}`);
    // Alternated with the rounds above.
    console.log(
      `  beside a busy core  : ${rate(median(besideBusy))} images/s in-process while another process spins on a core (rounds: ${besideBusy.map(rate).join(', ')}), ` +
        `${(median(inProcess) / median(besideBusy)).toFixed(2)} of alone: the model's slowdown when the machine's other core works, as the farm's other processes make it`,
    );
    const total = commands.reduce((sum, [, n]) => sum + n, 0);
    const top = commands.slice(0, process.argv.includes('--all-commands') ? 100 : 8).map(([cmd, n]) => `${cmd} ${(n / jobs).toFixed(1)}`).join(', ');
    console.log(`  Redis commands/job  : ${(total / jobs).toFixed(1)} in the last farm round, all processes (${top}, …)`);
    // On paper: a fleet of 16 GPU workers at 100 images/s each, and where one Redis (one core) saturates.
    const fleetJobsPerSecond = 16 * 100;
    console.log(
      `  Redis CPU ms/job    : ${redisMsPerJob.toFixed(2)} (the benchmark's own redis-server); 16 GPU workers × 100 images/s ask ` +
        `${Math.round((fleetJobsPerSecond * total) / jobs / 1000)}k commands/s, ${((fleetJobsPerSecond * redisMsPerJob) / 1000).toFixed(2)} of a Redis core; ` +
        `one Redis saturates near ${Math.round(1000 / redisMsPerJob)} jobs/s`,
    );
    if (cpuPerJob.length > 0) {
      const per = (k: keyof (typeof cpuPerJob)[number]) => median(cpuPerJob.map((c) => c[k])).toFixed(1);
      console.log(
        `  farm CPU ms/job     : worker main thread ${per('main')}, worker in all (model thread included) ${per('worker')}, API ${per('api')}, ` +
          `embedded S3 ${per('s3')}, Redis ${redisMsPerJob.toFixed(1)}; the benchmark's client ${per('client')} (CPU time, median of rounds)`,
      );
    }
    if (latencyJobs > 0) console.log(`  idle-farm latency   : submit → succeeded event minus the pipeline's own time: p50 ${quantile(overheads, 0.5).toFixed(1)} ms, p90 ${quantile(overheads, 0.9).toFixed(1)} ms (${latencyJobs} jobs; ${(idleCommands / latencyJobs).toFixed(0)} Redis commands per job, the benchmark's included)`);
  } finally {
    await farm.close();
    await pipeline.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
