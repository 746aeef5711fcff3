/**
 * `npm run bench:load`: `POST /v1/jobs` under wrk, side by side with its simplest peer — express +
 * express.json + one BullMQ `Queue.add` of the same body (load-peer.ts) — in the same run, with
 * the same load generator, body and connections. The API runs as shipped (its own process,
 * authentication, rate limits, quotas, fair ordering; limits set high enough not to refuse), once
 * plain and once with a fresh `Idempotency-Key` per request; no worker runs, so the API alone is
 * measured. Rounds alternate peer and API so that the shared machine's noise hits both; the
 * ratio is API requests/s ÷ peer requests/s, per round. Then every accepted submission is
 * checked to be in its queue exactly once.
 *
 * Needs wrk (Debian: apt-get install wrk). Options: --connections=N (default 32) --duration=S
 * (seconds per measurement, default 8) --rounds=N (default 3) --port=P (the API's; the peer takes a free one)
 */
import { execFileSync, fork } from 'node:child_process';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEFAULT_MODEL, modelQueueName } from '@farm/platform';
import { cpuMs, intArg, redisCpuMs, startLocalFarm } from './bench-support';
import { removeKeys } from '../support/farm-keys';

interface WrkFigures {
  requests: number;
  durationUs: number;
  non2xx: number;
  timeouts: number;
  socketErrors: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** CPU time the server process and Redis spent per answered request, in µs. */
  serverCpuUs: number;
  redisCpuUs: number;
}

const TENANTS = ['bench-a', 'bench-b', 'bench-c', 'bench-d'];
const BODY = JSON.stringify({ type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 1 });

/** One wrk run against the server process `pid`, with the CPU time it and Redis spent. */
async function wrk(url: string, pid: number, redis: Redis, connections: number, seconds: number, env: Record<string, string>): Promise<WrkFigures> {
  const [server0, redis0] = [cpuMs(pid)!, await redisCpuMs(redis)];
  const out = execFileSync(
    'wrk',
    ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', path.join(__dirname, '../../bench/wrk-submit.lua'), url],
    { env: { ...process.env, WRK_BODY: BODY, ...env }, encoding: 'utf8' },
  );
  const figures = JSON.parse(out.trim().split('\n').pop()!) as Omit<WrkFigures, 'serverCpuUs' | 'redisCpuUs'>;
  const perRequest = (ms: number) => (ms * 1000) / Math.max(1, figures.requests);
  return { ...figures, serverCpuUs: perRequest(cpuMs(pid)! - server0), redisCpuUs: perRequest((await redisCpuMs(redis)) - redis0) };
}

const rps = (f: WrkFigures) => f.requests / (f.durationUs / 1e6);
const ms = (us: number) => (us / 1000).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const describe = (f: WrkFigures) =>
  `${rps(f).toFixed(0).padStart(6)} req/s, p50 ${ms(f.p50)} ms, p90 ${ms(f.p90)} ms, p99 ${ms(f.p99)} ms, CPU/request: server ${f.serverCpuUs.toFixed(0)} us, Redis ${f.redisCpuUs.toFixed(0)} us` +
  (f.non2xx + f.timeouts + f.socketErrors > 0 ? ` (non-2xx ${f.non2xx}, timeouts ${f.timeouts}, socket errors ${f.socketErrors})` : '');

