import { preferredWaitSeconds } from '../../apps/api/src/prefer-wait';
import { rateLimitHeaders } from '../../apps/api/src/rate-limit-headers';

describe('Prefer: wait (RFC 7240)', () => {
  it.each([
    [undefined, null],
    ['respond-async', null],
    ['wait', 60],
    ['wait=5', 5],
    ['respond-async, wait=10', 10],
    ['wait="7"', 7],
    ['wait=600', 60],
    ['wait=0', null],
    ['wait=soon', null],
  ])('%s → %s seconds', (header, seconds) => {
    expect(preferredWaitSeconds(header)).toBe(seconds);
  });
});

describe('RateLimit-* header fields of a token bucket', () => {
  it('count whole tokens left and the seconds to refill the bucket', () => {
    expect(rateLimitHeaders({ ratePerSecond: 50, burst: 200 }, 199.5)).toEqual({
      'RateLimit-Limit': '200',
      'RateLimit-Remaining': '199',
      'RateLimit-Reset': '1',
      'RateLimit-Policy': '200;w=4',
    });
    expect(rateLimitHeaders({ ratePerSecond: 0.5, burst: 2 }, -0.2)['RateLimit-Remaining']).toBe('0');
    expect(rateLimitHeaders({ ratePerSecond: 0.5, burst: 2 }, 0)['RateLimit-Reset']).toBe('4');
  });
});
