/**
 * The intake (real BullMQ on the test Redis) fetching ahead of need: replacements for jobs at
 * their last steps are fetched and prepared while those run, none of them starts while the
 * storage gate is closed, and on stop the ones fetched ahead go back to the queue at once.
 */
import { JobIntake, Lease, MemoryBudget, StorageGate } from '@farm/worker';
import type { JobOutput, QueuedJob } from '@farm/contracts';
import { Harness, QUEUE_PREFIX, until } from '../support/harness';

let farm: Harness;
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
        lease.stepsLeft = 1; // every job is at its last step once it runs: each needs a replacement ahead
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
    { workerId: 'intake-test', queueName: farm.queue.name, prefix: QUEUE_PREFIX, connection: farm.redis, maxInFlight: 2, lockDurationMs: 10000, gate, memory: new MemoryBudget(1e9, 0) },
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
