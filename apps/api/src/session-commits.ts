/**
 * A session's commit as an ordinary job: the worker has stored the frame under the job's result
 * key and cached its latent; the job — the generation request the canvas state stands for, with
 * the snapshot it records — goes through the model's queue ahead of others, and a worker
 * completes it without computing anything. Once it has succeeded it is a job like any other:
 * GET /v1/jobs/:id finds it, GET /v1/jobs lists it among its tenant's jobs, its URL downloads the
 * frame, and edits take it as their source.
 */
import { canvasRequest, queuedJob } from '@farm/contracts';
import { JOBS_PATH, JobLocator, LOCATOR_MARGIN_SECONDS, ModelQueues, ObjectStore, OutboxMessage, SessionRecord, TenantJobIndex } from '@farm/platform';

export interface SessionCommitDeps {
  queues: ModelQueues;
  store: ObjectStore;
  locator: JobLocator;
  jobIndex: TenantJobIndex;
  jobAttempts: number;
  jobBackoffMs: number;
  jobRetentionSeconds: number;
}

/** How long a commit's job may take to be recorded. */
const COMMIT_TIMEOUT_MS = 30000;
const POLL_MS = 50;

export async function recordCommit(
  deps: SessionCommitDeps,
  record: SessionRecord,
  snapshot: Extract<OutboxMessage, { type: 'snapshot' }>,
): Promise<{ id: string; url: string; links: { self: string } }> {
  const queue = deps.queues.get(record.spec.model)!;
  const { state, jobId, key } = snapshot;
  const data = queuedJob(canvasRequest(state, record.spec), { seed: state.seed, model: record.spec.model, tenant: record.tenant, snapshot: { key, workerId: record.worker } });
  await deps.locator.record(jobId, record.spec.model, deps.jobRetentionSeconds + LOCATOR_MARGIN_SECONDS);
  const job = await queue.add('generate', data, {
    jobId,
    priority: 1,
    attempts: deps.jobAttempts,
    backoff: { type: 'exponential', delay: deps.jobBackoffMs },
    removeOnComplete: { age: deps.jobRetentionSeconds },
    removeOnFail: { age: deps.jobRetentionSeconds },
  });
  await deps.jobIndex.add(record.tenant, jobId, job.timestamp);
  for (const deadline = Date.now() + COMMIT_TIMEOUT_MS; Date.now() < deadline; ) {
    const state = await queue.getJobState(jobId);
    if (state === 'completed') return { id: jobId, url: await deps.store.presignGet(key), links: { self: `${JOBS_PATH}/${jobId}` } };
    if (state === 'failed') throw new Error(`its job ${jobId} failed: ${(await queue.getJob(jobId))?.failedReason}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`its job ${jobId} was not recorded within ${COMMIT_TIMEOUT_MS / 1000} s`);
}

