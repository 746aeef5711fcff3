/**
 * Progress of the jobs in the stream batch, written once per engine tick for all of them: each
 * job's latest step waits for the end of the tick, then one call writes them all, with a preview
 * only for the jobs someone follows (and only when previews are on). Writes go out one after
 * another, so a client never sees a step go back.
 */
import type { ProgressUpdate } from '@farm/platform';

export interface ProgressStore {
  /** Writes the updates; resolves to whether each job is followed. */
  write(updates: readonly ProgressUpdate[]): Promise<boolean[]>;
}

interface Step {
  step: number;
  total: number;
  preview: () => Promise<string>;
}

export class TickProgress {
  private pending = new Map<string, Step>();
  /** The jobs in flight, and whether someone follows each. */
  private readonly followed = new Map<string, boolean>();
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: ProgressStore,
    /** Build previews at all (PROGRESS_PREVIEWS). */
    private readonly previews: boolean,
  ) {}

  /** A job starts; whether someone follows it now (each write tells again). */
  start(jobId: string, followed: boolean): void {
    this.followed.set(jobId, followed);
  }

  /** A job's step, from the engine; `preview` renders that step's estimate on demand. */
  report(jobId: string, step: number, total: number, preview: () => Promise<string>): void {
    this.pending.set(jobId, { step, total, preview });
  }

  /** The tick ended: write what it changed. */
  flush(): void {
    if (this.pending.size === 0) return;
    const batch = [...this.pending];
    this.pending = new Map();
    this.writes = this.writes.then(() => this.write(batch)).catch((err) => console.error(`worker: progress not written: ${(err as Error).message}`));
  }

  /** Resolves once everything reported so far has been written (a job's last step precedes its end). */
  written(): Promise<void> {
    this.flush();
    return this.writes;
  }

  /** The job left this worker. */
  forget(jobId: string): void {
    this.pending.delete(jobId);
    this.followed.delete(jobId);
  }

  private async write(batch: Array<[string, Step]>): Promise<void> {
    const updates = await Promise.all(
      batch.map(async ([jobId, { step, total, preview }]): Promise<ProgressUpdate> => {
        const shown = this.previews && this.followed.get(jobId) ? await preview() : undefined;
        return shown === undefined ? { jobId, step, total } : { jobId, step, total, preview: shown };
      }),
    );
    const followed = await this.store.write(updates);
    batch.forEach(([jobId], i) => {
      if (this.followed.has(jobId)) this.followed.set(jobId, followed[i]);
    });
  }
}
