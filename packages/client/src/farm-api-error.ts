/**
 * The one error the client throws for a failed call: the API's JSON error answer
 * ({error: {code, message, fields?}}) with its HTTP status, or — status 0, code
 * `network_error` — a request that got no answer at all.
 */
import type { FieldProblem } from '@farm/contracts';

export class FarmApiError extends Error {
  override readonly name = 'FarmApiError';

  constructor(
    /** HTTP status; 0 when the API could not be reached. */
    readonly status: number,
    /** Machine-readable code: `invalid_request`, `not_found`, `job_finished`, … */
    readonly code: string,
    message: string,
    /** For `invalid_request`: every offending field with its problem. */
    readonly fields?: FieldProblem[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Builds the error from a non-2xx answer; falls back to the status line for non-JSON bodies. */
  static async fromResponse(res: Response): Promise<FarmApiError> {
    const text = await res.text().catch(() => '');
    try {
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; fields?: unknown } };
      const err = body.error;
      if (err && typeof err.code === 'string' && typeof err.message === 'string') {
        return new FarmApiError(res.status, err.code, err.message, Array.isArray(err.fields) ? (err.fields as FieldProblem[]) : undefined);
      }
    } catch {
      // not JSON: a proxy's page or an empty body
    }
    const detail = text.trim().slice(0, 200);
    return new FarmApiError(res.status, 'http_error', `${res.status} ${res.statusText}${detail ? `: ${detail}` : ''}`);
  }

  /** Wraps a fetch rejection (refused connection, DNS, reset) that was not an abort. */
  static unreachable(url: string, cause: unknown): FarmApiError {
    const reason = describeCause(cause);
    return new FarmApiError(0, 'network_error', `cannot reach ${url}: ${reason}`, undefined, { cause });
  }
}

/** Undici hides the useful part ("ECONNREFUSED") in `cause`. */
function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const inner = (err as { cause?: unknown }).cause;
  if (inner instanceof Error) {
    const code = (inner as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} (${inner.message})` : inner.message;
  }
  return err.message;
}

/** True when an error is an abort (the caller's signal), which is never retried or wrapped. */
export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}
