/**
 * The worker's decisions, as plain functions and small units: what an attempt's outcome means
 * for the job, how many jobs to fetch ahead, when an edit waits for the worker holding its
 * source, when the storage gate holds jobs back, what a job's memory is estimated at, and
 * whether the model thread's priority is raised.
 */
import { InferenceError, InvalidJobError, JobCanceledError, JobFailure, JobOutput, StorageUnavailableError, queuedJob } from '@farm/contracts';
import { EditAffinity, MemoryBudget, Outcome, StorageGate, defaultMemoryLimit, FETCH_LEAD_STEPS, departuresWithinLead, fetchesAtOnce, jobMemoryBytes, jobsToFetch, mayPreferHolder, modelThreadPriority, priorityInWords, settlementOf } from '@farm/worker';

describe('settling an attempt', () => {
  const output = { key: 'results/j.png' } as JobOutput;
  const storage = { budgetMs: 300000, retryMs: 1000 };
  const first = { attemptsMade: 0, attempts: 3, storageWaitMs: 0 };
  const failed = (failure: JobFailure): Outcome => ({ kind: 'failed', failure });

  it('completes a success, puts a deferral back, ignores an aborted attempt', () => {
    expect(settlementOf({ kind: 'succeeded', output }, first, storage)).toEqual({ kind: 'complete', output });
    expect(settlementOf({ kind: 'deferred', delayMs: 150 }, first, storage)).toEqual({ kind: 'put-back', delayMs: 150, failure: null });
    expect(settlementOf({ kind: 'aborted' }, first, storage)).toEqual({ kind: 'none' });
  });

  it('ends bad input and cancels at once, whatever attempts are left', () => {
    for (const failure of [new InvalidJobError('width: 13'), new JobCanceledError('canceled by the client')]) {
      expect(settlementOf(failed(failure), first, storage)).toEqual({ kind: 'end', failure });
    }
  });

  it('retries transient failures until the attempts are spent', () => {
    const failure = new InferenceError('onnxruntime failed');
    expect(settlementOf(failed(failure), first, storage).kind).toBe('retry');
    expect(settlementOf(failed(failure), { ...first, attemptsMade: 1 }, storage).kind).toBe('retry');
    expect(settlementOf(failed(failure), { ...first, attemptsMade: 2 }, storage).kind).toBe('end');
  });

  it('puts a job back without an attempt while storage has been down for less than the budget, then spends attempts', () => {
    const failure = new StorageUnavailableError('S3 down');
    const lastAttempt = { ...first, attemptsMade: 2 };
    expect(settlementOf(failed(failure), { ...lastAttempt, storageWaitMs: 299999 }, storage)).toEqual({ kind: 'put-back', delayMs: 1000, failure });
    expect(settlementOf(failed(failure), { ...first, storageWaitMs: 300000 }, storage).kind).toBe('retry');
    expect(settlementOf(failed(failure), { ...lastAttempt, storageWaitMs: 300000 }, storage).kind).toBe('end');
    expect(settlementOf(failed(failure), { ...first, storageWaitMs: 0 }, { ...storage, budgetMs: 0 }).kind).toBe('retry');
  });
});

