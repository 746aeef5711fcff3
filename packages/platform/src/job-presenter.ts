/**
 * Turns a BullMQ job and its final state into the job JSON: a tenant's (JobView: nothing about
 * workers) and an operator's (AdminJobView: the tenant, the worker, the queue's record).
 */
import type { Job } from 'bullmq';
import type { AdminJobView, FinalState, JobName, JobOutput, JobProgress, JobRequest, JobStatus, JobView, QueuedJob } from '@farm/contracts';
import type { ObjectStore } from './object-store';

type FarmJob = Job<QueuedJob, JobOutput, JobName>;

/**
 * A job's status from its queue state and its final state. The final state rules: a canceled job
 * is canceled whatever its queue state, and a job whose completion or failure is decided but
 * not yet recorded by the queue is still running (its result is not there yet).
 */
export function statusOf(state: string, final: FinalState | null): JobStatus | null {
  if (final?.status === 'canceled') return 'canceled';
  switch (state) {
    case 'completed':
      return 'succeeded';
    case 'failed':
      return 'failed';
    case 'active':
      return 'running';
    case 'waiting':
    case 'prioritized':
    case 'delayed':
    case 'waiting-children':
      return final ? 'running' : 'queued';
    default:
      return null;
  }
}

function progressOf(job: FarmJob): JobProgress {
  const p = job.progress as unknown;
  if (p && typeof p === 'object' && 'step' in p && 'total' in p) {
    const { step, total } = p as JobProgress; // previews travel by SSE only
    return { step, total };
  }
  return { step: 0, total: job.data.request?.steps ?? 0 }; // no steps: a job queued past the API's checks
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

export async function presentJob(job: FarmJob, status: JobStatus, final: FinalState | null, store: ObjectStore, basePath: string): Promise<JobView> {
  // What the API accepted; a job another producer queued past its checks shows its data as it came.
  const request: JobRequest = job.data.request ?? (job.data as unknown as JobRequest);
  const output = status === 'succeeded' ? job.returnvalue : undefined;
  const started = job.processedOn;
  const finished = status === 'succeeded' || status === 'failed' || status === 'canceled' ? (final?.at ?? job.finishedOn) : undefined;
  const progress = status === 'succeeded' ? { step: request.steps, total: request.steps } : progressOf(job);
  const view: JobView = {
    id: job.id!,
    type: job.name,
    status,
    progress,
    request,
    ...(job.data.cost && { cost: job.data.cost }),
    attempts: job.attemptsMade,
    createdAt: iso(job.timestamp)!,
    startedAt: iso(started),
    finishedAt: iso(finished),
    timings: {
      queueMs: started ? started - job.timestamp : null,
      computeMs: output ? output.computeMs : null,
      totalMs: finished ? finished - job.timestamp : null,
    },
    links: { self: `${basePath}/${job.id}`, events: `${basePath}/${job.id}/events` },
  };
  if (output) {
    // Results live RESULT_RETENTION_SECONDS from the job's end; after that they are gone, and say so.
    const expiresAt = store.retentionSeconds === undefined ? undefined : (finished ?? job.timestamp) + store.retentionSeconds * 1000;
    const expired = expiresAt !== undefined && Date.now() >= expiresAt;
    view.result = {
      bucket: output.bucket,
      key: output.key,
      ...(expired ? { expired } : { url: await store.presignGet(output.key, expiresAt) }),
      ...(expiresAt !== undefined ? { expiresAt: iso(expiresAt)! } : {}),
      width: output.width,
      height: output.height,
      contentType: output.contentType,
    };
    if (output.edit) {
      const { maskKey, ...edit } = output.edit;
      Object.assign(view.result, { mask: { key: maskKey, ...(expired ? {} : { url: await store.presignGet(maskKey, expiresAt) }) }, ...edit });
    }
  }
  if (status === 'failed') {
    // A job the queue failed without a decision of ours (its workers died more often than allowed).
    view.error = final?.status === 'failed' ? final.error : { code: 'internal_error', message: job.failedReason || 'the job failed without a reason' };
  }
  if (status === 'canceled') view.error = { code: 'canceled', message: 'canceled by the client' };
  return view;
}

/** What an operator sees beside a tenant's view of the job; `queueState` is BullMQ's. */
export function presentOperatorJob(job: FarmJob, view: JobView, queueState: string): AdminJobView {
  // The result's producer (a snapshot's is the session's worker); otherwise the last worker that took it.
  const workerId = (view.status === 'succeeded' ? job.returnvalue?.workerId : undefined) ?? job.processedBy;
  return {
    ...view,
    tenant: job.data.tenant,
    ...(workerId ? { workerId } : {}),
    queueState,
    attemptsStarted: job.attemptsStarted,
    ...(job.failedReason ? { failedReason: job.failedReason } : {}),
  };
}
