/**
 * Looking jobs up as a tenant sees them — another tenant's job is as absent as a missing one —
 * in the public job JSON, with its final state taken into account; and as an operator sees them. The job's queue comes from its
 * locator (one key read), not from asking every model's queue.
 */
import type { AdminJobView, JobView } from '@farm/contracts';
import type { JobFinalStates } from './job-final-states';
import type { JobLocator } from './job-locator';
import { presentJob, presentOperatorJob, statusOf } from './job-presenter';
import type { FarmQueue, ModelQueues } from './job-queue';
import type { ObjectStore } from './object-store';
import type { QueuePositions } from './queue-position';

export const JOBS_PATH = '/v1/jobs';

export class JobDirectory {
  constructor(
    private readonly queues: ModelQueues,
    private readonly store: ObjectStore,
    private readonly finalStates: JobFinalStates,
    private readonly locator: JobLocator,
    /** Where queued jobs stand in their queue (`queuePosition`); without it views have none. */
    private readonly positions?: QueuePositions,
  ) {}

  /** The queue holding the job: its recorded model's, else the default model's. */
  async queueOf(id: string): Promise<FarmQueue | undefined> {
    return this.queues.get((await this.locator.modelOf(id)) ?? this.queues.defaultModel);
  }

  /** The job's JSON, or null when it does not exist or belongs to another tenant (tenant null: any). */
  async find(id: string, tenant: string | null): Promise<JobView | null> {
    return (await this.lookup(id, tenant))?.view ?? null;
  }

  /** Any tenant's job as an operator sees it, or null when it does not exist. */
  async inspect(id: string): Promise<AdminJobView | null> {
    const found = await this.lookup(id, null);
    return found && presentOperatorJob(found.job, found.view, found.state);
  }

  private async lookup(id: string, tenant: string | null) {
    const queue = await this.queueOf(id);
    if (!queue) return null;
    // One round trip: the state, the final state and the hash, sent in that order on one
    // connection, so the hash is read after the state — once the state is final, the result or
    // failure reason is in it. A state script sent again after NOSCRIPT (Redis lost its scripts)
    // runs after the hash read; then a final state's hash without its end is read once more.
    const [state, final, read] = await Promise.all([queue.getJobState(id), this.finalStates.get(id), queue.getJob(id)]);
    if (state === 'unknown') return null;
    const ended = state === 'completed' || state === 'failed';
    const job = ended && read && read.finishedOn === undefined ? await queue.getJob(id) : read;
    if (!job || (tenant !== null && job.data.tenant !== tenant)) return null;
    const status = statusOf(state, final);
    if (!status) return null;
    const view = await presentJob(job, status, final, this.store, JOBS_PATH);
    if (status === 'queued' && this.positions) {
      const position = await this.positions.of(queue, id);
      if (position !== null) view.queuePosition = position;
    }
    return { job, view, state };
  }
}
