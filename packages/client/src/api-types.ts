/**
 * The client's names for the API's shapes, from @farm/contracts: the submission type — a job
 * request as sent, before the API fills in its defaults (the contracts' `JobRequest` is the
 * validated output, defaults included) — the live fleet and the health check.
 */
import type { input } from 'zod';
import type { Health, WorkerList, WorkerSummary, jobRequestSchema } from '@farm/contracts';

/** What `POST /v1/jobs` accepts: `JobRequest` with every defaulted field optional. */
export type JobSubmission = input<ReturnType<typeof jobRequestSchema>>;
export type GenerateSubmission = Extract<JobSubmission, { type: 'generate' }>;
export type EditSubmission = Extract<JobSubmission, { type: 'edit' }>;

/** One live worker as `GET /v1/workers` lists it: its model and load (no id, host or pid). */
export type WorkerView = WorkerSummary;

/** `GET /v1/workers`: the live workers and, per model, workers, capacity and queue. */
export type FleetView = WorkerList;

/** `GET /healthz`: 200 with status ok, or 503 with status unavailable. */
export type HealthView = Health;
