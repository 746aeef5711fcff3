/**
 * What a tenant sees of the farm, and what only its operator does. No tenant answer names a
 * worker, a host or a pid — the job JSON (submission, GET, listing), the event stream, webhook
 * deliveries, `GET /v1/workers` — while the admin key gets them (`GET /admin/workers`,
 * `GET /admin/jobs/:id`, any tenant's job). The API's /metrics needs the admin key where there is
 * one, and stays open where there is none.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { DEFAULT_MODEL, FarmQueue, ModelQueues, openQueue } from '@farm/platform';
import { EventStreamReader } from '../support/event-stream';
import { ADMIN_KEY, Harness, QUEUE_PREFIX, TestApi, adminWorkers, inspectJob, postJob, until, waitForJob } from '../support/harness';

/** A worker id no answer could contain by chance. */
const WORKER_ID = `tenant-view-${randomUUID().slice(0, 8)}`;
const ALT_MODEL = 'shapes-alt';
const job = { type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 2 } as const;

/** Every key and every string of a JSON value, at any depth. */
function contents(value: unknown, found = { keys: new Set<string>(), strings: new Set<string>() }) {
  if (typeof value === 'string') found.strings.add(value);
  else if (Array.isArray(value)) for (const item of value) contents(item, found);
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      found.keys.add(key);
      contents(item, found);
    }
  }
  return found;
}

/** What in a tenant's answer would tell it which machine did the work (none: []). */
function operatorInformation(what: string, answer: unknown): string[] {
  const { keys, strings } = contents(answer);
  return [
    ...['workerId', 'worker', 'host', 'hostname', 'pid', 'processedBy'].filter((key) => keys.has(key)).map((key) => `${what}: key "${key}"`),
    ...(JSON.stringify(answer).includes(WORKER_ID) ? [`${what}: the worker id`] : []),
    ...(strings.has(os.hostname()) ? [`${what}: the host name`] : []),
  ];
}

let farm: Harness;
let alt: FarmQueue;
let api: TestApi;
let other: TestApi;

beforeAll(async () => {
  farm = new Harness();
  // A second model no worker serves: its jobs stay queued.
  alt = openQueue({ QUEUE_NAME: farm.queueName, QUEUE_PREFIX }, farm.redis, ALT_MODEL);
  api = await farm.startApi({ queues: new ModelQueues(new Map([[DEFAULT_MODEL, farm.queue], [ALT_MODEL, alt]])) });
  other = await farm.tenant(api, 'tenant-b');
  await farm.startWorker({ workerId: WORKER_ID });
});
afterAll(async () => {
  await alt.obliterate({ force: true });
  await alt.close();
  await farm.close();
});

describe('a tenant', () => {
  const received: string[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push(body);
      res.writeHead(204).end();
    });
  });
  beforeAll(() => new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r)));
  afterAll(() => receiver.close());

  it("finds no worker id, host or pid in its job's JSON, listing, events or webhook deliveries", async () => {
    const webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const submitted = await postJob(api, { ...job, seed: 1, webhook, webhookEvents: ['started', 'progress', 'completed'] });
    expect(submitted.status).toBe(202);
    const id = submitted.body.id as string;
    const events = await EventStreamReader.open(api, `/v1/jobs/${id}/events`);
    const final = await waitForJob(api, id);
    expect(final.status).toBe('succeeded');
    const streamed = await events.all();
    expect(streamed.map((e) => e.event)).toContain('succeeded');
    const listing = await (await api.fetch('/v1/jobs?limit=100')).json();
    await until(() => received.some((body) => body.includes(id) && body.includes('"job.succeeded"')), 30000);
    const deliveries = received.filter((body) => body.includes(id)).map((body) => JSON.parse(body));
    expect(deliveries.map((d) => d.type)).toEqual(expect.arrayContaining(['job.started', 'job.progress', 'job.succeeded']));

    expect([
      ...operatorInformation('the 202', submitted.body),
      ...operatorInformation('GET /v1/jobs/:id', final),
      ...operatorInformation('GET /v1/jobs', listing),
      ...streamed.flatMap((e) => operatorInformation(`event ${e.event}`, e.data)),
      ...deliveries.flatMap((d) => operatorInformation(`webhook ${d.type}`, d)),
    ]).toEqual([]);
    // The operator's view of the same job names the worker: the information exists, and is kept from the tenant.
    expect(await inspectJob(api, id)).toMatchObject({ id, tenant: 'tenant-a', workerId: WORKER_ID });
  });

  it("sees in /v1/workers what is served and how busy it is — every tenant's queue together — and nothing of the machines", async () => {
    const queued = await Promise.all([1, 2, 3].map((seed) => postJob(other, { ...job, seed, model: ALT_MODEL })));
    expect(queued.map((q) => q.status)).toEqual([202, 202, 202]);
    const fleet = await (await api.fetch('/v1/workers')).json();
    expect(fleet).toEqual({
      workers: [{ model: DEFAULT_MODEL, executionProvider: 'cpu', maxBatch: expect.any(Number), maxInFlight: 4, inFlight: expect.any(Number) }],
      models: [
        { model: DEFAULT_MODEL, workers: 1, capacity: 4, inFlight: expect.any(Number), queued: expect.any(Number) },
        { model: ALT_MODEL, workers: 0, capacity: 0, inFlight: 0, queued: 3 },
      ],
    });
    expect(operatorInformation('GET /v1/workers', fleet)).toEqual([]);
  });

  it('gets 401 from the operator routes with its own key', async () => {
    const { body } = await postJob(api, { ...job, seed: 2 });
    for (const path of ['/admin/workers', `/admin/jobs/${body.id}`]) {
      const res = await api.fetch(path);
      expect({ path, status: res.status, body: await res.json() }).toEqual({ path, status: 401, body: { error: expect.objectContaining({ code: 'unauthorized' }) } });
    }
  });
});

