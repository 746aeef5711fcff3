/**
 * API process entry point: parse the environment, connect, listen, shut down on SIGTERM/SIGINT.
 * Signals are handled from the first line: the API's modules load only after the handlers exist.
 */
import type { Server } from 'node:http';
import { ShutdownSignals } from '@farm/platform/dist/shutdown-signals';
import { exitOnStartupFailure } from '@farm/platform/dist/startup-error';

const signals = new ShutdownSignals('api');

async function main(): Promise<void> {
  const { createServer } = await import('node:http');
  const platform = await import('@farm/platform');
  const { JobCancellation, JobFinalStates, ModelQueues, ObjectStore, ResultSweeper, checkRedis, coalesceWrites, connectRedis, listen, loadConfig, modelQueueName, objectStoreOptionsFromEnv, redisTarget, requestLimits } = platform;
  const { apiEnv, limitsEnv, modelsEnv, queueEnv, sessionEnv, storageEnv, webhookEnv } = platform;
  const { createApp } = await import('./app');
  const { JobEventHub } = await import('./job-event-hub');
  const config = loadConfig({ ...queueEnv, ...modelsEnv, ...storageEnv, ...limitsEnv, ...webhookEnv, ...apiEnv, ...sessionEnv });
  const target = redisTarget(config);
  await checkRedis(target);
  // Ready before first use: this client fails commands instead of queueing them while offline.
  // Its writes are coalesced: a submission's commands share socket writes with concurrent ones'.
  const redis = coalesceWrites(await connectRedis(target, { failFast: true }));
  redis.on('error', (err) => console.error(`api: redis: ${err.message}`));
  const queues = ModelQueues.open(config, redis, config.MODELS);
  for (const queue of queues.all()) queue.on('error', () => undefined); // the redis handler above reports outages
  const store = new ObjectStore(objectStoreOptionsFromEnv(config));
  const sweeper = new ResultSweeper(store, config.RESULT_RETENTION_SECONDS);
  const keyPrefix = `${config.QUEUE_PREFIX}:${config.QUEUE_NAME}`;
  const queueNames = config.MODELS.map((m) => modelQueueName(config.QUEUE_NAME, m));
  const events = new JobEventHub(queueNames, config.QUEUE_PREFIX, redis, new JobCancellation(redis, keyPrefix, new JobFinalStates(redis, keyPrefix, config.JOB_RETENTION_SECONDS)));
  let server: Server | undefined;
  let sessions: { close(): Promise<void> } | undefined;
  signals.onShutdown(async (signal) => {
    console.log(`api: ${signal}, closing`);
    server?.close();
    server?.closeIdleConnections();
    await Promise.all([queues.close(), events.close(), sessions?.close(), sweeper.stop()]);
    redis.disconnect();
    store.close();
  });
  await store.verify(config.S3_CREATE_BUCKET);
  // Results expire: by the store's own lifecycle rule where it has them (whole days), and by the sweeper to the second.
  const lifecycle = await store.applyLifecycle();
  sweeper.start();

  const created = createApp({
    queues,
    redis,
    store,
    events,
    keyPrefix,
    auth: config.AUTH,
    adminKey: config.ADMIN_API_KEY,
    webhooks: { secret: config.WEBHOOK_SECRET, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE },
    admission: { ratePerSecond: config.TENANT_RATE_PER_SECOND, burst: config.TENANT_BURST, maxQueued: config.TENANT_MAX_QUEUED },
    limits: requestLimits(config),
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    corsOrigins: config.CORS_ORIGINS,
    jobAttempts: config.JOB_ATTEMPTS,
    jobBackoffMs: config.JOB_BACKOFF_MS,
    jobRetentionSeconds: config.JOB_RETENTION_SECONDS,
    sessionIdleSeconds: config.SESSION_IDLE_SECONDS,
    sessionMaxMessageBytes: config.SESSION_MAX_MESSAGE_BYTES,
    sessionMaxBufferedBytes: config.SESSION_MAX_BUFFERED_BYTES,
  });
  sessions = created.sessions;
  for (const { tenant, key } of config.API_KEYS ?? []) await created.keys.register(key, tenant);
  server = createServer(created.app);
  await listen(server, config.PORT, config.HOST, 'PORT');
  created.sessions.attach(server);
  console.log(`api: listening on http://${config.HOST}:${config.PORT}`);
  console.log(`api: results are deleted ${config.RESULT_RETENTION_SECONDS} s after their job ends (${lifecycle ? 'S3 lifecycle rule and ' : ''}sweeper)`);
}

main().catch(exitOnStartupFailure('api'));
