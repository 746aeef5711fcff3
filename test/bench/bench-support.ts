/** Shared pieces of the benchmarks: a throwaway local farm (real processes), timing helpers, captioned sample grids. */
import { ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import type { Redis } from 'ioredis';
import { QueueEvents } from 'bullmq';
import { DEFAULT_MODEL, createRedis, modelQueueName, openQueue } from '@farm/platform';
import { freePorts } from '../support/free-ports';

/** The repository's root. */
export const ROOT = path.resolve(__dirname, '../../..');

/** The benchmark tenant's key (registered through API_KEYS). */
export const BENCH_KEY = 'fk_benchmark-tenant-key-0000000000';

export interface LocalFarm {
  base: string;
  key: string;
  queueName: string;
  /** The API's process. */
  api: ChildProcess;
  /** The embedded S3's process. */
  s3: ChildProcess;
  /** Starts one more worker process. */
  startWorker(id: string, env?: Record<string, string>): ChildProcess;
  /** The worker processes started so far. */
  workers: ChildProcess[];
  /** The bundled model's queue events (read from the moment it opens; closed with the farm). */
  events(): Promise<QueueEvents>;
  /** The Redis the farm runs on (its processes' REDIS_URL). */
  redisUrl: string;
  /** A Redis connection of the benchmark's own (closed with the farm). */
  redis: Redis;
  /**
   * Kept-alive connections to the API for submissions: at fetch()'s cost per request the
   * benchmark's client would take a larger share of the cores the farm is measured on.
   */
  agent: http.Agent;
  close(): Promise<void>;
}

/**
 * A redis-server of the benchmark's own (no persistence) when REDIS_URL is unset and one is
 * installed, so that its command counts and CPU time are the farm's alone on a shared machine;
 * otherwise the Redis at REDIS_URL (or the default one).
 */
async function benchRedis(): Promise<{ url: string; stop(): void }> {
  const given = process.env.REDIS_URL;
  if (given || spawnSync('redis-server', ['--version']).status !== 0) return { url: given ?? 'redis://127.0.0.1:6379', stop: () => undefined };
  const [port] = await freePorts(1);
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const probe = createRedis(url);
  probe.on('error', () => undefined);
  for (let i = 0; i < 100 && !(await probe.ping().then(() => true, () => false)); i++) await sleep(50);
  probe.disconnect();
  return { url, stop: () => server.kill('SIGKILL') };
}

/** The embedded S3 in a child process (embedded-s3-process.ts); resolves once it listens, with the environment that points the farm at it. */
function startS3Process(execArgv: string[]): Promise<{ process: ChildProcess; env: Record<string, string> }> {
  const child = fork(path.join(__dirname, 'embedded-s3-process.js'), [], { stdio: 'inherit', execArgv });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { env: Record<string, string> }) => resolve({ process: child, env: m.env }));
    child.once('exit', (code) => reject(new Error(`the benchmark's S3 exited with ${code} before it listened`)));
  });
}

