/**
 * Redis going away while jobs run, with a Redis of our own (AOF, fsync always) and real API and
 * worker processes: the API answers 503 at once while Redis is away — no crash, no hang — and
 * recovers by itself; the worker reconnects; every accepted job finishes.
 */
import { ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { ObjectStore, createRedis } from '@farm/platform';
import { watchApi } from '../support/contract-fetch';
import { faultFigures } from '../support/fault-figures';
import { TestApi, testStoreOptions } from '../support/harness';
import { scratchDir } from '../support/scratch-dir';

const ROOT = path.resolve(__dirname, '../..');
const PORT = 16391;
const API_PORT = 18391;
const REDIS_URL = `redis://127.0.0.1:${PORT}`;
const KEY = 'fk_redis-restart-test-key-000000';
const dir = scratchDir('farm-redis-');
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

function startRedis(): ChildProcess {
  return spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
}

async function until(check: () => Promise<boolean>, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

watchApi(`http://127.0.0.1:${API_PORT}`);
const api = (p: string, init: RequestInit = {}) =>
  fetch(`http://127.0.0.1:${API_PORT}${p}`, { ...init, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(5000) });

(haveRedis ? describe : describe.skip)('Redis restarted while jobs run (AOF persistence)', () => {
  let redis: ChildProcess;
  const apps: ChildProcess[] = [];

  beforeAll(async () => {
    redis = startRedis();
    const probe = createRedis(REDIS_URL);
    await until(async () => (await probe.ping()) === 'PONG');
    probe.disconnect();
    const env = { ...process.env, REDIS_URL, QUEUE_NAME: `restart-${Date.now()}`, PORT: String(API_PORT), HOST: '127.0.0.1', API_KEYS: `tenant-r:${KEY}`, WORKER_METRICS_PORT: '0', LOCK_DURATION_MS: '5000' };
    apps.push(fork(path.join(ROOT, 'apps/api/dist/main.js'), [], { env, stdio: 'pipe' }));
    apps.push(fork(path.join(ROOT, 'apps/worker/dist/main.js'), [], { env, stdio: 'pipe' }));
    await until(async () => (await api('/healthz')).status === 200);
  });

  afterAll(async () => {
    for (const app of apps) app.kill('SIGKILL');
    redis.kill('SIGKILL');
  });

  it('answers 503 while Redis is away, recovers by itself, and finishes every accepted job', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await api('/v1/jobs', { method: 'POST', body: JSON.stringify({ type: 'generate', prompt: 'a white square on a blue background', width: 128, height: 128, steps: 16, seed: i }) });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }

    // Redis stops (SHUTDOWN writes the AOF) while the worker is mid-batch.
    await until(async () => {
      const res = await api(`/v1/jobs/${ids[0]}`);
      return ((await res.json()) as { progress: { step: number } }).progress.step >= 1;
    });
    spawnSync('redis-cli', ['-p', String(PORT), 'shutdown']);
    await new Promise((r) => redis.once('exit', r));

    const started = Date.now();
    const submit = await api('/v1/jobs', { method: 'POST', body: JSON.stringify({ type: 'generate', prompt: 'a red circle' }) });
    expect(submit.status).toBe(503);
    expect(((await submit.json()) as any).error.code).toBe('queue_unavailable');
    expect(submit.headers.get('retry-after')).toBeTruthy();
    expect((await api('/healthz')).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(5000); // answered, not hung
    expect(apps.every((app) => app.exitCode === null)).toBe(true); // nothing crashed

    redis = startRedis();
    await until(async () => (await api('/healthz')).status === 200, 30000);
    const statuses = await Promise.all(
      ids.map(async (id) => {
        let status = '';
        await until(async () => {
          const res = await api(`/v1/jobs/${id}`);
          status = res.status === 200 ? ((await res.json()) as { status: string }).status : '';
          return status === 'succeeded' || status === 'failed';
        }, 90000);
        return status;
      }),
    );
    expect(statuses).toEqual(Array(6).fill('succeeded'));
    const store = new ObjectStore(testStoreOptions());
    try {
      const figures = await faultFigures('Redis restarted mid-batch (AOF)', new TestApi(`http://127.0.0.1:${API_PORT}`, KEY), store, ids);
      expect(figures).toEqual({ accepted: 6, succeeded: 6, failed: 0, canceled: 0, lost: 0, twice: 0 });
    } finally {
      store.close();
    }
  }, 120000);
});
