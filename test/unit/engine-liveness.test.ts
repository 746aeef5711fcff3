import { EngineLiveness } from '../../apps/worker/src/engine-liveness';

describe('EngineLiveness (the worker liveness probe: a hung engine is not alive)', () => {
  it('is alive while idle, however long, and while ticks keep ending', () => {
    const liveness = new EngineLiveness(1000, 0);
    expect(liveness.check(false, 60_000)).toEqual({ alive: true, busy: false, sinceProgressMs: 0 });
    liveness.ticked(60_500);
    expect(liveness.check(true, 61_000)).toEqual({ alive: true, busy: true, sinceProgressMs: 500 });
  });

  it('is not alive when it holds jobs and no tick ended within the stall limit', () => {
    const liveness = new EngineLiveness(1000, 0);
    liveness.check(false, 5_000); // seen idle
    expect(liveness.check(true, 5_900).alive).toBe(true);
    expect(liveness.check(true, 6_001)).toEqual({ alive: false, busy: true, sinceProgressMs: 1001 });
    liveness.ticked(6_500); // the engine came back
    expect(liveness.check(true, 6_600).alive).toBe(true);
  });

  it('does not count idle time it saw as a stall when work begins', () => {
    const liveness = new EngineLiveness(1000, 0);
    liveness.ticked(100);
    liveness.check(false, 50_000);
    expect(liveness.check(true, 50_400).alive).toBe(true);
  });

  it('refuses a stall limit that is not positive', () => {
    expect(() => new EngineLiveness(0, 0)).toThrow(/stallMs must be positive/);
  });
});
