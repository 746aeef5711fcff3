/**
 * The job as the queue carries it from the API to the worker: the request with its defaults
 * applied and the API's decisions filled in (seed, model, an edit's strength), its tenant, an
 * edit's resolved source job, and its cost. The worker parses it once, with this schema, when it takes the job,
 * and never decides any of it again.
 */
import { z } from 'zod';
import { DECIDED_FIELDS, DEFAULT_LIMITS, JobRequest, RequestLimits, jobRequestSchema } from './job-request';
import type { JobOutput, JobProgress } from './job-view';
import { JobCost, jobCostSchema } from './job-cost';
import { editStrength } from './model-capabilities';

/** A live session's committed frame, already stored: its job only records it (no compute). */
export const sessionSnapshotSchema = z.strictObject({
  /** Object key of the stored image. */
  key: z.string().min(1),
  /** The worker that rendered it. */
  workerId: z.string().min(1),
});
export type SessionSnapshot = z.infer<typeof sessionSnapshotSchema>;

/** An edit's source job as the API found it: its image and its prompt. */
export const sourceJobSchema = z.strictObject({ imageKey: z.string().min(1), prompt: z.string() });
export type SourceJob = z.infer<typeof sourceJobSchema>;

export function queuedJobSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  const [generate, edit] = jobRequestSchema(limits).options;
  const request = z.discriminatedUnion('type', [generate.extend(DECIDED_FIELDS), edit.safeExtend({ ...DECIDED_FIELDS, strength: z.number().gt(0).max(1) })]);
  return z
    .strictObject({ request, tenant: z.string().min(1), sourceJob: sourceJobSchema.optional(), snapshot: sessionSnapshotSchema.optional(), cost: jobCostSchema.optional() })
    .refine((job) => (job.request.type === 'edit' && typeof job.request.source === 'string') === (job.sourceJob !== undefined), {
      message: 'an edit of a previous job carries that job (sourceJob), and only such an edit',
      path: ['sourceJob'],
    })
    .refine((job) => job.snapshot === undefined || job.request.type === 'generate', {
      message: 'a session snapshot records a generation',
      path: ['snapshot'],
    });
}

export type QueuedJob = z.output<ReturnType<typeof queuedJobSchema>>;
/** The request as queued: defaults applied, seed and model decided. What clients see as `request`. */
export type QueuedRequest = QueuedJob['request'];

/** What the API decides about a job besides its request. */
export interface JobDecisions {
  seed: number;
  model: string;
  tenant: string;
  sourceJob?: SourceJob;
  snapshot?: SessionSnapshot;
  /** Its cost as the API measured it (job-cost.ts); the worker's memory estimate of the job starts from it. */
  cost?: JobCost;
}

/** The queued job for an accepted request. */
export function queuedJob(request: JobRequest, decided: JobDecisions): QueuedJob {
  const { seed, model, tenant, sourceJob, snapshot, cost } = decided;
  const queued: QueuedRequest =
    request.type === 'edit'
      ? { ...request, seed, model, strength: editStrength(request) }
      : { ...request, seed, model };
  return { request: queued, tenant, ...(sourceJob && { sourceJob }), ...(snapshot && { snapshot }), ...(cost && { cost }) };
}

/** BullMQ job name for each job type. */
export type JobName = QueuedRequest['type'];

export type { JobOutput, JobProgress };
