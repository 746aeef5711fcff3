/** The description of the tenant routes under /v1 (jobs-routes.ts) and of the webhooks the farm sends. */
import { z } from 'zod';
import { jobListQuerySchema, jobListSchema, jobStreamEventSchema, webhookEventSchema, webhookSecretSchema, workerListSchema } from '@farm/contracts';
import { DocContext, TENANT_ERRORS, TENANT_SECURITY, errorResponses, jobIdParams, json, rateLimitHeaders } from './responses';

/** An event stream: a string on the wire; one event's schema under the extension OpenAPI 3.2 names `itemSchema`. */
const EVENT_STREAM = { schema: z.string(), 'x-itemSchema': { $ref: '#/components/schemas/JobStreamEvent' } };

/** The headers of an accepted submission. */
const submitted = z.object({
  Location: z.string().meta({ description: "The job's URL" }),
  'Preference-Applied': z.string().optional().meta({ description: 'The wait applied, when the request asked to wait: `wait=N`' }),
  ...rateLimitHeaders.shape,
});

export function describeJobsRoutes({ registry, components, jobRequest, job, limits }: DocContext): void {
  registry.registerPath({
    method: 'post',
    path: '/v1/jobs',
    operationId: 'submitJob',
    tags: ['jobs'],
    summary: 'Submit a generation or edit job',
    description: 'Queues the job and answers at once with it (202). Fields with a default may be left out; unknown fields are refused.',
    security: TENANT_SECURITY,
    request: {
      headers: z.object({
        'Idempotency-Key': z
          .string()
          .regex(/^[\x21-\x7e]{1,255}$/)
          .optional()
          .meta({ description: 'The same key and body within a day answer 200 with the first job; another body, 409' }),
        Prefer: z
          .string()
          .optional()
          .meta({ description: '`wait` or `wait=N` (RFC 7240): hold the answer until the job ends, up to N seconds (at most 60); 200 with the final job if it ended, else 202', example: 'wait=30' }),
      }),
      body: { required: true, content: { 'application/json': { schema: jobRequest } } },
    },
    responses: {
      202: json(job, 'Queued (or, with `Prefer: wait`, not finished in time: queued or running)', submitted),
      200: json(job, 'With `Prefer: wait`: the job, finished in time. With an Idempotency-Key used before: the job the earlier request created', submitted),
      ...errorResponses([400, 409, 413, 415, 429, ...TENANT_ERRORS], {
        409: '`idempotency_conflict`: the Idempotency-Key was used with another body',
      }),
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/v1/jobs',
    operationId: 'listJobs',
    tags: ['jobs'],
    summary: "The tenant's jobs, newest first, a page at a time",
    description: 'Follow `nextCursor` for older jobs. `status` and `type` filter the jobs as they are now, so a page may hold fewer than `limit`.',
    security: TENANT_SECURITY,
    request: { query: jobListQuerySchema },
    responses: { 200: json(jobListSchema(limits), 'A page of jobs'), ...errorResponses([400, ...TENANT_ERRORS]) },
  });

  registry.registerPath({
    method: 'get',
    path: '/v1/jobs/{id}',
    operationId: 'getJob',
    tags: ['jobs'],
    summary: 'A job: status, progress, timings, result or error',
    security: TENANT_SECURITY,
    request: { params: jobIdParams },
    responses: { 200: json(job, 'The job'), ...errorResponses([400, 404, ...TENANT_ERRORS], { 404: "`not_found`: no such job, or another tenant's" }) },
  });

  registry.registerPath({
    method: 'delete',
    path: '/v1/jobs/{id}',
    operationId: 'cancelJob',
    tags: ['jobs'],
    summary: 'Cancel a job',
    description: 'A queued job is canceled at once, a running one at its next step.',
    security: TENANT_SECURITY,
    request: { params: jobIdParams },
    responses: {
      202: json(job, 'Canceled (a running job stops at its next step)'),
      ...errorResponses([400, 404, 409, ...TENANT_ERRORS], { 409: '`job_finished`: the job already ended' }),
    },
  });

  const streamEvent = jobStreamEventSchema(limits);
  registry.registerPath({
    method: 'get',
    path: '/v1/jobs/{id}/events',
    operationId: 'streamJobEvents',
    tags: ['jobs'],
    summary: "A job's life as Server-Sent Events",
    description:
      'Events (`event:` name, `data:` JSON): `queued` or `started` with the job first, then `progress` ({step, total, preview}) ' +
      'and `queued` / `started` ({}) as they happen, and finally one of `succeeded`, `failed`, `canceled` with the final job, after ' +
      'which the stream ends. `x-itemSchema` (OpenAPI 3.2 calls it `itemSchema`) is the schema of one event, `JobStreamEvent`.',
    security: TENANT_SECURITY,
    request: { params: jobIdParams },
    responses: {
      200: {
        description: 'The event stream',
        content: { 'text/event-stream': EVENT_STREAM },
      },
      ...errorResponses([400, 404, ...TENANT_ERRORS]),
    },
  });
  components.push(streamEvent);

  registry.registerPath({
    method: 'get',
    path: '/v1/workers',
    operationId: 'listWorkers',
    tags: ['workers'],
    summary: 'The live fleet: what each worker serves and how busy it is, and each model\'s capacity and queue',
    description: 'Which workers (ids, hosts, pids) serve a model is operator information: `GET /admin/workers`.',
    security: TENANT_SECURITY,
    responses: { 200: json(workerListSchema, 'Workers with a heartbeat in the last 15 s, and every model served'), ...errorResponses(TENANT_ERRORS) },
  });

  registry.registerPath({
    method: 'get',
    path: '/v1/webhook-secret',
    operationId: 'getWebhookSecret',
    tags: ['webhooks'],
    summary: "The tenant's webhook signing secret",
    security: TENANT_SECURITY,
    responses: {
      200: json(webhookSecretSchema, 'The secret that signs this tenant\'s deliveries (Standard Webhooks)'),
      ...errorResponses([404, ...TENANT_ERRORS], { 404: '`not_found`: webhooks are off on this farm (no WEBHOOK_SECRET)' }),
    },
  });

  // One webhook per event a job's `webhookEvents` can ask for; every delivery's body is a WebhookEvent.
  const signatureHeaders = z.object({
    'webhook-id': z.string().meta({ description: 'The delivery id: the same for retries of one delivery' }),
    'webhook-timestamp': z.string().regex(/^\d+$/).meta({ description: 'Unix seconds' }),
    'webhook-signature': z.string().regex(/^v1,/).meta({ description: 'Space-separated `v1,<base64>` signatures' }),
  });
  const deliveries = [
    { name: 'jobStarted', summary: 'A job started (`webhookEvents` has `started`): `type` is `job.started`' },
    { name: 'jobProgress', summary: "A job's progress (`webhookEvents` has `progress`; at most one a second per job): `type` is `job.progress`" },
    { name: 'jobFinished', summary: "A job's final state (`completed`, the default): `type` is `job.succeeded`, `job.failed` or `job.canceled`" },
  ];
  for (const { name, summary } of deliveries) {
    registry.registerWebhook({
      method: 'post',
      path: name,
      operationId: name,
      tags: ['webhooks'],
      summary,
      security: [], // the receiver checks the signature
      description:
        "POSTed to the job's `webhook` URL with the job as it is when the delivery is made (a late delivery may show it further along). " +
        'Signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature` = `v1,` + base64 HMAC-SHA256 of ' +
        '`id.timestamp.body` with the tenant\'s secret). Any 2xx is success; otherwise the delivery is retried with exponential backoff (8 attempts). ' +
        'Deliveries may arrive out of order.',
      request: {
        headers: signatureHeaders,
        body: { required: true, content: { 'application/json': { schema: webhookEventSchema(limits) } } },
      },
      responses: { 200: { description: 'Received (any 2xx)' } },
    });
  }
}
