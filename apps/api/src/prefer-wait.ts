/**
 * `Prefer: wait` (RFC 7240, as Replicate reads it): how long a submission may hold its answer for
 * the job to finish. `Prefer: wait` waits the longest allowed, `Prefer: wait=N` N seconds (at most
 * that); no such preference, or a malformed one, means no waiting. Pure.
 */

/** The longest a submission waits for its job (seconds). */
export const MAX_WAIT_SECONDS = 60;

export function preferredWaitSeconds(header: string | undefined, maxSeconds = MAX_WAIT_SECONDS): number | null {
  if (!header) return null;
  for (const preference of header.split(',')) {
    const [name, value] = preference.split(';')[0].split('=').map((part) => part.trim());
    if (name.toLowerCase() !== 'wait') continue;
    if (value === undefined) return maxSeconds;
    const seconds = Number(value.replace(/^"(.*)"$/, '$1'));
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, maxSeconds) : null;
  }
  return null;
}
