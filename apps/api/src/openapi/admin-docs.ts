/** The description of the operator routes under /admin (admin-routes.ts). */
import { z } from 'zod';
import { adminJobSchema, adminWorkerListSchema, jobErrorSchema } from '@farm/contracts';
import { newApiKeySchema } from '../admin-routes';
import { ADMIN_SECURITY, DocContext, errorResponses, jobIdParams, json } from './responses';

/** Without ADMIN_API_KEY every /admin route answers 404. */
const ADMIN_ERRORS = [401, 404, 500, 503] as const;
const ADMIN_404 = '`not_found`: operator routes are off (no ADMIN_API_KEY)';

const deadLetterSchema = z
  .object({
    jobs: z.array(
      z.object({
        id: z.string(),
        tenant: z.string(),
        model: z.string(),
        type: z.string(),
        attempts: z.int().min(0),
        failedAt: z.iso.datetime().nullable(),
        error: jobErrorSchema,
      }),
    ),
  })
  .meta({ id: 'DeadLetter', description: 'Jobs that failed for good (retries exhausted or not retryable), newest first' });

export function describeAdminRoutes({ registry, limits }: DocContext): void {
  registry.registerPath({
    method: 'get',
    path: '/admin/workers',
    operationId: 'listWorkerHosts',
    tags: ['admin'],
    summary: 'Live workers with their ids, hosts, pids, models and heartbeats',
    security: ADMIN_SECURITY,
    responses: { 200: json(adminWorkerListSchema, 'Workers with a heartbeat in the last 15 s'), ...errorResponses([...ADMIN_ERRORS], { 404: ADMIN_404 }) },
  });

  registry.registerPath({
    method: 'get',
    path: '/admin/jobs/{id}',
    operationId: 'inspectJob',
    tags: ['admin'],
    summary: "Any tenant's job, with its tenant, the worker that took it and its queue record",
    security: ADMIN_SECURITY,
    request: { params: jobIdParams },
    responses: {
      200: json(adminJobSchema(limits), 'The job'),
      ...errorResponses([400, ...ADMIN_ERRORS], { 404: '`not_found`: no job with this id, or operator routes are off' }),
    },
  });

  registry.registerPath({
    method: 'post',
    path: '/admin/api-keys',
    operationId: 'createApiKey',
    tags: ['admin'],
    summary: "Create a tenant's API key (shown once)",
    security: ADMIN_SECURITY,
    request: { body: { required: true, content: { 'application/json': { schema: newApiKeySchema } } } },
    responses: {
      201: json(z.object({ tenant: z.string(), key: z.string().meta({ description: 'The new key; only its hash is stored' }) }).meta({ id: 'ApiKey' }), 'Created'),
      ...errorResponses([400, 413, 415, ...ADMIN_ERRORS], { 404: ADMIN_404 }),
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/admin/dead-letter',
    operationId: 'listDeadLetter',
    tags: ['admin'],
    summary: 'Jobs that failed for good, with their reasons',
    security: ADMIN_SECURITY,
    request: { query: z.object({ limit: z.coerce.number().int().min(1).max(500).optional().meta({ description: 'At most this many (default 50)' }) }) },
    responses: { 200: json(deadLetterSchema, 'The failed jobs'), ...errorResponses([...ADMIN_ERRORS], { 404: ADMIN_404 }) },
  });

  registry.registerPath({
    method: 'post',
    path: '/admin/dead-letter/{id}/retry',
    operationId: 'retryDeadLetter',
    tags: ['admin'],
    summary: 'Queue a failed job again',
    security: ADMIN_SECURITY,
    request: { params: jobIdParams },
    responses: {
      202: json(z.object({ id: z.string(), status: z.literal('queued') }), 'Queued again'),
      ...errorResponses([400, ...ADMIN_ERRORS], { 404: '`not_found`: no failed job with this id, or operator routes are off' }),
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/admin/queues',
    operationId: 'queueDashboard',
    tags: ['admin'],
    summary: 'The BullMQ dashboard (bull-board), a web page',
    security: ADMIN_SECURITY,
    responses: { 200: { description: 'The dashboard', content: { 'text/html': { schema: z.string() } } }, ...errorResponses([...ADMIN_ERRORS], { 404: ADMIN_404 }) },
  });
}
