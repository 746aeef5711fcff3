/**
 * Edit-state packs, laid out: the fp16 latents of jobs that finished together go to S3 as one
 * object, end to end, and each job's index entry names the pack and its byte range in it. Pure:
 * which waiting latents make the next pack, the pack's bytes and ranges, and where an index entry
 * (of this version or the one before packs) says a job's latent lies. The storing is
 * edit-source-cache.ts's.
 */
import type { ByteRange } from '@farm/platform';

/** How big one pack may grow, and how long it waits to; the latents past either size limit wait for the next pack. */
export interface PackLimits {
  /** Most jobs in one pack (default 64). */
  maxJobs: number;
  /** Most latent bytes in one pack (default 4 MiB); a latent larger than this alone goes alone. */
  maxBytes: number;
  /**
   * How long the first latent of a pack waits for others before the pack goes, in ms (default
   * 25): the jobs of one tick finish over a few milliseconds (decoded, encoded and stored one
   * after another), and then share a pack.
   */
  lingerMs: number;
}

/** The limits on a pack's size alone. */
export type PackSize = Pick<PackLimits, 'maxJobs' | 'maxBytes'>;

export const DEFAULT_PACK_LIMITS: Readonly<PackLimits> = Object.freeze({ maxJobs: 64, maxBytes: 4 * 2 ** 20, lingerMs: 25 });

/** Where a job's latent lies: a byte range of a pack, or (entries from before packs) a whole object. */
export interface LatentLocation {
  key: string;
  range?: ByteRange;
}

/** A job's index entry in Redis: what an edit of the job needs besides the latent's bytes. */
export interface IndexEntry {
  width: number;
  height: number;
  prompt?: string;
  imageKey: string;
  /** Its latent's pack and range (entries written since packs). */
  latent?: { key: string; range: ByteRange };
  /** Its latent's own object (entries written before packs, still read during a rolling upgrade). */
  latentKey?: string;
}

/** Throws when the limits cannot make a pack. */
export function checkPackLimits(limits: PackLimits): void {
  if (!Number.isInteger(limits.maxJobs) || limits.maxJobs < 1) throw new Error(`a pack's maxJobs must be a whole number of at least 1 (got ${limits.maxJobs})`);
  if (!(limits.maxBytes >= 1)) throw new Error(`a pack's maxBytes must be at least 1 (got ${limits.maxBytes})`);
  if (!(limits.lingerMs >= 0 && Number.isFinite(limits.lingerMs))) throw new Error(`a pack's lingerMs must be a finite number of at least 0 (got ${limits.lingerMs})`);
}

/** Whether the waiting latents (their sizes, oldest first) fill the next pack: no more could join it. */
export function packFull(sizes: readonly number[], limits: PackSize): boolean {
  const count = packCount(sizes, limits);
  const bytes = sizes.slice(0, count).reduce((sum, size) => sum + size, 0);
  return count === limits.maxJobs || count < sizes.length || bytes >= limits.maxBytes;
}

/**
 * How many of the waiting latents (their sizes in bytes, oldest first) go in the next pack: the
 * oldest always, then the next ones while the pack stays within both limits.
 */
export function packCount(sizes: readonly number[], limits: PackSize): number {
  let count = 0;
  let bytes = 0;
  for (const size of sizes) {
    if (count > 0 && (count === limits.maxJobs || bytes + size > limits.maxBytes)) break;
    count++;
    bytes += size;
  }
  return count;
}

/** A pack's bytes: the latents end to end, in order, and the range of each. */
export function layOutPack(latents: readonly Uint8Array[]): { body: Buffer; ranges: ByteRange[] } {
  const ranges: ByteRange[] = [];
  let offset = 0;
  for (const latent of latents) {
    ranges.push({ offset, length: latent.byteLength });
    offset += latent.byteLength;
  }
  return { body: Buffer.concat(latents, offset), ranges };
}

/** Where an index entry says the latent lies; an entry from before packs names a whole object. */
export function latentLocation(entry: IndexEntry): LatentLocation {
  if (entry.latent) return entry.latent;
  if (entry.latentKey) return { key: entry.latentKey };
  throw new Error('the index entry names no latent');
}
