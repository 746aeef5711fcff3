/**
 * Takes jobs from BullMQ by manual fetching (`getNextJob`) and hands each to the runner as a
 * lease: up to `maxInFlight` jobs in the stream batch at once, and as many more fetched and
 * prepared ahead of need as slots will free within the next `FETCH_LEAD_STEPS` ticks, so a freed
 * slot is filled at the next tick, without waiting for I/O. After a round of fetches that each
 * found a job, the queue's length is read (one round trip) and as many fetches as it holds and
 * the worker wants go out together (their round trips overlap): a burst fills every slot in the
 * round after its first job. Once a fetch finds the queue empty it is not polled: a single fetch
 * waits on BullMQ's marker and returns when a job arrives, so an idle worker costs nothing
 * whatever the engine's tick rate, and a lone job costs one fetch that comes back empty, not a
 * batch of them. A prepared job starts when a slot is free, the storage gate is open, and its
 * memory fits the worker's budget (memory-budget.ts); one that does not fit waits while later
 * ones that do start. Holds every lease's lock (extended every half lock duration), stops
 * fetching while the storage gate is closed, and on stop hands unfinished leases back to the
 * queue at once, so none waits for a stalled-lock timeout.
 */
import { randomUUID } from 'node:crypto';
import { Job, UnrecoverableError, Worker } from 'bullmq';
import type { FarmRedis } from '@farm/platform';
import type { JobName, JobOutput, QueuedJob } from '@farm/contracts';
import type { MemoryBudget } from './memory-budget';
import type { StorageGate } from './storage-gate';

export type FarmJob = Job<QueuedJob, JobOutput, JobName>;

export interface IntakeOptions {
  /** Recorded on each job it takes (BullMQ's `processedBy`): the operator's view names the worker. */
  workerId: string;
  queueName: string;
  prefix: string;
  connection: FarmRedis;
  /** Jobs in the stream batch at once. */
  maxInFlight: number;
  /** Lock duration in ms; locks are extended every half of it. */
  lockDurationMs: number;
  gate: StorageGate;
  /** MAX_WORKER_MEMORY: jobs start only while their estimated memory fits. */
  memory: MemoryBudget;
}

export interface IntakeHandlers {
  /** Gets a fetched job ready to run (the checks that need I/O); false when it was settled instead. */
  prepare(lease: Lease): Promise<boolean>;
  /** Runs and settles a prepared job; resolves when the job has left this worker. */
  run(lease: Lease): Promise<void>;
  /** Work on a job this worker no longer owns (handed back, lock lost) must stop. */
  abort(jobId: string, reason: string): void;
}

/**
 * How many ticks ahead of a slot's freeing its replacement is fetched. Two ticks leave a whole
 * tick for the fetch and the preparation (Redis round trips) even when a tick is as short as a GPU
 * makes it.
 */
export const FETCH_LEAD_STEPS = 2;

/**
 * How often a running job's slot frees within the lead: once as the job leaves (when it is that
 * few steps from its end), and again for each replacement as short as it that would leave within
 * the lead too (a tick runs a step of every job). A one-step job's slot frees twice in two ticks,
 * so its replacement's replacement is fetched a whole tick ahead as well.
 */
export function departuresWithinLead(stepsLeft: number, steps: number): number {
  return stepsLeft > FETCH_LEAD_STEPS ? 0 : 1 + Math.floor((FETCH_LEAD_STEPS - stepsLeft) / steps);
}

/** What the fetch loop sees: slots in use, the departures due from them, jobs fetched and not started. */
export interface IntakeCounts {
  maxInFlight: number;
  /** Leases started and still in the stream batch (or on their way into it). */
  running: number;
  /** Departures from those slots within the lead (departuresWithinLead, summed). */
  leaving: number;
  /** Fetched ahead: being prepared, or prepared and waiting for a slot. */
  waiting: number;
}

/** How many jobs to fetch now: enough for the free slots and for the departures within the lead, less those already waiting. */
export function jobsToFetch(c: IntakeCounts): number {
  return Math.max(0, c.maxInFlight - c.running + c.leaving - c.waiting);
}

/**
 * How many of the wanted fetches go out at once, given the jobs the queue holds: `null` after a
 * round in which a fetch found the queue empty, and at start — then a single one, which waits on
 * the queue's marker (BullMQ lets only one fetch wait) — otherwise as many as it holds, and one
 * when it looks empty (a job may have come since; the fetch that finds none makes the next wait).
 */
export function fetchesAtOnce(wanted: number, queued: number | null): number {
  return Math.min(wanted, queued === null ? 1 : Math.max(1, queued));
}

