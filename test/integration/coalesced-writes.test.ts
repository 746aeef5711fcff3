/**
 * Coalesced writes (packages/platform coalesced-writes.ts), against real Redis servers: the
 * commands a connection is given in one turn of the event loop reach its socket in one write —
 * counted where the socket hands its buffered data to the operating system (`_write`, `_writev`)
 * — for a server connection and a Redis Cluster's; their replies come back right and in order.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { FarmRedis, coalesceWrites, connectRedis } from '@farm/platform';
import { LocalCluster } from '../support/redis-topology';

/** Counts the writes `socket` hands to the operating system from now on. */
function countWrites(socket: Redis['stream']): () => number {
  let writes = 0;
  const raw = socket as unknown as { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };
  const [write, writev] = [raw._write, raw._writev];
  raw._write = function (...args) {
    writes++;
    return write.apply(this, args);
  };
  raw._writev = function (...args) {
    writes++;
    return writev.apply(this, args);
  };
  return () => writes;
}

/** 20 commands issued in one turn — 18 INCRs, a MULTI block and a script — and their replies. */
function twentyCommands(redis: FarmRedis, key: string): Promise<unknown[]> {
  const replies: Array<Promise<unknown>> = [];
  for (let i = 0; i < 18; i++) replies.push(redis.incr(key));
  replies.push(redis.multi().incr(key).exec());
  replies.push(redis.eval("return redis.call('INCR', KEYS[1])", 1, key));
  return Promise.all(replies);
}

const expectedReplies = [...Array.from({ length: 18 }, (_, i) => i + 1), [[null, 19]], 20];

describe('a server connection', () => {
  const key = `{farm}:${process.env.FARM_TEST_RUN}-coalesce-${randomUUID()}`;
  const clients: FarmRedis[] = [];
  const connect = async () => {
    const redis = await connectRedis({ kind: 'server', url: process.env.REDIS_URL! }, { failFast: true });
    clients.push(redis);
    return redis as Redis;
  };
  afterEach(async () => {
    await clients[0]?.del(key);
    for (const c of clients.splice(0)) c.disconnect();
  });

  it('writes 20 commands issued in one turn in one socket write, and answers each in order', async () => {
    const redis = coalesceWrites(await connect());
    const writes = countWrites(redis.stream);
    expect(await twentyCommands(redis, key)).toEqual(expectedReplies);
    expect(writes()).toBe(1);
    // The next turn's commands go in a write of their own.
    expect(await redis.incr(key)).toBe(21);
    expect(writes()).toBe(2);
  });

  it('(without it, the same commands take a write each)', async () => {
    const redis = await connect();
    const writes = countWrites(redis.stream);
    expect(await twentyCommands(redis, key)).toEqual(expectedReplies);
    expect(writes()).toBe(20);
  });
});

describe('a Redis Cluster connection', () => {
  let cluster: LocalCluster;
  let redis: FarmRedis;
  beforeAll(async () => {
    cluster = await LocalCluster.start();
    redis = coalesceWrites(await connectRedis(cluster.target, { failFast: true }));
  }, 60000);
  afterAll(async () => {
    redis?.disconnect();
    await cluster?.stop();
  });

  it('writes 20 commands for one node, issued in one turn, in one socket write to that node', async () => {
    const key = `{farm}:coalesce-${randomUUID()}`;
    await redis.del(key); // the node's connection is open from here on
    const connected = (redis as Cluster).nodes('all').filter((node) => node.stream);
    const counters = connected.map((node) => countWrites(node.stream));
    expect(await twentyCommands(redis, key)).toEqual(expectedReplies);
    expect(counters.reduce((sum, writes) => sum + writes(), 0)).toBe(1);
    await redis.del(key);
  });
});
