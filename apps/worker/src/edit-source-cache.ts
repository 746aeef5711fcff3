/**
 * What edits start from, shared by every worker: a finished job's final latent (fp16) in S3
 * beside its image, indexed in Redis with a retention limit, and an in-memory LRU of
 * ready-to-use sources (latent + decoded pixels) in each worker, bounded in sources and in bytes.
 *
 * Storing a source never delays the job it came from: `put` keeps it in memory at once and
 * stores the latent, then its index entry, in the background. If that fails or the worker dies
 * first, there is no index entry, and an edit of the job on another worker encodes the job's
 * image again (`reencoded`), which costs one VAE encoder call and nothing else.
 */
import sharp from 'sharp';
import type { FarmRedis } from '@farm/platform';
import { EditSource, fromFloat16, toFloat16 } from '@farm/pipeline';
import type { ObjectStore } from '@farm/platform';

export interface SourceCacheOptions {
  store: ObjectStore;
  redis: FarmRedis;
  /** Redis key prefix; keep the queue's hash tag in it for Redis Cluster. */
  keyPrefix: string;
  /** How long a source stays editable from cache (EDIT_CACHE_TTL_SECONDS). */
  ttlSeconds: number;
  /** Sources kept in this worker's memory (EDIT_CACHE_SIZE). */
  capacity: number;
  /** Most bytes (latents and pixels) those sources may take (EDIT_CACHE_MB). */
  capacityBytes: number;
  /** Called when the set of sources held in memory changed (to advertise it), at most once per turn of the event loop. */
  onHeldChanged: (jobIds: string[]) => void;
}

interface IndexEntry {
  width: number;
  height: number;
  prompt?: string;
  latentKey: string;
  imageKey: string;
}

export type CachedSource = { source: EditSource; from: 'memory' | 'cache' };

/** What a source takes in memory. */
const sourceBytes = (source: EditSource) => source.latent.byteLength + source.rgb.byteLength;

/** The object key of a job's cached latent. */
export function latentKey(jobId: string): string {
  return `cache/${jobId}.latent.f16`;
}

export class EditSourceCache {
  private readonly memory = new Map<string, EditSource>();
  private bytes = 0;
  /** Stores still under way, by job. */
  private readonly storing = new Map<string, Promise<void>>();
  private heldChanged: NodeJS.Immediate | null = null;

  constructor(private readonly options: SourceCacheOptions) {}

  /** Redis key of a job's index entry. */
  indexKey(jobId: string): string {
    return `${this.options.keyPrefix}:${jobId}`;
  }

  /** Keeps the source in memory now and stores it for every worker in the background. */
  put(jobId: string, source: EditSource, imageKey: string): void {
    const half = toFloat16(source.latent);
    // Memory holds the same fp16-rounded latent as S3, so an edit comes out the same on any worker.
    this.remember(jobId, { ...source, latent: fromFloat16(half) });
    const entry: IndexEntry = { width: source.width, height: source.height, prompt: source.prompt, latentKey: latentKey(jobId), imageKey };
    const stored = this.store(jobId, half, entry)
      .catch((err) => console.error(`worker: could not cache ${jobId} for edits (edits will re-encode it): ${err.message}`))
      .finally(() => this.storing.delete(jobId));
    this.storing.set(jobId, stored);
  }

  /** Resolves once the job's source is stored (or failed to be). */
  stored(jobId: string): Promise<void> {
    return this.storing.get(jobId) ?? Promise.resolve();
  }

  private async store(jobId: string, half: Uint16Array, entry: IndexEntry): Promise<void> {
    await this.options.store.put(entry.latentKey, Buffer.from(half.buffer, half.byteOffset, half.byteLength), 'application/octet-stream');
    await this.options.redis.set(this.indexKey(jobId), JSON.stringify(entry), 'EX', this.options.ttlSeconds);
  }

  /** Drops the job's source everywhere (its job ended without a result). */
  async forget(jobId: string): Promise<void> {
    await this.stored(jobId);
    if (this.drop(jobId)) this.announceHeld();
    await Promise.all([this.options.redis.del(this.indexKey(jobId)), this.options.store.remove([latentKey(jobId)])]);
  }

  /** The source of a job, from memory or from the shared cache; null when it expired. */
  async get(jobId: string): Promise<CachedSource | null> {
    const held = this.memory.get(jobId);
    if (held) {
      this.remember(jobId, held);
      return { source: held, from: 'memory' };
    }
    const raw = await this.options.redis.get(this.indexKey(jobId));
    if (!raw) return null;
    const entry = JSON.parse(raw) as IndexEntry;
    const [latentBytes, image] = await Promise.all([this.options.store.get(entry.latentKey), this.options.store.get(entry.imageKey)]);
    const copy = new Uint8Array(latentBytes); // aligned copy for the Uint16Array view
    const latent = fromFloat16(new Uint16Array(copy.buffer, 0, copy.byteLength / 2));
    const rgb = await sharp(image).removeAlpha().raw().toBuffer();
    const source: EditSource = { latent, rgb, width: entry.width, height: entry.height, prompt: entry.prompt };
    this.remember(jobId, source);
    return { source, from: 'cache' };
  }

  /** True when this worker holds the source in memory. */
  holds(jobId: string): boolean {
    return this.memory.has(jobId);
  }

  private remember(jobId: string, source: EditSource): void {
    const known = this.drop(jobId);
    this.memory.set(jobId, source);
    this.bytes += sourceBytes(source);
    // The least recently used go first; the newest stays even when it alone is over the bytes.
    while (this.memory.size > this.options.capacity || (this.bytes > this.options.capacityBytes && this.memory.size > 1)) {
      this.drop(this.memory.keys().next().value as string);
    }
    if (!known) this.announceHeld();
  }

  private drop(jobId: string): boolean {
    const source = this.memory.get(jobId);
    if (!source) return false;
    this.memory.delete(jobId);
    this.bytes -= sourceBytes(source);
    return true;
  }

  /** Jobs finishing together change the set many times in one turn: it is announced once. */
  private announceHeld(): void {
    this.heldChanged ??= setImmediate(() => {
      this.heldChanged = null;
      this.options.onHeldChanged([...this.memory.keys()]);
    });
  }
}
