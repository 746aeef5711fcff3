/**
 * The README's quick start, as a newcomer runs it: the local farm launcher (API + worker
 * processes, embedded S3, the local Redis) prints a development key; a job submitted with it
 * produces an image downloadable by its presigned URL; Ctrl-C / SIGTERM stops everything cleanly.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { watchApi } from '../support/contract-fetch';
import { removeKeys } from '../support/farm-keys';
import { scratchDir } from '../support/scratch-dir';

const ROOT = path.resolve(__dirname, '../..');

it('starts the farm with embedded defaults, renders a job for the printed key, and stops on SIGTERM', async () => {
  const dataDir = scratchDir('farm-quick-');
  const queueName = `quick-${Date.now()}`;
  const port = 18399;
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), EMBEDDED_S3_PORT: '0', FARM_DATA_DIR: dataDir, WORKER_METRICS_PORT: '0', QUEUE_NAME: queueName };
  for (const name of ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'S3_FORCE_PATH_STYLE', 'API_KEYS', 'ADMIN_API_KEY']) delete env[name];
  const farm = fork(path.join(ROOT, 'apps/farm/dist/main.js'), [], { env, stdio: 'pipe' });
  let output = '';
  farm.stdout!.on('data', (d) => (output += d));
  farm.stderr!.on('data', (d) => (output += d));
  try {
    const base = `http://127.0.0.1:${port}`;
    watchApi(base);
    // Up when the API answers its health check and the worker has said it is ready.
    for (let i = 0; i < 600; i++) {
      const healthy = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
      if (healthy && output.includes('metrics on')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const key = readFileSync(path.join(dataDir, 'dev-api-key'), 'utf8').trim();
    expect(output).toContain(`export FARM_API_KEY=${key}`);
    const headers = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
    const submit = await fetch(`${base}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({ type: 'generate', prompt: 'a red circle on a blue background', width: 128, height: 128 }) });
    expect(submit.status).toBe(202);
    const { id } = (await submit.json()) as { id: string };
    let job: any;
    for (let i = 0; i < 300; i++) {
      job = await (await fetch(`${base}/v1/jobs/${id}`, { headers })).json();
      if (job.status === 'succeeded' || job.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(job.status).toBe('succeeded');
    const image = Buffer.from(await (await fetch(job.result.url)).arrayBuffer()); // presigned: no key
    expect(await sharp(image).metadata()).toMatchObject({ format: 'png', width: 128, height: 128 });
  } finally {
    const exited = new Promise<number | null>((r) => farm.once('exit', (code) => r(code)));
    farm.kill('SIGTERM');
    expect(await exited).toBe(0);
    await removeKeys(`{farm}:${queueName}`);
  }
});
