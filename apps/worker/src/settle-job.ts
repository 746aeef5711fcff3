/**
 * Settling a job's attempt: what to do with its outcome (`settlementOf`, pure) and doing it. A
 * job that ends claims its final state once — a completion or failure that loses to a cancel ends
 * canceled, its stored result removed — and the queue records it; a storage failure puts the job
 * back without spending an attempt while the outage is within the storage budget; other transient
 * failures spend an attempt. Ended jobs update the metrics, the tenant's bookkeeping and their webhook.
 */
import { FinalState, FinalStatus, JobFailure, JobOutput, QueuedJob, StorageUnavailableError } from '@farm/contracts';
import type { JobFinalStates, ObjectStore, TenantJobs } from '@farm/platform';
import type { FarmRedis } from '@farm/platform';
import type { EditSourceCache } from './edit-source-cache';
import type { Lease } from './job-intake';
import type { JobWebhooks } from './job-webhooks';
import type { Attempt, Outcome } from './run-job';
import type { StorageGate } from './storage-gate';
import type { WorkerMetrics } from './worker-metrics';

export type Settlement =
  | { kind: 'complete'; output: JobOutput }
  /** The job ends failed (or canceled): not retryable, or its attempts are spent. */
  | { kind: 'end'; failure: JobFailure }
  /** The queue tries it again after its backoff; an attempt is spent. */
  | { kind: 'retry'; failure: JobFailure }
  /** Back to the queue for `delayMs` without spending an attempt. */
  | { kind: 'put-back'; delayMs: number; failure: JobFailure | null }
  /** Not this worker's any more: nothing to record. */
  | { kind: 'none' };

export interface AttemptInfo {
  /** Attempts spent before this one, and allowed in all. */
  attemptsMade: number;
  attempts: number;
  /** How long the job has been waiting for storage, this failure included (0 when it never did). */
  storageWaitMs: number;
}

export interface StoragePolicy {
  /** Longest storage outage a job waits out without spending attempts. */
  budgetMs: number;
  /** How long a job waiting for storage stays out of the queue each time. */
  retryMs: number;
}

/** What an attempt's outcome means for the job (pure). */
export function settlementOf(outcome: Outcome, attempt: AttemptInfo, storage: StoragePolicy): Settlement {
  switch (outcome.kind) {
    case 'succeeded':
      return { kind: 'complete', output: outcome.output };
    case 'deferred':
      return { kind: 'put-back', delayMs: outcome.delayMs, failure: null };
    case 'aborted':
      return { kind: 'none' };
    case 'failed': {
      const { failure } = outcome;
      if (!failure.retryable) return { kind: 'end', failure };
      if (failure instanceof StorageUnavailableError && attempt.storageWaitMs < storage.budgetMs) {
        return { kind: 'put-back', delayMs: storage.retryMs, failure };
      }
      return attempt.attemptsMade + 1 >= attempt.attempts ? { kind: 'end', failure } : { kind: 'retry', failure };
    }
  }
}

export interface SettleDeps {
  redis: FarmRedis;
  /** Redis key prefix of the farm (queue prefix + name). */
  keyPrefix: string;
  finalStates: JobFinalStates;
  store: ObjectStore;
  editSources: EditSourceCache;
  tenantJobs: TenantJobs;
  webhooks: JobWebhooks;
  metrics: WorkerMetrics;
  gate: StorageGate;
  storage: StoragePolicy;
}

export class JobSettler {
  constructor(private readonly deps: SettleDeps) {}

