/**
 * Which Redis the farm talks to, decided once from the configuration: one server (REDIS_URL), a
 * Redis Cluster (REDIS_CLUSTER_NODES) or the master a set of Sentinels names (REDIS_SENTINELS,
 * REDIS_SENTINEL_NAME). With a cluster or Sentinels, REDIS_URL's user name and password (and,
 * for Sentinel, its database number) apply to the data nodes; its host is not used. Pure: what
 * to connect to, and how messages name it.
 */

export interface RedisNode {
  host: string;
  port: number;
}

/** Who the farm authenticates as on the data nodes (absent: no AUTH). */
export interface RedisCredentials {
  username?: string;
  password?: string;
}

export type RedisTarget =
  | { kind: 'server'; url: string }
  | { kind: 'cluster'; nodes: RedisNode[]; credentials: RedisCredentials }
  | { kind: 'sentinel'; sentinels: RedisNode[]; name: string; credentials: RedisCredentials; db: number };

/** The variables redisEnv parses (env-config.ts). */
export interface RedisSettings {
  REDIS_URL: string;
  REDIS_CLUSTER_NODES?: RedisNode[];
  REDIS_SENTINELS?: RedisNode[];
  REDIS_SENTINEL_NAME?: string;
}

function credentials(url: URL): RedisCredentials {
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}

export function redisTarget(settings: RedisSettings): RedisTarget {
  if (settings.REDIS_CLUSTER_NODES) {
    return { kind: 'cluster', nodes: settings.REDIS_CLUSTER_NODES, credentials: credentials(new URL(settings.REDIS_URL)) };
  }
  if (settings.REDIS_SENTINELS && settings.REDIS_SENTINEL_NAME) {
    const url = new URL(settings.REDIS_URL);
    return { kind: 'sentinel', sentinels: settings.REDIS_SENTINELS, name: settings.REDIS_SENTINEL_NAME, credentials: credentials(url), db: Number(url.pathname.slice(1)) || 0 };
  }
  return { kind: 'server', url: settings.REDIS_URL };
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return url;
  }
}

const nodeList = (nodes: RedisNode[]) => nodes.map((n) => `${n.host}:${n.port}`).join(',');

/** How messages name the target: `Redis at redis://…`, `Redis Cluster at h:p,…`, `Sentinel master "m" at h:p,…`. */
export function describeRedis(target: RedisTarget): string {
  switch (target.kind) {
    case 'server':
      return `Redis at ${redactedUrl(target.url)}`;
    case 'cluster':
      return `Redis Cluster at ${nodeList(target.nodes)}`;
    case 'sentinel':
      return `Sentinel master "${target.name}" at ${nodeList(target.sentinels)}`;
  }
}

/** The settings that choose the target, for hints. */
export function redisSettingNames(target: RedisTarget): string {
  return { server: 'REDIS_URL', cluster: 'REDIS_CLUSTER_NODES', sentinel: 'REDIS_SENTINELS and REDIS_SENTINEL_NAME' }[target.kind];
}
