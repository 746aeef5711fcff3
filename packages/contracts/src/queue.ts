/** Names shared by the producers and consumers of the job queue. */
import type { QueuedJob } from './job-request';
import type { JobOutput, JobProgress } from './job-view';

/** BullMQ job name for each job type. */
export type JobName = QueuedJob['type'];

export type { QueuedJob, JobOutput, JobProgress };
