import { RateMeter } from '@farm/worker';

describe('RateMeter (images/s, steps/s over a sliding window)', () => {
  it('averages over the window, never over less than a second', () => {
    const meter = new RateMeter(10_000);
    meter.record(4, 0);
    expect(meter.perSecond(500)).toBe(4); // half a second of data counts as one second
    meter.record(16, 4000);
    expect(meter.perSecond(5000)).toBe(4); // 20 events over 5 s
  });

  it('forgets events older than the window, and reads zero when idle', () => {
    const meter = new RateMeter(10_000);
    meter.record(100, 0);
    meter.record(10, 9_000);
    expect(meter.perSecond(15_000)).toBeCloseTo(10 / 6, 5); // the first event left the window
    expect(meter.perSecond(30_000)).toBe(0);
  });
});
