/**
 * Looking jobs up as a tenant sees them — another tenant's job is as absent as a missing one —
 * in the public job JSON, with cancellations taken into account.
 */
import type { JobView } from '@farm/contracts';
import type { JobCancellation } from './job-cancellation';
import { presentJob, statusOf } from './job-presenter';
import type { ModelQueues } from './job-queue';
import type { ObjectStore } from './object-store';

export const JOBS_PATH = '/v1/jobs';

export class JobDirectory {
  constructor(
    private readonly queues: ModelQueues,
    private readonly store: ObjectStore,
    private readonly cancellation: JobCancellation,
  ) {}

  /** The job's JSON, or null when it does not exist or belongs to another tenant (tenant null: any). */
  async find(id: string, tenant: string | null): Promise<JobView | null> {
    for (const queue of this.queues.all()) {
      // State first: once it is final, the job's hash (result, failure reason) is final too.
      const state = await queue.getJobState(id);
      if (state === 'unknown') continue;
      const job = await queue.getJob(id);
      if (!job || (tenant !== null && job.data.tenant !== tenant)) return null;
      const status = state !== 'completed' && (await this.cancellation.isCanceled(id)) ? 'canceled' : statusOf(state);
      return status ? presentJob(job, status, this.store, JOBS_PATH) : null;
    }
    return null;
  }
}
