/**
 * The farm as it runs in production, for tests: the API and worker entry points
 * (apps/{api,worker}/dist/main.js) as child processes on the environment a test gives (a Redis
 * topology of its own, say), a queue of its own, the suite's S3, one tenant's key registered
 * through API_KEYS and the suite's admin key (ADMIN_API_KEY). The API's answers are checked against its OpenAPI document; the processes'
 * output is kept for failure messages; `stop()` kills them.
 */
import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { watchApi } from './contract-fetch';
import { freePorts } from './free-ports';
import { ObjectStore } from '@farm/platform';
import { ADMIN_KEY, TestApi, testStoreOptions } from './harness';

const ROOT = path.resolve(__dirname, '../..');

export class FarmProcesses {
  readonly queueName = `${process.env.FARM_TEST_RUN}-${Math.random().toString(36).slice(2, 10)}`;
  readonly key = `fk_farm-processes-${Math.random().toString(36).slice(2)}`;
  readonly queuePrefix = '{farm}';
  /** The API, as the tenant. */
  readonly api: TestApi;
  /** Each worker's /metrics port. */
  readonly workerPorts: number[] = [];
  private readonly children: ChildProcess[] = [];
  private log = '';

  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    apiPort: number,
  ) {
    this.api = new TestApi(`http://127.0.0.1:${apiPort}`, this.key);
    watchApi(this.api.base);
  }

  /** The API and `workers` workers on `env` (over the suite's own), ready for requests. */
  static async start(env: Record<string, string>, workers = 1): Promise<FarmProcesses> {
    const [apiPort, ...workerPorts] = await freePorts(1 + workers);
    const farm = new FarmProcesses({ ...process.env, HOST: '127.0.0.1', ...env }, apiPort);
    farm.spawn('api', 'apps/api/dist/main.js', { PORT: String(apiPort) });
    for (const port of workerPorts) farm.startWorker(port);
    await farm.until(async () => (await farm.api.fetch('/readyz')).status === 200, 60000, 'the API ready');
    for (const port of workerPorts) await farm.until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 60000, 'the workers ready');
    return farm;
  }

  /** Another worker process (its metrics on `port`). */
  startWorker(port: number): void {
    this.workerPorts.push(port);
    this.spawn(`worker-${this.workerPorts.length}`, 'apps/worker/dist/main.js', { WORKER_METRICS_PORT: String(port), WORKER_ID: `w${this.workerPorts.length}` });
  }

  private spawn(name: string, script: string, env: Record<string, string>): void {
    const child = fork(path.join(ROOT, script), [], {
      env: { ...this.env, QUEUE_PREFIX: this.queuePrefix, QUEUE_NAME: this.queueName, API_KEYS: `tenant-p:${this.key}`, ADMIN_API_KEY: ADMIN_KEY, ...env },
      stdio: 'pipe',
    });
    for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (d) => (this.log += `[${name}] ${d}`));
    child.once('exit', (code, signal) => (this.log += `[${name}] exited (${code ?? signal})\n`));
    this.children.push(child);
  }

  /** What the processes printed, for failure messages. */
  output(): string {
    return this.log;
  }

  /** Whether every process still runs. */
  get running(): boolean {
    return this.children.every((c) => c.exitCode === null && c.signalCode === null);
  }

  /** The sum of a worker counter's series over every worker (from their /metrics). */
  async workerCounter(name: string, labels = ''): Promise<number> {
    let total = 0;
    for (const port of this.workerPorts) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(labels)) total += Number(line.split(' ').pop());
    }
    return total;
  }

  /** Resolves once `check` holds (errors count as not yet); throws with the processes' output after `timeoutMs`. */
  async until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; the farm's output:\n${this.log.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map((c) => {
        if (c.exitCode !== null || c.signalCode !== null) return undefined;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        return exited;
      }),
    );
  }
}

/** The farm on a Redis of a test file's own, and the suite's S3 to read its results from. */
export interface FarmOn<T> {
  topology: T;
  farm: FarmProcesses;
  store: ObjectStore;
}

/**
 * Registers a file's hooks: before its tests a Redis topology of its own (`start`), the farm on
 * it (with a REDIS_URL nothing answers at, so nothing falls back to a single server, and 5 s
 * locks) and a client of the suite's S3; after them all of it stopped. Its fields are set once
 * the tests run.
 */
export function useFarmOn<T extends { env: Record<string, string>; stop(): Promise<void> }>(start: () => Promise<T>): FarmOn<T> {
  const on = {} as FarmOn<T>;
  beforeAll(async () => {
    on.store = new ObjectStore(testStoreOptions());
    on.topology = await start();
    on.farm = await FarmProcesses.start({ ...on.topology.env, REDIS_URL: 'redis://127.0.0.1:1', LOCK_DURATION_MS: '5000' });
  }, 120000);
  afterAll(async () => {
    await on.farm?.stop();
    await on.topology?.stop();
    on.store?.close();
  });
  return on;
}