/** The embedded S3, the API and `workers` worker processes as children, on a fresh queue and a Redis of the benchmark's own. */
export async function startLocalFarm(options: { port: number; workers?: number; env?: Record<string, string> }): Promise<LocalFarm> {
  // BENCH_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof" profiles the farm's processes.
  const execArgv = process.env.BENCH_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const s3 = await startS3Process(execArgv);
  const ownRedis = await benchRedis();
  const queueName = `bench-${Date.now().toString(36)}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: ownRedis.url,
    ...s3.env,
    QUEUE_NAME: queueName,
    PORT: String(options.port),
    HOST: '127.0.0.1',
    WORKER_METRICS_PORT: '0',
    API_KEYS: `bench:${BENCH_KEY}`,
    ...options.env,
  };
  const api = fork(path.join(ROOT, 'apps/api/dist/main.js'), [], { env, stdio: 'inherit', execArgv });
  const children: ChildProcess[] = [api];
  const workers: ChildProcess[] = [];
  const startWorker = (id: string, extra: Record<string, string> = {}) => {
    const child = fork(path.join(ROOT, 'apps/worker/dist/main.js'), [], { env: { ...env, WORKER_ID: id, ...extra }, stdio: 'inherit', execArgv });
    children.push(child);
    workers.push(child);
    return child;
  };
  for (let i = 0; i < (options.workers ?? 1); i++) startWorker(`bench-${i}`);
  const base = `http://127.0.0.1:${options.port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(100);
  }
  const redis = createRedis(ownRedis.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let events: QueueEvents | null = null;
  return {
    base,
    key: BENCH_KEY,
    queueName,
    api,
    s3: s3.process,
    startWorker,
    workers,
    redisUrl: ownRedis.url,
    redis,
    agent,
    async events() {
      if (!events) {
        // Connection options, not a client: BullMQ then owns the connection and closes it with the events.
        const { hostname: host, port } = new URL(ownRedis.url);
        events = new QueueEvents(modelQueueName(queueName, DEFAULT_MODEL), { connection: { host, port: Number(port || 6379) }, prefix: env.QUEUE_PREFIX ?? '{farm}' });
        await events.waitUntilReady();
      }
      return events;
    },
    async close() {
      const stop = (c: ChildProcess) => new Promise((r) => { if (c.exitCode !== null) return r(null); c.once('exit', r); c.kill('SIGTERM'); });
      await Promise.all(children.map(stop));
      await stop(s3.process); // after the workers: they store what they finish on their way out
      const queue = openQueue({ QUEUE_NAME: queueName, QUEUE_PREFIX: env.QUEUE_PREFIX ?? '{farm}' }, redis, DEFAULT_MODEL);
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await events?.close();
      redis.disconnect();
      agent.destroy();
      ownRedis.stop();
    },
  };
}

export function authed(farm: LocalFarm, init: RequestInit = {}): RequestInit {
  return { ...init, headers: { Authorization: `Bearer ${farm.key}`, 'Content-Type': 'application/json', ...(init.headers as Record<string, string>) } };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Submits a job and polls it to a final state; returns the job JSON. */
export async function runJob(farm: LocalFarm, body: unknown): Promise<Record<string, any>> {
  const id = await submit(farm, body);
  for (;;) {
    const job = (await (await fetch(`${farm.base}/v1/jobs/${id}`, authed(farm))).json()) as Record<string, any>;
    if (job.status === 'succeeded') return job;
    if (job.status === 'failed') throw new Error(`job ${id} failed: ${job.error?.message}`);
    await sleep(250);
  }
}

/** Submits a job; returns its id. */
export async function submit(farm: LocalFarm, body: unknown): Promise<string> {
  const payload = JSON.stringify(body);
  const headers = { Authorization: `Bearer ${farm.key}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) };
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(`${farm.base}/v1/jobs`, { method: 'POST', agent: farm.agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
  if (status !== 202) throw new Error(`submit answered ${status}: ${text}`);
  return (JSON.parse(text) as { id: string }).id;
}

/**
 * Submits the jobs at once and waits until the queue has completed them all. Returns the seconds
 * from the first submission to the last completion.
 */
export async function throughputRound(farm: LocalFarm, bodies: unknown[]): Promise<number> {
  // Completions are read from the queue's event stream (one blocking read per batch of events),
  // not polled: polling would add its own commands to the Redis figures.
  const events = await farm.events();
  let completed = 0;
  let onCompleted = () => undefined as void;
  let onFailed = (_: { jobId: string; failedReason: string }) => undefined as void;
  const ended = new Promise<void>((resolve, reject) => {
    onCompleted = () => void (++completed === bodies.length && resolve());
    onFailed = ({ jobId, failedReason }) => reject(new Error(`job ${jobId} failed: ${failedReason}`));
  });
  events.on('completed', onCompleted);
  events.on('failed', onFailed);
  try {
    const t0 = performance.now();
    await Promise.all(bodies.map((b) => submit(farm, b)));
    await ended;
    return (performance.now() - t0) / 1000;
  } finally {
    events.off('completed', onCompleted);
    events.off('failed', onFailed);
  }
}

/** Submits a job and reads its event stream to the `succeeded` event; returns the milliseconds from submission. */
export async function timeToSucceeded(farm: LocalFarm, body: unknown): Promise<number> {
  const t0 = performance.now();
  const id = await submit(farm, body);
  const res = await fetch(`${farm.base}/v1/jobs/${id}/events`, authed(farm));
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the events of ${id} ended without success: ${text.slice(-300)}`);
    text += decoder.decode(value, { stream: true });
    if (/event: succeeded\n/.test(text)) {
      const ms = performance.now() - t0;
      await reader.cancel();
      return ms;
    }
    if (/event: (failed|canceled)\n/.test(text)) throw new Error(`job ${id} did not succeed: ${text.slice(-300)}`);
  }
}

