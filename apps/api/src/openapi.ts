/**
 * The OpenAPI 3.1 document of the API (`GET /openapi.json`), generated from the zod schemas the
 * API validates requests with and derives its response types from, so it cannot drift from them.
 */
import { z } from 'zod';
import { RequestLimits, jobErrorSchema, jobRequestSchema, jobViewSchema, sessionCreatedSchema, sessionRequestSchema } from '@farm/contracts';

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { description: 'error', ...json(ref('Error')) }]));
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

export function openApiDocument(limits: RequestLimits): Record<string, unknown> {
  const errorSchema = z.object({
    error: jobErrorSchema.extend({ fields: z.array(z.object({ path: z.string(), message: z.string() })).optional() }),
  });
  return {
    openapi: '3.1.0',
    info: { title: 'Diffusion farm API', version: '0.1.0', description: 'Submit image generation and edit jobs; follow them; fetch results.' },
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'A tenant API key' } },
      schemas: {
        JobRequest: jsonSchema(jobRequestSchema(limits), 'input'),
        Job: jsonSchema(jobViewSchema, 'output'),
        Error: jsonSchema(errorSchema, 'output'),
        SessionRequest: jsonSchema(sessionRequestSchema(limits), 'input'),
        Session: jsonSchema(sessionCreatedSchema, 'output'),
      },
    },
    security: [{ apiKey: [] }],
    paths: {
      '/v1/jobs': {
        post: {
          summary: 'Submit a generation or edit job',
          parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 } }],
          requestBody: { required: true, ...json(ref('JobRequest')) },
          responses: {
            '202': { description: 'queued', ...json(ref('Job')) },
            '200': { description: 'the job an earlier request with the same Idempotency-Key created', ...json(ref('Job')) },
            ...errors(400, 401, 409, 413, 415, 429, 503),
          },
        },
      },
      '/v1/jobs/{id}': {
        get: { summary: 'A job', parameters: [idParam], responses: { '200': { description: 'the job', ...json(ref('Job')) }, ...errors(401, 404) } },
        delete: { summary: 'Cancel a job', parameters: [idParam], responses: { '202': { description: 'canceled', ...json(ref('Job')) }, ...errors(401, 404, 409) } },
      },
      '/v1/jobs/{id}/events': {
        get: {
          summary: 'Server-Sent Events: queued, started, progress {step,total,preview}, then succeeded|failed|canceled with the job',
          parameters: [idParam],
          responses: { '200': { description: 'event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors(401, 404) },
        },
      },
      '/v1/sessions': {
        post: {
          summary: 'Open a live canvas session (frames stream on its WebSocket; see the README for the protocol)',
          requestBody: { required: true, ...json(ref('SessionRequest')) },
          responses: { '201': { description: 'opened', ...json(ref('Session')) }, ...errors(400, 401, 415, 503) },
        },
      },
      '/v1/sessions/{id}/ws': {
        get: {
          summary: 'The session\'s WebSocket (upgrade): updates in, frames out. Authenticated by the bearer key or ?token=',
          parameters: [idParam, { name: 'token', in: 'query', required: false, schema: { type: 'string' } }],
          responses: { '101': { description: 'switching protocols: the socket is open' }, ...errors(401, 404, 409) },
        },
      },
      '/v1/workers': { get: { summary: 'Live workers', responses: { '200': { description: 'workers', ...json({ type: 'object' }) }, ...errors(401) } } },
      '/v1/webhook-secret': { get: { summary: "The tenant's webhook signing secret", responses: { '200': { description: 'secret', ...json({ type: 'object' }) }, ...errors(401, 404) } } },
      '/healthz': { get: { security: [], summary: 'Health of Redis and S3', responses: { '200': { description: 'ok' }, '503': { description: 'unavailable' } } } },
      '/metrics': { get: { security: [], summary: 'Prometheus metrics', responses: { '200': { description: 'text exposition format' } } } },
    },
  };
}
