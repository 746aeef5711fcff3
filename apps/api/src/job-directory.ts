/** Looking jobs up as a tenant sees them: another tenant's job is as absent as a missing one. */
import type { JobView } from '@farm/contracts';
import type { FarmQueue, JobCancellation, ObjectStore } from '@farm/platform';
import { HttpError } from './http-errors';
import { presentJob, statusOf } from './job-presenter';

export const JOBS_PATH = '/v1/jobs';

export class JobDirectory {
  constructor(
    private readonly queue: FarmQueue,
    private readonly store: ObjectStore,
    private readonly cancellation: JobCancellation,
  ) {}

  /** The job's JSON, or null when it does not exist or belongs to another tenant (tenant null: any). */
  async find(id: string, tenant: string | null): Promise<JobView | null> {
    // State first: once it is final, the job's hash (result, failure reason) is final too.
    const state = await this.queue.getJobState(id);
    const job = await this.queue.getJob(id);
    if (!job || (tenant !== null && job.data.tenant !== tenant)) return null;
    const status = state !== 'completed' && (await this.cancellation.isCanceled(id)) ? 'canceled' : statusOf(state);
    return status ? presentJob(job, status, this.store, JOBS_PATH) : null;
  }

  async load(id: string, tenant: string | null): Promise<JobView> {
    const view = await this.find(id, tenant);
    if (!view) throw new HttpError(404, 'not_found', `no job with id ${id}`);
    return view;
  }
}