/**
 * CPU time (ms, user + system) a process has used, all its threads; with `thread`, that thread's
 * alone (the process id is its main thread's). Linux /proc; null elsewhere. CPU time, unlike wall
 * time, does not grow when other processes take the cores.
 */
export function cpuMs(pid: number, thread?: number): number | null {
  try {
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/** A counter's value summed over its series, from a Prometheus text exposition. */
export async function scrapeCounter(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Redis' own count of commands executed so far, by command (INFO commandstats). */
export async function redisCommandCounts(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  return new Map([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1], Number(m[2])]));
}

/** CPU time the Redis server has used so far, in ms (INFO cpu: system and user, main thread and the rest). */
export async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return 1000 * (seconds('used_cpu_sys') + seconds('used_cpu_user'));
}

/** Commands executed between two `redisCommandCounts` readings, most frequent first. */
export function commandDelta(before: Map<string, number>, after: Map<string, number>): Array<[string, number]> {
  return [...after].map(([cmd, n]): [string, number] => [cmd, n - (before.get(cmd) ?? 0)]).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

export function intArg(name: string, fallback: number): number {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

/** Samples in a grid, each with its caption underneath (SVG text through sharp). */
export async function writeGrid(samples: Array<{ png: Buffer; caption: string }>, size: number, file: string, cols = 4): Promise<void> {
  await sharp(await gridImage(samples, size, cols)).toFile(file);
}

/** Grids one above the other, as one PNG file. */
export async function writeStacked(grids: Buffer[], file: string): Promise<void> {
  const sizes = await Promise.all(grids.map((g) => sharp(g).metadata()));
  const width = Math.max(...sizes.map((m) => m.width!));
  let height = 0;
  const layers = grids.map((input, i) => {
    const layer = { input, left: 0, top: height };
    height += sizes[i].height!;
    return layer;
  });
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(layers).png().toFile(file);
}

/** A grid of `size`-pixel samples, each with its caption underneath, as PNG. */
export async function gridImage(samples: Array<{ png: Buffer; caption: string }>, size: number, cols = 4): Promise<Buffer> {
  const cellW = Math.max(size, 256) + 16;
  const cellH = size + 40;
  const rows = Math.ceil(samples.length / cols);
  const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const layers = samples.flatMap(({ png, caption }, i) => {
    const left = (i % cols) * cellW + 8;
    const top = Math.floor(i / cols) * cellH + 4;
    const words = caption.split(' ');
    const half = Math.ceil(words.length / 2);
    const lines = [words.slice(0, half).join(' '), words.slice(half).join(' ')];
    const svg = `<svg width="${cellW}" height="34" xmlns="http://www.w3.org/2000/svg"><style>text{font:11px sans-serif;fill:#222}</style>${lines
      .map((l, k) => `<text x="0" y="${13 + k * 14}">${escape(l)}</text>`)
      .join('')}</svg>`;
    return [
      { input: png, left, top },
      { input: Buffer.from(svg), left, top: top + size + 2 },
    ];
  });
  return sharp({ create: { width: cols * cellW, height: rows * cellH, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toBuffer();
}
