/**
 * The local farm: Redis (the local one, or a redis-server child), an embedded S3 server when
 * S3_ENDPOINT is unset, the API and one worker as child processes, all under the supervisor
 * that stops them together.
 */
import { ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { describeRedis, loadConfig, redisEnv, workerEnv } from '@farm/platform';
import { EmbeddedS3 } from './embedded-s3';
import { ensureRedis } from './local-redis';
import type { Supervisor } from './supervisor';

const ROOT = path.resolve(__dirname, '../../..');

const launcherEnv = {
  ...redisEnv,
  REDIS_URL: z.url().optional(),
  S3_ENDPOINT: z.url().optional(),
  S3_BUCKET: z.string().default('farm-results'),
  /** Port of the embedded S3 server (only when S3_ENDPOINT is unset). */
  EMBEDDED_S3_PORT: z.coerce.number().int().min(0).max(65535).default(9000),
  /** Folder of the embedded S3 server's objects. */
  FARM_DATA_DIR: z.string().default(path.join(ROOT, '.farm-data')),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The worker's shutdown grace; the launcher kills it if it takes 5 s longer. */
  SHUTDOWN_GRACE_MS: workerEnv.SHUTDOWN_GRACE_MS,
};

/** A key kept in the data folder, so it survives restarts of the local farm. */
function localKey(dir: string, name: string): string {
  const file = path.join(dir, name);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dir, { recursive: true });
  const key = `fk_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

function startChild(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = fork(path.join(ROOT, script), [], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => console.log(`[${name}] ${line}`));
  }
  console.log(`[farm] ${name}: pid ${child.pid}`);
  return child;
}

export async function launchFarm(supervisor: Supervisor): Promise<void> {
  const config = loadConfig(launcherEnv);
  const env: NodeJS.ProcessEnv = { ...process.env };

  const redis = await ensureRedis(config, (child) => supervisor.adopt('redis-server', child, 5000));
  if (redis.target.kind === 'server') env.REDIS_URL = redis.target.url;
  console.log(`[farm] redis: ${describeRedis(redis.target)}${redis.started ? ' (started a redis-server child, nothing persisted)' : ''}`);

  if (!config.S3_ENDPOINT) {
    const directory = path.join(config.FARM_DATA_DIR, 's3');
    mkdirSync(directory, { recursive: true });
    // Its secret is kept with the data, so presigned URLs outlive a restart of the farm.
    const credentials = { accessKeyId: 'farm-local', secretAccessKey: localKey(config.FARM_DATA_DIR, 's3-secret-key') };
    const s3 = await EmbeddedS3.start({ directory, bucket: config.S3_BUCKET, port: config.EMBEDDED_S3_PORT, credentials });
    supervisor.onStop('embedded S3', () => s3.close());
    Object.assign(env, s3.env());
    console.log(`[farm] s3: embedded server at ${s3.endpoint}, bucket ${config.S3_BUCKET}, data in ${directory}`);
  } else {
    console.log(`[farm] s3: ${config.S3_ENDPOINT}, bucket ${config.S3_BUCKET}`);
  }

  // A development tenant and operator key, unless the environment brings its own.
  const devKey = localKey(config.FARM_DATA_DIR, 'dev-api-key');
  env.API_KEYS ??= `dev:${devKey}`;
  env.ADMIN_API_KEY ??= localKey(config.FARM_DATA_DIR, 'admin-api-key');
  env.WEBHOOK_SECRET ??= localKey(config.FARM_DATA_DIR, 'webhook-secret');

  // Stopped in reverse: the worker first (it hands its jobs back), then the API, S3, Redis.
  supervisor.adopt('api', startChild('api', 'apps/api/dist/main.js', env), 10_000);
  supervisor.adopt('worker', startChild('worker', 'apps/worker/dist/main.js', env), config.SHUTDOWN_GRACE_MS + 5000);

  const base = `http://127.0.0.1:${config.PORT}`;
  const keyNote = env.API_KEYS === `dev:${devKey}` ? `development API key (tenant "dev", kept in ${config.FARM_DATA_DIR}/dev-api-key):\n  export FARM_API_KEY=${devKey}` : 'API keys from API_KEYS';
  console.log(`[farm] API on ${base}; ${keyNote}
[farm] try:
  curl -s -X POST ${base}/v1/jobs -H "Authorization: Bearer $FARM_API_KEY" -H 'Content-Type: application/json' \\
       -d '{"type":"generate","prompt":"a red circle on a blue background","width":256,"height":256,"steps":4}'
  curl -s -H "Authorization: Bearer $FARM_API_KEY" ${base}/v1/jobs/<id>   # then: curl -o image.png "<result.url>"`);
}
