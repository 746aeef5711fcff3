/**
 * Cancel is truthful, under races with completion: each job's cancel is sent at a different
 * moment around the end of its last step, and for every job the DELETE answer, GET, the event
 * stream, the webhook and the result store tell the same final state, which never changes; a
 * canceled job leaves no edit state to start an edit from.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { faultFigures } from '../support/fault-figures';
import { Harness, TestApi, postJob, until, useFarm, waitForJob } from '../support/harness';

const JOBS = 16;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Follows a job's event stream: resolves `step1` at its first progress event, `end` with its final event. */
function follow(api: TestApi, id: string) {
  let step1!: () => void;
  const reachedStep1 = new Promise<void>((r) => (step1 = r));
  const end = (async () => {
    const res = await api.fetch(`/v1/jobs/${id}/events`);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (/event: progress\n/.test(text)) step1();
    }
    step1();
    const last = [...text.matchAll(/event: (succeeded|failed|canceled)\ndata: (.*)\n/g)].pop();
    return { event: last?.[1], status: last ? (JSON.parse(last[2]) as { status: string }).status : undefined };
  })();
  return { reachedStep1, end };
}

describe('cancels racing completion', () => {
  let farm: Harness;
  let api: TestApi;
  let receiver: http.Server;
  let hook: string;
  const webhooks = new Map<string, string[]>();

  useFarm(async (f, a) => {
    farm = f;
    api = a;
    await f.startWorker();
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const { type, data } = JSON.parse(body) as { type: string; data: { id: string; status: string } };
        webhooks.set(data.id, [...(webhooks.get(data.id) ?? []), `${type} (${data.status})`]);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => receiver.close());

  it('never lets a final state flip: DELETE, GET, events, webhooks and the result store agree', async () => {
    const job = (seed: number) => ({ type: 'generate', prompt: 'a green circle on a white background', width: 64, height: 64, steps: 2, seed, webhook: hook });
    // How long a job takes from its first step to its end, on this machine now, with a warm
    // worker (the first job also pays for the model's first calls).
    const PROBES = 2;
    let tail = 0;
    for (let p = 0; p < PROBES; p++) {
      const probe = follow(api, (await postJob(api, job(1000 + p))).body.id as string);
      await probe.reachedStep1;
      const t0 = performance.now();
      await probe.end;
      tail = performance.now() - t0;
    }

    const results: Array<{ id: string; deleted: number; end: { event?: string; status?: string } }> = [];
    for (let i = 0; i < JOBS; i++) {
      const { body } = await postJob(api, job(i + 1));
      const events = follow(api, body.id);
      await events.reachedStep1;
      await sleep((tail * 1.5 * i) / JOBS); // from at once to past its end
      const deleted = (await api.fetch(`/v1/jobs/${body.id}`, { method: 'DELETE' })).status;
      results.push({ id: body.id, deleted, end: await events.end });
    }

    for (let i = 0; i < 100 && [...webhooks.values()].flat().length < JOBS + PROBES; i++) await sleep(100);
    for (const { id, deleted, end } of results) {
      const status = deleted === 202 ? 'canceled' : 'succeeded';
      expect([202, 409]).toContain(deleted);
      const seen = await waitForJob(api, id);
      const result = await farm.store.keys(`results/${id}`);
      expect({ id, get: seen.status, events: end.status, webhooks: webhooks.get(id), images: result.length }).toEqual({
        id,
        get: status,
        events: status,
        webhooks: [`job.${status} (${status})`],
        images: status === 'succeeded' ? 1 : 0,
      });
      // The state edits start from: a succeeded job's index entry names its latent (in a pack shared
      // with jobs that finished beside it); a canceled job has none, so no edit can start from it.
      const editState = `${farm.keyPrefix}:edit-source:${id}`;
      if (status === 'succeeded') await until(async () => (await farm.redis.exists(editState)) === 1, 5000);
      if (status === 'canceled') {
        expect(seen.error).toEqual({ code: 'canceled', message: 'canceled by the client' });
        expect(await farm.redis.exists(editState)).toBe(0);
      }
    }
    // Both sides of the race happened; and nothing changed since.
    const won = results.filter((r) => r.deleted === 202).length;
    expect(won).toBeGreaterThan(0);
    expect(won).toBeLessThan(JOBS);
    for (const { id, deleted } of results) expect((await waitForJob(api, id)).status).toBe(deleted === 202 ? 'canceled' : 'succeeded');
    const figures = await faultFigures('cancels racing completion', api, farm.store, results.map((r) => r.id));
    expect(figures).toEqual({ accepted: JOBS, succeeded: JOBS - won, failed: 0, canceled: won, lost: 0, twice: 0 });
  });
});
