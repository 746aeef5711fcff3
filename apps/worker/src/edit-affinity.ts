/**
 * Edit affinity: an edit whose source another live worker holds in memory goes back to the queue
 * for a moment (no attempt spent) so that worker can take it — for at most `affinityMs` after
 * submission, after which whoever fetches it serves it (nothing starves).
 */
import type { QueuedJob } from '@farm/contracts';

export interface AffinityCase {
  /** The edit's source job, or null (a generation, an upload). */
  sourceJobId: string | null;
  /** This worker holds that source in memory. */
  heldHere: boolean;
  /** Time since the job was submitted. */
  ageMs: number;
  affinityMs: number;
}

/** Whether to look for another worker that holds the source (pure). */
export function mayPreferHolder(c: AffinityCase): boolean {
  return c.sourceJobId !== null && !c.heldHere && c.ageMs < c.affinityMs;
}

export interface AffinityDeps {
  /** Live workers other than this one that hold the source in memory. */
  holders(sourceJobId: string): Promise<string[]>;
  /** True when this worker holds the source in memory. */
  holds(sourceJobId: string): boolean;
  affinityMs: number;
  /** How long a deferred edit waits before it is offered again. */
  retryMs: number;
}

export class EditAffinity {
  constructor(private readonly deps: AffinityDeps) {}

  /** How long to put the job back for, or null to run it here. */
  async deferral(job: QueuedJob, submittedAt: number, now = Date.now()): Promise<number | null> {
    const { request } = job;
    const sourceJobId = request.type === 'edit' && typeof request.source === 'string' ? request.source : null;
    const candidate = mayPreferHolder({
      sourceJobId,
      heldHere: sourceJobId !== null && this.deps.holds(sourceJobId),
      ageMs: now - submittedAt,
      affinityMs: this.deps.affinityMs,
    });
    if (!candidate || (await this.deps.holders(sourceJobId!)).length === 0) return null;
    return this.deps.retryMs;
  }
}
