/**
 * The `RateLimit-*` header fields of the IETF draft (draft-ietf-httpapi-ratelimit-headers, the
 * `RateLimit-Limit` / `-Remaining` / `-Reset` / `-Policy` form), for a tenant's token bucket:
 * the limit is the burst, the remaining requests the whole tokens left, the reset the seconds
 * until the bucket is full again, and the policy `<burst>;w=<seconds to refill it>`. Pure.
 */
export interface BucketPolicy {
  ratePerSecond: number;
  burst: number;
}

export function rateLimitHeaders(policy: BucketPolicy, tokens: number): Record<string, string> {
  const left = Math.max(0, Math.min(policy.burst, tokens));
  return {
    'RateLimit-Limit': String(policy.burst),
    'RateLimit-Remaining': String(Math.floor(left)),
    'RateLimit-Reset': String(Math.ceil((policy.burst - left) / policy.ratePerSecond)),
    'RateLimit-Policy': `${policy.burst};w=${Math.ceil(policy.burst / policy.ratePerSecond)}`,
  };
}
