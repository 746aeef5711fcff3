import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, apiEnv, describeRedis, loadConfig, queueEnv, redisTarget, webhookEnv } from '@farm/platform';
import { scratchDir } from '../support/scratch-dir';

describe('loadConfig', () => {
  const dir = scratchDir('farm-env-');
  const file = (name: string, content: string) => {
    writeFileSync(path.join(dir, name), content);
    return path.join(dir, name);
  };

  it('reads a variable from <NAME>_FILE (Docker and Kubernetes secrets), trimmed', () => {
    const config = loadConfig({ ...apiEnv, ...webhookEnv }, {
      ADMIN_API_KEY_FILE: file('admin', 'fk_admin_0123456789abcdef\n'),
      API_KEYS_FILE: file('keys', 'default:fk_0123456789abcdef\n'),
      WEBHOOK_SECRET_FILE: file('webhook', 'a-webhook-secret-of-some-length'),
    });
    expect(config.ADMIN_API_KEY).toBe('fk_admin_0123456789abcdef');
    expect(config.API_KEYS).toEqual([{ tenant: 'default', key: 'fk_0123456789abcdef' }]);
    expect(config.WEBHOOK_SECRET).toBe('a-webhook-secret-of-some-length');
  });

  it('prefers the variable itself to its file', () => {
    expect(loadConfig(apiEnv, { ADMIN_API_KEY: 'fk_from_the_environment', ADMIN_API_KEY_FILE: file('other', 'fk_from_the_file_0000') }).ADMIN_API_KEY).toBe('fk_from_the_environment');
  });

  it('names an unreadable file and a bad value read from a file, on one line', () => {
    expect(() => loadConfig(apiEnv, { ADMIN_API_KEY_FILE: path.join(dir, 'missing'), PORT_FILE: file('port', 'eighty') })).toThrow(
      new ConfigError(`invalid environment: ADMIN_API_KEY_FILE: cannot read ${path.join(dir, 'missing')} (ENOENT); PORT: Invalid input: expected number, received NaN`),
    );
  });
});

describe('the Redis topology (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS)', () => {
  const target = (env: Record<string, string>) => redisTarget(loadConfig(queueEnv, env));

  it('is one server by default', () => {
    expect(target({})).toEqual({ kind: 'server', url: 'redis://127.0.0.1:6379' });
  });

  it("is a cluster of the listed nodes, with REDIS_URL's credentials", () => {
    const cluster = target({ REDIS_CLUSTER_NODES: 'redis-a:7000,10.0.0.2:7001', REDIS_URL: 'redis://farm:s%3Acret@ignored:1' });
    expect(cluster).toEqual({ kind: 'cluster', nodes: [{ host: 'redis-a', port: 7000 }, { host: '10.0.0.2', port: 7001 }], credentials: { username: 'farm', password: 's:cret' } });
    expect(describeRedis(cluster)).toBe('Redis Cluster at redis-a:7000,10.0.0.2:7001');
  });

  it("is the master the Sentinels name, with REDIS_URL's password and database", () => {
    expect(target({ REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'farm', REDIS_URL: 'redis://:pw@x/2' })).toEqual({
      kind: 'sentinel',
      sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }],
      name: 'farm',
      credentials: { password: 'pw' },
      db: 2,
    });
  });

  it.each([
    [{ REDIS_CLUSTER_NODES: 'redis-a' }, 'REDIS_CLUSTER_NODES: expected host:port[,host:port…]'],
    [{ REDIS_CLUSTER_NODES: 'a:7000,b:70000' }, 'REDIS_CLUSTER_NODES: a port is out of range'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS: set REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both'],
    [{ REDIS_SENTINELS: 's:26379' }, "REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master's name the Sentinels monitor)"],
    [{ REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINEL_NAME: set only with REDIS_SENTINELS'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', QUEUE_PREFIX: 'farm' }, 'QUEUE_PREFIX: with REDIS_CLUSTER_NODES it must contain a hash tag such as {farm}, so that every key of the farm lands in one slot'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', QUEUE_PREFIX: '{}farm' }, 'QUEUE_PREFIX: with REDIS_CLUSTER_NODES it must contain a hash tag such as {farm}, so that every key of the farm lands in one slot'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'rediss://a:7000' }, 'REDIS_URL: TLS (rediss:) is supported with a single server only, not with REDIS_CLUSTER_NODES or REDIS_SENTINELS'],
  ])('refuses %j at start-up', (env, problem) => {
    expect(() => loadConfig(queueEnv, env)).toThrow(new ConfigError(`invalid environment: ${problem}`));
  });

  it('accepts a prefix whose hash tag is not at its start', () => {
    expect(loadConfig(queueEnv, { REDIS_CLUSTER_NODES: 'a:7000', QUEUE_PREFIX: 'bull{farm}' }).QUEUE_PREFIX).toBe('bull{farm}');
  });
});
