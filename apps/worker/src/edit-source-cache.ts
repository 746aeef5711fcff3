/**
 * What edits start from, shared by every worker: a finished job's final latent (fp16) in S3
 * beside its image, indexed in Redis with a retention limit, and a bounded in-memory LRU of
 * ready-to-use sources (latent + decoded pixels) in each worker.
 */
import sharp from 'sharp';
import type { Redis } from 'ioredis';
import { EditSource, fromFloat16, toFloat16 } from '@farm/pipeline';
import type { ObjectStore } from '@farm/platform';

export interface SourceCacheOptions {
  store: ObjectStore;
  redis: Redis;
  /** Redis key prefix; keep the queue's hash tag in it for Redis Cluster. */
  keyPrefix: string;
  /** How long a source stays editable from cache (default one day). */
  ttlSeconds?: number;
  /** Sources kept in this worker's memory (default 32). */
  capacity?: number;
  /** Called when the set of sources held in memory changes (to advertise it). */
  onHeldChanged?: (jobIds: string[]) => void;
}

interface IndexEntry {
  width: number;
  height: number;
  prompt?: string;
  latentKey: string;
  imageKey: string;
}

export type CachedSource = { source: EditSource; from: 'memory' | 'cache' };

export class EditSourceCache {
  private readonly memory = new Map<string, EditSource>();
  private readonly ttl: number;
  private readonly capacity: number;

  constructor(private readonly options: SourceCacheOptions) {
    this.ttl = options.ttlSeconds ?? 24 * 3600;
    this.capacity = options.capacity ?? 32;
  }

  /** Redis key of a job's index entry. */
  indexKey(jobId: string): string {
    return `${this.options.keyPrefix}:${jobId}`;
  }

  async put(jobId: string, source: EditSource, imageKey: string): Promise<void> {
    const latentKey = `cache/${jobId}.latent.f16`;
    const half = toFloat16(source.latent);
    // Memory holds the same fp16-rounded latent as S3, so an edit comes out the same on any worker.
    this.remember(jobId, { ...source, latent: fromFloat16(half) });
    await this.options.store.put(latentKey, Buffer.from(half.buffer, half.byteOffset, half.byteLength), 'application/octet-stream');
    const entry: IndexEntry = { width: source.width, height: source.height, prompt: source.prompt, latentKey, imageKey };
    await this.options.redis.set(this.indexKey(jobId), JSON.stringify(entry), 'EX', this.ttl);
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
    const known = this.memory.delete(jobId);
    this.memory.set(jobId, source);
    while (this.memory.size > this.capacity) this.memory.delete(this.memory.keys().next().value as string);
    if (!known) this.options.onHeldChanged?.([...this.memory.keys()]);
  }
}
