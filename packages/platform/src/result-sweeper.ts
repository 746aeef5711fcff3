/**
 * Result retention (RESULT_RETENTION_SECONDS) where the store has no lifecycle rules, and to the
 * second where its rules count whole days: every so often, deletes the objects of the results
 * bucket — images, masks, cached latents — older than the retention. Several API replicas may
 * sweep at once; deleting twice is harmless.
 */
import type { ObjectStore, StoredObject } from './object-store';

/** The objects past their retention at `now`. Pure. */
export function expiredKeys(objects: readonly StoredObject[], now: number, retentionSeconds: number): string[] {
  return objects.filter((o) => now - o.lastModified.getTime() >= retentionSeconds * 1000).map((o) => o.key);
}

export class ResultSweeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly store: ObjectStore,
    private readonly retentionSeconds: number,
  ) {}

  /** Deletes what has expired; resolves with how many objects went. */
  async sweep(now = Date.now()): Promise<number> {
    let deleted = 0;
    for await (const page of this.store.list()) {
      const keys = expiredKeys(page, now, this.retentionSeconds);
      await this.store.remove(keys);
      deleted += keys.length;
    }
    return deleted;
  }

  /** Sweeps every `intervalMs` (a quarter of the retention, between 10 s and 10 min, by default). */
  start(intervalMs = Math.min(600_000, Math.max(10_000, (this.retentionSeconds * 1000) / 4))): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweep()
        .catch((err) => {
          console.error(`results: sweep failed: ${(err as Error).message}`);
          return 0;
        })
        .finally(() => (this.running = null));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
