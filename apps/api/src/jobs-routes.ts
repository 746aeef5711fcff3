/** The tenant-facing routes under /v1: submit, follow, cancel jobs; the fleet as a tenant sees it. */
import { randomInt, randomUUID } from 'node:crypto';
import { Router } from 'express';
import { Canvas, FieldProblem, JobCost, JobRequest, QueuedJob, RequestLimits, SourceJob, costProblem, jobCost, parseJobRequest, queuedJob } from '@farm/contracts';
import {
  JOBS_PATH,
  FollowedJobs,
  JobCancellation,
  JobDirectory,
  LOCATOR_MARGIN_SECONDS,
  ModelQueues,
  ObjectStore,
  ModelCapabilityStore,
  TenantJobIndex,
  WorkerRegistry,
  presentJob,
  tenantWebhookSecret,
  webhookTargetProblem,
} from '@farm/platform';
import type { ApiMetrics } from './api-metrics';
import { tenantOf } from './auth';
import { tenantFleet } from './fleet';
import { HttpError } from './http-errors';
import { IdempotencyKeys } from './idempotency';
import type { JobEventHub } from './job-event-hub';
import { streamJobEvents } from './job-event-stream';
import { listJobs } from './job-listing';
import { preferredWaitSeconds } from './prefer-wait';
import { rateLimitHeaders } from './rate-limit-headers';
import { checkRequestImages, uploadedCanvas } from './request-images';
import type { Submission, TenantAdmission } from './tenant-admission';

export interface JobsRouteDeps {
  queues: ModelQueues;
  store: ObjectStore;
  jobs: JobDirectory;
  events: JobEventHub;
  workers: WorkerRegistry;
  /** What each model's workers published that it can serve (checked at submit). */
  capabilities: ModelCapabilityStore;
  cancellation: JobCancellation;
  followed: FollowedJobs;
  admission: TenantAdmission;
  idempotency: IdempotencyKeys;
  /** Each tenant's jobs in submission order (GET /v1/jobs). */
  jobIndex: TenantJobIndex;
  metrics: ApiMetrics;
  limits: RequestLimits;
  /** What a model can serve, where known: requests it cannot serve are refused at submit. */
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
   * An edit of a previous job needs that job (of the same tenant) to have finished with an image;
   * the worker gets that image and prompt with the job.
   */
  const resolveModel = async (request: JobRequest, tenant: string): Promise<{ model: string; sourceJob?: SourceJob; sourceCanvas?: Canvas; problems: FieldProblem[] }> => {
    const problems: FieldProblem[] = [];
    let model = request.model ?? deps.queues.defaultModel;
    let sourceJob: SourceJob | undefined;
    let sourceCanvas: Canvas | undefined;
    if (request.type === 'edit' && typeof request.source === 'string') {
      const source = await jobs.find(request.source, tenant);
      if (source?.status !== 'succeeded') {
        const why = source ? `is ${source.status}` : 'does not exist';
        problems.push({ path: 'source', message: `job ${request.source} ${why}; an edit needs a succeeded job` });
      } else if (source.result?.expired) {
        problems.push({ path: 'source', message: `job ${request.source}'s result expired at ${source.result.expiresAt}; it can no longer be edited` });
      } else if (request.model && source.request.model !== request.model) {
        problems.push({ path: 'model', message: `the source job ran on model ${source.request.model}; an edit must use the same model` });
      } else {
        model = source.request.model ?? model;
        sourceJob = { imageKey: source.result!.key, prompt: source.request.prompt };
        sourceCanvas = { width: source.result!.width, height: source.result!.height };
      }
    }
    if (!deps.queues.get(model)) {
      problems.push({ path: 'model', message: `unknown model "${model}"; this farm serves: ${deps.queues.models.join(', ')}` });
    }
    return { model, sourceJob, sourceCanvas, problems };
  };

