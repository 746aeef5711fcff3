/**
 * The API's answers besides the job itself — errors, live workers, health, the webhook secret,
 * the job event stream's events and webhook deliveries — as zod schemas. The OpenAPI document
 * is generated from them (`.meta({ id })` names its components) and clients take their types
 * from them.
 */
import { z } from 'zod';
import { jobCostExcessSchema } from './job-cost';
import { DEFAULT_LIMITS, RequestLimits } from './job-request';
import { JOB_NAMES, JOB_STATUSES, jobProgressSchema, jobViewSchema } from './job-view';

export const fieldProblemSchema = z
  .object({
    path: z.string().meta({ description: 'The offending field, dotted (`regions.0.mask`), or `(body)`', example: 'width' }),
    message: z.string().meta({ example: 'width must be a multiple of 8' }),
  })
  .meta({ id: 'FieldProblem' });

/**
 * Every code an error answer can carry: a closed list, the README's "Error codes" (with each
 * code's status and meaning) and the document's `Error.code` enum.
 */
export const API_ERROR_CODES = [
  'invalid_request',
  'invalid_json',
  'bad_request',
  'job_too_costly',
  'unauthorized',
  'not_found',
  'job_finished',
  'idempotency_conflict',
  'session_in_use',
  'payload_too_large',
  'unsupported_media_type',
  'unsupported_encoding',
  'rate_limited',
  'quota_exceeded',
  'internal_error',
  'queue_unavailable',
  'no_worker',
  'unavailable',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** Every error answer: `{error: {code, message, fields?, cost?}}`. */
export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.enum(API_ERROR_CODES).meta({ description: "Machine-readable reason: one of the README's error codes", example: 'invalid_request' }),
      message: z.string().meta({ description: 'The reason in words' }),
      fields: z.array(fieldProblemSchema).optional().meta({ description: '`invalid_request`: one entry per offending field' }),
      cost: jobCostExcessSchema.optional(),
    }),
  })
  .meta({ id: 'Error', description: 'The body of every 4xx and 5xx answer' });
export type ErrorBody = z.infer<typeof errorBodySchema>;

/**
 * One live worker as its heartbeat describes it: operator information (`GET /admin/workers`).
 * Tenants see only what it serves and how busy it is (`workerSummarySchema`).
 */
export const workerInfoSchema = z
  .object({
    id: z.string().meta({ description: 'WORKER_ID: stable across restarts; the `worker` label of its metrics' }),
    host: z.string(),
    pid: z.int(),
    executionProvider: z.string().meta({ example: 'cpu' }),
    model: z.string().meta({ description: 'The model it serves (its queue)' }),
    maxBatch: z.int().meta({ description: 'Most lanes in one UNet call' }),
    maxInFlight: z.int().meta({ description: 'Most jobs denoising at once' }),
    inFlight: z.int(),
    startedAt: z.iso.datetime(),
    lastHeartbeat: z.iso.datetime(),
  })
  .meta({ id: 'AdminWorker' });
export type WorkerInfo = z.infer<typeof workerInfoSchema>;

export const adminWorkerListSchema = z
  .object({ workers: z.array(workerInfoSchema) })
  .meta({ id: 'AdminWorkerList', description: 'Workers with a heartbeat in the last 15 s, with their ids, hosts and pids' });

/** One live worker as a tenant sees it (`GET /v1/workers`): no id, host, pid or start time. */
export const workerSummarySchema = workerInfoSchema
  .pick({ model: true, executionProvider: true, maxBatch: true, maxInFlight: true, inFlight: true })
  .meta({ id: 'Worker', description: 'A live worker: the model it serves and how busy it is' });
export type WorkerSummary = z.infer<typeof workerSummarySchema>;

/** What a tenant can count on from one model: its live workers together, and its queue. */
export const modelCapacitySchema = z
  .object({
    model: z.string(),
    workers: z.int().min(0).meta({ description: 'Live workers serving it (0: its jobs wait until one starts)' }),
    capacity: z.int().min(0).meta({ description: 'Jobs its workers run at once, at most (their maxInFlight together)' }),
    inFlight: z.int().min(0).meta({ description: 'Jobs its workers hold now' }),
    queued: z.int().min(0).meta({ description: "Jobs waiting for one of its workers, every tenant's (a job's own place: `queuePosition`)" }),
  })
  .meta({ id: 'ModelCapacity' });
