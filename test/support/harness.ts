/**
 * Builds real farm pieces for a test: its own queue name (so runs and files never collide),
 * the API listening on a free port, an in-process worker on the bundled model, the S3 store
 * started by global-setup. `close()` removes every key of the farm.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import { DEFAULT_LIMITS } from '@farm/contracts';
import { ApiDeps, JobEventHub, SessionSockets, createApp } from '@farm/api';
import { DEFAULT_MODEL_DIR, FarmWorker, FarmWorkerOptions, WORKER_ENV, workerSettings } from '@farm/worker';
import {
  ApiKeyStore,
  DEFAULT_MODEL,
  FarmQueue,
  JobCancellation,
  JobFinalStates,
  ModelQueues,
  ObjectStore,
  ObjectStoreOptions,
  coalesceWrites,
  createRedis,
  loadConfig,
  modelQueueName,
  openQueue,
} from '@farm/platform';
import { watchApi } from './contract-fetch';
import { removeKeys } from './farm-keys';

export const MODEL_DIR = DEFAULT_MODEL_DIR;
export const QUEUE_PREFIX = '{farm-test}';
export const ADMIN_KEY = 'test-admin-key-0123456789';
export const WEBHOOK_SECRET = 'test-webhook-master-secret';

/** Real HTTP to the API under test, as one tenant (its Bearer key on every request). */
export class TestApi {
  constructor(
    readonly base: string,
    readonly key: string | null,
  ) {}

  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const auth: Record<string, string> = this.key ? { Authorization: `Bearer ${this.key}` } : {};
    return fetch(`${this.base}${path}`, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
  }

  /** The same API with another key (or none). */
  as(key: string | null): TestApi {
    return new TestApi(this.base, key);
  }
}

export function testStoreOptions(): ObjectStoreOptions {
  return {
    bucket: process.env.S3_BUCKET!,
    region: 'us-east-1',
    endpoint: process.env.S3_ENDPOINT,
    accessKeyId: process.env.S3_ACCESS_KEY_ID,
    secretAccessKey: process.env.S3_SECRET_ACCESS_KEY,
    forcePathStyle: true,
    presignTtlSeconds: 600,
  };
}

export class Harness {
  readonly queueName = `${process.env.FARM_TEST_RUN}-${randomUUID().slice(0, 8)}`;
  /** The in-process API's connection, its writes coalesced as in production (apps/api main.ts). */
  readonly redis: Redis = coalesceWrites(createRedis(process.env.REDIS_URL!));
  /** The default model's queue. */
  readonly queue: FarmQueue = openQueue({ QUEUE_NAME: this.queueName, QUEUE_PREFIX }, this.redis, DEFAULT_MODEL);
  readonly store = new ObjectStore(testStoreOptions());
  readonly keyPrefix = `${QUEUE_PREFIX}:${this.queueName}`;
  readonly finalStates = new JobFinalStates(this.redis, this.keyPrefix, 3600);
  readonly cancellation = new JobCancellation(this.redis, this.keyPrefix, this.finalStates);
  private keys: ApiKeyStore | null = null;
  readonly events = new JobEventHub([modelQueueName(this.queueName, DEFAULT_MODEL)], QUEUE_PREFIX, this.redis, this.cancellation);
  private servers: Server[] = [];
  private sessionSockets: SessionSockets[] = [];
  private workers: FarmWorker[] = [];
  private redisClients: Redis[] = [this.redis];

  /** The API on a free port, with authentication on; returns a client holding a tenant's key. */
  async startApi(overrides: Partial<ApiDeps> = {}): Promise<TestApi> {
    const { app, keys, sessions } = createApp({
      queues: new ModelQueues(new Map([[DEFAULT_MODEL, this.queue]])),
      redis: this.redis,
      store: this.store,
      events: this.events,
      keyPrefix: this.keyPrefix,
      auth: 'required',
      adminKey: ADMIN_KEY,
      admission: { ratePerSecond: 1000, burst: 10000, maxQueued: 10000 },
      webhooks: { secret: WEBHOOK_SECRET, allowPrivate: true },
      limits: DEFAULT_LIMITS,
      bodyLimitBytes: 1024 * 1024,
      jobAttempts: 2,
      jobBackoffMs: 200,
      jobRetentionSeconds: 3600,
      sessionIdleSeconds: 300,
      sessionMaxMessageBytes: 1024 * 1024,
      sessionMaxBufferedBytes: 1024 * 1024,
      ...overrides,
    });
    this.keys = keys;
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    sessions.attach(server);
    this.servers.push(server);
    this.sessionSockets.push(sessions);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    watchApi(base);
    return new TestApi(base, await keys.create('tenant-a'));
  }

