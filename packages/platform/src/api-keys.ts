/**
 * API keys → tenants. Only a key's SHA-256 is stored (a Redis hash under the farm's prefix);
 * the key itself is shown once, when it is created. Known keys are remembered for a few seconds
 * (an LRU in memory, by the key as presented), so an authenticated request costs no Redis round
 * trip and no hashing; unknown keys are always asked for. A key revoked on one API replica still
 * works on another for that long.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FarmRedis } from './redis-connection';
import { LRUCache } from 'lru-cache';

export interface KeyOwner {
  tenant: string;
  createdAt: string;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Constant-time comparison of a presented key with a configured one. */
export function keysMatch(presented: string, expected: string): boolean {
  const a = Buffer.from(hashKey(presented), 'hex');
  const b = Buffer.from(hashKey(expected), 'hex');
  return timingSafeEqual(a, b);
}

export class ApiKeyStore {
  private readonly key: string;
  private readonly known: LRUCache<string, KeyOwner>;

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    /** How long a known key is remembered (default 5 s). */
    cacheTtlMs = 5000,
  ) {
    this.key = `${keyPrefix}:api-keys`;
    this.known = new LRUCache({ max: 10000, ttl: cacheTtlMs });
  }

  /** A new random key for the tenant; returned once, stored hashed. */
  async create(tenant: string): Promise<string> {
    const key = `fk_${randomBytes(24).toString('base64url')}`;
    await this.register(key, tenant);
    return key;
  }

  /** Stores a given key (configured or development keys) for the tenant. */
  async register(key: string, tenant: string): Promise<void> {
    const owner: KeyOwner = { tenant, createdAt: new Date().toISOString() };
    await this.redis.hset(this.key, hashKey(key), JSON.stringify(owner));
  }

  /** The key's owner if it is remembered now (no I/O); otherwise `lookup` asks Redis. */
  remembered(key: string): KeyOwner | undefined {
    return this.known.get(key);
  }

  async lookup(key: string): Promise<KeyOwner | null> {
    const cached = this.known.get(key);
    if (cached) return cached;
    const raw = await this.redis.hget(this.key, hashKey(key));
    if (!raw) return null;
    const owner = JSON.parse(raw) as KeyOwner;
    this.known.set(key, owner);
    return owner;
  }

  async revoke(key: string): Promise<boolean> {
    this.known.delete(key);
    return (await this.redis.hdel(this.key, hashKey(key))) === 1;
  }
}
