/** Events per second over a sliding window (images/s, steps/s). Pure: the caller passes the time. */
export class RateMeter {
  private readonly events: Array<{ at: number; count: number }> = [];

  constructor(private readonly windowMs = 60_000) {}

  record(count: number, now: number): void {
    this.events.push({ at: now, count });
    this.prune(now);
  }

  /** Rate over the window ending at `now`, or over the span since the first event if shorter. */
  perSecond(now: number): number {
    this.prune(now);
    if (this.events.length === 0) return 0;
    const total = this.events.reduce((sum, e) => sum + e.count, 0);
    const span = Math.max(now - this.events[0].at, 1000);
    return (total * 1000) / Math.min(span, this.windowMs);
  }

  private prune(now: number): void {
    while (this.events.length > 0 && this.events[0].at < now - this.windowMs) this.events.shift();
  }
}