/** One job held by this worker: its lock token, and the queue moves only the lock holder may make. */
export class Lease {
  readonly controller = new AbortController();
  /** Denoising steps, and those left; unknown (Infinity) until the runner knows the job. */
  steps = Infinity;
  stepsLeft = Infinity;
  /** The job's estimated memory (memory-budget.ts), once the runner knows the job. */
  memoryBytes = 0;
  inEngine = false;

  constructor(
    readonly job: FarmJob,
    readonly token: string,
    private readonly onLeftEngine: (lease: Lease) => void,
  ) {}

  get id(): string {
    return this.job.id!;
  }

  /** The runner's report of the job's denoising progress; the last step frees its slot. */
  progressed(step: number, total: number): void {
    this.steps = total;
    this.stepsLeft = total - step;
    if (this.stepsLeft <= 0) this.leaveEngine();
  }

  /** The job no longer needs its stream-batch slot (done denoising, or failed before). */
  leaveEngine(): void {
    if (!this.inEngine) return;
    this.inEngine = false;
    this.onLeftEngine(this);
  }

  complete(output: JobOutput): Promise<unknown> {
    return this.job.moveToCompleted(output, this.token, false);
  }

  /** Records a failed attempt; the queue retries it (with backoff, an attempt spent) unless `final`. */
  fail(message: string, final: boolean): Promise<unknown> {
    return this.job.moveToFailed(final ? new UnrecoverableError(message) : new Error(message), this.token, false);
  }

  /** Puts the job back for `delayMs` without spending an attempt. */
  defer(delayMs: number): Promise<void> {
    return this.job.moveToDelayed(Date.now() + delayMs, this.token);
  }

  /** Puts the job back in the queue at once (shutdown). */
  handBack(): Promise<unknown> {
    return this.job.moveToWait(this.token);
  }
}