export type ModelCapacity = z.infer<typeof modelCapacitySchema>;

export const workerListSchema = z
  .object({
    workers: z.array(workerSummarySchema).meta({ description: 'Workers with a heartbeat in the last 15 s' }),
    models: z.array(modelCapacitySchema).meta({ description: 'Every model this farm serves, in MODELS order' }),
  })
  .meta({ id: 'WorkerList', description: 'The live fleet as a tenant sees it: what is served and how busy it is (ids, hosts and pids are for operators)' });
export type WorkerList = z.infer<typeof workerListSchema>;

export const webhookSecretSchema = z
  .object({ secret: z.string().regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/).meta({ description: "The tenant's Standard Webhooks signing secret" }) })
  .meta({ id: 'WebhookSecret' });

/**
 * The events of `GET /v1/jobs/{id}/events` (Server-Sent Events: `event:` is the name, `data:`
 * one line of JSON), for a farm with these limits.
 */
export function jobStreamEventSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  const job = jobViewSchema(limits);
  /** `queued` / `started`: the job when the stream opens, `{}` when it changes state later. */
  const stateEvent = (status: 'queued' | 'started') =>
    z
      .object({ event: z.literal(status), data: z.union([job, z.strictObject({})]) })
      .meta({ description: `The job (when the stream opens), or {} (when it becomes ${status} later)` });
  const positionEvent = z
    .object({ event: z.literal('queued'), data: z.strictObject({ queuePosition: z.int().min(0) }) })
    .meta({ description: "The queued job's new place in the queue (0: next), whenever it changes" });
  /** A final status ends the stream, with the final job. */
  const finalEvent = (status: 'succeeded' | 'failed' | 'canceled') =>
    z.object({ event: z.literal(status), data: job }).meta({ description: `The job ${status}; the stream ends after it` });
  return z
    .union([
      stateEvent('queued'),
      positionEvent,
      stateEvent('started'),
      z.object({ event: z.literal('progress'), data: jobProgressSchema }).meta({ description: 'A step done, steps increasing' }),
      finalEvent('succeeded'),
      finalEvent('failed'),
      finalEvent('canceled'),
    ])
    .meta({ id: 'JobStreamEvent', description: 'One Server-Sent Event of a job stream: `event` is its name, `data` its JSON' });
}

/** A delivery's `type`: `job.started`, `job.progress`, or the final status (the `completed` event). */
export const WEBHOOK_EVENT_TYPES = ['job.started', 'job.progress', 'job.succeeded', 'job.failed', 'job.canceled'] as const;

/** The body of a webhook delivery (Standard Webhooks), for a farm with these limits. */
export function webhookEventSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  return z
    .object({
      type: z.enum(WEBHOOK_EVENT_TYPES),
      timestamp: z.iso.datetime(),
      data: jobViewSchema(limits),
    })
    .meta({ id: 'WebhookEvent', description: 'What a webhook delivery POSTs: the event type and the job as it is when the delivery is made' });
}

/** `GET /livez`: the process answers. */
export const livenessSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Liveness' });

/** `GET /readyz` (and `/healthz`): 200 when Redis and S3 answer, else 503. */
export const healthSchema = z
  .object({
    status: z.enum(['ok', 'unavailable']),
    redis: z.boolean().meta({ description: 'Redis answered PING' }),
    s3: z.boolean().meta({ description: 'The bucket answered' }),
  })
  .meta({ id: 'Health' });
export type Health = z.infer<typeof healthSchema>;

/** `GET /v1/jobs`: the query. */
export const jobListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20).meta({ description: 'Jobs per page' }),
  cursor: z.string().max(400).optional().meta({ description: '`nextCursor` of the previous page' }),
  status: z.enum(JOB_STATUSES).optional().meta({ description: 'Only jobs with this status' }),
  type: z.enum(JOB_NAMES).optional().meta({ description: 'Only jobs of this type' }),
});

/** `GET /v1/jobs`: a page of the tenant's jobs, newest first. */
export function jobListSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  return z
    .object({
      jobs: z.array(jobViewSchema(limits)),
      nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last one' }),
    })
    .meta({ id: 'JobList', description: "A page of the tenant's jobs, newest first" });
}