  async settle(lease: Lease, { job, outcome }: Attempt): Promise<void> {
    const now = Date.now();
    const type = job?.request.type ?? lease.job.name;
    const storageFailed = outcome.kind === 'failed' && outcome.failure instanceof StorageUnavailableError;
    if (storageFailed) this.deps.gate.failed();
    const settlement = settlementOf(
      outcome,
      {
        attemptsMade: lease.job.attemptsMade,
        attempts: lease.job.opts.attempts ?? 1,
        storageWaitMs: storageFailed ? now - (await this.storageWaitSince(lease.id, now)) : 0,
      },
      this.deps.storage,
    );
    try {
      switch (settlement.kind) {
        case 'none':
          return;
        case 'put-back':
          await lease.defer(settlement.delayMs);
          if (settlement.failure) this.deps.metrics.failed(type, settlement.failure.code, false);
          return;
        case 'retry':
          await lease.fail(settlement.failure.message, false);
          this.deps.metrics.failed(type, settlement.failure.code, false);
          return;
        case 'complete':
          return await this.complete(lease, job!, settlement.output, now);
        case 'end':
          return await this.end(lease, job, settlement.failure, now);
      }
    } catch (err) {
      // The lock was lost or Redis is away: the job runs again once its lock expires, and its
      // result key is per job, so the rerun overwrites rather than duplicates.
      console.error(`worker: could not record the end of ${lease.id}'s attempt: ${(err as Error).message}`);
    }
  }

  private async complete(lease: Lease, job: QueuedJob, output: JobOutput, now: number): Promise<void> {
    const { won, state } = await this.deps.finalStates.claim(lease.id, { status: 'succeeded', at: now });
    // A succeeded claim of an earlier attempt (that could not record its completion) is ours too.
    if (won || state.status === 'succeeded') {
      await lease.complete(output);
      const queueMs = (lease.job.processedOn ?? now) - lease.job.timestamp;
      this.deps.metrics.succeeded(job.request.type, { queueMs, computeMs: output.computeMs, totalMs: Date.now() - lease.job.timestamp });
      return this.ended(lease.id, job, 'succeeded');
    }
    // Something else (a cancel) ended the job first: it keeps no result.
    await this.discard(lease.id, output);
    await lease.fail(`ended ${state.status} before it completed`, true);
    this.deps.metrics.failed(job.request.type, state.status === 'failed' ? state.error.code : 'canceled', true);
    this.ended(lease.id, job, state.status);
  }

  private async end(lease: Lease, job: QueuedJob | null, failure: JobFailure, now: number): Promise<void> {
    const state: FinalState = failure.code === 'canceled' ? { status: 'canceled', at: now } : { status: 'failed', at: now, error: failure.view() };
    const claim = await this.deps.finalStates.claim(lease.id, state);
    await lease.fail(failure.message, true);
    const code = claim.state.status === 'failed' ? claim.state.error.code : claim.state.status === 'canceled' ? 'canceled' : failure.code;
    this.deps.metrics.failed(job?.request.type ?? lease.job.name, code, true);
    if (job) this.ended(lease.id, job, claim.state.status);
  }

  /** A job ended: its tenant's unfinished count, its webhook. */
  private ended(id: string, job: QueuedJob, status: FinalStatus): void {
    this.deps.tenantJobs.finished(job.tenant, id).catch((err) => console.error(`worker: tenant bookkeeping: ${err.message}`));
    this.deps.webhooks.ended(id, job, status);
  }

  /** Removes what a job that lost its completion stored: image, mask, edit state. */
  private async discard(id: string, output: JobOutput): Promise<void> {
    const keys = [output.key, ...(output.edit ? [output.edit.maskKey] : [])];
    await Promise.all([this.deps.store.remove(keys), this.deps.editSources.forget(id)]).catch((err) =>
      console.error(`worker: could not remove the result of canceled job ${id}: ${err.message}`),
    );
  }

  /** When the job first found storage down (now, if this is the first time). */
  private async storageWaitSince(id: string, now: number): Promise<number> {
    const key = `${this.deps.keyPrefix}:storage-wait:${id}`;
    const ttl = Math.ceil((2 * this.deps.storage.budgetMs) / 1000);
    const earlier = (await this.deps.redis.call('SET', key, String(now), 'NX', 'GET', 'EX', ttl).catch(() => null)) as string | null;
    return earlier === null ? now : Number(earlier);
  }
}