async function main(): Promise<void> {
  const connections = intArg('connections', 32);
  const seconds = intArg('duration', 8);
  const rounds = intArg('rounds', 3);
  const port = intArg('port', 18081);
  const keys = TENANTS.map((t) => `fk_${t}-benchmark-key-000000000000`);
  const farm = await startLocalFarm({
    port,
    workers: 0,
    env: {
      API_KEYS: TENANTS.map((t, i) => `${t}:${keys[i]}`).join(','),
      TENANT_RATE_PER_SECOND: '1000000',
      TENANT_BURST: '1000000',
      TENANT_MAX_QUEUED: '10000000',
    },
  });
  const peerQueueName = `${farm.queueName}-peer`;
  const peer = fork(path.join(__dirname, 'load-peer.js'), [peerQueueName], { stdio: 'inherit', env: { ...process.env, REDIS_URL: farm.redisUrl } });
  const peerPort = await new Promise<number>((resolve) => peer.once('message', (p) => resolve(Number(p))));
  const redis = new Redis(farm.redisUrl, { maxRetriesPerRequest: null });
  const apiQueue = new Queue(modelQueueName(farm.queueName, DEFAULT_MODEL), { connection: redis, prefix: '{farm}' });
  const peerQueue = new Queue(peerQueueName, { connection: redis, prefix: '{farm}' });
  const targets = {
    peer: { url: `http://127.0.0.1:${peerPort}`, pid: peer.pid!, env: { WRK_KEYS: keys.join(',') } },
    api: { url: farm.base, pid: farm.api.pid!, env: { WRK_KEYS: keys.join(',') } },
    'api + Idempotency-Key': { url: farm.base, pid: farm.api.pid!, env: { WRK_KEYS: keys.join(','), WRK_IDEMPOTENT: '1' } },
  };
  const run = (t: (typeof targets)[keyof typeof targets], seconds: number, nonce: string) =>
    wrk(t.url, t.pid, redis, connections, seconds, { ...t.env, WRK_NONCE: nonce });
  type Target = keyof typeof targets;
  const results: Record<Target, WrkFigures[]> = { peer: [], api: [], 'api + Idempotency-Key': [] };
  try {
    // Warm-up (JIT, connections, caches): counted in the queue check below, not in the figures.
    const warmUp = {} as Record<Target, WrkFigures>;
    for (const [name, t] of Object.entries(targets) as Array<[Target, (typeof targets)[Target]]>) warmUp[name] = await run(t, 2, `warm-${name.length}`);
    console.log(`load benchmark: POST /v1/jobs, wrk -t1 -c${connections} -d${seconds}s, body ${BODY}`);
    for (let round = 1; round <= rounds; round++) {
      for (const [name, t] of Object.entries(targets) as Array<[Target, (typeof targets)[Target]]>) {
        const figures = await run(t, seconds, `round-${round}`);
        results[name].push(figures);
        console.log(`  round ${round} ${name.padEnd(22)}: ${describe(figures)}`);
      }
    }
    console.log('medians over the rounds:');
    for (const name of Object.keys(results) as Target[]) {
      const f = results[name];
      console.log(
        `  ${name.padEnd(30)}: ${median(f.map(rps)).toFixed(0).padStart(6)} req/s, p50 ${ms(median(f.map((x) => x.p50)))} ms, p99 ${ms(median(f.map((x) => x.p99)))} ms, ` +
          `CPU/request: server ${median(f.map((x) => x.serverCpuUs)).toFixed(0)} us, Redis ${median(f.map((x) => x.redisCpuUs)).toFixed(0)} us`,
      );
    }
    for (const name of ['api', 'api + Idempotency-Key'] as const) {
      const ratios = results[name].map((f, i) => rps(f) / rps(results.peer[i]));
      console.log(`  ratio ${name} / peer${' '.repeat(22 - name.length)}: ${median(ratios).toFixed(2)} (per round: ${ratios.map((r) => r.toFixed(2)).join(', ')})`);
    }

    // Every accepted submission is in its queue. wrk counts the answers it read; requests still in
    // flight when a run stops may be queued unanswered, up to one per connection and run.
    for (const [name, f] of Object.entries(warmUp)) console.log(`  warm-up ${name.padEnd(20)}: ${describe(f)}`);
    const runs = [warmUp.api, warmUp['api + Idempotency-Key'], ...results.api, ...results['api + Idempotency-Key']];
    const accepted = runs.reduce((sum, f) => sum + f.requests - f.non2xx, 0);
    const refused = runs.reduce((sum, f) => sum + f.non2xx + f.timeouts, 0);
    const queued = await apiQueue.count();
    const inQueue = queued >= accepted && queued <= accepted + connections * runs.length;
    console.log(`  API: ${accepted} submissions answered 2xx, ${refused} refused or timed out, ${queued} jobs queued (${inQueue ? 'all accepted ones there' : 'MISMATCH'})`);
    const peerRefused = results.peer.reduce((sum, f) => sum + f.non2xx + f.timeouts, 0);
    if (peerRefused > 0) console.log(`  the peer refused or timed out ${peerRefused} requests: its figures are not a baseline`);
    if (refused > 0 || !inQueue || peerRefused > 0) process.exitCode = 1;
  } finally {
    peer.kill('SIGTERM');
    await Promise.all([apiQueue.obliterate({ force: true }), peerQueue.obliterate({ force: true })]);
    await Promise.all([apiQueue.close(), peerQueue.close()]);
    // The farm's own keys (tenants' buckets and lines, idempotency claims, API keys) under its prefix.
    await removeKeys(`{farm}:${farm.queueName}`, redis);
    redis.disconnect();
    await farm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
