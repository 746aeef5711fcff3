/**
 * Who may do what, over real HTTP against a real Redis: API keys and tenants, the operator key,
 * per-tenant rate limits and quotas (429 + Retry-After), Idempotency-Key, and webhooks signed
 * per tenant, retried until delivered, refused for private targets unless allowed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseJobRequest } from '@farm/contracts';
import { IdempotencyKeys, TenantAdmission } from '@farm/api';
import { JobLocator, TenantJobIndex, TenantJobs, verifyWebhook } from '@farm/platform';
import { ADMIN_KEY, Harness, postJob, TestApi, useFarm, waitForJob } from '../support/harness';

const job = { type: 'generate', prompt: 'a red circle', width: 64, height: 64 };

describe('API keys and tenants', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  });

  it('refuses /v1 without a key or with an unknown one (401, WWW-Authenticate)', async () => {
    for (const key of [null, 'fk_not-a-real-key-at-all']) {
      const res = await api.as(key).fetch('/v1/jobs/x');
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(((await res.json()) as any).error.code).toBe('unauthorized');
    }
  });

  it('keeps tenants apart: another tenant’s job is a 404 to read, follow, cancel or edit', async () => {
    const other = await farm.tenant(api, 'tenant-b');
    const { body } = await postJob(api, job);
    expect((await other.fetch(`/v1/jobs/${body.id}`)).status).toBe(404);
    expect((await other.fetch(`/v1/jobs/${body.id}/events`)).status).toBe(404);
    expect((await other.fetch(`/v1/jobs/${body.id}`, { method: 'DELETE' })).status).toBe(404);
    const edit = await postJob(other, { type: 'edit', source: body.id, prompt: 'a blue circle' });
    expect(edit.status).toBe(400);
    expect(edit.body.error.fields[0]).toEqual({ path: 'source', message: expect.stringMatching(/does not exist/) });
    expect((await api.fetch(`/v1/jobs/${body.id}`)).status).toBe(200);
  });

  it('stores only hashes of keys', async () => {
    const stored = await farm.redis.hkeys(`${farm.keyPrefix}:api-keys`);
    expect(stored.length).toBeGreaterThan(0);
    expect(stored.every((h) => /^[0-9a-f]{64}$/.test(h))).toBe(true);
    expect(stored).not.toContain(api.key);
  });

  it('lets the operator key create tenant keys; tenant keys cannot reach /admin', async () => {
    const admin = api.as(ADMIN_KEY);
    const res = await admin.fetch('/admin/api-keys', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ tenant: 'tenant-c' }) });
    expect(res.status).toBe(201);
    const { key } = (await res.json()) as { key: string };
    expect((await postJob(api.as(key), job)).status).toBe(202);
    expect((await api.fetch('/admin/dead-letter')).status).toBe(401);
    expect((await admin.fetch('/admin/dead-letter')).status).toBe(200);
    expect((await admin.fetch('/admin/queues')).status).toBe(200); // bull-board
  });
});

describe('rate limits, quotas and idempotency', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  }, { admission: { ratePerSecond: 2, burst: 3, maxQueued: 5 } });
  /** The ids of a tenant's queued jobs. */
  const jobsOf = async (tenant: string) => (await farm.queue.getJobs()).filter((j) => j.data.tenant === tenant).map((j) => j.id);

  it('answers 429 with Retry-After once a tenant exceeds its burst, without touching other tenants', async () => {
    // Five at once: sent one after another, a slow machine let the 2/s rate refill a token between them.
    const answers = await Promise.all(Array.from({ length: 5 }, () => postJob(api, job)));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 202, 202, 429, 429]);
    const limited = answers.find((a) => a.status === 429)!;
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await postJob(await farm.tenant(api, 'tenant-quiet'), job)).status).toBe(202);
  });

  it('caps a tenant’s unfinished jobs (quota)', async () => {
    const tenant = await farm.tenant(api, 'tenant-quota');
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      statuses.push((await postJob(tenant, job)).status);
      await new Promise((r) => setTimeout(r, 600)); // stay under the rate limit
    }
    expect(statuses.slice(0, 5)).toEqual([202, 202, 202, 202, 202]);
    const over = await postJob(tenant, job);
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('quota_exceeded');
  });

  it('returns the same job for the same Idempotency-Key and request, whatever its key order or spelled-out defaults; 409 for another', async () => {
    const tenant = await farm.tenant(api, 'tenant-idem');
    const first = await postJob(tenant, job, { 'Idempotency-Key': 'order-42' });
    const again = await postJob(tenant, job, { 'Idempotency-Key': 'order-42' });
    expect(first.status).toBe(202);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    // The same request: keys in another order, defaults (steps, format, priority, model…) spelled out.
    const reordered = { height: 64, width: 64, prompt: 'a red circle', type: 'generate' };
    const spelledOut = { ...job, steps: 4, guidanceScale: 1, format: 'png', priority: 5, model: 'shapes-ldm' };
    for (const same of [reordered, spelledOut]) {
      const res = await postJob(tenant, same, { 'Idempotency-Key': 'order-42' });
      expect([res.status, res.body.id]).toEqual([200, first.body.id]);
    }
    const different = await postJob(tenant, { ...job, prompt: 'a blue circle' }, { 'Idempotency-Key': 'order-42' });
    expect(different.status).toBe(409);
    expect(different.body.error.code).toBe('idempotency_conflict');
    expect(await jobsOf('tenant-idem')).toEqual([first.body.id]);
  });

  it('does not let a 429 claim an Idempotency-Key: the retry after Retry-After creates the job', async () => {
    const tenant = await farm.tenant(api, 'tenant-idem-429');
    for (let i = 0; i < 3; i++) expect((await postJob(tenant, { ...job, seed: i })).status).toBe(202); // the burst
    const limited = await postJob(tenant, job, { 'Idempotency-Key': 'after-429' });
    expect([limited.status, limited.body.error.code]).toEqual([429, 'rate_limited']);
    await new Promise((r) => setTimeout(r, Number(limited.headers.get('retry-after')) * 1000));
    const retry = await postJob(tenant, job, { 'Idempotency-Key': 'after-429' });
    expect(retry.status).toBe(202);
    expect((await postJob(tenant, job, { 'Idempotency-Key': 'after-429' })).body.id).toBe(retry.body.id);
    expect((await jobsOf('tenant-idem-429')).filter((id) => id === retry.body.id)).toHaveLength(1);
  });

  it('does not let a quota refusal claim an Idempotency-Key either', async () => {
    const tenant = await farm.tenant(api, 'tenant-idem-quota');
    const queued: string[] = [];
    for (let i = 0; i < 5; i++) {
      queued.push((await postJob(tenant, { ...job, seed: i })).body.id);
      await new Promise((r) => setTimeout(r, 500)); // stay under the rate limit
    }
    const over = await postJob(tenant, job, { 'Idempotency-Key': 'after-quota' });
    expect([over.status, over.body.error.code]).toEqual([429, 'quota_exceeded']);
    await new TenantJobs(farm.redis, farm.keyPrefix).finished('tenant-idem-quota', queued[0]); // what a worker does when a job ends
    const retry = await postJob(tenant, job, { 'Idempotency-Key': 'after-quota' });
    expect(retry.status).toBe(202);
    expect(await jobsOf('tenant-idem-quota')).toEqual(expect.arrayContaining([...queued, retry.body.id]));
    expect(await jobsOf('tenant-idem-quota')).toHaveLength(6);
  });

  it('completes a submission whose API died between admitting it and queueing it, on the retry with its key', async () => {
    // What a crash between the two steps leaves: the admission (claim, place, locator), no job.
    const index = new TenantJobIndex(farm.redis, farm.keyPrefix, 3600);
    const admission = new TenantAdmission(farm.redis, farm.keyPrefix, new JobLocator(farm.redis, farm.keyPrefix), index, { ratePerSecond: 100, burst: 100, maxQueued: 100 });
    const idempotency = new IdempotencyKeys(farm.keyPrefix, 3600);
    const request = parseJobRequest(job);
    if (!request.ok) throw new Error('the test job is invalid');
    const admitted = await admission.admit({
      tenant: 'tenant-idem-crash',
      jobId: 'crashed-before-queueing',
      model: 'shapes-ldm',
      priority: 5,
      locatorTtlSeconds: 3600,
      idempotency: { key: idempotency.redisKey('tenant-idem-crash', 'crash-1'), fingerprint: IdempotencyKeys.fingerprint({ ...request.value, model: 'shapes-ldm' }), ttlSeconds: 3600 },
    });
    expect(admitted.kind).toBe('admitted');
    const tenant = await farm.tenant(api, 'tenant-idem-crash');
    // Its index entry (written by admission) names no job yet: not listed, and kept — a job being added looks the same.
    const listed = async () => ((await (await tenant.fetch('/v1/jobs')).json()) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id);
    expect(await listed()).toEqual([]);
    expect(await farm.redis.zscore(index.key('tenant-idem-crash'), 'crashed-before-queueing')).not.toBeNull();
    const retry = await postJob(tenant, job, { 'Idempotency-Key': 'crash-1' });
    expect([retry.status, retry.body.id, retry.body.status]).toEqual([200, 'crashed-before-queueing', 'queued']);
    expect(await jobsOf('tenant-idem-crash')).toEqual(['crashed-before-queueing']);
    expect(await listed()).toEqual(['crashed-before-queueing']);
  });
});

