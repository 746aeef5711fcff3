/** JSON error answers: every 4xx/5xx body is {error: {code, message, fields?, cost?}}. */
import type { ErrorRequestHandler, Response } from 'express';
import type { ApiErrorCode, FieldProblem, JobCostExcess } from '@farm/contracts';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly fields?: FieldProblem[],
    /** `job_too_costly`: the job's cost and the ceiling. */
    readonly cost?: JobCostExcess,
  ) {
    super(message);
  }
}

export function sendError(res: Response, err: HttpError): void {
  res.status(err.status).json({ error: { code: err.code, message: err.message, ...(err.fields ? { fields: err.fields } : {}), ...(err.cost ? { cost: err.cost } : {}) } });
}

/**
 * True for errors that mean Redis cannot serve now: ioredis offline and connection errors; a
 * cluster with a slot between masters (CLUSTERDOWN, TRYAGAIN, its retries spent: "Too many Cluster
 * redirections", no node answering); a server loading its data or a demoted master (LOADING,
 * MASTERDOWN, READONLY) during a failover.
 */
export function isRedisUnavailable(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return (
    /Connection is closed|Stream isn't writeable|ECONNREFUSED|ETIMEDOUT|Reached the max retries|enableOfflineQueue/i.test(message) ||
    /\b(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY)\b|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available/.test(message)
  );
}

/** Maps body-parser errors and unexpected failures to JSON answers; never leaks a stack. */
export const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => {
  if (err instanceof HttpError) return sendError(res, err);
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') {
    return sendError(res, new HttpError(413, 'payload_too_large', `request body is larger than ${(err as { limit: number }).limit} bytes`));
  }
  if (type === 'entity.parse.failed') {
    return sendError(res, new HttpError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`));
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return sendError(res, new HttpError(415, 'unsupported_encoding', (err as Error).message));
  }
  const status = (err as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Other client errors raised by express itself (e.g. a malformed %-escape in the path).
    return sendError(res, new HttpError(status, 'bad_request', (err as Error).message || 'bad request'));
  }
  if (isRedisUnavailable(err)) {
    res.setHeader('Retry-After', '2');
    return sendError(res, new HttpError(503, 'queue_unavailable', 'the job queue (Redis) is unreachable; try again shortly'));
  }
  console.error('api: unexpected error', err);
  sendError(res, new HttpError(500, 'internal_error', 'unexpected error'));
};
