/**
 * Time spent in model calls, with overlapping calls counted once (the union of their intervals):
 * busy time ÷ wall time is the engine's busy fraction, on a GPU its utilisation. Calls are
 * recorded when they end, with the interval the model thread ran them (not the time they waited
 * behind other calls); each model part (the UNet, the decoder, …) also adds up its own calls'
 * time, so a worker can say where it goes. Pure: times are passed in (ms, performance.now()'s clock).
 */
export class BusyMeter {
  /** Busy time of the calls recorded so far, up to `covered`. */
  private total = 0;
  /** The end of the latest interval recorded. */
  private covered = -Infinity;
  private readonly parts = new Map<string, number>();

  /** A call of model part `part` ran from `started` to `ended`; calls are recorded in the order they started. */
  record(part: string, started: number, ended: number): void {
    this.total += Math.max(0, ended - Math.max(started, this.covered));
    this.covered = Math.max(this.covered, ended);
    this.parts.set(part, (this.parts.get(part) ?? 0) + ended - started);
  }

  /** Milliseconds with a model call under way, over the calls ended so far. */
  busyMs(): number {
    return this.total;
  }

  /** Milliseconds in finished calls so far, by model part. */
  partMs(): ReadonlyMap<string, number> {
    return this.parts;
  }
}
