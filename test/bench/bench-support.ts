/** Shared pieces of the benchmarks: a throwaway local farm (real processes) and timing helpers. */
import { ChildProcess, fork } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedS3 } from '@farm/farm';

const ROOT = path.resolve(__dirname, '../../..');

export interface LocalFarm {
  base: string;
  close(): Promise<void>;
}

/** S3 server in this process; API and `workers` worker processes as children, on a fresh queue. */
export async function startLocalFarm(options: { port: number; workers?: number; env?: Record<string, string> }): Promise<LocalFarm> {
  const s3 = await EmbeddedS3.start({ directory: mkdtempSync(path.join(os.tmpdir(), 'farm-bench-')), bucket: 'bench' });
  const env = {
    ...process.env,
    ...s3.env(),
    QUEUE_NAME: `bench-${Date.now().toString(36)}`,
    PORT: String(options.port),
    HOST: '127.0.0.1',
    WORKER_METRICS_PORT: '0',
    ...options.env,
  };
  const children: ChildProcess[] = [fork(path.join(ROOT, 'apps/api/dist/main.js'), [], { env, stdio: 'inherit' })];
  for (let i = 0; i < (options.workers ?? 1); i++) {
    children.push(fork(path.join(ROOT, 'apps/worker/dist/main.js'), [], { env: { ...env, WORKER_ID: `bench-${i}` }, stdio: 'inherit' }));
  }
  const base = `http://127.0.0.1:${options.port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(100);
  }
  return {
    base,
    async close() {
      await Promise.all(children.map((c) => new Promise((r) => { c.once('exit', r); c.kill('SIGTERM'); })));
      await s3.close();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Submits a job and polls it to a final state; returns the job JSON. */
export async function runJob(base: string, body: unknown): Promise<Record<string, any>> {
  const res = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  for (;;) {
    const job = (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as Record<string, any>;
    if (job.status === 'succeeded') return job;
    if (job.status === 'failed') throw new Error(`job ${id} failed: ${job.error?.message}`);
    await sleep(250);
  }
}

export function intArg(name: string, fallback: number): number {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}
