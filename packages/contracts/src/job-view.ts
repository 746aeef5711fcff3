/**
 * The job as clients see it (`GET /v1/jobs/:id`), the worker's result record, and the
 * failure encoding shared by both sides of the queue.
 */
import type { ImageFormat, JobRequest } from './job-request';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface JobProgress {
  step: number;
  total: number;
  /** Small PNG data URL of the step's estimate (SSE progress events only). */
  preview?: string;
}

/** Where an edit's source state came from. */
export type EditSourceKind = 'memory' | 'cache' | 'reencoded' | 'upload';

/** What an edit reports beside its image. */
export interface EditOutput {
  /** Object key of the pixel mask used (greyscale PNG). */
  maskKey: string;
  /** Share of the latent canvas that was denoised again. */
  recomputedFraction: number;
  /** Share of the latent canvas that was decoded again. */
  decodedFraction: number;
  source: EditSourceKind;
}

/** What the worker stores as the BullMQ return value of a succeeded job. */
export interface JobOutput {
  bucket: string;
  key: string;
  width: number;
  height: number;
  format: ImageFormat;
  contentType: string;
  seed: number;
  computeMs: number;
  workerId: string;
  edit?: EditOutput;
}

export interface JobResult {
  bucket: string;
  key: string;
  url: string;
  width: number;
  height: number;
  contentType: string;
  /** Edits: the mask actually used, the share recomputed, where the source came from. */
  mask?: { key: string; url: string };
  recomputedFraction?: number;
  decodedFraction?: number;
  source?: EditSourceKind;
}

export interface JobTimings {
  queueMs: number | null;
  computeMs: number | null;
  totalMs: number | null;
}

export interface JobError {
  code: string;
  message: string;
}

export interface JobView {
  id: string;
  type: JobRequest['type'];
  status: JobStatus;
  progress: JobProgress;
  request: JobRequest;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  timings: JobTimings;
  /** The worker that produced the result. */
  workerId?: string;
  result?: JobResult;
  error?: JobError;
  links: { self: string; events: string };
}

/**
 * BullMQ keeps a failure as one string; we keep the machine-readable code in front of the
 * message ("code: message") so the API can hand both back.
 */
export function encodeFailure(code: string, message: string): string {
  return `${code}: ${message}`;
}

export function decodeFailure(reason: string | undefined): JobError {
  const match = /^([a-z][a-z0-9_]*): ([\s\S]*)$/.exec(reason ?? '');
  if (match) return { code: match[1], message: match[2] };
  return { code: 'internal_error', message: reason || 'the job failed without a reason' };
}
