/**
 * Shapes of the answers that @farm/contracts does not describe (yet): the worker list and the
 * health check, plus the submission type — a job request as sent, before the API fills in
 * its defaults (the contracts' `JobRequest` is the validated output, defaults included).
 */
import type { input } from 'zod';
import type { jobRequestSchema } from '@farm/contracts';

/** What `POST /v1/jobs` accepts: `JobRequest` with every defaulted field optional. */
export type JobSubmission = input<ReturnType<typeof jobRequestSchema>>;
export type GenerateSubmission = Extract<JobSubmission, { type: 'generate' }>;
export type EditSubmission = Extract<JobSubmission, { type: 'edit' }>;

/**
 * One live worker as `GET /v1/workers` lists it. Mirrors `WorkerInfo` of @farm/platform,
 * which a client should not depend on (Redis, S3 and BullMQ come with it).
 */
export interface WorkerView {
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

/** `GET /healthz`: 200 with status ok, or 503 with status unavailable. */
export interface HealthView {
  status: 'ok' | 'unavailable';
  redis: boolean;
  s3: boolean;
}
