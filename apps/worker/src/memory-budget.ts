/**
 * How much a worker may hold (MAX_WORKER_MEMORY): its memory before any job — the model as loaded,
 * and one tick's and one decode's working memory, both bounded by the stream batch's tick budget
 * and the decoder's tiles whatever the jobs — plus an estimate of each job it runs, from the job's
 * cost. The intake starts a job only while the sum stays under the limit; a job larger than all
 * the room there is runs when the worker runs nothing else. Pure arithmetic; the worker measures
 * what the model takes.
 */
import { JobCost, ModelCapabilities, QueuedJob, RequestLimits, jobCost } from '@farm/contracts';

/** What a job's memory depends on beyond its cost: the model's latent cells. */
export interface LatentShape {
  latentChannels: number;
  /** Image pixels per latent cell, a side. */
  vaeScale: number;
}

/**
 * A job's own memory, from its cost: per pixel, its decoded image as floats and bytes, the encoded
 * file and the edit cache's copy (24 bytes); per lane, its latent cells' input, prediction and
 * fusion buffers (3 float32 planes a channel) and a mask quantized for each step (float32). Tick
 * activations are the worker's, not the job's: the tick budget bounds them.
 */
export function jobMemoryBytes(cost: JobCost, model: LatentShape): number {
  const cells = cost.pixels / model.vaeScale ** 2;
  return Math.ceil(cost.pixels * 24 + cost.lanes * cells * (3 * 4 * model.latentChannels + 4 * (cost.steps + 1)));
}

/**
 * A queued job's memory: from the cost the API measured, or — a job queued without one, past the
 * API — its cost on its own canvas (an edit's source unknown yet: the largest canvas allowed).
 */
export function queuedJobMemoryBytes(job: QueuedJob, caps: ModelCapabilities, model: LatentShape, limits: RequestLimits): number {
  const canvas = job.request.type === 'generate' ? job.request : { width: limits.maxSize, height: limits.maxSize };
  return jobMemoryBytes(job.cost ?? jobCost(job.request, canvas, caps), model);
}

export class MemoryBudget {
  private held = 0;

  constructor(
    /** MAX_WORKER_MEMORY, bytes. */
    readonly limitBytes: number,
    /** The worker's memory before any job: the model and the working memory of a tick and a decode. */
    readonly fixedBytes: number,
  ) {}

  /** Bytes the running jobs are estimated to hold. */
  get heldBytes(): number {
    return this.held;
  }

  /** Whether a job of `bytes` can start now: it fits beside the running jobs, or none runs. */
  fits(bytes: number): boolean {
    return this.held === 0 || this.fixedBytes + this.held + bytes <= this.limitBytes;
  }

  /** Counts a started job's bytes until the returned function is called. */
  hold(bytes: number): () => void {
    this.held += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= bytes;
    };
  }
}

/** MAX_WORKER_MEMORY unless configured: 90% of the memory the process may use (its cgroup's limit, or the machine's). */
export function defaultMemoryLimit(totalBytes: number, constrainedBytes: number | undefined): number {
  const usable = constrainedBytes && constrainedBytes > 0 ? Math.min(constrainedBytes, totalBytes) : totalBytes;
  return Math.floor(0.9 * usable);
}
