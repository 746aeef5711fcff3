/**
 * Worker process entry point: parse the environment, start a FarmWorker, stop on SIGTERM/SIGINT.
 * Signals are handled from the first line: the worker's modules load only after the handlers exist.
 */
import os from 'node:os';
import path from 'node:path';
import { ShutdownSignals } from '@farm/platform/dist/shutdown-signals';
import { exitOnStartupFailure } from '@farm/platform/dist/startup-error';

const signals = new ShutdownSignals('worker');

async function main(): Promise<void> {
  const { ObjectStore, checkRedis, claimWorkerId, coalesceWrites, createRedis, loadConfig, objectStoreOptionsFromEnv, redisTarget, requestLimits, storageEnv } = await import('@farm/platform');
  const { DEFAULT_MODEL_DIR, FarmWorker, WORKER_ENV, workerSettings } = await import('./farm-worker');
  const config = loadConfig({ ...WORKER_ENV, ...storageEnv });
  const target = redisTarget(config);
  await checkRedis(target);
  // Its writes are coalesced: the commands of a tick's jobs (fetches, progress, completions) share socket writes.
  const redis = coalesceWrites(createRedis(target));
  redis.on('error', (err) => console.error(`worker: redis: ${err.message}`));
  const store = new ObjectStore(objectStoreOptionsFromEnv(config));
  await store.verify(config.S3_CREATE_BUCKET);
  // Without WORKER_ID: <host>-<index>, the same after a restart (not the pid).
  const claim = config.WORKER_ID ? null : await claimWorkerId(redis, `${config.QUEUE_PREFIX}:${config.QUEUE_NAME}`, os.hostname());
  const renewal = claim && setInterval(() => void claim.renew().catch(() => undefined), 20_000);

  const modelDir = config.MODEL_DIR ?? DEFAULT_MODEL_DIR;
  const model = config.MODEL_NAME ?? path.basename(modelDir);
  const worker = new FarmWorker({
    ...workerSettings(config),
    workerId: config.WORKER_ID ?? claim!.id,
    redis,
    store,
    modelDir,
    model,
    limits: requestLimits(config),
    statusPort: config.WORKER_METRICS_PORT,
  });
  // A signal while the model loads waits for the start, then stops.
  const started = worker.start();
  signals.onShutdown(async (signal) => {
    await started.catch(() => undefined);
    console.log(`worker ${worker.id}: ${signal}, finishing in-flight jobs (up to ${config.SHUTDOWN_GRACE_MS} ms)`);
    await worker.stop(config.SHUTDOWN_GRACE_MS);
    if (renewal) clearInterval(renewal);
    await claim?.release().catch(() => undefined);
    redis.disconnect();
    store.close();
  });
  await started;
  console.log(
    `worker ${worker.id}: model ${model} (${modelDir}) on ${config.EXECUTION_PROVIDER}, ` +
      `up to ${config.MAX_IN_FLIGHT} jobs in flight, UNet batch ${config.MAX_UNET_BATCH}, metrics on :${worker.statusPort}, ${worker.modelThreadPriority}`,
  );
}

main().catch(exitOnStartupFailure('worker'));