  /** A client of the same API for another tenant (a fresh key). */
  async tenant(api: TestApi, tenant: string): Promise<TestApi> {
    return new TestApi(api.base, await this.keys!.create(tenant));
  }

  /**
   * An in-process worker on the bundled model (its own Redis connection, as in production), with
   * the configuration's defaults but for this test farm's queue and the given options.
   */
  async startWorker(options: Partial<FarmWorkerOptions> = {}): Promise<FarmWorker> {
    const redis = createRedis(process.env.REDIS_URL!);
    this.redisClients.push(redis);
    const worker = new FarmWorker({
      ...workerSettings(loadConfig(WORKER_ENV, {})),
      redis,
      store: this.store,
      queueName: this.queueName,
      queuePrefix: QUEUE_PREFIX,
      modelDir: MODEL_DIR,
      model: DEFAULT_MODEL,
      limits: DEFAULT_LIMITS,
      maxInFlight: 4,
      lockDurationMs: 10000,
      jobRetentionSeconds: 3600,
      webhooks: { secret: WEBHOOK_SECRET, allowPrivate: true },
      ...options,
    });
    await worker.start();
    this.workers.push(worker);
    return worker;
  }

  async stopWorker(worker: FarmWorker): Promise<void> {
    this.workers = this.workers.filter((w) => w !== worker);
    await worker.stop(2000);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop(2000)));
    await Promise.all(this.sessionSockets.map((s) => s.close()));
    await Promise.all(this.servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); })));
    await this.events.close();
    await this.queue.close();
    // Every key of this farm — queues, tenants' lines and buckets, claims, locators, API keys,
    // cancellations, edit sources — lives under its prefix.
    await removeKeys(this.keyPrefix, this.redis);
    this.store.close();
    for (const client of this.redisClients) client.disconnect();
  }
}

/**
 * Registers the hooks of a farm for the enclosing block: before its tests a Harness with its
 * API (and whatever `setup` adds), after them everything closed.
 */
export function useFarm(setup: (farm: Harness, api: TestApi) => void | Promise<void>, apiOptions?: Partial<ApiDeps>): void {
  let farm: Harness;
  beforeAll(async () => {
    farm = new Harness();
    await setup(farm, await farm.startApi(apiOptions));
  });
  afterAll(() => farm.close());
}

/** Resolves once `check` holds, polling every 20 ms; throws after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Downloads a URL (a presigned result) as bytes. */
export async function download(url: string): Promise<Buffer> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** Polls GET /v1/jobs/:id until the job reaches a final status. */
export async function waitForJob(api: TestApi, id: string, timeoutMs = 60000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api.fetch(`/v1/jobs/${id}`);
    const body = (await res.json()) as Record<string, any>;
    if (['succeeded', 'failed', 'canceled'].includes(body.status)) return body;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${body.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The operator's view of a job (`GET /admin/jobs/:id` with the admin key): its tenant, its worker, its queue record. */
export async function inspectJob(api: TestApi, id: string): Promise<Record<string, any>> {
  const res = await api.as(ADMIN_KEY).fetch(`/admin/jobs/${id}`);
  if (!res.ok) throw new Error(`GET /admin/jobs/${id} answered ${res.status}`);
  return (await res.json()) as Record<string, any>;
}

/** The live workers as an operator sees them (`GET /admin/workers`): ids, hosts, pids, models. */
export async function adminWorkers(api: TestApi): Promise<Array<Record<string, any>>> {
  return ((await (await api.as(ADMIN_KEY).fetch('/admin/workers')).json()) as { workers: Array<Record<string, any>> }).workers;
}

export async function postJob(
  api: TestApi,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, any>; headers: Headers }> {
  const res = await api.fetch('/v1/jobs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}
