/**
 * `POST /v1/jobs`: a job request checked, admitted and queued. A plain submission costs two Redis
 * round trips — admission (one script: Idempotency-Key claim, rate limit, quota, place in its
 * tenant's line, locator, job index) and the job's add — and no work the request does not ask
 * for: the edit source is looked up only for an edit of a job, images are read only when the
 * request embeds some, the webhook target only when it names one, the model's capabilities once
 * (cached), the fingerprint only with an Idempotency-Key, and `Prefer: wait` listens only when asked.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import { Canvas, FieldProblem, JobCost, JobRequest, JobView, ModelCapabilities, QueuedJob, RequestLimits, SourceJob, capabilityProblems, costProblem, jobCost, parseJobRequest, queuedJob } from '@farm/contracts';
import {
  JOBS_PATH,
  JobDirectory,
  LOCATOR_MARGIN_SECONDS,
  ModelCapabilityStore,
  ModelQueues,
  ObjectStore,
  TenantJobIndex,
  presentJob,
  webhookTargetProblem,
} from '@farm/platform';
import type { ApiMetrics } from './api-metrics';
import { tenantOf } from './auth';
import { HttpError } from './http-errors';
import { IdempotencyKeys } from './idempotency';
import type { JobEventHub } from './job-event-hub';
import { preferredWaitSeconds } from './prefer-wait';
import { rateLimitHeaders } from './rate-limit-headers';
import { checkRequestImages, hasEmbeddedImages, uploadedCanvas } from './request-images';
import type { Submission, TenantAdmission } from './tenant-admission';

export interface SubmissionDeps {
  queues: ModelQueues;
  store: ObjectStore;
  jobs: JobDirectory;
  events: JobEventHub;
  /** What each model's workers published that it can serve: requests it cannot serve are refused. */
  capabilities: ModelCapabilityStore;
  admission: TenantAdmission;
  idempotency: IdempotencyKeys;
  /** Each tenant's jobs in submission order (GET /v1/jobs); admission writes a submission's entry. */
  jobIndex: TenantJobIndex;
  metrics: ApiMetrics;
  limits: RequestLimits;
  webhooks: { secret?: string; allowPrivate: boolean };
  jobAttempts: number;
  jobBackoffMs: number;
  jobRetentionSeconds: number;
}

/** A request's model; for an edit, its canvas (its source's) and, of a previous job, that job's image and prompt; the problems found. */
interface Target {
  model: string;
  sourceJob?: SourceJob;
  canvas?: Canvas;
  problems: FieldProblem[];
}

const FINAL = new Set(['succeeded', 'failed', 'canceled']);
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const describe = (problems: FieldProblem[]) => problems.map((p) => `${p.path}: ${p.message}`).join('; ');

/**
 * Answers with a job: its JSON, with `status` and its Location. Written directly: express'
 * res.json and res.location would parse the content type back for its charset and URL-encode a
 * path built here, on every submission.
 */
function answerJob(res: Response, status: number, view: JobView): void {
  const body = JSON.stringify(view);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Location: view.links.self });
  res.end(body);
}