describe('atomic admission', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  }, { admission: { ratePerSecond: 1000, burst: 1000, maxQueued: 50 } });

  it('accepts exactly the quota of 180 concurrent submissions', async () => {
    const answers = await Promise.all(Array.from({ length: 180 }, (_, i) => postJob(api, { ...job, seed: i })));
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted).toHaveLength(50);
    expect(answers.filter((a) => a.status === 429 && a.body.error.code === 'quota_exceeded')).toHaveLength(130);
    expect(await farm.queue.count()).toBe(50);
  });

  it('leaves no trace of a withdrawn admission (a job that never reached its queue)', async () => {
    const locator = new JobLocator(farm.redis, farm.keyPrefix);
    const index = new TenantJobIndex(farm.redis, farm.keyPrefix, 3600);
    const admission = new TenantAdmission(farm.redis, farm.keyPrefix, locator, index, { ratePerSecond: 100, burst: 100, maxQueued: 100 });
    const submission = {
      tenant: 'tenant-withdrawn',
      jobId: 'never-queued',
      model: 'shapes-ldm',
      priority: 5,
      locatorTtlSeconds: 3600,
      idempotency: { key: new IdempotencyKeys(farm.keyPrefix, 3600).redisKey('tenant-withdrawn', 'w-1'), fingerprint: 'f', ttlSeconds: 3600 },
    };
    expect((await admission.admit(submission)).kind).toBe('admitted');
    await admission.withdraw(submission, farm.queue.toKey('never-queued'));
    expect(await farm.redis.zcard(new TenantJobs(farm.redis, farm.keyPrefix).key('tenant-withdrawn'))).toBe(0);
    expect(await locator.modelOf('never-queued')).toBeNull();
    expect(await farm.redis.zcard(index.key('tenant-withdrawn'))).toBe(0);
    expect(await farm.redis.exists(submission.idempotency.key)).toBe(0);
  });
});

