/**
 * The HTTP API: submit jobs, follow them, cancel them (/v1, per tenant), operator routes
 * (/admin), health and metrics (the operator's: under the admin key where there is one).
 * Stateless — everything lives in Redis (BullMQ) and S3 — so several replicas can serve the same farm.
 */
import path from 'node:path';
import express, { Express } from 'express';
import type { FarmRedis } from '@farm/platform';
import type { RequestLimits } from '@farm/contracts';
import {
  ApiKeyStore,
  BUNDLED_MODEL_CAPABILITIES,
  DEFAULT_MODEL,
  FollowedJobs,
  JobCancellation,
  JobDirectory,
  JobFinalStates,
  JOBS_PATH,
  JobLocator,
  ModelQueues,
  ObjectStore,
  QueuePositions,
  SessionHosts,
  SessionStore,
  ModelCapabilityStore,
  TenantJobIndex,
  WorkerRegistry,
} from '@farm/platform';
import { adminRoutes } from './admin-routes';
import { ApiMetrics } from './api-metrics';
import { AuthMode, adminAuth, tenantAuth } from './auth';
import { corsFor } from './cors';
import { HttpError, errorHandler } from './http-errors';
import { IdempotencyKeys } from './idempotency';
import type { JobEventHub } from './job-event-hub';
import { jobsRoutes } from './jobs-routes';
import { submitJob } from './job-submission';
import { apiDocument } from './openapi/api-document';
import { docsPage } from './openapi/docs-page';
import { recordCommit } from './session-commits';
import { SessionMetrics } from './session-metrics';
import { SessionSockets } from './session-sockets';
import { SessionTokens } from './session-tokens';
import { sessionsRoutes } from './sessions-routes';
import { AdmissionOptions, TenantAdmission } from './tenant-admission';

export interface ApiDeps {
  /** One queue per model served; the first model is the default. */
  queues: ModelQueues;
  redis: FarmRedis;
  store: ObjectStore;
  events: JobEventHub;
  /** Redis key prefix of this farm's own keys (queue prefix + name). */
  keyPrefix: string;
  auth: AuthMode;
  /** Operator key; /admin answers 404 without one, and /metrics needs it where it is set. */
  adminKey?: string;
  admission: AdmissionOptions;
  /** Webhooks: the master secret (off without one) and whether private targets are allowed. */
  webhooks: { secret?: string; allowPrivate: boolean };
  limits: RequestLimits;
  bodyLimitBytes: number;
  /** Origins browsers may call the API from (`*`: any); none: no CORS headers. */
  corsOrigins?: string[] | '*';
  jobAttempts: number;
  jobBackoffMs: number;
  jobRetentionSeconds: number;
  /** Live sessions: how long one lives without client activity, and the largest client message. */
  sessionIdleSeconds: number;
  sessionMaxMessageBytes: number;
  /** Bytes a session's socket may have waiting before its frames are dropped. */
  sessionMaxBufferedBytes: number;
}

/** The palette page and its script and styles, served at `/`. */
const PUBLIC_DIR = path.resolve(__dirname, '../public');

export function createApp(deps: ApiDeps): { app: Express; metrics: ApiMetrics; keys: ApiKeyStore; sessions: SessionSockets } {
  const metrics = new ApiMetrics(deps.queues);
  const keys = new ApiKeyStore(deps.redis, deps.keyPrefix);
  const finalStates = new JobFinalStates(deps.redis, deps.keyPrefix, deps.jobRetentionSeconds);
  const cancellation = new JobCancellation(deps.redis, deps.keyPrefix, finalStates);
  const workers = new WorkerRegistry(deps.redis, deps.keyPrefix);
  const app = express();
  app.disable('x-powered-by');
  // No ETags: job JSON changes as the job runs and conditional requests are not offered; this also
  // spares hashing every response body.
  app.set('etag', false);
  app.set('trust proxy', false);
  app.use(metrics.middleware());
  if (deps.corsOrigins) app.use(corsFor(deps.corsOrigins));
  app.use(express.json({ limit: deps.bodyLimitBytes, strict: false }));

  const locator = new JobLocator(deps.redis, deps.keyPrefix);
  const jobIndex = new TenantJobIndex(deps.redis, deps.keyPrefix, deps.jobRetentionSeconds);
  const jobs = new JobDirectory(deps.queues, deps.store, finalStates, locator, new QueuePositions(deps.redis));
  const sessionStore = new SessionStore(deps.redis, deps.keyPrefix, deps.sessionIdleSeconds);
  const hosts = new SessionHosts(deps.redis, deps.keyPrefix);
  const tokens = new SessionTokens(deps.redis, deps.keyPrefix);
  const sessions = new SessionSockets({
    ...deps,
    keys,
    tokens,
    sessions: sessionStore,
    hosts,
    metrics: new SessionMetrics(metrics.registry),
    maxMessageBytes: deps.sessionMaxMessageBytes,
    maxBufferedBytes: deps.sessionMaxBufferedBytes,
    recordCommit: (record, snapshot) => recordCommit({ ...deps, locator, jobIndex }, record, snapshot),
  });

  const tenant = tenantAuth(deps.auth, keys);
  const jobsDeps = {
    ...deps,
    jobs,
    // What workers published; the bundled model's until its workers have.
    capabilities: new ModelCapabilityStore(deps.redis, deps.keyPrefix, { [DEFAULT_MODEL]: BUNDLED_MODEL_CAPABILITIES }),
    admission: new TenantAdmission(deps.redis, deps.keyPrefix, locator, jobIndex, deps.admission),
    idempotency: new IdempotencyKeys(deps.keyPrefix, deps.jobRetentionSeconds),
    jobIndex,
    metrics,
  };
  // Submissions, the hot path, are routed by the app itself: a /v1 router costs each one a
  // second routing pass.
  app.post(JOBS_PATH, tenant, submitJob(jobsDeps));
  app.use(
    '/v1',
    tenant,
    jobsRoutes({ ...jobsDeps, workers, cancellation, followed: new FollowedJobs(deps.redis, deps.keyPrefix) }),
  );
  app.use('/v1', tenant, sessionsRoutes({ ...deps, sessions: sessionStore, hosts, tokens }));
  app.use('/admin', adminAuth(deps.adminKey), adminRoutes({ queues: deps.queues, jobs, keys, finalStates, workers }, '/admin'));

  const openapi = apiDocument(deps.limits);
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.use('/docs', docsPage());

  // Liveness: the process answers (a Redis or S3 outage is readiness' business, not a reason to restart).
  app.get('/livez', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Readiness: FarmRedis and S3 answer. /healthz is its older name.
  const ready: express.RequestHandler = async (_req, res) => {
    const [redis, s3] = await Promise.all([
      deps.redis.ping().then(() => true, () => false),
      deps.store.ping(),
    ]);
    res.status(redis && s3 ? 200 : 503).json({ status: redis && s3 ? 'ok' : 'unavailable', redis, s3 });
  };
  app.get('/readyz', ready);
  app.get('/healthz', ready);

  // Operator information: behind the admin key where there is one (the shipped Prometheus sends it).
  const operatorOnly: express.RequestHandler[] = deps.adminKey ? [adminAuth(deps.adminKey)] : [];
  app.get('/metrics', ...operatorOnly, async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use(express.static(PUBLIC_DIR));

  app.use((req, _res, next) => next(new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorHandler);
  return { app, metrics, keys, sessions };
}
