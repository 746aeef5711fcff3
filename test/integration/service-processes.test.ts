/**
 * The API and worker as real processes: they start whatever the combination of settings (API keys
 * registered while the bucket is not checked), and a SIGTERM during start-up — here while Redis has
 * not answered yet — ends them with exit code 0, not by the signal.
 */
import { ChildProcess, fork } from 'node:child_process';
import { createServer, Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { removeKeys } from '../support/farm-keys';

const ROOT = path.resolve(__dirname, '../..');
const KEY = 'fk_service-process-test-key-0000';

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(app: 'api' | 'worker', env: Record<string, string>): Started {
  const child = fork(path.join(ROOT, `apps/${app}/dist/main.js`), [], { env: { ...process.env, WORKER_METRICS_PORT: '0', ...env }, stdio: 'pipe' });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
}

describe('the API process', () => {
  const queueName = `${process.env.FARM_TEST_RUN}-process`;
  afterAll(() => removeKeys(`{farm}:${queueName}`));

  it('starts with API_KEYS set and S3_CREATE_BUCKET=false, and exits 0 on SIGTERM', async () => {
    const port = 18400 + Math.floor(Math.random() * 500);
    const api = start('api', { PORT: String(port), HOST: '127.0.0.1', QUEUE_NAME: queueName, API_KEYS: `tenant-p:${KEY}`, S3_CREATE_BUCKET: 'false' });
    let answered = false;
    for (let i = 0; i < 300 && !answered && api.child.exitCode === null; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/v1/workers`, { headers: { Authorization: `Bearer ${KEY}` } }).catch(() => null);
      answered = res?.status === 200;
      if (!answered) await new Promise((r) => setTimeout(r, 100));
    }
    expect(api.output()).not.toMatch(/Stream isn't writeable/);
    expect(answered).toBe(true); // the key registered at start-up works
    api.child.kill('SIGTERM');
    expect(await api.exited).toEqual({ code: 0, signal: null });
  });
});

describe('a SIGTERM during start-up', () => {
  // A "Redis" that accepts connections and never answers: start-up stays in its Redis check.
  let silent: Server;
  let connected: () => void;
  let connection: Promise<void>;
  const sockets: Socket[] = [];
  beforeEach(async () => {
    connection = new Promise((resolve) => (connected = resolve));
    silent = createServer((socket) => {
      sockets.push(socket);
      connected();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it.each(['api', 'worker'] as const)('ends the %s with exit code 0, not by the signal', async (app) => {
    const service = start(app, { REDIS_URL: `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`, PORT: '0' });
    await connection; // its modules are loaded and it waits on Redis
    service.child.kill('SIGTERM');
    expect(await service.exited).toEqual({ code: 0, signal: null });
    expect(service.output()).toMatch(/SIGTERM during start-up/);
  });
});