  /**
   * What the job costs (job-cost.ts) on the canvas it paints — its size, its source job's, or its
   * upload's — for its model; refused (400 job_too_costly, with the cost and the ceiling) above MAX_JOB_COST.
   */
  const checkCost = async (request: JobRequest, model: string, sourceCanvas: Canvas | undefined): Promise<JobCost> => {
    const canvas = request.type === 'generate' ? request : typeof request.source === 'string' ? sourceCanvas! : await uploadedCanvas(request.source.image);
    const cost = jobCost(request, canvas, await deps.capabilities.get(model));
    const limit = deps.limits.maxJobCost;
    const problem = costProblem(cost, limit);
    if (problem) {
      metrics.rejected.inc({ reason: 'cost' });
      throw new HttpError(400, 'job_too_costly', problem, undefined, { ...cost, limit });
    }
    return cost;
  };

  const checkWebhook = async (request: JobRequest): Promise<FieldProblem[]> => {
    if (!request.webhook) return [];
    if (!deps.webhooks.secret) return [{ path: 'webhook', message: 'webhooks are not enabled on this farm (WEBHOOK_SECRET)' }];
    const problem = await webhookTargetProblem(request.webhook, deps.webhooks.allowPrivate);
    return problem ? [{ path: 'webhook', message: problem }] : [];
  };

  /** Puts an admitted job in its model's queue (BullMQ keeps the first of two adds of one id). */
  const enqueue = (model: string, data: QueuedJob, jobId: string, queuePriority: number) =>
    deps.queues.get(model)!.add(data.request.type, data, {
      jobId,
      priority: queuePriority,
      attempts: deps.jobAttempts,
      backoff: { type: 'exponential', delay: deps.jobBackoffMs },
      removeOnComplete: { age: deps.jobRetentionSeconds },
      removeOnFail: { age: deps.jobRetentionSeconds },
    });

  router.post('/jobs', async (req, res) => {
    const tenant = tenantOf(res);
    if (!req.is('application/json')) {
      metrics.rejected.inc({ reason: 'content_type' });
      throw new HttpError(415, 'unsupported_media_type', 'send the job as JSON with Content-Type: application/json');
    }
    const idempotencyKey = req.header('Idempotency-Key');
    if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
      throw new HttpError(400, 'invalid_request', 'Idempotency-Key must be 1-255 visible ASCII characters');
    }
    const parsed = parseJobRequest(req.body, deps.limits);
    if (!parsed.ok) {
      metrics.rejected.inc({ reason: 'validation' });
      throw new HttpError(400, 'invalid_request', parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; '), parsed.problems);
    }
    const [target, imageProblems, webhookProblems] = await Promise.all([
      resolveModel(parsed.value, tenant),
      checkRequestImages(parsed.value, deps.limits),
      checkWebhook(parsed.value),
    ]);
    const problems = [...imageProblems, ...target.problems, ...webhookProblems, ...(await deps.capabilities.problems(parsed.value, target.model))];
    if (problems.length > 0) {
      metrics.rejected.inc({ reason: 'validation' });
      throw new HttpError(400, 'invalid_request', problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems);
    }

    const cost = await checkCost(parsed.value, target.model, target.sourceCanvas);
    const request = { ...parsed.value, model: target.model };
    const submission: Submission = {
      tenant,
      jobId: randomUUID(),
      model: target.model,
      priority: request.priority,
      locatorTtlSeconds: deps.jobRetentionSeconds + LOCATOR_MARGIN_SECONDS,
      idempotency:
        idempotencyKey === undefined
          ? undefined
          : { key: deps.idempotency.redisKey(tenant, idempotencyKey), fingerprint: IdempotencyKeys.fingerprint(request), ttlSeconds: deps.idempotency.ttlSeconds },
    };
    const data = queuedJob(parsed.value, { seed: parsed.value.seed ?? randomInt(0, 2 ** 32), model: target.model, tenant, sourceJob: target.sourceJob, cost });
    const admission = await deps.admission.admit(submission);
    if (admission.kind === 'admitted' || admission.kind === 'refused') res.set(rateLimitHeaders(deps.admission.policy, admission.tokens));
    switch (admission.kind) {
      case 'refused':
        metrics.rejected.inc({ reason: admission.reason });
        res.setHeader('Retry-After', String(admission.retryAfterSeconds));
        throw new HttpError(429, admission.reason, admission.message);
      case 'conflict':
        throw new HttpError(409, 'idempotency_conflict', 'this Idempotency-Key was used with another request');
      case 'replay': {
        // The earlier request's job; if its add never happened (it failed, or is still under
        // way), this one makes it, with the earlier job's id and place.
        const { jobId, queuePriority } = admission.earlier;
        if (!(await jobs.find(jobId, tenant))) {
          await enqueue(target.model, data, jobId, queuePriority);
          await deps.jobIndex.add(tenant, jobId, Date.now());
        }
        const earlier = await load(jobId, tenant);
        return res.status(200).location(earlier.links.self).json(earlier);
      }
      case 'admitted': {
        // Prefer: wait — listen before the job can start, so its end cannot be missed.
        const waitSeconds = preferredWaitSeconds(req.header('Prefer'));
        const gone = new AbortController();
        res.on('close', () => gone.abort());
        const settled = waitSeconds ? deps.events.settles(submission.jobId, waitSeconds * 1000, gone.signal) : null;
        const job = await enqueue(target.model, data, submission.jobId, admission.queuePriority).catch(async (err: unknown) => {
          gone.abort();
          await deps.admission.withdraw(submission, deps.queues.get(target.model)!.toKey(submission.jobId));
          throw err;
        });
        metrics.submitted.inc({ type: data.request.type });
        await deps.jobIndex.add(tenant, submission.jobId, job.timestamp);
        if (settled) {
          await settled;
          res.setHeader('Preference-Applied', `wait=${waitSeconds}`);
          const now = await load(submission.jobId, tenant);
          // Finished in time: the final job (200); otherwise the job as it is, queued or running (202).
          return res.status(FINAL.has(now.status) ? 200 : 202).location(now.links.self).json(now);
        }
        // No queuePosition here: looking it up is another Redis round trip on every submission
        // (admission and add are one each); GET /v1/jobs/:id and the event stream give it.
        const view = await presentJob(job, 'queued', null, deps.store, JOBS_PATH);
        return res.status(202).location(view.links.self).json(view);
      }
    }
  });

