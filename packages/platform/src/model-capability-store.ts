/**
 * What each model can serve, as its workers publish it at start-up (one Redis hash under the
 * farm's key prefix: model → ModelCapabilities JSON), for the submit-time check (contracts'
 * capabilityProblems). The API loads no model: it reads what the workers found, briefly cached;
 * a model no worker has published yet has the capabilities known in advance (the bundled
 * model's), if any.
 */
import type { FarmRedis } from './redis-connection';
import type { ModelCapabilities } from '@farm/contracts';

export class ModelCapabilityStore {
  private readonly key: string;
  private readonly cache = new Map<string, { at: number; value: ModelCapabilities | null }>();

  constructor(
    private readonly redis: FarmRedis,
    keyPrefix: string,
    /** Capabilities used while no worker of a model has published its own. */
    private readonly known: Readonly<Record<string, ModelCapabilities>> = {},
    /** How long the API trusts what it read (default 2 s). */
    private readonly cacheMs = 2000,
  ) {
    this.key = `${keyPrefix}:models:capabilities`;
  }

  /** A worker's announcement of its model's capabilities (the latest worker to start wins). */
  async publish(model: string, capabilities: ModelCapabilities): Promise<void> {
    await this.redis.hset(this.key, model, JSON.stringify(capabilities));
  }

  async get(model: string, now = Date.now()): Promise<ModelCapabilities | null> {
    const hit = this.cache.get(model);
    if (hit && now - hit.at < this.cacheMs) return hit.value;
    const raw = await this.redis.hget(this.key, model);
    const value = raw ? (JSON.parse(raw) as ModelCapabilities) : (this.known[model] ?? null);
    this.cache.set(model, { at: now, value });
    return value;
  }
}
