/**
 * Redis connections for BullMQ and the farm's own keys — to one server, a Redis Cluster or a
 * Sentinel-watched master (redis-target.ts) — and the start-up check with a one-line hint when
 * none answers.
 */
import { Cluster, ClusterOptions, Redis, RedisOptions, ReplyError } from 'ioredis';
import { StartupError } from './startup-error';
import { RedisTarget, describeRedis, redactedUrl, redisSettingNames } from './redis-target';

/** A connection to the farm's Redis, whichever its topology: every command the farm uses works on both. */
export type FarmRedis = Redis | Cluster;

export const REDIS_START_HINT =
  'start one with: redis-server --daemonize yes --port 6379 --save "" --appendonly no (Debian: apt-get install redis-server), or set REDIS_URL';

export interface ConnectionOptions {
  /**
   * Commands fail instead of waiting while Redis is away (the API uses that so requests get a 503
   * instead of hanging). Without it commands wait through outages, as BullMQ's blocking
   * connections need (no per-command retry limit).
   */
  failFast?: boolean;
  lazyConnect?: boolean;
}

const reconnectDelay = (times: number) => Math.min(times * 200, 2000);

/**
 * A cluster's commands to a slot whose master is gone are retried every `retryDelayOnFailover`
 * ms, at most `maxRedirections` times: about 2 s for a fail-fast connection, about a minute
 * (a failover takes cluster-node-timeout, 15 s by default, plus an election) for the others.
 */
function clusterOptions(target: Extract<RedisTarget, { kind: 'cluster' }>, { failFast, lazyConnect }: ConnectionOptions): ClusterOptions {
  return {
    lazyConnect,
    enableOfflineQueue: !failFast,
    clusterRetryStrategy: reconnectDelay,
    retryDelayOnFailover: failFast ? 100 : 200,
    retryDelayOnClusterDown: failFast ? 100 : 200,
    maxRedirections: failFast ? 16 : 300,
    redisOptions: { ...target.credentials, maxRetriesPerRequest: failFast ? 1 : null },
  };
}

function serverOptions({ failFast, lazyConnect }: ConnectionOptions): RedisOptions {
  return { lazyConnect, maxRetriesPerRequest: failFast ? 1 : null, enableOfflineQueue: !failFast, retryStrategy: reconnectDelay };
}

/** A connection as BullMQ wants it (a server's URL, or any target). */
export function createRedis(target: string, options?: ConnectionOptions): Redis;
export function createRedis(target: RedisTarget, options?: ConnectionOptions): FarmRedis;
export function createRedis(target: RedisTarget | string, options: ConnectionOptions = {}): FarmRedis {
  const t: RedisTarget = typeof target === 'string' ? { kind: 'server', url: target } : target;
  switch (t.kind) {
    case 'server':
      return new Redis(t.url, serverOptions(options));
    case 'cluster':
      return new Cluster(t.nodes, clusterOptions(t, options));
    case 'sentinel':
      return new Redis({ sentinels: t.sentinels, name: t.name, db: t.db, ...t.credentials, ...serverOptions(options) });
  }
}

/** A connection as `createRedis` makes it, resolved once it is ready for commands. */
export async function connectRedis(target: RedisTarget, options: ConnectionOptions = {}): Promise<FarmRedis> {
  const redis = createRedis(target, { ...options, lazyConnect: true });
  await redis.connect();
  return redis;
}

/**
 * A connection of its own to the same Redis, for a blocking read or a subscription: its commands
 * wait through outages (no retry limit, an offline queue) whatever the original's `failFast`.
 */
export function blockingDuplicate(redis: FarmRedis): FarmRedis {
  if (redis instanceof Cluster) {
    return redis.duplicate([], { enableOfflineQueue: true, maxRedirections: 300, redisOptions: { ...redis.options.redisOptions, maxRetriesPerRequest: null } });
  }
  return redis.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true });
}

/** The start-up check's one line when the target does not answer. */
function unreachable(target: RedisTarget): string {
  if (target.kind === 'server') return `Redis does not answer at ${redactedUrl(target.url)}: ${REDIS_START_HINT}`;
  return `${describeRedis(target)} does not answer: check ${redisSettingNames(target)}`;
}

/** A client for the start-up check: one try, no reconnection, no queueing. */
function probeClient(target: RedisTarget, timeoutMs: number): FarmRedis {
  const once = { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs };
  switch (target.kind) {
    case 'server':
      return new Redis(target.url, once);
    case 'cluster':
      return new Cluster(target.nodes, { lazyConnect: true, clusterRetryStrategy: () => null, slotsRefreshTimeout: timeoutMs, redisOptions: { ...target.credentials, ...once } });
    case 'sentinel':
      return new Redis({ sentinels: target.sentinels, name: target.name, db: target.db, ...target.credentials, ...once, sentinelRetryStrategy: () => null });
  }
}

/**
 * Resolves when the target answers within the timeout (a cluster: with every slot served),
 * connecting included; otherwise a StartupError says why, on one line. Bounded as a whole: a
 * server that accepts the connection and never answers (not Redis, or a hung one) fails the check
 * as surely as a closed port.
 */
export async function checkRedis(target: RedisTarget | string, timeoutMs = 2000): Promise<void> {
  const t: RedisTarget = typeof target === 'string' ? { kind: 'server', url: target } : target;
  const client = probeClient(t, timeoutMs);
  client.on('error', () => undefined);
  let connected = false;
  client.once('connect', () => (connected = true));
  const answered = (async () => {
    await client.connect();
    if (client instanceof Cluster) return /cluster_state:(\w+)/.exec(String(await client.cluster('INFO')))?.[1];
    await client.ping();
    return undefined;
  })();
  answered.catch(() => undefined); // still pending when the deadline wins: it fails once the client is gone
  let deadline: NodeJS.Timeout | undefined;
  const silence = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => reject(new Error('no answer')), timeoutMs);
  });
  let state: string | undefined;
  try {
    state = await Promise.race([answered, silence]);
  } catch (err) {
    // An error reply (a wrong password, say) is an answer: Redis is there but refuses us.
    const check = t.kind === 'server' ? 'REDIS_URL' : `${redisSettingNames(t)} and REDIS_URL's user name and password`;
    if (err instanceof ReplyError) throw new StartupError(`${describeRedis(t)} refused the connection: ${(err as Error).message}; check ${check}`);
    if (connected) {
      throw new StartupError(`${describeRedis(t)} accepted the connection but did not answer within ${timeoutMs / 1000} s (not a Redis server, or a hung one): check ${redisSettingNames(t)}`);
    }
    throw new StartupError(unreachable(t));
  } finally {
    clearTimeout(deadline);
    client.disconnect();
  }
  if (state !== undefined && state !== 'ok') {
    throw new StartupError(`${describeRedis(t)} does not serve every slot (cluster_state:${state}); check the cluster (redis-cli --cluster check) or ${redisSettingNames(t)}`);
  }
}
