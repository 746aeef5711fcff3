/**
 * The intake (real BullMQ on the test Redis) fetching ahead of need: replacements for jobs at
 * their last steps are fetched and prepared while those run — two ticks of them for one-step
 * jobs — none of them starts while the storage gate is closed, and on stop the ones fetched ahead
 * go back to the queue at once.
 */
import { JobIntake, Lease, MemoryBudget, StorageGate } from '@farm/worker';
import type { JobOutput, QueuedJob } from '@farm/contracts';
import { Harness, QUEUE_PREFIX, until } from '../support/harness';

let farm: Harness;
const budget = () => new MemoryBudget(1e9, 0);
beforeAll(() => {
  farm = new Harness();
});
afterAll(() => farm.close());

it('prepares replacements for finishing jobs ahead, starts them only while the storage gate is open, and hands them back at once on stop', async () => {
  const started: string[] = [];
  const finish = new Map<string, () => void>();
  /** A running job's work stopping when the intake aborts it (handed back at stop). */
  const abandon = new Map<string, () => void>();
  let storageAnswers = true;
  const gate = new StorageGate(async () => storageAnswers, { firstProbeMs: 20, maxProbeMs: 50, holdMs: 60000 });
  const intake = new JobIntake(
    {
      prepare: async (lease: Lease) => {
        // Every job is at the last of its four steps once it runs: each slot frees once within the lead.
        lease.steps = 4;
        lease.stepsLeft = 1;
        return true;
      },
      run: (lease: Lease) =>
        new Promise<void>((resolve) => {
          started.push(lease.id);
          finish.set(lease.id, () => void lease.complete({} as JobOutput).then(() => resolve()));
          abandon.set(lease.id, resolve);
        }),
      abort: (id: string) => abandon.get(id)?.(),
    },
    { workerId: 'intake-test', queueName: farm.queue.name, prefix: QUEUE_PREFIX, connection: farm.redis, maxInFlight: 2, lockDurationMs: 10000, gate, memory: budget() },
  );
  for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) await farm.queue.add('generate', {} as QueuedJob, { jobId: id });
  const running = intake.start();
  try {
    await until(() => started.length === 2 && intake.inFlight === 4);
    expect(started).toEqual(['a', 'b']);
    await new Promise((r) => setTimeout(r, 200));
    expect(intake.inFlight).toBe(4); // two running, two waiting: no more fetched
    expect(await farm.queue.getWaitingCount()).toBe(2);

    storageAnswers = false;
    gate.failed();
    finish.get('a')!();
    await new Promise((r) => setTimeout(r, 200));
    expect(started).toEqual(['a', 'b']); // c waits for storage

    storageAnswers = true;
    await until(() => started.length === 3);
    expect(started[2]).toBe('c');
  } finally {
    gate.stop();
    await intake.stop(0);
    await running;
  }
  // a completed; b and c (running) and d and e (fetched ahead) went back at once, none to a stalled-lock timeout.
  expect(await farm.queue.getActiveCount()).toBe(0);
  expect(await farm.queue.getWaitingCount()).toBe(5);
});

it('holds two ticks of replacements for one-step jobs: each slot frees at the next tick, and its replacement at the one after', async () => {
  await farm.queue.obliterate({ force: true });
  const gate = new StorageGate(async () => true, { firstProbeMs: 20, maxProbeMs: 50, holdMs: 60000 });
  const started: string[] = [];
  const intake = new JobIntake(
    {
      prepare: async (lease: Lease) => {
        lease.steps = lease.stepsLeft = 1;
        return true;
      },
      // Running jobs never finish here: what is held ahead is the fetch loop's decision alone.
      run: (lease: Lease) => new Promise<void>((resolve) => (started.push(lease.id), lease.controller.signal.addEventListener('abort', () => resolve()))),
      abort: () => undefined,
    },
    { workerId: 'intake-test', queueName: farm.queue.name, prefix: QUEUE_PREFIX, connection: farm.redis, maxInFlight: 2, lockDurationMs: 10000, gate, memory: budget() },
  );
  for (let i = 0; i < 10; i++) await farm.queue.add('generate', {} as QueuedJob, { jobId: `one-step-${i}` });
  const running = intake.start();
  try {
    await until(() => started.length === 2 && intake.inFlight === 6);
    await new Promise((r) => setTimeout(r, 200));
    expect(intake.inFlight).toBe(6); // two running, four waiting: no more fetched
    expect(await farm.queue.getWaitingCount()).toBe(4);
  } finally {
    gate.stop();
    await intake.stop(0);
    await running;
  }
  expect(await farm.queue.getWaitingCount()).toBe(10); // all handed back at once
});