describe('the operator (ADMIN_API_KEY)', () => {
  it('lists the live workers with their ids, hosts, pids and heartbeats', async () => {
    expect(await adminWorkers(api)).toEqual([
      expect.objectContaining({ id: WORKER_ID, host: os.hostname(), pid: process.pid, model: DEFAULT_MODEL, startedAt: expect.any(String), lastHeartbeat: expect.any(String) }),
    ]);
  });

  it("sees any tenant's job with its tenant, the worker that took it — while it runs and once it is done — and its queue record", async () => {
    const { body: done } = await postJob(other, { ...job, seed: 4 });
    expect((await waitForJob(other, done.id)).status).toBe('succeeded');
    expect(await inspectJob(api, done.id)).toMatchObject({ id: done.id, status: 'succeeded', tenant: 'tenant-b', workerId: WORKER_ID, queueState: 'completed', attemptsStarted: 1 });

    // A long job: the worker that holds it is named while it runs (BullMQ's processedBy).
    const { body: long } = await postJob(other, { ...job, width: 256, height: 256, steps: 50, seed: 5 });
    await until(async () => (await waitForStep(long.id)) >= 1);
    expect(await inspectJob(api, long.id)).toMatchObject({ status: 'running', tenant: 'tenant-b', workerId: WORKER_ID, queueState: 'active' });
    expect((await other.fetch(`/v1/jobs/${long.id}`, { method: 'DELETE' })).status).toBe(202);

    const { body: waiting } = await postJob(other, { ...job, seed: 6, model: ALT_MODEL });
    const queued = await inspectJob(api, waiting.id);
    expect(queued).toMatchObject({ status: 'queued', tenant: 'tenant-b', queueState: 'prioritized', attemptsStarted: 0 });
    expect(queued.workerId).toBeUndefined();
    expect((await api.as(ADMIN_KEY).fetch('/admin/jobs/no-such-job')).status).toBe(404);
  });

  /** The step a job's JSON reports (as its tenant sees it). */
  async function waitForStep(id: string): Promise<number> {
    return ((await (await other.fetch(`/v1/jobs/${id}`)).json()) as { progress: { step: number } }).progress.step;
  }
});

describe("the API's /metrics", () => {
  it('answers only the admin key where ADMIN_API_KEY is set', async () => {
    for (const [who, client] of [['no key', api.as(null)], ['a tenant key', api]] as const) {
      const res = await client.fetch('/metrics');
      expect({ who, status: res.status, challenge: res.headers.get('www-authenticate') }).toEqual({ who, status: 401, challenge: 'Bearer realm="farm"' });
      await res.arrayBuffer();
    }
    const res = await api.as(ADMIN_KEY).fetch('/metrics');
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^farm_jobs_submitted_total\{type="generate",app="api"\} [1-9]/m);
  });

  it('stays open on an API without ADMIN_API_KEY (no operator: /admin is off)', async () => {
    const open = await farm.startApi({ adminKey: undefined });
    const res = await open.as(null).fetch('/metrics');
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect((await open.as(ADMIN_KEY).fetch('/admin/workers')).status).toBe(404);
  });
});
