/**
 * What edits start from, shared by every worker: a finished job's final latent (fp16) in S3
 * beside its image, indexed in Redis with a retention limit, and an in-memory LRU of
 * ready-to-use sources (latent + decoded pixels) in each worker, bounded in sources and in bytes.
 *
 * Storing a source never delays the job it came from: `put` keeps it in memory at once and
 * stores the latent, then its index entry, in the background. Latents are stored in packs, by
 * group commit: the first latent of a pack lingers a moment (the pack limits' `lingerMs`) for the
 * jobs finishing with it, and while one pack uploads the jobs finishing meanwhile wait; all of
 * them (up to the pack limits) then go as the next pack — one S3 PUT for the group, then one Redis
 * round trip (MULTI) for their index entries, each naming the pack and the job's byte range, which
 * another worker reads with a ranged GET. A full pack, or one somebody waits for (`stored`,
 * `allStored`), goes at once. An idle farm stores each job's state alone, after the linger.
 *
 * If a pack's upload fails or the worker dies first, none of its jobs has an index entry, and an
 * edit of any of them on another worker encodes the job's image again (`reencoded`), which costs
 * one VAE encoder call and nothing else. A job forgotten after its pack was stored loses its index
 * entry; its bytes stay in the pack until the result retention sweeps the pack (under `cache/`).
 */
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import type { FarmRedis, ObjectStore } from '@farm/platform';
import { EditSource, fromFloat16, toFloat16 } from '@farm/pipeline';
import { DEFAULT_PACK_LIMITS, IndexEntry, PackLimits, checkPackLimits, latentLocation, layOutPack, packCount, packFull } from './edit-state-pack';

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
  /** How big one pack of latents may grow and how long it waits to (default DEFAULT_PACK_LIMITS: 64 jobs, 4 MiB, 25 ms). */
  packLimits?: PackLimits;
}

/** A job whose latent waits for the next pack. */
interface Waiting {
  jobId: string;
  latent: Uint8Array;
  entry: Omit<IndexEntry, 'latent'>;
  /** Settles `stored(jobId)`. */
  settle: () => void;
}

export type CachedSource = { source: EditSource; from: 'memory' | 'cache' };

/** What a source takes in memory. */
const sourceBytes = (source: EditSource) => source.latent.byteLength + source.rgb.byteLength;

export class EditSourceCache {
  private readonly memory = new Map<string, EditSource>();
  private bytes = 0;
  /** Stores still under way (waiting or uploading), by job. */
  private readonly storing = new Map<string, Promise<void>>();
  /** Jobs waiting for the next pack, oldest first. */
  private waiting: Waiting[] = [];
  private uploading = false;
  /** Runs out when the first latent waiting for the next pack has waited long enough for company. */
  private linger: NodeJS.Timeout | null = null;
  private readonly packLimits: PackLimits;
  /** Pack keys: this cache's own prefix (no other worker, nor this one restarted, shares it) and a sequence number. */
  private readonly packPrefix = `cache/packs/${randomUUID()}`;
  private packs = 0;
  private heldChanged: NodeJS.Immediate | null = null;

  constructor(private readonly options: SourceCacheOptions) {
    this.packLimits = options.packLimits ?? DEFAULT_PACK_LIMITS;
    checkPackLimits(this.packLimits);
  }

  /** Redis key of a job's index entry. */
  indexKey(jobId: string): string {
    return `${this.options.keyPrefix}:${jobId}`;
  }

  /** Keeps the source in memory now and stores it for every worker in the background. */
  put(jobId: string, source: EditSource, imageKey: string): void {
    const half = toFloat16(source.latent);
    // Memory holds the same fp16-rounded latent as S3, so an edit comes out the same on any worker.
    this.remember(jobId, { ...source, latent: fromFloat16(half) });
    let settle!: () => void;
    const stored = new Promise<void>((resolve) => (settle = resolve));
    this.storing.set(jobId, stored);
    this.waiting.push({
      jobId,
      latent: new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
      entry: { width: source.width, height: source.height, prompt: source.prompt, imageKey },
      settle: () => {
        if (this.storing.get(jobId) === stored) this.storing.delete(jobId);
        settle();
      },
    });
    if (packFull(this.waiting.map((w) => w.latent.byteLength), this.packLimits)) this.commitNext();
    else this.linger ??= setTimeout(() => this.commitNext(), this.packLimits.lingerMs);
  }

  /** Resolves once the job's source is stored (or failed to be); a pack it waits in goes without lingering. */
  stored(jobId: string): Promise<void> {
    if (this.waiting.some((w) => w.jobId === jobId)) this.commitNext();
    return this.storing.get(jobId) ?? Promise.resolve();
  }

  /** Resolves once every source put so far is stored (or failed to be), without lingering. */
  async allStored(): Promise<void> {
    this.commitNext();
    await Promise.all(this.storing.values());
  }

  /**
   * Unless a pack is uploading, sends the jobs waiting (as many as the pack limits allow) as the
   * next one; those left, and those that come while it uploads, go when it is done.
   */
  private commitNext(): void {
    if (this.linger) clearTimeout(this.linger);
    this.linger = null;
    if (this.uploading || this.waiting.length === 0) return;
    const pack = this.waiting.splice(0, packCount(this.waiting.map((w) => w.latent.byteLength), this.packLimits));
    this.uploading = true;
    this.commit(pack)
      .catch((err) => console.error(`worker: could not cache ${pack.map((w) => w.jobId).join(', ')} for edits (edits will re-encode them): ${err.message}`))
      .finally(() => {
        for (const w of pack) w.settle();
        this.uploading = false;
        this.commitNext();
      });
  }

  /** One pack: its latents in one object, then the index entries of all its jobs in one transaction. */
  private async commit(pack: Waiting[]): Promise<void> {
    const key = `${this.packPrefix}-${this.packs++}.f16`;
    const { body, ranges } = layOutPack(pack.map((w) => w.latent));
    await this.options.store.put(key, body, 'application/octet-stream');
    const transaction = this.options.redis.multi();
    for (const [i, w] of pack.entries()) {
      const entry: IndexEntry = { ...w.entry, latent: { key, range: ranges[i] } };
      transaction.set(this.indexKey(w.jobId), JSON.stringify(entry), 'EX', this.options.ttlSeconds);
    }
    const replies = await transaction.exec();
    if (!replies) throw new Error('Redis discarded the transaction of index entries');
    const failed = replies.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  /**
   * Drops the job's source (its job ended without a result): from memory and from the index, so no
   * edit can start from it. Its latent's bytes stay in their pack until the result retention.
   */
  async forget(jobId: string): Promise<void> {
    await this.stored(jobId);
    if (this.drop(jobId)) this.announceHeld();
    await this.options.redis.del(this.indexKey(jobId));
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
    const { key, range } = latentLocation(entry);
    const [latentBytes, image] = await Promise.all([this.options.store.get(key, range), this.options.store.get(entry.imageKey)]);
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