describe('fetching ahead of need', () => {
  it('fills free slots and fetches replacements for the departures within the lead, minus those already waiting', () => {
    expect(jobsToFetch({ maxInFlight: 8, running: 0, leaving: 0, waiting: 0 })).toBe(8);
    expect(jobsToFetch({ maxInFlight: 8, running: 8, leaving: 0, waiting: 0 })).toBe(0); // mid-flight: none needed yet
    expect(jobsToFetch({ maxInFlight: 8, running: 8, leaving: 3, waiting: 0 })).toBe(3);
    expect(jobsToFetch({ maxInFlight: 8, running: 8, leaving: 3, waiting: 2 })).toBe(1);
    expect(jobsToFetch({ maxInFlight: 8, running: 5, leaving: 5, waiting: 8 })).toBe(0);
    expect(jobsToFetch({ maxInFlight: 8, running: 8, leaving: 16, waiting: 0 })).toBe(16); // one-step jobs: two ticks of replacements
  });

  it('counts a slot once per departure within two ticks: twice for one-step jobs at their step, once for longer ones near their end', () => {
    expect(FETCH_LEAD_STEPS).toBe(2);
    expect(departuresWithinLead(1, 1)).toBe(2); // leaves at the next tick, and its one-step replacement at the one after
    expect(departuresWithinLead(2, 2)).toBe(1);
    expect(departuresWithinLead(1, 2)).toBe(1); // a two-step replacement would leave only in three ticks
    expect(departuresWithinLead(1, 4)).toBe(1);
    expect(departuresWithinLead(3, 4)).toBe(0); // not due within the lead
    expect(departuresWithinLead(Infinity, Infinity)).toBe(0); // not known yet
  });

  it('sends a single fetch, waiting on the marker, after a round found the queue empty; otherwise as many as the queue holds', () => {
    expect(fetchesAtOnce(8, null)).toBe(1); // empty, or at start: one fetch waits for the next job
    expect(fetchesAtOnce(8, 0)).toBe(1); // a lone job is followed by one fetch (it comes back empty), not a batch
    expect(fetchesAtOnce(8, 3)).toBe(3);
    expect(fetchesAtOnce(8, 60)).toBe(8); // a burst fills every slot in the round after its first job
    expect(fetchesAtOnce(3, 8)).toBe(3); // never more than wanted
    expect(fetchesAtOnce(0, null)).toBe(0);
    expect(fetchesAtOnce(0, 4)).toBe(0);
  });
});

describe('edit affinity', () => {
  const base = { sourceJobId: 'src', heldHere: false, ageMs: 100, affinityMs: 2000 };

  it('looks for a holder only for edits of a job this worker does not hold, within the window', () => {
    expect(mayPreferHolder(base)).toBe(true);
    expect(mayPreferHolder({ ...base, sourceJobId: null })).toBe(false);
    expect(mayPreferHolder({ ...base, heldHere: true })).toBe(false);
    expect(mayPreferHolder({ ...base, ageMs: 2000 })).toBe(false);
    expect(mayPreferHolder({ ...base, affinityMs: 0 })).toBe(false);
  });

  it('defers an edit only while another live worker holds its source', async () => {
    const holders = new Map([['src', ['worker-b']]]);
    const affinity = new EditAffinity({ holders: async (id) => holders.get(id) ?? [], holds: () => false, affinityMs: 2000, retryMs: 150 });
    const edit = (source: string) =>
      queuedJob({ type: 'edit', source, prompt: 'a red circle', mask: { rects: [[0, 0, 8, 8]] }, steps: 4, guidanceScale: 1, format: 'png', priority: 5, webhookEvents: ['completed'] }, {
        seed: 1,
        model: 'm',
        tenant: 't',
        sourceJob: { imageKey: `results/${source}.png`, prompt: 'p' },
      });
    expect(await affinity.deferral(edit('src'), 1000, 1500)).toBe(150);
    expect(await affinity.deferral(edit('other'), 1000, 1500)).toBeNull();
    expect(await affinity.deferral(edit('src'), 1000, 3000)).toBeNull(); // past the window: anyone serves it
  });
});

describe('the storage gate', () => {
  it('holds jobs back from a failure until storage answers, probing with backoff', async () => {
    let up = false;
    let probes = 0;
    const gate = new StorageGate(async () => (probes++, up), { firstProbeMs: 5, maxProbeMs: 20, holdMs: 60000 });
    expect(gate.isOpen()).toBe(true);
    gate.failed();
    expect(gate.isOpen()).toBe(false);
    const opened = gate.whenOpen();
    while (probes < 3) await new Promise((r) => setTimeout(r, 5));
    expect(gate.isOpen()).toBe(false);
    up = true;
    await opened;
    expect(gate.isOpen()).toBe(true);
    gate.stop();
  });

  it('stops holding jobs back once the outage outlasts its budget, and never holds with no budget', () => {
    const gate = new StorageGate(async () => false, { firstProbeMs: 1000, maxProbeMs: 1000, holdMs: 5000 });
    gate.failed(10000);
    expect(gate.isOpen(14999)).toBe(false);
    expect(gate.isOpen(15000)).toBe(true);
    gate.stop();
    const none = new StorageGate(async () => false, { firstProbeMs: 1000, maxProbeMs: 1000, holdMs: 0 });
    none.failed();
    expect(none.isOpen()).toBe(true);
  });
});

