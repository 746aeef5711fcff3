/**
 * Time spent in model calls, with overlapping calls counted once (the union of their intervals):
 * busy time ÷ wall time is the engine's busy fraction, on a GPU its utilisation. Each model part
 * (the UNet, the decoder, …) also adds up its own calls' time, so a worker can say where it goes.
 * Pure: callers may pass the clock (ms).
 */
export class BusyMeter {
  private active = 0;
  private since = 0;
  private total = 0;
  private readonly parts = new Map<string, number>();

  /** A model call starts; returns its start, for `exit`. */
  enter(now = performance.now()): number {
    if (this.active++ === 0) this.since = now;
    return now;
  }

  /** A call of model part `part` that started at `started` ends. */
  exit(part: string, started: number, now = performance.now()): void {
    if (this.active === 0) return;
    if (--this.active === 0) this.total += now - this.since;
    this.parts.set(part, (this.parts.get(part) ?? 0) + now - started);
  }

  /** Milliseconds with at least one model call under way, so far. */
  busyMs(now = performance.now()): number {
    return this.total + (this.active > 0 ? now - this.since : 0);
  }

  /** Milliseconds in finished calls so far, by model part. */
  partMs(): ReadonlyMap<string, number> {
    return this.parts;
  }
}
