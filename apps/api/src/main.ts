/** API process entry point: parse the environment, connect, listen, shut down on SIGTERM. */
import { createServer } from 'node:http';
import {
  ObjectStore,
  apiEnv,
  checkRedis,
  createRedis,
  exitOnStartupFailure,
  listen,
  limitsEnv,
  loadConfig,
  objectStoreOptionsFromEnv,
  requestLimits,
  sessionEnv,
  ModelQueues,
  modelQueueName,
  modelsEnv,
  JobCancellation,
  queueEnv,
  storageEnv,
  webhookEnv,
} from '@farm/platform';
import { createApp } from './app';
import { JobEventHub } from './job-event-hub';

async function main(): Promise<void> {
  const config = loadConfig({ ...queueEnv, ...modelsEnv, ...storageEnv, ...limitsEnv, ...webhookEnv, ...apiEnv, ...sessionEnv });
  await checkRedis(config.REDIS_URL);
  const redis = createRedis(config.REDIS_URL, { failFast: true });
  redis.on('error', (err) => console.error(`api: redis: ${err.message}`));
  const queues = ModelQueues.open(config, redis, config.MODELS);
  for (const queue of queues.all()) queue.on('error', () => undefined); // the redis handler above reports outages
  const store = new ObjectStore(objectStoreOptionsFromEnv(config));
  await store.verify(config.S3_CREATE_BUCKET);
  const keyPrefix = `${config.QUEUE_PREFIX}:${config.QUEUE_NAME}`;
  const queueNames = config.MODELS.map((m) => modelQueueName(config.QUEUE_NAME, m));
  const events = new JobEventHub(queueNames, config.QUEUE_PREFIX, redis, new JobCancellation(redis, keyPrefix));

  const { app, keys, sessions } = createApp({
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
    jobAttempts: config.JOB_ATTEMPTS,
    jobBackoffMs: config.JOB_BACKOFF_MS,
    jobRetentionSeconds: config.JOB_RETENTION_SECONDS,
    sessionIdleSeconds: config.SESSION_IDLE_SECONDS,
    sessionMaxMessageBytes: config.SESSION_MAX_MESSAGE_BYTES,
  });
  for (const { tenant, key } of config.API_KEYS ?? []) await keys.register(key, tenant);
  const server = createServer(app);
  await listen(server, config.PORT, config.HOST, 'PORT');
  sessions.attach(server);
  console.log(`api: listening on http://${config.HOST}:${config.PORT}`);

  const shutdown = async (signal: string) => {
    console.log(`api: ${signal}, closing`);
    server.close();
    server.closeIdleConnections();
    await Promise.all([queues.close(), events.close(), sessions.close()]);
    redis.disconnect();
    store.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch(exitOnStartupFailure('api'));