describe('memory', () => {
  const sd = { latentChannels: 4, vaeScale: 8 };

  it("estimates a job's memory from its cost: its pixels' buffers, and its lanes' latent planes and masks", () => {
    // Issue 14's heavy job: 1024² × 18 lanes × 6 steps.
    const heavy = { pixels: 1048576, lanes: 18, steps: 6, total: 113246208 };
    expect(jobMemoryBytes(heavy, sd)).toBe(1048576 * 24 + 18 * 16384 * (48 + 28));
    expect(jobMemoryBytes(heavy, sd)).toBeLessThan(50 * 2 ** 20); // the tick budget, not the job, bounds the activations
    expect(jobMemoryBytes({ ...heavy, lanes: 1 }, sd)).toBeLessThan(jobMemoryBytes(heavy, sd));
  });

  it('counts what running jobs hold against the room left, and lets a job run when none does', () => {
    const budget = new MemoryBudget(1000, 400);
    expect(budget.fits(700)).toBe(true); // nothing runs: whatever its size
    const release = budget.hold(500);
    expect(budget.fits(100)).toBe(true);
    expect(budget.fits(101)).toBe(false);
    release();
    release(); // once only
    expect(budget.heldBytes).toBe(0);
  });

  it("defaults MAX_WORKER_MEMORY to 90% of the cgroup's limit or of the machine's memory", () => {
    expect(defaultMemoryLimit(16e9, 2 ** 64)).toBe(Math.floor(0.9 * 16e9)); // unconstrained (Node reports 2^64)
    expect(defaultMemoryLimit(16e9, 4e9)).toBe(3.6e9);
    expect(defaultMemoryLimit(16e9, undefined)).toBe(Math.floor(0.9 * 16e9));
  });
});

describe("raising the model thread's priority", () => {
  it('raises it while the model leaves a core to the rest', () => {
    expect(modelThreadPriority(-10, 1, 2)).toEqual({ nice: -10 });
    expect(modelThreadPriority(-5, 6, 8)).toEqual({ nice: -5 });
  });

  it('keeps normal priority when the model could take every core (onnxruntime choosing, or as many threads as cores)', () => {
    expect(modelThreadPriority(-10, 0, 2)).toEqual({ normal: expect.stringContaining('ORT_THREADS=0') });
    expect(modelThreadPriority(-10, 2, 2)).toEqual({ normal: expect.stringContaining('ORT_THREADS=2 takes every core of 2') });
    expect(modelThreadPriority(-10, 1, 1)).toEqual({ normal: expect.stringContaining('ORT_THREADS=1 takes every core of 1') });
  });

  it('lowers it whatever the threads (that starves nothing), and does nothing at 0', () => {
    expect(modelThreadPriority(5, 0, 2)).toEqual({ nice: 5 });
    expect(modelThreadPriority(0, 1, 2)).toEqual({ normal: 'MODEL_THREAD_NICE=0' });
  });

  it('says what became of it', () => {
    expect(priorityInWords({ nice: -10 }, { nice: -10, applied: true })).toBe('model thread at nice -10');
    expect(priorityInWords({ nice: -10 }, { nice: -10, applied: false, reason: 'EACCES' })).toMatch(/normal priority \(nice -10 refused: EACCES; it needs CAP_SYS_NICE or root\)/);
    expect(priorityInWords({ normal: 'MODEL_THREAD_NICE=0' }, null)).toBe('model thread at normal priority (MODEL_THREAD_NICE=0)');
  });
});
