/**
 * Time spent in model calls, with overlapping calls counted once (the union of their intervals):
 * busy time ÷ wall time is the engine's busy fraction, on a GPU its utilisation. Pure: callers
 * may pass the clock (ms).
 */
export class BusyMeter {
  private active = 0;
  private since = 0;
  private total = 0;

  /** A model call starts. */
  enter(now = performance.now()): void {
    if (this.active++ === 0) this.since = now;
  }

  /** A model call ends. */
  exit(now = performance.now()): void {
    if (this.active === 0) return;
    if (--this.active === 0) this.total += now - this.since;
  }

  /** Milliseconds with at least one model call under way, so far. */
  busyMs(now = performance.now()): number {
    return this.total + (this.active > 0 ? now - this.since : 0);
  }
}
