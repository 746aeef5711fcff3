/**
 * Pulls micro-batches of jobs from BullMQ by manual fetching (`getNextJob`): keeps up to
 * `maxInFlight` jobs running at once, fetches more as soon as slots free up (a blocking fetch
 * when idle, a non-blocking one between engine ticks when busy), extends every held lock, and
 * completes or fails each job on its own. On stop, in-flight jobs get a grace period and the
 * rest are handed back to the queue at once, so none waits for a stalled-lock timeout.
 */
import { randomUUID } from 'node:crypto';
import { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobName, JobOutput, QueuedJob } from '@farm/contracts';

export type FarmJob = Job<QueuedJob, JobOutput, JobName>;

export interface FeederOptions {
  queueName: string;
  prefix: string;
  connection: Redis;
  /** Jobs held at once (default 8). */
  maxInFlight?: number;
  /** Lock duration in ms; locks are extended every half of it (default 30000). */
  lockDurationMs?: number;
}

/** Thrown by a processor to put a job back for a while without spending an attempt (affinity). */
export class DeferJob extends Error {
  override readonly name = 'DeferJob';
  constructor(readonly delayMs: number) {
    super(`deferred for ${delayMs} ms`);
  }
}

/** How an attempt ended (`retrying` when BullMQ will try the job again). */
export type Outcome = { ok: true; output: JobOutput } | { ok: false; error: Error; retrying: boolean };

export interface JobHandlers {
  /** Does the work; resolves with the result to store, or throws (BullMQ decides on retries). */
  process(job: FarmJob, signal: AbortSignal): Promise<JobOutput>;
  /** After the job's final state is written (`retrying` when BullMQ will try it again). */
  settled?(job: FarmJob, outcome: Outcome): void;
  /** Aborted work (shutdown, lost lock) must stop; called with the job id. */
  abort(jobId: string, reason: string): void;
}

interface Held {
  job: FarmJob;
  token: string;
  controller: AbortController;
  done: Promise<void>;
}

export class MicroBatchFeeder {
  readonly maxInFlight: number;
  readonly lockDurationMs: number;
  private readonly worker: Worker<QueuedJob, JobOutput, JobName>;
  private readonly held = new Map<string, Held>();
  private stopping = false;
  private wake: (() => void) | null = null;
  private lockTimer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly handlers: JobHandlers,
    options: FeederOptions,
  ) {
    this.maxInFlight = options.maxInFlight ?? 8;
    this.lockDurationMs = options.lockDurationMs ?? 30000;
    if (this.maxInFlight < 1) throw new Error('maxInFlight must be at least 1');
    this.worker = new Worker<QueuedJob, JobOutput, JobName>(options.queueName, null, {
      connection: options.connection,
      prefix: options.prefix,
      autorun: false,
      lockDuration: this.lockDurationMs,
      // A dead worker's jobs go back to the queue within about two lock durations.
      stalledInterval: this.lockDurationMs,
    });
    this.worker.on('error', (err) => console.error(`worker: queue: ${err.message}`));
  }

  get inFlight(): number {
    return this.held.size;
  }

  /** Starts fetching; resolves when the feeder stops. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.loop;
  }

  /** Something changed (an engine tick ended, a slot freed): fetch again if there is room. */
  poke(): void {
    this.wake?.();
  }

  private async run(): Promise<void> {
    await this.worker.startStalledCheckTimer();
    this.lockTimer = setInterval(() => void this.extendLocks(), this.lockDurationMs / 2);
    while (!this.stopping) {
      if (this.held.size >= this.maxInFlight) {
        await this.sleepUntilPoked(1000);
        continue;
      }
      const token = randomUUID();
      let job: FarmJob | undefined;
      try {
        job = await this.worker.getNextJob(token, { block: this.held.size === 0 });
      } catch (err) {
        if (this.stopping) break;
        console.error(`worker: fetching jobs failed: ${(err as Error).message}`);
        await this.sleepUntilPoked(1000);
        continue;
      }
      if (this.stopping) {
        if (job) await job.moveToWait(token).catch(() => undefined);
        break;
      }
      if (job) this.hold(job, token);
      else if (this.held.size > 0) await this.sleepUntilPoked(250);
    }
  }

  private sleepUntilPoked(maxMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, maxMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private hold(job: FarmJob, token: string): void {
    const controller = new AbortController();
    const entry: Held = { job, token, controller, done: Promise.resolve() };
    this.held.set(job.id!, entry);
    entry.done = this.settle(entry).finally(() => {
      this.held.delete(job.id!);
      this.poke();
    });
  }

  private async settle({ job, token, controller }: Held): Promise<void> {
    let output: JobOutput;
    try {
      output = await this.handlers.process(job, controller.signal);
    } catch (err) {
      if (controller.signal.aborted) return; // handed back or lost: not ours to fail
      if (err instanceof DeferJob) {
        await job.moveToDelayed(Date.now() + err.delayMs, token).catch((e) => console.error(`worker: could not defer ${job.id}: ${e.message}`));
        return;
      }
      const error = err instanceof Error ? err : new Error(String(err));
      try {
        await job.moveToFailed(error, token, false);
        this.handlers.settled?.(job, { ok: false, error, retrying: job.finishedOn === undefined });
      } catch (moveErr) {
        console.error(`worker: could not record failure of ${job.id}: ${(moveErr as Error).message}`);
      }
      return;
    }
    try {
      await job.moveToCompleted(output, token, false);
      this.handlers.settled?.(job, { ok: true, output });
    } catch (err) {
      // The lock was lost or Redis is away: the job will run again after its lock expires, and
      // its result key is per job, so the rerun overwrites rather than duplicates.
      console.error(`worker: could not complete ${job.id}: ${(err as Error).message}`);
    }
  }

  private async extendLocks(): Promise<void> {
    for (const [id, entry] of this.held) {
      try {
        await entry.job.extendLock(entry.token, this.lockDurationMs);
      } catch (err) {
        console.error(`worker: lost the lock of ${id}: ${(err as Error).message}`);
        entry.controller.abort();
        this.handlers.abort(id, 'lock lost');
      }
    }
  }

  /**
   * Stops fetching, lets in-flight jobs finish for up to `graceMs`, hands the rest back to the
   * queue (waiting state, at once), and closes the BullMQ worker.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.poke();
    const all = () => Promise.all([...this.held.values()].map((h) => h.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const [id, entry] of this.held) {
      entry.controller.abort();
      this.handlers.abort(id, 'worker shutting down');
      await entry.job.moveToWait(entry.token).catch((err) => console.error(`worker: could not hand back ${id}: ${err.message}`));
    }
    await all();
    if (this.lockTimer) clearInterval(this.lockTimer);
    await this.worker.close(true);
    await this.loop;
  }
}
