/** The tenant-facing routes under /v1: submit, follow, cancel jobs; list workers. */
import { randomInt, randomUUID } from 'node:crypto';
import { Router } from 'express';
import { FieldProblem, JobRequest, QueuedJob, RequestLimits, parseJobRequest } from '@farm/contracts';
import {
  JOBS_PATH,
  JobCancellation,
  JobDirectory,
  ModelQueues,
  ObjectStore,
  WorkerRegistry,
  presentJob,
  tenantWebhookSecret,
  webhookTargetProblem,
} from '@farm/platform';
import type { ApiMetrics } from './api-metrics';
import { tenantOf } from './auth';
import { HttpError } from './http-errors';
import { IdempotencyKeys } from './idempotency';
import type { JobEventHub } from './job-event-hub';
import { streamJobEvents } from './job-event-stream';
import { checkRequestImages } from './request-images';
import type { TenantAdmission } from './tenant-admission';

export interface JobsRouteDeps {
  queues: ModelQueues;
  store: ObjectStore;
  jobs: JobDirectory;
  events: JobEventHub;
  workers: WorkerRegistry;
  cancellation: JobCancellation;
  admission: TenantAdmission;
  idempotency: IdempotencyKeys;
  metrics: ApiMetrics;
  limits: RequestLimits;
  webhooks: { secret?: string; allowPrivate: boolean };
  jobAttempts: number;
  jobBackoffMs: number;
  jobRetentionSeconds: number;
}

const FINAL = new Set(['succeeded', 'failed', 'canceled']);

export function jobsRoutes(deps: JobsRouteDeps): Router {
  const router = Router();
  const { jobs, metrics } = deps;
  const load = async (id: string, tenant: string) => {
    const view = await jobs.find(id, tenant);
    if (!view) throw new HttpError(404, 'not_found', `no job with id ${id}`);
    return view;
  };

  /**
   * The model a job runs on: the one it names, else its source's (edits), else the default.
   * An edit of a previous job needs that job (of the same tenant) to have finished with an image.
   */
  const resolveModel = async (request: JobRequest, tenant: string): Promise<{ model: string; problems: FieldProblem[] }> => {
    const problems: FieldProblem[] = [];
    let model = request.model ?? deps.queues.defaultModel;
    if (request.type === 'edit' && typeof request.source === 'string') {
      const source = await jobs.find(request.source, tenant);
      if (source?.status !== 'succeeded') {
        const why = source ? `is ${source.status}` : 'does not exist';
        problems.push({ path: 'source', message: `job ${request.source} ${why}; an edit needs a succeeded job` });
      } else if (request.model && source.request.model !== request.model) {
        problems.push({ path: 'model', message: `the source job ran on model ${source.request.model}; an edit must use the same model` });
      } else {
        model = source.request.model ?? model;
      }
    }
    if (!deps.queues.get(model)) {
      problems.push({ path: 'model', message: `unknown model "${model}"; this farm serves: ${deps.queues.models.join(', ')}` });
    }
    return { model, problems };
  };

  const checkWebhook = async (request: JobRequest): Promise<FieldProblem[]> => {
    if (!request.webhook) return [];
    if (!deps.webhooks.secret) return [{ path: 'webhook', message: 'webhooks are not enabled on this farm (WEBHOOK_SECRET)' }];
    const problem = await webhookTargetProblem(request.webhook, deps.webhooks.allowPrivate);
    return problem ? [{ path: 'webhook', message: problem }] : [];
  };

  router.post('/jobs', async (req, res) => {
    const tenant = tenantOf(res);
    if (!req.is('application/json')) {
      metrics.rejected.inc({ reason: 'content_type' });
      throw new HttpError(415, 'unsupported_media_type', 'send the job as JSON with Content-Type: application/json');
    }
    const parsed = parseJobRequest(req.body, deps.limits);
    const target = parsed.ok ? await resolveModel(parsed.value, tenant) : null;
    const problems = parsed.ok
      ? [...(await checkRequestImages(parsed.value, deps.limits)), ...target!.problems, ...(await checkWebhook(parsed.value))]
      : parsed.problems;
    if (!parsed.ok || problems.length > 0) {
      metrics.rejected.inc({ reason: 'validation' });
      throw new HttpError(400, 'invalid_request', problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems);
    }

    const jobId = randomUUID();
    const idempotencyKey = req.header('Idempotency-Key');
    if (idempotencyKey !== undefined) {
      if (!/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) throw new HttpError(400, 'invalid_request', 'Idempotency-Key must be 1-255 visible ASCII characters');
      const claim = await deps.idempotency.claim(tenant, idempotencyKey, IdempotencyKeys.fingerprint(req.body), jobId);
      if (claim.kind === 'conflict') throw new HttpError(409, 'idempotency_conflict', 'this Idempotency-Key was used with another request body');
      if (claim.kind === 'replay') {
        const earlier = await jobs.find(claim.jobId, tenant);
        if (!earlier) throw new HttpError(409, 'idempotency_in_progress', 'a request with this Idempotency-Key is still being submitted');
        return res.status(200).location(earlier.links.self).json(earlier);
      }
    }

    const admission = await deps.admission.admit(tenant);
    if (!admission.ok) {
      metrics.rejected.inc({ reason: admission.reason });
      res.setHeader('Retry-After', String(admission.retryAfterSeconds));
      throw new HttpError(429, admission.reason, admission.message);
    }
    const { model } = target!;
    const data: QueuedJob = { ...parsed.value, model, seed: parsed.value.seed ?? randomInt(0, 2 ** 32), tenant };
    const priority = await deps.admission.place(tenant, data.priority, jobId);
    const job = await deps.queues.get(model)!.add(data.type, data, {
      jobId,
      priority,
      attempts: deps.jobAttempts,
      backoff: { type: 'exponential', delay: deps.jobBackoffMs },
      removeOnComplete: { age: deps.jobRetentionSeconds },
      removeOnFail: { age: deps.jobRetentionSeconds },
    });
    metrics.submitted.inc({ type: data.type });
    const view = await presentJob(job, 'queued', deps.store, JOBS_PATH);
    res.status(202).location(view.links.self).json(view);
  });

  router.get('/jobs/:id', async (req, res) => {
    res.json(await load(req.params.id, tenantOf(res)));
  });

  router.delete('/jobs/:id', async (req, res) => {
    const view = await load(req.params.id, tenantOf(res));
    if (FINAL.has(view.status)) throw new HttpError(409, 'job_finished', `job ${view.id} already ${view.status}`);
    await deps.cancellation.cancel(view.id);
    res.status(202).json({ ...view, status: 'canceled' });
  });

  router.get('/jobs/:id/events', async (req, res) => {
    const tenant = tenantOf(res);
    await load(req.params.id, tenant); // 404 before the stream starts
    await streamJobEvents(req, res, { hub: deps.events, current: () => jobs.find(req.params.id, tenant) });
  });

  // The tenant's webhook signing secret (Standard Webhooks "whsec_…"), to verify deliveries.
  router.get('/webhook-secret', (_req, res) => {
    if (!deps.webhooks.secret) throw new HttpError(404, 'not_found', 'webhooks are not enabled on this farm');
    res.json({ secret: tenantWebhookSecret(deps.webhooks.secret, tenantOf(res)) });
  });

  router.get('/workers', async (_req, res) => {
    res.json({ workers: await deps.workers.list() });
  });

  return router;
}

