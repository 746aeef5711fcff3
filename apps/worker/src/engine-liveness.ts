/**
 * Whether the worker's engine loop is alive, for its liveness probe (`/livez`): alive when it has
 * no jobs, and while it has some, as long as it made progress — a tick (one step of the stream
 * batch) ended, or it was seen idle — less than `stallMs` ago. A UNet call that never returns, or
 * a loop that stopped ticking with jobs in flight, makes it not alive, and a restart is the cure.
 * The probe checks it every few seconds, which is what sees idle time. Pure: the caller passes
 * the time and whether the engine holds jobs.
 */
export interface EngineStatus {
  alive: boolean;
  /** The engine holds jobs. */
  busy: boolean;
  /** Since it last made progress (0 when idle). */
  sinceProgressMs: number;
}

export class EngineLiveness {
  private progressAt: number;

  constructor(
    private readonly stallMs: number,
    now: number,
  ) {
    if (!(stallMs > 0)) throw new Error('stallMs must be positive');
    this.progressAt = now;
  }

  /** A tick ended. */
  ticked(now: number): void {
    this.progressAt = now;
  }

  check(busy: boolean, now: number): EngineStatus {
    if (!busy) {
      this.progressAt = now;
      return { alive: true, busy, sinceProgressMs: 0 };
    }
    const sinceProgressMs = now - this.progressAt;
    return { alive: sinceProgressMs <= this.stallMs, busy, sinceProgressMs };
  }
}
