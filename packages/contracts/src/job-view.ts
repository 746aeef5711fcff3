/**
 * The job as clients see it (`GET /v1/jobs/:id`) and as operators do (`GET /admin/jobs/:id`), the
 * worker's result record, and a job's final state as it is decided once for all (the one record
 * that answers "how did it end?").
 */
import { z } from 'zod';
import { jobCostSchema } from './job-cost';
import { JOB_FAILURE_CODES } from './job-failures';
import { DEFAULT_LIMITS, ImageFormat, JobRequest, RequestLimits, acceptedRequestSchema } from './job-request';

/** Job types (BullMQ job names): one typed catalogue (see STYLE.md §7). */
export const JOB_NAMES = ['generate', 'edit'] as const;

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The statuses a job ends in; it reaches exactly one of them, once. */
export const FINAL_STATUSES = ['succeeded', 'failed', 'canceled'] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];

export const jobProgressSchema = z
  .object({
    step: z.int().min(0),
    total: z.int().min(0),
    preview: z.string().optional().meta({ description: "A small PNG data URL of the step's estimate (event stream only)" }),
  })
  .meta({ id: 'JobProgress' });
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

export const jobResultSchema = z
  .object({
    bucket: z.string(),
    key: z.string(),
    url: z.url().optional().meta({ description: 'Presigned GET URL of the image: no key needed until it expires (absent once the result has expired)' }),
    expiresAt: z.iso.datetime().optional().meta({ description: 'When the image (and the job\'s cached state) is deleted: RESULT_RETENTION_SECONDS after the job ended' }),
    expired: z.literal(true).optional().meta({ description: 'The result is gone (past `expiresAt`): no `url`, and the job can no longer be edited' }),
    width: z.int(),
    height: z.int(),
    contentType: z.string().meta({ example: 'image/png' }),
    /** Edits: the mask actually used, the share recomputed and decoded, where the source came from. */
    mask: z.object({ key: z.string(), url: z.url().optional() }).optional().meta({ description: 'Edits: the mask actually used (a PNG)' }),
    recomputedFraction: z.number().min(0).max(1).optional().meta({ description: 'Edits: share of the canvas denoised again' }),
    decodedFraction: z.number().min(0).max(1).optional().meta({ description: 'Edits: share of the canvas decoded again' }),
    source: z.enum(EDIT_SOURCE_KINDS).optional().meta({ description: "Edits: where the source's state came from" }),
  })
  .meta({ id: 'JobResult', description: "A succeeded job's image (and, for edits, the mask used)" });
export type JobResult = z.infer<typeof jobResultSchema>;

const millis = z.number().nullable();
export const jobTimingsSchema = z.object({ queueMs: millis, computeMs: millis, totalMs: millis }).meta({ id: 'JobTimings' });
export type JobTimings = z.infer<typeof jobTimingsSchema>;

export const jobErrorSchema = z
  .object({
    code: z.enum(JOB_FAILURE_CODES).meta({ description: "One of the README's job failure codes" }),
    message: z.string(),
  })
  .meta({ id: 'JobError', description: 'Why a job failed or was canceled' });
export type JobError = z.infer<typeof jobErrorSchema>;

/**
 * How a job ended, decided once by whichever of completion, final failure or cancel comes
 * first, and never changed afterwards: `at` in ms since the epoch, `error` for failures.
 */
export const finalStateSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('succeeded'), at: z.number() }),
  z.object({ status: z.literal('failed'), at: z.number(), error: jobErrorSchema }),
  z.object({ status: z.literal('canceled'), at: z.number() }),
]);
export type FinalState = z.infer<typeof finalStateSchema>;

/**
 * The job as `GET /v1/jobs/{id}` answers it. Its request is the one the API accepted, under the
 * farm's limits — unless another producer queued it, past the API's checks.
 */
export function jobViewSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  return z
    .object({
      id: z.string(),
      type: z.enum(JOB_NAMES),
      status: z.enum(JOB_STATUSES),
      progress: jobProgressSchema,
      request: z.union([
        acceptedRequestSchema(limits),
        z
          .object({})
          .loose()
          .meta({ title: 'Unchecked', description: 'A job another producer put on the queue (it fails with invalid_job): its data as it came' }),
      ]),
      cost: jobCostSchema.optional().meta({ description: 'What the job asks of the farm, as MAX_JOB_COST measures it (jobs queued by the API)' }),
      queuePosition: z
        .int()
        .min(0)
        .optional()
        .meta({
          description:
            'Queued jobs: how many jobs of its model start before it (0: next). Not on the 202 of a submission (it would cost every submission another Redis round trip): GET the job or follow its events',
        }),
      attempts: z.int().min(0).meta({ description: 'Attempts that failed and were retried' }),
      createdAt: z.iso.datetime(),
      startedAt: z.iso.datetime().nullable(),
      finishedAt: z.iso.datetime().nullable(),
      timings: jobTimingsSchema,
      /** Succeeded jobs: the image. */
      result: jobResultSchema.optional(),
      /** Failed and canceled jobs: why. */
      error: jobErrorSchema.optional(),
      links: z.object({ self: z.string(), events: z.string() }),
    })
    .meta({ id: 'Job' });
}
export type JobView = Omit<z.output<ReturnType<typeof jobViewSchema>>, 'request'> & { request: JobRequest };

/**
 * A job as an operator sees it (`GET /admin/jobs/{id}`): the job, whichever tenant's, with what
 * tenants do not see — its tenant, the worker that took it, the queue's own record.
 */
export function adminJobSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  return jobViewSchema(limits)
    .extend({
      tenant: z.string(),
      workerId: z.string().optional().meta({ description: 'The worker that produced the result; unfinished and failed jobs: the last worker that took it (none: never taken)' }),
      queueState: z.string().meta({ description: "BullMQ's state of the job", example: 'active' }),
      attemptsStarted: z.int().min(0).meta({ description: 'Times a worker took it (retries and stalls included)' }),
      failedReason: z.string().optional().meta({ description: "BullMQ's record of its last failure, as the worker said it" }),
    })
    .meta({ id: 'AdminJob', description: 'A job with its tenant, its worker and its queue record' });
}
export type AdminJobView = JobView & Pick<z.output<ReturnType<typeof adminJobSchema>>, 'tenant' | 'workerId' | 'queueState' | 'attemptsStarted' | 'failedReason'>;
