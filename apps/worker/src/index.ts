export { FarmWorker, FarmWorkerOptions, DEFAULT_MODEL_DIR, WORKER_ENV, WorkerConfig, WorkerSettings, workerSettings } from './farm-worker';
export { JobIntake, Lease, jobsToFetch } from './job-intake';
export { JobRunner, Outcome, Attempt, resultKey } from './run-job';
export { JobSettler, settlementOf } from './settle-job';
export { EditAffinity, mayPreferHolder } from './edit-affinity';
export { EditSourceCache } from './edit-source-cache';
export { StorageGate } from './storage-gate';
export { TickProgress } from './tick-progress';
export { WorkerMetrics } from './worker-metrics';
