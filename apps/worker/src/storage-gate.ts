/**
 * Whether the worker may take jobs, as far as storage goes: closed from a storage failure until
 * S3 answers again (probed with doubling delays), so that while S3 is down no job is fetched,
 * rendered and failed against dead storage. An outage longer than `holdMs` (the storage budget)
 * opens it again: jobs then fail as storage_unavailable once their attempts are spent, rather
 * than wait forever.
 */
export interface GateTiming {
  /** First probe this long after the failure, then doubling. */
  firstProbeMs: number;
  /** Longest delay between probes. */
  maxProbeMs: number;
  /** Longest time the gate holds jobs back (STORAGE_OUTAGE_BUDGET_MS). */
  holdMs: number;
}

export class StorageGate {
  private closedAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private waiters: Array<() => void> = [];
  private stopped = false;

  constructor(
    /** True when storage answers. */
    private readonly ping: () => Promise<boolean>,
    private readonly timing: GateTiming,
  ) {}

  /** Open unless storage failed less than `holdMs` ago and has not answered since. */
  isOpen(now = Date.now()): boolean {
    return this.closedAt === null || now - this.closedAt >= this.timing.holdMs;
  }

  /** Storage just failed: close, and probe until it answers. */
  failed(now = Date.now()): void {
    if (this.closedAt !== null || this.stopped || this.timing.holdMs === 0) return;
    this.closedAt = now;
    this.schedule(this.timing.firstProbeMs);
  }

  /** Resolves once the gate is open: storage answered, or the hold ran out. */
  whenOpen(now = Date.now()): Promise<void> {
    if (this.isOpen(now)) return Promise.resolve();
    const left = this.closedAt! + this.timing.holdMs - now;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops probing and lets every waiter go (shutdown). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.reopen();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(async () => {
      if (this.stopped) return;
      if (await this.ping()) this.reopen();
      else this.schedule(Math.min(delayMs * 2, this.timing.maxProbeMs));
    }, delayMs);
  }

  private reopen(): void {
    this.closedAt = null;
    for (const wake of this.waiters.splice(0)) wake();
  }
}