export class JobIntake {
  private readonly worker: Worker<QueuedJob, JobOutput, JobName>;
  /** Every lease this worker holds, with a promise of its leaving. */
  private readonly held = new Map<string, { lease: Lease; done: Promise<void>; left: () => void }>();
  /** Fetched leases being prepared. */
  private preparing = 0;
  /** Prepared leases waiting for a slot, oldest first. */
  private readonly ready: Lease[] = [];
  private running = 0;
  /** The last round of fetches found a job each (so the queue may hold more); false after one found it empty, and at start. */
  private lastRoundFull = false;
  private stopping = false;
  private wake: (() => void) | null = null;
  private lockTimer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly handlers: IntakeHandlers,
    private readonly options: IntakeOptions,
  ) {
    if (options.maxInFlight < 1) throw new Error('maxInFlight must be at least 1');
    this.worker = new Worker<QueuedJob, JobOutput, JobName>(options.queueName, null, {
      connection: options.connection,
      prefix: options.prefix,
      name: options.workerId,
      autorun: false,
      lockDuration: options.lockDurationMs,
      // A dead worker's jobs go back to the queue within about two lock durations.
      stalledInterval: options.lockDurationMs,
    });
    this.worker.on('error', (err) => console.error(`worker: queue: ${err.message}`));
  }

  get maxInFlight(): number {
    return this.options.maxInFlight;
  }

  /** Jobs held: running, finishing (storing, completing) or fetched ahead. */
  get inFlight(): number {
    return this.held.size;
  }

  /** Starts fetching; resolves when the intake stops. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.loop;
  }

  /** Something changed (an engine tick ended, a slot freed): fetch again if there is room. */
  poke(): void {
    this.wake?.();
  }

  private counts(): IntakeCounts {
    let leaving = 0;
    for (const { lease } of this.held.values()) if (lease.inEngine) leaving += departuresWithinLead(lease.stepsLeft, lease.steps);
    return { maxInFlight: this.options.maxInFlight, running: this.running, leaving, waiting: this.preparing + this.ready.length };
  }

  private async run(): Promise<void> {
    await this.worker.startStalledCheckTimer();
    this.lockTimer = setInterval(() => void this.extendLocks(), this.options.lockDurationMs / 2);
    while (!this.stopping) {
      if (!this.options.gate.isOpen()) {
        await Promise.race([this.options.gate.whenOpen(), this.sleepUntilPoked(1000)]);
        this.startWaiting(); // prepared jobs held back while it was closed
        continue;
      }
      const wanted = jobsToFetch(this.counts());
      if (wanted === 0) {
        await this.sleepUntilPoked(1000);
        continue;
      }
      const queued = await this.queued();
      const fetches = Array.from({ length: fetchesAtOnce(wanted, queued) }, () => this.fetch().then((lease) => this.take(lease)));
      const fetched = await Promise.allSettled(fetches);
      if (this.stopping) break;
      const failure = fetched.find((f): f is PromiseRejectedResult => f.status === 'rejected');
      if (failure) {
        console.error(`worker: fetching jobs failed: ${(failure.reason as Error).message}`);
        await this.sleepUntilPoked(1000);
        continue;
      }
      this.lastRoundFull = fetched.every((f) => f.status === 'fulfilled' && f.value);
    }
  }

  /**
   * Jobs waiting in the queue (its wait list and its prioritized set, one round trip); null when
   * the last round found it empty (no need to ask), or when it could not be read (the fetch then
   * meets the same fault and reports it).
   */
  private async queued(): Promise<number | null> {
    if (!this.lastRoundFull) return null;
    const { wait, prioritized } = this.worker.keys;
    const replies = await this.options.connection.pipeline().llen(wait).zcard(prioritized).exec().catch(() => null);
    if (!replies || replies.some(([err]) => err)) return null;
    return replies.reduce((sum, [, n]) => sum + (n as number), 0);
  }

  private async fetch(): Promise<Lease | null> {
    const token = randomUUID();
    const job = await this.worker.getNextJob(token, { block: true });
    return job ? new Lease(job, token, () => this.slotFreed()) : null;
  }

  /** A fetch's result: held and prepared at once, or handed back when the intake is stopping; false when there was no job. */
  private async take(lease: Lease | null): Promise<boolean> {
    if (!lease) return false;
    if (this.stopping) await lease.handBack().catch(() => undefined);
    else this.hold(lease);
    return true;
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

  /** A fetched lease: prepared at once, then started when a slot is free (or settled by its preparation). */
  private hold(lease: Lease): void {
    let left!: () => void;
    const done = new Promise<void>((resolve) => (left = resolve));
    this.held.set(lease.id, { lease, done, left });
    this.preparing++;
    void this.handlers
      .prepare(lease)
      .catch((err) => {
        console.error(`worker: job ${lease.id}: ${(err as Error).message}`);
        return false;
      })
      .then(async (ready) => {
        this.preparing--;
        if (ready && !this.stopping) {
          this.ready.push(lease);
          return this.startWaiting();
        }
        if (ready) await lease.handBack().catch(() => undefined); // prepared while stopping
        this.release(lease);
      });
  }

  /** The lease left this worker (settled or handed back). */
  private release(lease: Lease): void {
    this.held.get(lease.id)?.left();
    this.held.delete(lease.id);
    this.poke();
  }

  private slotFreed(): void {
    this.running--;
    this.startWaiting();
    this.poke();
  }

  /** Starts prepared leases, oldest first, while slots are free and their memory fits; a job holds its memory until it has left. */
  private startWaiting(): void {
    const { memory, gate } = this.options;
    if (!gate.isOpen()) return; // the fetch loop starts them once it opens
    for (let i = 0; i < this.ready.length && this.running < this.options.maxInFlight && !this.stopping; ) {
      const lease = this.ready[i];
      if (!memory.fits(lease.memoryBytes)) {
        i++;
        continue;
      }
      this.ready.splice(i, 1);
      const releaseMemory = memory.hold(lease.memoryBytes);
      this.running++;
      lease.inEngine = true;
      void this.handlers
        .run(lease)
        .catch((err) => console.error(`worker: job ${lease.id}: ${(err as Error).message}`))
        .finally(() => {
          lease.leaveEngine();
          releaseMemory();
          this.release(lease);
          this.startWaiting();
        });
    }
  }

  private async extendLocks(): Promise<void> {
    for (const [id, { lease }] of this.held) {
      try {
        await lease.job.extendLock(lease.token, this.options.lockDurationMs);
      } catch (err) {
        console.error(`worker: lost the lock of ${id}: ${(err as Error).message}`);
        lease.controller.abort();
        this.handlers.abort(id, 'lock lost');
      }
    }
  }

  /**
   * Stops fetching, lets running jobs finish for up to `graceMs`, hands the rest back to the
   * queue (waiting state, at once), and closes the BullMQ worker.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.poke();
    for (const lease of this.ready.splice(0)) {
      await lease.handBack().catch((err) => console.error(`worker: could not hand back ${lease.id}: ${err.message}`));
      this.release(lease);
    }
    const all = () => Promise.all([...this.held.values()].map((h) => h.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const [id, { lease }] of this.held) {
      lease.controller.abort();
      this.handlers.abort(id, 'worker shutting down');
      await lease.handBack().catch((err) => console.error(`worker: could not hand back ${id}: ${err.message}`));
    }
    await all();
    if (this.lockTimer) clearInterval(this.lockTimer);
    await this.worker.close(true);
    await this.loop;
  }
}
