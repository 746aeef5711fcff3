/** @farm/client: a typed client of the farm's HTTP API (see FarmClient). */
export { FarmClient, DEFAULT_API_URL } from './farm-client';
export type { FarmClientOptions, CallOptions, SubmitOptions, WaitOptions } from './farm-client';
export { FarmApiError, isAbortError } from './farm-api-error';
export { isFinalEvent, isFinalStatus } from './job-events';
export type { JobEvent, FinalStatus } from './job-events';
export type { JobSubmission, GenerateSubmission, EditSubmission, WorkerView, FleetView, HealthView } from './api-types';
export type { JobView, JobProgress, JobResult, JobStatus, JobError, FieldProblem } from '@farm/contracts';
