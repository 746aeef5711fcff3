/** Names shared by the producers and consumers of the job queue. */
import type { QueuedJob } from './job-request';
import type { JobOutput, JobProgress } from './job-view';

/** BullMQ job name for each job type (one typed catalogue, see STYLE.md §7). */
export type JobName = QueuedJob['type'];
export const JOB_NAMES: readonly JobName[] = ['generate', 'edit'];

export type { QueuedJob, JobOutput, JobProgress };