export function submitJob(deps: SubmissionDeps): RequestHandler {
  const { jobs, metrics, queues } = deps;
  const locatorTtlSeconds = deps.jobRetentionSeconds + LOCATOR_MARGIN_SECONDS;
  // The same for every job: built once.
  const backoff = { type: 'exponential', delay: deps.jobBackoffMs };
  const retention = { age: deps.jobRetentionSeconds };

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
  const editTarget = async (request: JobRequest & { type: 'edit'; source: string }, tenant: string): Promise<Target> => {
    const source = await jobs.find(request.source, tenant);
    const model = request.model ?? queues.defaultModel;
    if (source?.status !== 'succeeded') {
      const why = source ? `is ${source.status}` : 'does not exist';
      return { model, problems: [{ path: 'source', message: `job ${request.source} ${why}; an edit needs a succeeded job` }] };
    }
    if (source.result?.expired) {
      return { model, problems: [{ path: 'source', message: `job ${request.source}'s result expired at ${source.result.expiresAt}; it can no longer be edited` }] };
    }
    if (request.model && source.request.model !== request.model) {
      return { model, problems: [{ path: 'model', message: `the source job ran on model ${source.request.model}; an edit must use the same model` }] };
    }
    return {
      model: source.request.model ?? model,
      sourceJob: { imageKey: source.result!.key, prompt: source.request.prompt },
      canvas: { width: source.result!.width, height: source.result!.height },
      problems: [],
    };
  };

  const webhookProblems = async (webhook: string): Promise<FieldProblem[]> => {
    if (!deps.webhooks.secret) return [{ path: 'webhook', message: 'webhooks are not enabled on this farm (WEBHOOK_SECRET)' }];
    const problem = await webhookTargetProblem(webhook, deps.webhooks.allowPrivate);
    return problem ? [{ path: 'webhook', message: problem }] : [];
  };

  /** The model the request names, else the default. */
  const namedTarget = (request: JobRequest): Target => ({ model: request.model ?? queues.defaultModel, problems: [] });

  /** Whether the request needs I/O to check: an edit (its source), embedded images, a webhook target. */
  const needsLookUp = (request: JobRequest) => request.type === 'edit' || request.webhook !== undefined || hasEmbeddedImages(request);

  /** The checks that need I/O, at once; then an uploaded edit source's size (its canvas), once it is known to be an image. */
  const lookUp = async (request: JobRequest, tenant: string): Promise<Target> => {
    const [target, imageProblems, hookProblems] = await Promise.all([
      request.type === 'edit' && typeof request.source === 'string' ? editTarget(request as JobRequest & { type: 'edit'; source: string }, tenant) : namedTarget(request),
      hasEmbeddedImages(request) ? checkRequestImages(request, deps.limits) : [],
      request.webhook ? webhookProblems(request.webhook) : [],
    ]);
    const upload = request.type === 'edit' && typeof request.source !== 'string' ? request.source.image : undefined;
    const canvas = upload && imageProblems.length === 0 ? await uploadedCanvas(upload) : target.canvas;
    return { ...target, canvas, problems: [...imageProblems, ...target.problems, ...hookProblems] };
  };

  /**
   * The job's cost (job-cost.ts) on the canvas it paints — its size, its source job's or its
   * upload's — for its model; or a 400: for the problems found, a model it does not know or that
   * cannot serve the request (invalid_request), a cost above MAX_JOB_COST (job_too_costly, with
   * the cost and the ceiling).
   */
  const accept = (request: JobRequest, target: Target, caps: ModelCapabilities | null): JobCost => {
    const problems = target.problems;
    if (!queues.get(target.model)) problems.push({ path: 'model', message: `unknown model "${target.model}"; this farm serves: ${queues.models.join(', ')}` });
    else if (caps) problems.push(...capabilityProblems(request, caps));
    if (problems.length > 0) {
      metrics.rejected.inc({ reason: 'validation' });
      throw new HttpError(400, 'invalid_request', describe(problems), problems);
    }
    const cost = jobCost(request, request.type === 'generate' ? request : target.canvas!, caps);
    const problem = costProblem(cost, deps.limits.maxJobCost);
    if (problem) {
      metrics.rejected.inc({ reason: 'cost' });
      throw new HttpError(400, 'job_too_costly', problem, undefined, { ...cost, limit: deps.limits.maxJobCost });
    }
    return cost;
  };

  /** Puts an admitted job in its model's queue (BullMQ keeps the first of two adds of one id). */
  const enqueue = (model: string, data: QueuedJob, jobId: string, priority: number) =>
    queues.get(model)!.add(data.request.type, data, { jobId, priority, attempts: deps.jobAttempts, backoff, removeOnComplete: retention, removeOnFail: retention });

  return async (req, res) => {
    const tenant = tenantOf(res);
    if (!req.is('application/json')) {
      metrics.rejected.inc({ reason: 'content_type' });
      throw new HttpError(415, 'unsupported_media_type', 'send the job as JSON with Content-Type: application/json');
    }
    const idempotencyKey = req.header('Idempotency-Key');
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new HttpError(400, 'invalid_request', 'Idempotency-Key must be 1-255 visible ASCII characters');
    }
    const parsed = parseJobRequest(req.body, deps.limits);
    if (!parsed.ok) {
      metrics.rejected.inc({ reason: 'validation' });
      throw new HttpError(400, 'invalid_request', describe(parsed.problems), parsed.problems);
    }
    const target = needsLookUp(parsed.value) ? await lookUp(parsed.value, tenant) : namedTarget(parsed.value);
    const caps = queues.get(target.model) ? await deps.capabilities.get(target.model) : null;
    const cost = accept(parsed.value, target, caps);
    const { model } = target;
    const submission: Submission = {
      tenant,
      jobId: randomUUID(),
      model,
      priority: parsed.value.priority,
      locatorTtlSeconds,
      idempotency:
        idempotencyKey === undefined
          ? undefined
          : {
              key: deps.idempotency.redisKey(tenant, idempotencyKey),
              fingerprint: IdempotencyKeys.fingerprint({ ...parsed.value, model }),
              ttlSeconds: deps.idempotency.ttlSeconds,
            },
    };
    const data = queuedJob(parsed.value, { seed: parsed.value.seed ?? randomInt(0, 2 ** 32), model, tenant, sourceJob: target.sourceJob, cost });
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
          await enqueue(model, data, jobId, queuePriority);
          await deps.jobIndex.add(tenant, jobId, Date.now());
        }
        const earlier = await load(jobId, tenant);
        return answerJob(res, 200, earlier);
      }
      case 'admitted': {
        // Prefer: wait — listen before the job can start, so its end cannot be missed.
        const waitSeconds = preferredWaitSeconds(req.header('Prefer'));
        const gone = waitSeconds ? new AbortController() : null;
        if (gone) res.on('close', () => gone.abort());
        const settled = gone ? deps.events.settles(submission.jobId, waitSeconds! * 1000, gone.signal) : null;
        const job = await enqueue(model, data, submission.jobId, admission.queuePriority).catch(async (err: unknown) => {
          gone?.abort();
          await deps.admission.withdraw(submission, queues.get(model)!.toKey(submission.jobId));
          throw err;
        });
        metrics.submitted.inc({ type: data.request.type });
        if (settled) {
          await settled;
          res.setHeader('Preference-Applied', `wait=${waitSeconds}`);
          const now = await load(submission.jobId, tenant);
          // Finished in time: the final job (200); otherwise the job as it is, queued or running (202).
          return answerJob(res, FINAL.has(now.status) ? 200 : 202, now);
        }
        // No queuePosition here: looking it up is another Redis round trip on every submission
        // (admission and add are one each); GET /v1/jobs/:id and the event stream give it.
        const view = await presentJob(job, 'queued', null, deps.store, JOBS_PATH);
        return answerJob(res, 202, view);
      }
    }
  };
}
