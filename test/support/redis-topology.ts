/**
 * Real Redis topologies of a test's own, on free ports in a temporary folder: a Redis Cluster
 * (masters with one replica each, AOF with fsync always, a short node timeout so that a failover
 * takes seconds) and a master with a replica watched by Sentinels. Fails loudly when
 * redis-server is missing; `stop()` kills every server and removes the folder.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { RedisNode, RedisTarget } from '@farm/platform';
import { freePorts } from './free-ports';

/** Refuses to go on without redis-server: these tests must not pass by skipping. */
export function requireRedisServer(): void {
  const version = spawnSync('redis-server', ['--version']);
  if (version.status !== 0) throw new Error('redis-server is not installed (apt-get install redis-server): the Redis Cluster and Sentinel tests need it');
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One redis-server (or sentinel) child and a client of it for the test's own questions. */
class Server {
  readonly client: Redis;
  private readonly exited: Promise<void>;

  constructor(
    readonly port: number,
    private readonly child: ChildProcess,
  ) {
    // Reconnects: a Sentinel closes the clients of a server whose role it changes.
    this.client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    this.client.on('error', () => undefined);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get node(): RedisNode {
    return { host: '127.0.0.1', port: this.port };
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async ready(): Promise<void> {
    await until(async () => (await this.client.ping()) === 'PONG', `redis-server on ${this.port}`);
  }

  /**
   * Holds every client's writes (`CLIENT PAUSE WRITE`: they wait, unanswered) and resolves once
   * each replica has processed all this master wrote, so that a master killed now takes nothing
   * with it. Replication is asynchronous: a master killed while its replica lags — resyncing after
   * a spurious failover on a loaded machine, or simply a write behind — takes what the replica
   * lacks with it (README, Persistence). `WAIT 1` alone would leave a gap: the farm's writes go on
   * between its answer and the kill. A failover test kills the master right after this, and the
   * writes held here meet a dead connection, as they would in a crash.
   */
  async quiesce(timeoutMs = 30000): Promise<void> {
    await this.client.call('CLIENT', 'PAUSE', timeoutMs, 'WRITE');
    const info = await this.client.info('replication');
    const written = Number(/^master_repl_offset:(\d+)/m.exec(info)?.[1]);
    const replicas = [...info.matchAll(/^slave\d+:.*\bport=(\d+)/gm)].map((m) => Number(m[1]));
    if (replicas.length === 0) throw new Error(`${this.port} has no replica:\n${info}`);
    // Each replica's own processed offset (the master hears of it only once a second).
    await Promise.all(
      replicas.map(async (port) => {
        const replica = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
        replica.on('error', () => undefined);
        try {
          const processed = async () => Number(/^slave_repl_offset:(\d+)/m.exec(await replica.info('replication'))?.[1]);
          await until(async () => (await processed()) >= written, `the replica on ${port} catching up with ${this.port}`, timeoutMs);
        } finally {
          replica.disconnect();
        }
      }),
    );
  }

  /** Kills this master once its replica has everything it wrote (`quiesce`); resolves with the moment of the kill. */
  async killCaughtUp(): Promise<number> {
    await this.quiesce();
    const killedAt = Date.now();
    await this.kill();
    return killedAt;
  }

  /** Dies at once, as a crashed machine would: nothing is flushed or handed over. */
  async kill(): Promise<void> {
    this.client.disconnect();
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Spawns a server from config lines, in `dir`; its log goes to `<dir>/redis.log`. */
function spawnServer(dir: string, config: string[], sentinel = false): ChildProcess {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'redis.conf');
  // Sentinels rewrite their configuration file: each server gets one of its own.
  writeFileSync(file, [...config, `dir ${dir}`, 'bind 127.0.0.1', `logfile ${path.join(dir, 'redis.log')}`, ''].join('\n'));
  return spawn('redis-server', sentinel ? [file, '--sentinel'] : [file], { stdio: 'ignore' });
}

/** Config lines every data node shares: AOF with fsync at every write, no RDB snapshots. */
const DURABLE = ['appendonly yes', 'appendfsync always', 'save ""'];

abstract class Topology {
  protected readonly dir = mkdtempSync(path.join(os.tmpdir(), 'farm-redis-topology-'));
  protected readonly servers: Server[] = [];

  protected start(name: string, port: number, config: string[], sentinel = false): Server {
    const server = new Server(port, spawnServer(path.join(this.dir, name), [`port ${port}`, ...config], sentinel));
    this.servers.push(server);
    return server;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.filter((s) => s.alive).map((s) => s.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class LocalCluster extends Topology {
  private constructor(private readonly nodeTimeoutMs: number) {
    super();
  }

  /** `masters` masters with one replica each (redis-cli --cluster create --cluster-replicas 1). */
  static async start(masters = 3, nodeTimeoutMs = 1000): Promise<LocalCluster> {
    requireRedisServer();
    const cluster = new LocalCluster(nodeTimeoutMs);
    try {
      await cluster.create(masters * 2);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private async create(count: number): Promise<void> {
    // The cluster bus gets a port of its own (cluster-port), not port + 10000.
    const ports = await freePorts(count * 2);
    for (let i = 0; i < count; i++) {
      this.start(`node-${i}`, ports[i], [
        'cluster-enabled yes',
        `cluster-port ${ports[count + i]}`,
        'cluster-config-file nodes.conf',
        `cluster-node-timeout ${this.nodeTimeoutMs}`,
        // A replica takes over however long it was cut off from its master.
        'cluster-replica-validity-factor 0',
        ...DURABLE,
      ]);
    }
    await Promise.all(this.servers.map((s) => s.ready()));
    const made = spawnSync('redis-cli', ['--cluster', 'create', ...this.servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`redis-cli --cluster create failed: ${made.stdout}${made.stderr}`);
    await this.settled();
  }

  /** The nodes' addresses, as REDIS_CLUSTER_NODES lists them. */
  get env(): { REDIS_CLUSTER_NODES: string } {
    return { REDIS_CLUSTER_NODES: this.servers.map((s) => `${s.node.host}:${s.node.port}`).join(',') };
  }

  /** The cluster as the farm's connections take it. */
  get target(): RedisTarget {
    return { kind: 'cluster', nodes: this.servers.map((s) => s.node), credentials: {} };
  }

  /** Resolves once every live node says the cluster is ok and agrees on which masters serve the slots. */
  async settled(timeoutMs = 30000): Promise<void> {
    await until(async () => {
      const live = this.servers.filter((s) => s.alive);
      const views = await Promise.all(live.map(async (s) => ({ info: String(await s.client.cluster('INFO')), masters: await this.mastersSeenBy(s) })));
      return views.every((v) => v.info.includes('cluster_state:ok') && v.masters === views[0].masters);
    }, 'the cluster settling', timeoutMs);
  }

  private async mastersSeenBy(server: Server): Promise<string> {
    const lines = String(await server.client.cluster('NODES')).trim().split('\n');
    return lines.filter((l) => / master /.test(l.replace(/myself,/, '')) && !/fail/.test(l)).map((l) => l.split(' ')[1]).sort().join(',');
  }

  /** How many keys each live master holds, by port. */
  async keysPerMaster(): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const s of this.servers.filter((s) => s.alive)) {
      const [role] = (await s.client.call('ROLE')) as [string];
      if (role === 'master') counts.set(s.port, await s.client.dbsize());
    }
    return counts;
  }

  /**
   * Kills the master of `key`'s slot (SIGKILL) once its replica has caught up, and resolves once a live replica serves the slot,
   * as every live node sees it, with the cluster ok: the killed server and the promoted one.
   */
  async killMasterOf(key: string, timeoutMs = 60000): Promise<{ killed: Server; promoted: Server; killedAt: number }> {
    const killed = await this.masterOf(key);
    const killedAt = await killed.killCaughtUp();
    let promoted = killed;
    await until(async () => {
      promoted = await this.masterOf(key);
      return promoted !== killed;
    }, `a replica taking over from ${killed.port}`, timeoutMs);
    await this.settled(timeoutMs);
    return { killed, promoted, killedAt };
  }

  /** The live server that masters the slot of `key` now. */
  async masterOf(key: string): Promise<Server> {
    const live = this.servers.filter((s) => s.alive);
    const slot = Number(await live[0].client.cluster('KEYSLOT', key));
    const shards = (await live[0].client.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
    const shard = shards.find(([from, to]) => slot >= from && slot <= to);
    const port = shard && Number(shard[2][1]);
    const server = live.find((s) => s.port === port);
    if (!server) throw new Error(`no live master serves slot ${slot} of ${key}`);
    return server;
  }
}

export class LocalSentinels extends Topology {
  readonly masterName = 'farm-master';
  private readonly sentinels: Server[] = [];

  /** A master, its replica and `sentinels` Sentinels (quorum: a majority) that fail over after `downAfterMs`. */
  static async start(sentinels = 3, downAfterMs = 1000): Promise<LocalSentinels> {
    requireRedisServer();
    const setup = new LocalSentinels();
    try {
      await setup.create(sentinels, downAfterMs);
    } catch (err) {
      await setup.stop();
      throw err;
    }
    return setup;
  }

  private async create(count: number, downAfterMs: number): Promise<void> {
    const [masterPort, replicaPort, ...sentinelPorts] = await freePorts(2 + count);
    const master = this.start('master', masterPort, DURABLE);
    const replica = this.start('replica', replicaPort, [...DURABLE, `replicaof 127.0.0.1 ${masterPort}`]);
    await Promise.all([master.ready(), replica.ready()]);
    await until(async () => /master_link_status:up/.test(await replica.client.info('replication')), 'the replica syncing');
    const quorum = Math.floor(count / 2) + 1;
    for (const [i, port] of sentinelPorts.entries()) {
      this.sentinels.push(this.start(`sentinel-${i}`, port, [
        `sentinel monitor ${this.masterName} 127.0.0.1 ${masterPort} ${quorum}`,
        `sentinel down-after-milliseconds ${this.masterName} ${downAfterMs}`,
        `sentinel failover-timeout ${this.masterName} 10000`,
      ], true));
    }
    const watchers = this.sentinels;
    await Promise.all(watchers.map((s) => s.ready()));
    // Every Sentinel knows the replica and the other Sentinels before anything fails.
    await until(async () => {
      const views = await Promise.all(watchers.map((s) => s.client.call('SENTINEL', 'MASTER', this.masterName) as Promise<string[]>));
      return views.every((v) => Number(field(v, 'num-slaves')) === 1 && Number(field(v, 'num-other-sentinels')) === count - 1);
    }, 'the Sentinels discovering each other');
  }

  /** The Sentinels' master as the farm's connections take it. */
  get target(): RedisTarget {
    return { kind: 'sentinel', sentinels: this.sentinels.map((s) => s.node), name: this.masterName, credentials: {}, db: 0 };
  }

  /** REDIS_SENTINELS and REDIS_SENTINEL_NAME for the farm. */
  get env(): { REDIS_SENTINELS: string; REDIS_SENTINEL_NAME: string } {
    return { REDIS_SENTINELS: this.sentinels.map((s) => `${s.node.host}:${s.node.port}`).join(','), REDIS_SENTINEL_NAME: this.masterName };
  }

  /** The data server the Sentinels name as master now. */
  async master(): Promise<Server> {
    const [, port] = (await this.sentinels.find((s) => s.alive)!.client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName)) as [string, string];
    return this.servers.find((s) => s.port === Number(port))!;
  }

  /** Resolves once the Sentinels name another master than `old`, and it answers as one. */
  async failedOverFrom(old: Server, timeoutMs = 30000): Promise<Server> {
    let current = old;
    await until(async () => {
      current = await this.master();
      return current !== old && (await current.client.call('ROLE') as [string])[0] === 'master';
    }, 'the Sentinels failing over', timeoutMs);
    return current;
  }
}

/** A field of a flat [name, value, …] reply. */
function field(reply: string[], name: string): string | undefined {
  const i = reply.indexOf(name);
  return i < 0 ? undefined : reply[i + 1];
}