  router.get('/jobs', listJobs({ jobs, index: deps.jobIndex }));

  router.get('/jobs/:id', async (req, res) => {
    res.json(await load(req.params.id, tenantOf(res)));
  });

  router.delete('/jobs/:id', async (req, res) => {
    const view = await load(req.params.id, tenantOf(res));
    // The cancel wins only if it decides the job's final state before the job's own end does.
    const { won, state } = FINAL.has(view.status) ? { won: false, state: view } : await deps.cancellation.cancel(view.id);
    if (!won) throw new HttpError(409, 'job_finished', `job ${view.id} already ${state.status}`);
    res.status(202).json(await load(view.id, tenantOf(res)));
  });

  router.get('/jobs/:id/events', async (req, res) => {
    const tenant = tenantOf(res);
    await streamJobEvents(req, res, {
      hub: deps.events,
      current: () => jobs.find(req.params.id, tenant),
      follow: () => deps.followed.follow(req.params.id),
    });
  });

  // The tenant's webhook signing secret (Standard Webhooks "whsec_…"), to verify deliveries.
  router.get('/webhook-secret', (_req, res) => {
    if (!deps.webhooks.secret) throw new HttpError(404, 'not_found', 'webhooks are not enabled on this farm');
    res.json({ secret: tenantWebhookSecret(deps.webhooks.secret, tenantOf(res)) });
  });

  // What is served and how busy it is; which machines serve it is the operator's (GET /admin/workers).
  router.get('/workers', async (_req, res) => {
    const waiting = (model: string) => deps.queues.get(model)!.getJobCounts('waiting', 'prioritized', 'delayed');
    const [workers, counts] = await Promise.all([deps.workers.list(), Promise.all(deps.queues.models.map(waiting))]);
    const queued = Object.fromEntries(deps.queues.models.map((model, i) => [model, Object.values(counts[i]).reduce((sum, n) => sum + n, 0)]));
    res.json(tenantFleet(workers, deps.queues.models, queued));
  });

  return router;
}

