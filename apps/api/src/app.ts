/**
 * The HTTP API: submit jobs, follow them, health and metrics. Stateless — everything lives in
 * Redis (BullMQ) and S3 — so several replicas can serve the same farm.
 */
import { randomInt, randomUUID } from 'node:crypto';
import express, { Express, Request } from 'express';
import type { Redis } from 'ioredis';
import { FieldProblem, JobRequest, JobView, RequestLimits, parseJobRequest, QueuedJob } from '@farm/contracts';
import type { FarmQueue, JobCancellation, ObjectStore, WorkerRegistry } from '@farm/platform';
import { ApiMetrics } from './api-metrics';
import { HttpError, errorHandler } from './http-errors';
import type { JobEventHub } from './job-event-hub';
import { streamJobEvents } from './job-event-stream';
import { presentJob, statusOf } from './job-presenter';
import { checkRequestImages } from './request-images';

export interface ApiDeps {
  queue: FarmQueue;
  redis: Redis;
  store: ObjectStore;
  events: JobEventHub;
  workers: WorkerRegistry;
  cancellation: JobCancellation;
  limits: RequestLimits;
  bodyLimitBytes: number;
  jobAttempts: number;
  jobBackoffMs: number;
  jobRetentionSeconds: number;
}

const JOBS_PATH = '/v1/jobs';

export function createApp(deps: ApiDeps): { app: Express; metrics: ApiMetrics } {
  const metrics = new ApiMetrics(deps.queue);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(metrics.middleware());
  app.use(express.json({ limit: deps.bodyLimitBytes, strict: false }));

  const findJob = async (id: string): Promise<JobView | null> => {
    const job = await deps.queue.getJob(id);
    if (!job) return null;
    const state = await job.getState();
    const status = state !== 'completed' && (await deps.cancellation.isCanceled(id)) ? 'canceled' : statusOf(state);
    return status ? presentJob(job, status, deps.store, JOBS_PATH) : null;
  };
  const loadJob = async (req: Request<{ id: string }>): Promise<JobView> => {
    const view = await findJob(req.params.id);
    if (!view) throw new HttpError(404, 'not_found', `no job with id ${req.params.id}`);
    return view;
  };

  /** An edit of a previous job needs that job to have finished with an image. */
  const checkEditSource = async (request: JobRequest): Promise<FieldProblem[]> => {
    if (request.type !== 'edit' || typeof request.source !== 'string') return [];
    const source = await findJob(request.source);
    if (source?.status === 'succeeded') return [];
    const why = source ? `is ${source.status}` : 'does not exist';
    return [{ path: 'source', message: `job ${request.source} ${why}; an edit needs a succeeded job` }];
  };

  app.post(JOBS_PATH, async (req, res) => {
    if (!req.is('application/json')) {
      metrics.rejected.inc({ reason: 'content_type' });
      throw new HttpError(415, 'unsupported_media_type', 'send the job as JSON with Content-Type: application/json');
    }
    const parsed = parseJobRequest(req.body, deps.limits);
    const problems = parsed.ok ? [...(await checkRequestImages(parsed.value, deps.limits)), ...(await checkEditSource(parsed.value))] : parsed.problems;
    if (!parsed.ok || problems.length > 0) {
      metrics.rejected.inc({ reason: 'validation' });
      const summary = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
      throw new HttpError(400, 'invalid_request', summary, problems);
    }
    const data: QueuedJob = { ...parsed.value, seed: parsed.value.seed ?? randomInt(0, 2 ** 32) };
    const job = await deps.queue.add(data.type, data, {
      jobId: randomUUID(),
      attempts: deps.jobAttempts,
      backoff: { type: 'exponential', delay: deps.jobBackoffMs },
      removeOnComplete: { age: deps.jobRetentionSeconds },
      removeOnFail: { age: deps.jobRetentionSeconds },
    });
    metrics.submitted.inc({ type: data.type });
    const view = await presentJob(job, 'queued', deps.store, JOBS_PATH);
    res.status(202).location(view.links.self).json(view);
  });

  app.get(`${JOBS_PATH}/:id`, async (req, res) => {
    res.json(await loadJob(req));
  });

  app.delete(`${JOBS_PATH}/:id`, async (req, res) => {
    const view = await loadJob(req);
    if (view.status === 'succeeded' || view.status === 'failed' || view.status === 'canceled') {
      throw new HttpError(409, 'job_finished', `job ${view.id} already ${view.status}`);
    }
    await deps.cancellation.cancel(view.id);
    res.status(202).json({ ...view, status: 'canceled' });
  });

  app.get(`${JOBS_PATH}/:id/events`, async (req, res) => {
    await loadJob(req); // 404 before the stream starts
    await streamJobEvents(req, res, { hub: deps.events, current: () => findJob(req.params.id) });
  });

  app.get('/v1/workers', async (_req, res) => {
    res.json({ workers: await deps.workers.list() });
  });

  app.get('/healthz', async (_req, res) => {
    const [redis, s3] = await Promise.all([
      deps.redis.ping().then(() => true, () => false),
      deps.store.ping(),
    ]);
    res.status(redis && s3 ? 200 : 503).json({ status: redis && s3 ? 'ok' : 'unavailable', redis, s3 });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use((req, _res, next) => next(new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorHandler);
  return { app, metrics };
}