describe('webhooks', () => {
  let farm: Harness;
  let api: TestApi;
  let receiver: http.Server;
  let url: string;
  const received: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  let failuresLeft = 2;

  beforeAll(async () => {
    farm = new Harness();
    api = await farm.startApi();
    await farm.startWorker();
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        if (failuresLeft-- > 0) return void res.writeHead(503).end(); // the first deliveries fail
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await farm.close();
    receiver.close();
  });

  it('delivers the final job, signed with the tenant’s secret, retrying until the receiver answers', async () => {
    const { body } = await postJob(api, { ...job, webhook: url });
    expect((await waitForJob(api, body.id)).status).toBe('succeeded'); // delivery trouble never affects the job
    for (let i = 0; i < 200 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(received).toHaveLength(1);
    const [{ headers, body: payload }] = received;
    const { secret } = (await (await api.fetch('/v1/webhook-secret')).json()) as { secret: string };
    expect(secret).toMatch(/^whsec_/);
    const id = headers['webhook-id'] as string;
    expect(verifyWebhook(secret, id, Number(headers['webhook-timestamp']), payload, headers['webhook-signature'] as string)).toBe(true);
    const other = await farm.tenant(api, 'tenant-other');
    const otherSecret = ((await (await other.fetch('/v1/webhook-secret')).json()) as { secret: string }).secret;
    expect(verifyWebhook(otherSecret, id, Number(headers['webhook-timestamp']), payload, headers['webhook-signature'] as string)).toBe(false);
    expect(JSON.parse(payload)).toMatchObject({ type: 'job.succeeded', data: { id: body.id, status: 'succeeded', result: { width: 64 } } });
  });

  it('refuses loopback and private targets unless the farm allows them (SSRF)', async () => {
    const strict = await farm.startApi({ webhooks: { secret: 'another-master-secret', allowPrivate: false } });
    for (const target of ['http://127.0.0.1:9/x', 'http://10.1.2.3/x', 'http://[::1]/x', 'http://169.254.169.254/latest/meta-data']) {
      const res = await postJob(strict, { ...job, webhook: target });
      expect(res.status).toBe(400);
      expect(res.body.error.fields[0]).toEqual({ path: 'webhook', message: expect.stringMatching(/private or loopback/) });
    }
    expect((await postJob(strict, { ...job, webhook: 'ftp://example.com/x' })).status).toBe(400);
  });
});

describe('fairness across tenants', () => {
  let farm: Harness;
  let api: TestApi;
  useFarm((f, a) => {
    farm = f;
    api = a;
  });

  it('does not hold one tenant’s single job behind another tenant’s burst', async () => {
    const bursty = api;
    const quiet = await farm.tenant(api, 'tenant-quiet');
    const burst = await Promise.all(Array.from({ length: 60 }, (_, i) => postJob(bursty, { ...job, seed: i })));
    const single = await postJob(quiet, job);
    const urgent = await postJob(bursty, { ...job, priority: 1 }); // the bursty tenant's own urgent job
    await farm.startWorker({ maxInFlight: 4 }); // work starts with the whole backlog queued
    // Compared by when work started (the queue's order), which finishing times blur: small jobs
    // fetched later can finish first, since they join the stream batch mid-flight.
    const startedBefore = async (owner: TestApi, id: string) => {
      const done = await waitForJob(owner, id, 120000);
      expect(done.status).toBe('succeeded');
      const jobs = await Promise.all(burst.map(async ({ body }) => (await farm.queue.getJob(body.id))!));
      return jobs.filter((j) => j.processedOn !== undefined && j.processedOn < new Date(done.startedAt).getTime()).length;
    };
    // Round-robin: the single job is in the first round, behind at most one micro-batch (4) of the
    // burst; and priorities order a tenant's own jobs: the urgent one overtakes its backlog.
    expect(await startedBefore(quiet, single.body.id)).toBeLessThanOrEqual(4);
    expect(await startedBefore(bursty, urgent.body.id)).toBeLessThanOrEqual(4);
    await Promise.all(burst.map(({ body }) => waitForJob(bursty, body.id, 120000)));
  });
});
