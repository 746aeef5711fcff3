/**
 * The job as clients see it (`GET /v1/jobs/:id`), the worker's result record, and the
 * failure encoding shared by both sides of the queue.
 */
import { z } from 'zod';
import { ImageFormat, JobRequest, jobRequestSchema } from './job-request';

/** Job types (BullMQ job names): one typed catalogue (see STYLE.md §7). */
export const JOB_NAMES = ['generate', 'edit'] as const;

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const jobProgressSchema = z.object({
  step: z.int(),
  total: z.int(),
  /** Small PNG data URL of the step's estimate (SSE progress events only). */
  preview: z.string().optional(),
});
export type JobProgress = z.infer<typeof jobProgressSchema>;

/** Where an edit's source state came from. */
export const EDIT_SOURCE_KINDS = ['memory', 'cache', 'reencoded', 'upload'] as const;
export type EditSourceKind = (typeof EDIT_SOURCE_KINDS)[number];

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

export const jobResultSchema = z.object({
  bucket: z.string(),
  key: z.string(),
  /** Presigned GET URL of the image. */
  url: z.string(),
  width: z.int(),
  height: z.int(),
  contentType: z.string(),
  /** Edits: the mask actually used, the share recomputed and decoded, where the source came from. */
  mask: z.object({ key: z.string(), url: z.string() }).optional(),
  recomputedFraction: z.number().optional(),
  decodedFraction: z.number().optional(),
  source: z.enum(EDIT_SOURCE_KINDS).optional(),
});
export type JobResult = z.infer<typeof jobResultSchema>;

const millis = z.number().nullable();
export const jobTimingsSchema = z.object({ queueMs: millis, computeMs: millis, totalMs: millis });
export type JobTimings = z.infer<typeof jobTimingsSchema>;

export const jobErrorSchema = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof jobErrorSchema>;

/** The job as `GET /v1/jobs/:id` answers it (its request is the validated, defaulted one). */
export const jobViewSchema = z.object({
  id: z.string(),
  type: z.enum(JOB_NAMES),
  status: z.enum(JOB_STATUSES),
  progress: jobProgressSchema,
  request: jobRequestSchema(),
  attempts: z.int(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  timings: jobTimingsSchema,
  /** The worker that produced the result. */
  workerId: z.string().optional(),
  result: jobResultSchema.optional(),
  error: jobErrorSchema.optional(),
  links: z.object({ self: z.string(), events: z.string() }),
});
export type JobView = Omit<z.output<typeof jobViewSchema>, 'request'> & { request: JobRequest };

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

/** One live worker as `GET /v1/workers` lists it. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  executionProvider: string;
  model: string;
  maxBatch: number;
  maxInFlight: number;
  inFlight: number;
  startedAt: string;
  lastHeartbeat: string;
}
