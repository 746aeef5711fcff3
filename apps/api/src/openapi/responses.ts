/**
 * Pieces every route description shares: the context route descriptions receive, the error
 * answers (each status with the codes it carries and its headers) and common parameters.
 */
import type { OpenAPIRegistry, ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { RequestLimits, errorBodySchema, jobRequestSchema, jobViewSchema } from '@farm/contracts';

/** What a route description gets: the registry to describe its routes in, and the farm's schemas. */
export interface DocContext {
  registry: OpenAPIRegistry;
  /** Named schemas (`.meta({ id })`) to list under components although only a raw `$ref` points at them. */
  components: z.ZodType[];
  limits: RequestLimits;
  /** The job request and the job, under the farm's limits (build each once per document). */
  jobRequest: ReturnType<typeof jobRequestSchema>;
  job: ReturnType<typeof jobViewSchema>;
}

export const TENANT_SECURITY = [{ apiKey: [] }];
export const ADMIN_SECURITY = [{ adminKey: [] }];
/** Routes anyone may call. */
export const PUBLIC = [];

const retryAfter = z.object({ 'Retry-After': z.string().meta({ description: 'Seconds to wait before trying again' }) });

/** The tenant's submission rate limit (IETF draft RateLimit header fields), on submissions. */
export const rateLimitHeaders = z.object({
  'RateLimit-Limit': z.string().optional().meta({ description: 'Submissions a tenant may make at once (TENANT_BURST)' }),
  'RateLimit-Remaining': z.string().optional().meta({ description: 'Submissions it may make at once now' }),
  'RateLimit-Reset': z.string().optional().meta({ description: 'Seconds until all of them are available again' }),
  'RateLimit-Policy': z.string().optional().meta({ description: '`<limit>;w=<seconds to refill it>`', example: '200;w=4' }),
});

const ERRORS = {
  400: { description: '`invalid_request` (one `fields` entry per offending field), `invalid_json`, `bad_request` (a malformed URL), or on submissions `job_too_costly` (`cost`: the job\'s cost and MAX_JOB_COST)' },
  401: { description: 'No API key, or an unknown one (`unauthorized`)', headers: z.object({ 'WWW-Authenticate': z.string() }) },
  404: { description: '`not_found`' },
  409: { description: '`conflict`' },
  413: { description: '`payload_too_large`: the body is over BODY_LIMIT_BYTES' },
  415: { description: '`unsupported_media_type` (not JSON) or `unsupported_encoding`' },
  429: { description: '`rate_limited` or `quota_exceeded`', headers: retryAfter.extend(rateLimitHeaders.shape) },
  500: { description: '`internal_error`' },
  503: { description: '`queue_unavailable`: Redis is unreachable', headers: retryAfter },
} satisfies Record<number, { description: string; headers?: z.ZodObject }>;

export type ErrorStatus = keyof typeof ERRORS;

/** Every /v1 route can answer these: no key, Redis away, the unexpected. */
export const TENANT_ERRORS: ErrorStatus[] = [401, 500, 503];

/**
 * The error answers of a route, each with the Error body; `descriptions` replaces the generic
 * text of a status with the route's own (e.g. which conflict a 409 is).
 */
export function errorResponses(statuses: ErrorStatus[], descriptions: Partial<Record<ErrorStatus, string>> = {}): Record<string, ResponseConfig> {
  return Object.fromEntries(
    statuses.map((status) => {
      const { description, ...rest } = ERRORS[status];
      return [String(status), { description: descriptions[status] ?? description, ...rest, content: { 'application/json': { schema: errorBodySchema } } }];
    }),
  );
}

/** A JSON answer. */
export function json(schema: z.ZodType, description: string, headers?: z.ZodObject): ResponseConfig {
  return { description, ...(headers ? { headers } : {}), content: { 'application/json': { schema } } };
}

export const jobIdParams = z.object({
  id: z.string().min(1).meta({ description: 'The job id (from the submission)', example: '0b9f4c3e-2d4e-4c8a-9c1b-7f0a4f7d2a11' }),
});
