/**
 * The conventions of hosted inference APIs, against a real farm: `Prefer: wait` answers with the
 * finished job, `GET /v1/jobs` lists a tenant's jobs a page at a time (skipping index entries
 * whose job is not there, dropping them once stale), CORS lets the configured origins in, and
 * webhook deliveries verify with the Standard Webhooks library itself.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { MISSING_JOB_GRACE_MS, ObjectStore, ResultSweeper, TenantJobIndex } from '@farm/platform';
import { Harness, TestApi, postJob, testStoreOptions, waitForJob } from '../support/harness';
import { OpenApiContract } from '../support/openapi-contract';

const job = { type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 2 } as const;

let farm: Harness;
let api: TestApi;

beforeAll(async () => {
  farm = new Harness();
  api = await farm.startApi({ corsOrigins: ['https://app.example.com'] });
  await farm.startWorker();
});
afterAll(() => farm.close());

describe('Prefer: wait', () => {
  it('answers 200 with the finished job when it ends in time', async () => {
    const res = await postJob(api, { ...job, seed: 1 }, { Prefer: 'wait=30' });
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=30');
    expect(res.body).toMatchObject({ status: 'succeeded', result: { width: 64, url: expect.any(String) } });
  });

  it('answers 202 with the job as it is when it does not end in time', async () => {
    await farm.queue.pause();
    try {
      const res = await postJob(api, { ...job, seed: 2 }, { Prefer: 'wait=1' });
      expect(res.status).toBe(202);
      expect(res.headers.get('preference-applied')).toBe('wait=1');
      expect(res.body.status).toBe('queued');
    } finally {
      await farm.queue.resume();
    }
  });
});

describe('GET /v1/jobs', () => {
  let lister: TestApi;
  const ids: string[] = [];

  beforeAll(async () => {
    lister = await farm.tenant(api, 'tenant-lister');
    for (let i = 0; i < 5; i++) ids.push((await postJob(lister, { ...job, seed: 10 + i })).body.id);
    ids.push((await postJob(lister, { ...job, prompt: 'never valid', steps: 0 })).body.id); // refused: not listed
    for (const id of ids.slice(0, 5)) await waitForJob(lister, id);
  });

  it("lists the tenant's own jobs, newest first, a page at a time", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
      const page = (await (await lister.fetch(`/v1/jobs${query}`)).json()) as { jobs: Array<{ id: string }>; nextCursor: string | null };
      expect(page.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(ids.slice(0, 5).reverse());
    const others = (await (await api.fetch('/v1/jobs?limit=100')).json()) as { jobs: Array<{ id: string }> };
    expect(others.jobs.map((j) => j.id)).not.toEqual(expect.arrayContaining([ids[0]]));
  });

  it('filters by status and type, and refuses a bad query with 400 naming the field', async () => {
    await farm.queue.pause();
    try {
      const queued = (await postJob(lister, { ...job, seed: 99 })).body.id as string;
      const onlyQueued = (await (await lister.fetch('/v1/jobs?status=queued')).json()) as { jobs: Array<{ id: string; status: string }> };
      expect(onlyQueued.jobs.map((j) => j.id)).toEqual([queued]);
      const succeeded = (await (await lister.fetch('/v1/jobs?status=succeeded&type=generate&limit=100')).json()) as { jobs: Array<{ id: string }> };
      expect(succeeded.jobs.map((j) => j.id)).toEqual(ids.slice(0, 5).reverse());
      expect(((await (await lister.fetch('/v1/jobs?type=edit')).json()) as { jobs: unknown[] }).jobs).toEqual([]);
      await lister.fetch(`/v1/jobs/${queued}`, { method: 'DELETE' });
    } finally {
      await farm.queue.resume();
    }
    const bad = await lister.fetch('/v1/jobs?status=done&limit=0');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.fields.map((f: { path: string }) => f.path).sort()).toEqual(['limit', 'status']);
    expect((await lister.fetch('/v1/jobs?cursor=not-a-cursor')).status).toBe(400);
  });

  it('skips entries whose job is not in its queue, dropping them only once they are older than the grace', async () => {
    const index = new TenantJobIndex(farm.redis, farm.keyPrefix, 3600);
    const tenant = await farm.tenant(api, 'tenant-lister-missing');
    const kept = (await postJob(tenant, { ...job, seed: 30 })).body.id as string;
    await index.add('tenant-lister-missing', 'being-added', Date.now()); // as admission leaves it before the add
    await index.add('tenant-lister-missing', 'never-added', Date.now() - MISSING_JOB_GRACE_MS - 60000);
    const listed = (await (await tenant.fetch('/v1/jobs')).json()) as { jobs: Array<{ id: string }> };
    expect(listed.jobs.map((j) => j.id)).toEqual([kept]);
    expect(await farm.redis.zscore(index.key('tenant-lister-missing'), 'being-added')).not.toBeNull();
    expect(await farm.redis.zscore(index.key('tenant-lister-missing'), 'never-added')).toBeNull();
  });
});

describe('queuePosition', () => {
  it('shows where a queued job stands, and streams its new place as jobs ahead leave', async () => {
    const queuer = await farm.tenant(api, 'tenant-queuer');
    await farm.queue.pause();
    const events: Array<{ event: string; data: any }> = [];
    const controller = new AbortController();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { body } = await postJob(queuer, { ...job, seed: 40 + i });
        expect(body.queuePosition).toBeUndefined(); // not on the 202: it would cost every submission a round trip
        ids.push(body.id);
      }
      const positions = await Promise.all(ids.map(async (id) => ((await (await queuer.fetch(`/v1/jobs/${id}`)).json()) as { queuePosition: number }).queuePosition));
      expect(positions).toEqual([0, 1, 2]);

      const stream = await queuer.fetch(`/v1/jobs/${ids[2]}/events`, { signal: controller.signal });
      const reader = stream.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      const nextEvent = async () => {
        for (;;) {
          const end = text.indexOf('\n\n');
          if (end >= 0) {
            const block = text.slice(0, end);
            text = text.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data) return { event, data: JSON.parse(data) };
            continue;
          }
          const { value, done } = await reader.read();
          if (done) throw new Error('the stream ended');
          text += decoder.decode(value, { stream: true });
        }
      };
      events.push(await nextEvent());
      expect(events[0]).toMatchObject({ event: 'queued', data: { id: ids[2], queuePosition: 2 } });
      await farm.queue.remove(ids[0]); // a job ahead leaves the queue
      events.push(await nextEvent());
      expect(events[1]).toEqual({ event: 'queued', data: { queuePosition: 1 } });
      for (const id of ids.slice(1)) await queuer.fetch(`/v1/jobs/${id}`, { method: 'DELETE' });
    } finally {
      controller.abort();
      await farm.queue.resume();
    }
  });
});

describe('RateLimit headers', () => {
  it('tell a tenant its submission budget on success and on 429 (IETF draft fields)', async () => {
    // A bucket so slow to refill (a token per 100 s) that the test's own pace cannot change the counts.
    const limited = await farm.startApi({ admission: { ratePerSecond: 0.01, burst: 2, maxQueued: 100 } });
    await farm.queue.pause();
    try {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await postJob(limited, { ...job, seed: 60 + i }));
      const fields = (h: Headers) => ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-policy'].map((n) => h.get(n));
      const reset = (h: Headers) => Number(h.get('ratelimit-reset'));
      expect(answers.map((a) => a.status)).toEqual([202, 202, 429]);
      expect(fields(answers[0].headers)).toEqual(['2', '1', '2;w=200']);
      expect(fields(answers[1].headers)).toEqual(['2', '0', '2;w=200']);
      expect(fields(answers[2].headers)).toEqual(['2', '0', '2;w=200']);
      // Seconds until the bucket is full again: about one token's worth (100 s), then two.
      expect(reset(answers[0].headers)).toBeGreaterThan(90);
      expect(reset(answers[0].headers)).toBeLessThanOrEqual(100);
      expect(reset(answers[1].headers)).toBeGreaterThan(190);
      expect(reset(answers[2].headers)).toBeLessThanOrEqual(200);
      expect(Number(answers[2].headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      for (const a of answers.slice(0, 2)) await limited.fetch(`/v1/jobs/${a.body.id}`, { method: 'DELETE' });
    } finally {
      await farm.queue.resume();
    }
  });
});

describe('result retention (RESULT_RETENTION_SECONDS)', () => {
  it('says when a result expires, deletes it then (sweeper), and answers clearly that it is gone', async () => {
    // A bucket of its own, kept 3 s: the sweeper deletes everything older in it.
    const store = new ObjectStore({ ...testStoreOptions(), bucket: 'farm-retention', retentionSeconds: 3 });
    await store.verify(true);
    const shortLived = new Harness();
    try {
      const keeper = await shortLived.startApi({ store });
      await shortLived.startWorker({ store });
      const done = (await postJob(keeper, { ...job, seed: 70 }, { Prefer: 'wait=30' })).body;
      expect(done.status).toBe('succeeded');
      expect(Date.parse(done.result.expiresAt) - Date.parse(done.finishedAt)).toBe(3000);
      expect((await fetch(done.result.url)).status).toBe(200);
      expect(await store.applyLifecycle()).toBe(false); // the embedded S3 has no lifecycle rules: the sweeper does it

      await new Promise((r) => setTimeout(r, Date.parse(done.result.expiresAt) - Date.now() + 50));
      expect(await new ResultSweeper(store, 3).sweep()).toBeGreaterThanOrEqual(1);
      await expect(store.get(done.result.key)).rejects.toMatchObject({ name: 'NoSuchKey' }); // the object is gone
      const gone = (await (await keeper.fetch(`/v1/jobs/${done.id}`)).json()) as any;
      expect(gone).toMatchObject({ status: 'succeeded', result: { expired: true, expiresAt: done.result.expiresAt } });
      expect(gone.result.url).toBeUndefined();
      const edit = await postJob(keeper, { type: 'edit', source: done.id, prompt: 'a green circle', mask: { rects: [[8, 8, 16, 16]] } });
      expect(edit.status).toBe(400);
      expect(edit.body.error.fields).toEqual([{ path: 'source', message: expect.stringMatching(/result expired at .*; it can no longer be edited/) }]);
    } finally {
      await shortLived.close();
      store.close();
    }
  });
});

describe('CORS', () => {
  it('lets a configured origin call the API with its key, and reads the headers a client needs', async () => {
    const preflight = await api.as(null).fetch('/v1/jobs', {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type,prefer' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization.*Prefer/);
    const res = await postJob(api, { ...job, seed: 5 }, { Origin: 'https://app.example.com' });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('access-control-expose-headers')).toMatch(/Location.*RateLimit-Remaining/);
  });

  it('gives other origins no CORS headers', async () => {
    const res = await api.fetch('/v1/workers', { headers: { Origin: 'https://evil.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('webhooks', () => {
  const received: Array<{ headers: Record<string, string>; body: string }> = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers as Record<string, string>, body });
      res.writeHead(204).end();
    });
  });
  let url: string;
  let verifier: Webhook;
  let contract: OpenApiContract;
  beforeAll(async () => {
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    verifier = new Webhook(((await (await api.fetch('/v1/webhook-secret')).json()) as { secret: string }).secret);
    contract = new OpenApiContract(await (await api.as(null).fetch('/openapi.json')).json());
  });
  afterAll(() => receiver.close());

  /** The job's deliveries so far, each verified by the Standard Webhooks library and checked against the document's WebhookEvent. */
  const deliveriesOf = (jobId: string) =>
    received.flatMap(({ headers, body }) => {
      const event = verifier.verify(body, headers) as { type: string; data: { id: string; progress: { step: number } } };
      if (event.data.id !== jobId) return [];
      expect(contract.checkComponent('WebhookEvent', JSON.parse(body), 'webhook body')).toEqual([]);
      return [{ id: headers['webhook-id'], ...event }];
    });
  const until = async (done: () => boolean) => {
    for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 50));
  };

  it('delivers a job that the Standard Webhooks library verifies with the tenant secret, in the documented shape', async () => {
    const { body } = await postJob(api, { ...job, seed: 7, webhook: url });
    await waitForJob(api, body.id);
    await until(() => deliveriesOf(body.id).length > 0);
    const delivery = received.find((r) => r.body.includes(body.id))!;
    expect(verifier.verify(delivery.body, delivery.headers)).toMatchObject({ type: 'job.succeeded', data: { id: body.id, status: 'succeeded' } });
    expect(() => verifier.verify(delivery.body.replace('succeeded', 'failed'), delivery.headers)).toThrow();
  });

  it('delivers started and progress only to a job whose webhookEvents ask for them; the final state by default', async () => {
    const steps = 3;
    const all = (await postJob(api, { ...job, seed: 8, steps, webhook: url, webhookEvents: ['started', 'progress', 'completed'] })).body;
    const byDefault = (await postJob(api, { ...job, seed: 9, steps, webhook: url })).body;
    const progressOnly = (await postJob(api, { ...job, seed: 10, steps, webhook: url, webhookEvents: ['progress'] })).body;
    expect([all.request.webhookEvents, byDefault.request.webhookEvents]).toEqual([['started', 'progress', 'completed'], ['completed']]);
    await Promise.all([all, byDefault, progressOnly].map((j) => waitForJob(api, j.id)));
    const types = (id: string) => deliveriesOf(id).map((d) => d.type);
    await until(() => types(all.id).includes('job.succeeded') && types(byDefault.id).length > 0 && types(progressOnly.id).length > 0);
    await new Promise((r) => setTimeout(r, 500)); // time for a delivery that should not come

    const ofAll = deliveriesOf(all.id);
    expect(new Set(ofAll.map((d) => d.type))).toEqual(new Set(['job.started', 'job.progress', 'job.succeeded']));
    expect(ofAll.filter((d) => d.type === 'job.started')).toHaveLength(1);
    // At most one progress delivery a second: the first step always goes, the rest only a second later.
    const progress = ofAll.filter((d) => d.type === 'job.progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThanOrEqual(steps);
    expect(new Set(ofAll.map((d) => d.id)).size).toBe(ofAll.length);
    expect(types(byDefault.id)).toEqual(['job.succeeded']);
    expect(new Set(types(progressOnly.id))).toEqual(new Set(['job.progress']));
  });
});
