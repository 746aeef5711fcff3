/**
 * The farm on a Redis Cluster of its own (3 masters with a replica each, AOF): the API and a
 * worker as real processes with REDIS_CLUSTER_NODES — and a REDIS_URL nothing answers at, so
 * nothing can fall back to a single server. Everything a client does works (submissions with an
 * Idempotency-Key, event streams, cancels, listings, edits, live sessions), and every key the
 * farm writes lands in the slot of its hash tag.
 */
import { FarmProcesses } from '../support/farm-processes';
import { postJob, waitForJob } from '../support/harness';
import { EventStreamReader } from '../support/event-stream';
import { LocalCluster } from '../support/redis-topology';
import { SessionClient, openSession } from '../support/session-client';

let cluster: LocalCluster;
let farm: FarmProcesses;
const TINY = { type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 1 };

beforeAll(async () => {
  cluster = await LocalCluster.start();
  farm = await FarmProcesses.start({ ...cluster.env, REDIS_URL: 'redis://127.0.0.1:1', LOCK_DURATION_MS: '5000' });
}, 120000);

afterAll(async () => {
  await farm?.stop();
  await cluster?.stop();
});

it('cancels a running job: the cancel reaches the worker through pub/sub, which stops denoising it', async () => {
  const { body: job } = await postJob(farm.api, { ...TINY, width: 256, height: 256, steps: 50 });
  await farm.until(async () => (await waitForStep(job.id)) >= 1, 60000, 'the job running');
  const cancel = await farm.api.fetch(`/v1/jobs/${job.id}`, { method: 'DELETE' });
  expect(cancel.status).toBe(202);
  await farm.until(async () => (await farm.workerCounter('farm_jobs_total', 'outcome="failed"')) === 1, 30000, 'the worker dropping the job');
  expect((await waitForJob(farm.api, job.id)).status).toBe('canceled');
  expect(await farm.workerCounter('farm_denoise_steps_total')).toBeLessThan(50);
}, 120000);

it('runs jobs end to end: idempotent submissions, events, listings, edits, a live session', async () => {
  const idempotent = { 'Idempotency-Key': 'cluster-e2e-1' };
  const first = await postJob(farm.api, { ...TINY, seed: 1 }, idempotent);
  const again = await postJob(farm.api, { ...TINY, seed: 1 }, idempotent);
  expect(first.status).toBe(202);
  expect(again.body.id).toBe(first.body.id); // the same job, replayed
  const events = await EventStreamReader.open(farm.api, `/v1/jobs/${first.body.id}/events`);
  const ids = [first.body.id];
  for (let seed = 2; seed <= 4; seed++) ids.push((await postJob(farm.api, { ...TINY, seed, priority: seed })).body.id);
  expect((await events.waitFor('succeeded')).data.id).toBe(first.body.id);
  const jobs = await Promise.all(ids.map((id) => waitForJob(farm.api, id)));
  expect(jobs.map((j) => j.status)).toEqual(Array(4).fill('succeeded'));
  for (const j of jobs) expect((await fetch(j.result.url)).status).toBe(200);

  const listed = (await (await farm.api.fetch('/v1/jobs?limit=100&status=succeeded')).json()) as { jobs: Array<{ id: string }> };
  expect(listed.jobs.map((j) => j.id).sort()).toEqual([...ids].sort());

  const edit = await postJob(farm.api, { type: 'edit', source: ids[0], mask: { rects: [[16, 16, 24, 24]] }, prompt: 'a yellow background', steps: 1 });
  expect(edit.status).toBe(202);
  expect((await waitForJob(farm.api, edit.body.id)).status).toBe('succeeded');

  const workers = (await (await farm.api.fetch('/v1/workers')).json()) as { workers: Array<{ id: string }> };
  expect(workers.workers.map((w) => w.id)).toEqual(['w1']);

  const size = { width: 64, height: 64 };
  const session = await openSession(farm.api, { prompt: 'a blue background', ...size, steps: 1, seed: 3 });
  expect(session.status).toBe(201);
  const client = await SessionClient.connect(farm.api, session.body as never, size);
  try {
    expect((await client.frameFor(0)).tiles).toEqual([expect.objectContaining({ x: 0, y: 0, w: 64, h: 64 })]);
  } finally {
    await client.close();
  }
}, 120000);

it("keeps every key of the farm in its hash tag's slot, on one master", async () => {
  const owner = await cluster.masterOf('{farm}');
  const keys = await cluster.keysPerMaster();
  const inSlot = Number(await owner.client.cluster('COUNTKEYSINSLOT', Number(await owner.client.cluster('KEYSLOT', '{farm}'))));
  expect(inSlot).toBeGreaterThan(20); // queues, jobs, tenants, claims, final states, sessions, workers…
  expect(keys).toEqual(new Map([...keys.keys()].map((port) => [port, port === owner.port ? inSlot : 0])));
});

async function waitForStep(id: string): Promise<number> {
  const body = (await (await farm.api.fetch(`/v1/jobs/${id}`)).json()) as { progress?: { step: number } };
  return body.progress?.step ?? 0;
}
