/**
 * The farm on a Redis Cluster of its own (3 masters with a replica each, AOF): the API and a
 * worker as real processes with REDIS_CLUSTER_NODES — and a REDIS_URL nothing answers at, so
 * nothing can fall back to a single server. Everything a client does works (submissions with an
 * Idempotency-Key, event streams, cancels, listings, edits, live sessions), every key the farm
 * writes lands in the slot of its hash tag, and when the master of that slot dies while 100 jobs
 * run, its replica takes over and every accepted job ends exactly once.
 */
import { TINY_JOB as TINY, expectExactlyOnce, failoverUnderLoad } from '../support/failover-load';
import { FarmProcesses, useFarmOn } from '../support/farm-processes';
import { adminWorkers, postJob, waitForJob } from '../support/harness';
import { EventStreamReader } from '../support/event-stream';
import { LocalCluster } from '../support/redis-topology';
import { SessionClient, openSession } from '../support/session-client';

const on = useFarmOn(() => LocalCluster.start());

it('cancels a running job: the cancel reaches the worker through pub/sub, which stops denoising it', async () => {
  const { farm } = on;
  const { body: job } = await postJob(farm.api, { ...TINY, width: 256, height: 256, steps: 50 });
  await farm.until(async () => (await waitForStep(farm, job.id)) >= 1, 60000, 'the job running');
  const cancel = await farm.api.fetch(`/v1/jobs/${job.id}`, { method: 'DELETE' });
  expect(cancel.status).toBe(202);
  await farm.until(async () => (await farm.workerCounter('farm_jobs_total', 'outcome="failed"')) === 1, 30000, 'the worker dropping the job');
  expect((await waitForJob(farm.api, job.id)).status).toBe('canceled');
  expect(await farm.workerCounter('farm_denoise_steps_total')).toBeLessThan(50);
}, 120000);

it('runs jobs end to end: idempotent submissions, events, listings, edits, a live session', async () => {
  const { farm } = on;
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

  expect((await adminWorkers(farm.api)).map((w) => w.id)).toEqual(['w1']);

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
  const { farm, topology: cluster } = on;
  const owner = await cluster.masterOf(farm.queuePrefix);
  const slot = Number(await owner.client.cluster('KEYSLOT', farm.queuePrefix));
  // Both counts at once: keys come and go while the farm runs.
  const [[, inSlot], [, all]] = (await owner.client.multi().cluster('COUNTKEYSINSLOT', slot).dbsize().exec()) as Array<[unknown, number]>;
  expect(inSlot).toBeGreaterThan(20); // queues, jobs, tenants, claims, final states, sessions, workers…
  expect(all).toBe(inSlot);
  const others = [...(await cluster.keysPerMaster())].filter(([port]) => port !== owner.port);
  expect(others.map(([, keys]) => keys)).toEqual([0, 0]);
});

it("carries on when the master of its slot dies while 100 jobs run: the replica takes over, and every accepted job ends exactly once", async () => {
  const { farm, topology: cluster, store } = on;
  const outcome = await failoverUnderLoad("Redis Cluster, the master of the farm's slot killed under 100 jobs", farm, cluster.target, store, async () => {
    const { killed, promoted, killedAt } = await cluster.killMasterOf(farm.queuePrefix);
    return { what: `master ${killed.port} killed, replica ${promoted.port} serving the slot, cluster ok`, killedAt };
  });
  expectExactlyOnce(outcome);
  expect(farm.running).toBe(true);
}, 240000);

async function waitForStep(farm: FarmProcesses, id: string): Promise<number> {
  const body = (await (await farm.api.fetch(`/v1/jobs/${id}`)).json()) as { progress?: { step: number } };
  return body.progress?.step ?? 0;
}
