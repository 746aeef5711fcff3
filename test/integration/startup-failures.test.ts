/**
 * Loud failures: the API, the worker and the `npm start` launcher (with its embedded S3), started
 * as real processes against a port another server holds or a misconfigured dependency, exit
 * non-zero with one line saying what is wrong — and never claim to be listening.
 */
import { ChildProcess, fork } from 'node:child_process';
import { Server, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { removeKeys } from '../support/farm-keys';
import { scratchDir } from '../support/scratch-dir';

const ROOT = path.resolve(__dirname, '../..');

interface Ended {
  code: number | null;
  stdout: string;
  /** stderr's non-empty lines. */
  errors: string[];
}

/** The queue names of this file's processes start with it (their keys are removed after the tests). */
const QUEUES = `startup-${process.env.FARM_TEST_RUN}`;

/** Runs one of the apps' entry points to its end (60 s at most). */
function runToExit(script: string, env: Record<string, string>): Promise<Ended> {
  const child: ChildProcess = fork(path.join(ROOT, script), [], {
    env: { ...process.env, QUEUE_NAME: `${QUEUES}-${Date.now()}`, WORKER_METRICS_PORT: '0', ...env },
    stdio: 'pipe',
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, errors: stderr.split('\n').filter((l) => l.trim() !== '') });
    }),
  );
}

/** A server that holds a port: it accepts connections and never answers on them. */
let squatter: Server;
let takenPort: number;
/** `REDIS_URL: 'squatter'` stands for the squatter's address (known once it listens). */
const withSquatter = (env: Record<string, string>) => (env.REDIS_URL === 'squatter' ? { ...env, REDIS_URL: `redis://127.0.0.1:${takenPort}` } : env);

beforeAll(async () => {
  squatter = createServer((socket) => socket.resume()); // reads and discards: the socket ends when its client goes
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  takenPort = (squatter.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => squatter.close(resolve));
  await removeKeys(`{farm}:${QUEUES}`);
});

describe('the API', () => {
  it('exits 1 with one line when its port is taken, and never says it is listening', async () => {
    const ended = await runToExit('apps/api/dist/main.js', { PORT: String(takenPort), HOST: '127.0.0.1' });
    expect(ended).toEqual({
      code: 1,
      stdout: '',
      errors: [`api: port ${takenPort} is already in use (PORT); stop what listens there or set PORT to a free port`],
    });
  });

  it.each([
    ['Redis does not answer', { REDIS_URL: 'redis://127.0.0.1:1' }, /^api: Redis does not answer at redis:\/\/127\.0\.0\.1:1/],
    ['what listens at REDIS_URL accepts connections but never answers', { REDIS_URL: 'squatter' }, /^api: Redis at redis:\/\/127\.0\.0\.1:\d+\/? accepted the connection but did not answer within 2 s \(not a Redis server, or a hung one\): check REDIS_URL$/],
    ['a variable is bad', { PORT: 'eighty' }, /^api: invalid environment: PORT: /],
    ['no Redis Cluster node answers', { REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' }, /^api: Redis Cluster at 127\.0\.0\.1:1,127\.0\.0\.1:2 does not answer: check REDIS_CLUSTER_NODES$/],
    ['no Sentinel answers', { REDIS_SENTINELS: '127.0.0.1:1', REDIS_SENTINEL_NAME: 'farm' }, /^api: Sentinel master "farm" at 127\.0\.0\.1:1 does not answer: check REDIS_SENTINELS and REDIS_SENTINEL_NAME$/],
    ['Sentinels are named without their master', { REDIS_SENTINELS: '127.0.0.1:1' }, /^api: invalid environment: REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/],
    ['S3 does not answer', { S3_ENDPOINT: 'http://127.0.0.1:1' }, /^api: S3 at http:\/\/127\.0\.0\.1:1 does not answer \(ECONNREFUSED\): check S3_ENDPOINT$/],
    ['S3 refuses the credentials', { S3_ACCESS_KEY_ID: 'nobody', S3_SECRET_ACCESS_KEY: 'wrong' }, /^api: S3 at http:\/\/127\.0\.0\.1:\d+ refused access to bucket farm-test: check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY$/],
    ['the bucket is missing and may not be created', { S3_BUCKET: 'no-such-bucket', S3_CREATE_BUCKET: 'false' }, /^api: bucket no-such-bucket does not exist at http:\/\/127\.0\.0\.1:\d+: create it, or set S3_CREATE_BUCKET=true$/],
  ])('exits 1 with one line when %s', async (_case, env, reason) => {
    const ended = await runToExit('apps/api/dist/main.js', { PORT: '0', ...withSquatter(env) });
    expect(ended.code).toBe(1);
    expect(ended.stdout).not.toContain('listening');
    expect(ended.errors).toHaveLength(1);
    expect(ended.errors[0]).toMatch(reason);
  });
});

describe('the worker', () => {
  it('exits 1 with one line when its metrics port is taken', async () => {
    const ended = await runToExit('apps/worker/dist/main.js', { WORKER_METRICS_PORT: String(takenPort) });
    expect(ended.code).toBe(1);
    expect(ended.errors).toEqual([`worker: port ${takenPort} is already in use (WORKER_METRICS_PORT); stop what listens there or set WORKER_METRICS_PORT to a free port`]);
  });

  it('exits 1 with one line when what listens at REDIS_URL accepts connections but never answers', async () => {
    const ended = await runToExit('apps/worker/dist/main.js', withSquatter({ REDIS_URL: 'squatter' }));
    expect(ended.code).toBe(1);
    expect(ended.errors).toEqual([expect.stringMatching(/^worker: Redis at redis:\/\/127\.0\.0\.1:\d+\/? accepted the connection but did not answer within 2 s/)]);
  });

  it('exits 1 with one line when its model folder does not exist', async () => {
    const ended = await runToExit('apps/worker/dist/main.js', { MODEL_DIR: '/nonexistent/model' });
    expect(ended.code).toBe(1);
    expect(ended.errors).toHaveLength(1);
    expect(ended.errors[0]).toMatch(/^worker: .*\/nonexistent\/model/);
  });
});

describe('the npm start launcher', () => {
  const launcher = (env: Record<string, string>) =>
    runToExit('apps/farm/dist/main.js', {
      FARM_DATA_DIR: scratchDir('farm-startup-'),
      // The launcher's own embedded S3, not the suite's.
      S3_ENDPOINT: '',
      S3_BUCKET: '',
      S3_ACCESS_KEY_ID: '',
      S3_SECRET_ACCESS_KEY: '',
      S3_FORCE_PATH_STYLE: '',
      ...env,
    });

  it("exits 1 with one line when the embedded S3's port is taken", async () => {
    const ended = await launcher({ EMBEDDED_S3_PORT: String(takenPort), PORT: '0' });
    expect(ended.code).toBe(1);
    expect(ended.errors).toEqual([`[farm] port ${takenPort} is already in use (EMBEDDED_S3_PORT); stop what listens there or set EMBEDDED_S3_PORT to a free port`]);
  });

  it("stops the farm and exits 1 when the API's port is taken, relaying the API's reason", async () => {
    const ended = await launcher({ EMBEDDED_S3_PORT: '0', PORT: String(takenPort) });
    expect(ended.code).toBe(1);
    expect(ended.stdout).toContain(`[api] api: port ${takenPort} is already in use (PORT)`);
    expect(ended.stdout).not.toContain('api: listening');
    expect(ended.errors).toContain('[farm] api exited with code 1; stopping the farm');
  });
});
