/**
 * Why a job failed: a closed list of codes (the README's "Job failure codes"), and one error
 * class per code carrying whether another attempt can help. Each failure is typed where it is
 * raised and read back by `classifyFailure`; a code is stored beside the job, never parsed out
 * of a message.
 */
export const JOB_FAILURE_CODES = ['invalid_job', 'inference_failed', 'storage_unavailable', 'canceled', 'internal_error'] as const;
export type JobFailureCode = (typeof JOB_FAILURE_CODES)[number];

/** A failed job's `error` as clients see it (job-view.ts has its schema). */
export interface JobFailureView {
  code: JobFailureCode;
  message: string;
}

export abstract class JobFailure extends Error {
  abstract readonly code: JobFailureCode;
  /** True when a later attempt may succeed (the queue retries it with backoff). */
  abstract readonly retryable: boolean;

  view(): JobFailureView {
    return { code: this.code, message: this.message };
  }
}

/** Input that can never succeed (bad request data, an unreadable image): never retried. */
export class InvalidJobError extends JobFailure {
  override readonly name = 'InvalidJobError';
  readonly code = 'invalid_job';
  readonly retryable = false;
}

/** The model failed to run: retried. */
export class InferenceError extends JobFailure {
  override readonly name = 'InferenceError';
  readonly code = 'inference_failed';
  readonly retryable = true;
}

/**
 * S3 did not answer: retried, and while the outage lasts less than the worker's storage budget
 * the job goes back to the queue without spending an attempt.
 */
export class StorageUnavailableError extends JobFailure {
  override readonly name = 'StorageUnavailableError';
  readonly code = 'storage_unavailable';
  readonly retryable = true;
}

/** The client canceled the job: final. */
export class JobCanceledError extends JobFailure {
  override readonly name = 'JobCanceledError';
  readonly code = 'canceled';
  readonly retryable = false;
}

/** Anything not typed where it was raised (a bug, a dependency's surprise): retried. */
export class InternalJobError extends JobFailure {
  override readonly name = 'InternalJobError';
  readonly code = 'internal_error';
  readonly retryable = true;
}

/** The one place an error becomes a typed failure: typed ones as they are, anything else internal. */
export function classifyFailure(err: unknown): JobFailure {
  if (err instanceof JobFailure) return err;
  const message = err instanceof Error ? err.message || err.name : String(err);
  return new InternalJobError(message);
}
