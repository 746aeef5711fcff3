/**
 * The `npm start` launcher ends with its children, however they end: a child killed by SIGKILL
 * stops the whole farm and the launcher exits non-zero; a SIGTERM at any moment of start-up is
 * honoured with a clean exit.
 */
import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { createRedis } from '@farm/platform';
import { scratchDir } from '../support/scratch-dir';

const ROOT = path.resolve(__dirname, '../..');
const PORT = 18397;

interface Launched {
  farm: ChildProcess;
  /** Everything it printed so far. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  queueName: string;
}

function launch(): Launched {
  const queueName = `launcher-${Date.now()}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(PORT),
    EMBEDDED_S3_PORT: '0',
    FARM_DATA_DIR: scratchDir('farm-launcher-'),
    WORKER_METRICS_PORT: '0',
    QUEUE_NAME: queueName,
  };
  for (const name of ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'S3_FORCE_PATH_STYLE', 'API_KEYS', 'ADMIN_API_KEY']) delete env[name];
  const farm = fork(path.join(ROOT, 'apps/farm/dist/main.js'), [], { env, stdio: 'pipe' });
  let output = '';
  farm.stdout!.on('data', (d) => (output += d));
  farm.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => farm.once('exit', (code, signal) => resolve({ code, signal })));
  return { farm, output: () => output, exited, queueName };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function pidOf(output: string, name: string): number | null {
  const match = new RegExp(`\\[farm\\] ${name}: pid (\\d+)`).exec(output);
  return match ? Number(match[1]) : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function removeKeys(queueName: string): Promise<void> {
  const redis = createRedis(process.env.REDIS_URL!);
  const keys = await redis.keys(`{farm}:${queueName}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}

describe('the npm start launcher', () => {
  const launched: Launched[] = [];
  afterAll(async () => {
    for (const { farm } of launched) if (farm.exitCode === null && farm.signalCode === null) farm.kill('SIGKILL');
    for (const { queueName } of launched) await removeKeys(queueName);
  });

  it('stops everything and exits non-zero when the worker is killed by SIGKILL', async () => {
    const run = launch();
    launched.push(run);
    await until(async () => run.output().includes('metrics on') && (await fetch(`http://127.0.0.1:${PORT}/healthz`).then((r) => r.ok, () => false)));
    const api = pidOf(run.output(), 'api')!;
    const worker = pidOf(run.output(), 'worker')!;
    const s3 = /s3: embedded server at (\S+),/.exec(run.output())![1];
    expect(alive(api)).toBe(true);

    process.kill(worker, 'SIGKILL');
    const { code, signal } = await run.exited;
    expect(signal).toBeNull();
    expect(code).toBe(1);
    expect(run.output()).toContain('worker was killed by SIGKILL');
    await until(() => !alive(api), 5000);
    await expect(fetch(s3)).rejects.toThrow(); // the embedded S3 closed with it
  });

  it('honours a SIGTERM that arrives during start-up: stops what started and exits 0', async () => {
    const run = launch();
    launched.push(run);
    // Redis has been checked; the S3 server and the children are being started.
    await until(() => run.output().includes('[farm] redis:'));
    run.farm.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    for (const name of ['api', 'worker']) {
      const pid = pidOf(run.output(), name);
      if (pid !== null) await until(() => !alive(pid), 5000);
    }
  });
});
