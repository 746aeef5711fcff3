/** Turns a BullMQ job into the public job JSON (JobView). */
import type { Job } from 'bullmq';
import type { JobName, JobOutput, JobProgress, JobStatus, JobView, QueuedJob } from '@farm/contracts';
import { decodeFailure } from '@farm/contracts';
import type { ObjectStore } from './object-store';

type FarmJob = Job<QueuedJob, JobOutput, JobName>;

export function statusOf(state: string): JobStatus | null {
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
      return 'queued';
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
  return { step: 0, total: job.data.steps ?? 0 }; // no steps: a job queued past the API's checks
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

export async function presentJob(job: FarmJob, status: JobStatus, store: ObjectStore, basePath: string): Promise<JobView> {
  const output = status === 'succeeded' ? job.returnvalue : undefined;
  const started = job.processedOn;
  const finished = status === 'succeeded' || status === 'failed' ? job.finishedOn : undefined;
  const progress = status === 'succeeded' ? { step: job.data.steps, total: job.data.steps } : progressOf(job);
  const { tenant: _owner, ...request } = job.data; // the owner is the caller: not part of the answer
  const view: JobView = {
    id: job.id!,
    type: job.data.type,
    status,
    progress,
    request,
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
    view.workerId = output.workerId;
    view.result = {
      bucket: output.bucket,
      key: output.key,
      url: await store.presignGet(output.key),
      width: output.width,
      height: output.height,
      contentType: output.contentType,
    };
    if (output.edit) {
      const { maskKey, ...edit } = output.edit;
      Object.assign(view.result, { mask: { key: maskKey, url: await store.presignGet(maskKey) }, ...edit });
    }
  }
  if (status === 'failed') view.error = decodeFailure(job.failedReason);
  if (status === 'canceled') view.error = { code: 'canceled', message: 'canceled by the client' };
  return view;
}
