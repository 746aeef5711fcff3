/**
 * A Redis failover under load, as clients and the queue see it (issue 14's failover scenarios):
 * 100 tiny jobs submitted, the failover started once a few have ended, submissions going on
 * meanwhile (each must be answered at once: accepted, or refused with a 503), 10 more once the
 * API is ready again; then every accepted job must end. Counts what happened: the fault figures,
 * each job's ends in the queue's own event stream, final statuses that changed, refused
 * submissions that ran anyway. Prints them on one line.
 */
import { QueueEvents } from 'bullmq';
import { DEFAULT_MODEL, ObjectStore, RedisTarget, createRedis, modelQueueName } from '@farm/platform';
import type { FarmProcesses } from './farm-processes';
import { FaultFigures, faultFigures, listedStatuses } from './fault-figures';
import { postJob } from './harness';

/** A job that costs next to nothing: 64×64, one step. */
export const TINY_JOB = { type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64, steps: 1 };
const FINAL = new Set(['succeeded', 'failed', 'canceled']);

export interface FailoverOutcome {
  figures: FaultFigures;
  /** Answers other than 202 while the failover ran (each a status and error code). */
  refused: Array<{ status: number; code?: string }>;
  /** The slowest answer to a submission while the failover ran, in ms. */
  slowestMs: number;
  /** Accepted jobs with exactly one end (completed or failed) in the queue's event stream. */
  endedOnce: number;
  /** Jobs with more than one. */
  endedTwice: number;
  /** Final statuses the tenant's job list showed, then changed. */
  flips: number;
}

type Answer = { status: number; id?: string; code?: string };

/** Submits `count` tiny jobs, 10 at a time (seeds from `seed`); the ids the API accepted. */
async function submit(farm: FarmProcesses, count: number, seed: number): Promise<string[]> {
  const accepted: string[] = [];
  await Promise.all(
    Array.from({ length: 10 }, async (_, lane) => {
      for (let i = lane; i < count; i += 10) {
        const res = await postJob(farm.api, { ...TINY_JOB, seed: seed + i });
        if (res.status === 202) accepted.push(res.body.id);
      }
    }),
  );
  return accepted;
}

/** Submits tiny jobs one after another while `go()` holds: every answer, and the slowest's time. */
async function submitWhile(farm: FarmProcesses, go: () => boolean, seed: number): Promise<{ answers: Answer[]; slowestMs: number }> {
  const answers: Answer[] = [];
  let slowestMs = 0;
  while (go()) {
    const sent = Date.now();
    const res = await postJob(farm.api, { ...TINY_JOB, seed: seed + answers.length });
    slowestMs = Math.max(slowestMs, Date.now() - sent);
    answers.push(res.status === 202 ? { status: res.status, id: res.body.id } : { status: res.status, code: res.body.error?.code });
    await new Promise((r) => setTimeout(r, 100));
  }
  return { answers, slowestMs };
}

/** Waits until the tenant's job list shows every job final; counts final statuses that later changed. */
async function awaitEnds(farm: FarmProcesses, ids: readonly string[]): Promise<number> {
  const firstFinal = new Map<string, string>();
  let flips = 0;
  await farm.until(async () => {
    (await listedStatuses(farm.api, ids)).forEach((status, i) => {
      const final = status && FINAL.has(status) ? status : undefined;
      const first = firstFinal.get(ids[i]);
      if (first !== undefined && final !== first) flips++;
      else if (first === undefined && final) firstFinal.set(ids[i], final);
    });
    return firstFinal.size === ids.length;
  }, 120000, 'every accepted job ending');
  return flips;
}

/**
 * Runs `failover` (it kills a master and resolves once another serves, with what it did in words
 * and the moment of the kill) under load on `farm`, whose Redis `target` the queue's events are
 * read from.
 */
export async function failoverUnderLoad(
  scenario: string,
  farm: FarmProcesses,
  target: RedisTarget,
  store: ObjectStore,
  failover: () => Promise<{ what: string; killedAt: number }>,
): Promise<FailoverOutcome> {
  const connection = createRedis(target);
  connection.on('error', () => undefined); // it reconnects through the failover
  const events = new QueueEvents(modelQueueName(farm.queueName, DEFAULT_MODEL), { connection, prefix: farm.queuePrefix });
  events.on('error', () => undefined);
  const ends = new Map<string, number>();
  const ended = ({ jobId }: { jobId: string }) => ends.set(jobId, (ends.get(jobId) ?? 0) + 1);
  events.on('completed', ended);
  events.on('failed', ended);
  try {
    await events.waitUntilReady();
    const succeeded = () => farm.workerCounter('farm_jobs_total', 'outcome="succeeded"');
    const before = await succeeded();
    const accepted = await submit(farm, 100, 1000);
    await farm.until(async () => (await succeeded()) - before >= 5, 60000, 'jobs finishing');
    const doneAtKill = (await succeeded()) - before;

    let failingOver = true;
    const during = submitWhile(farm, () => failingOver, 3000);
    const { what, killedAt } = await failover().finally(() => (failingOver = false));
    const failoverMs = Date.now() - killedAt;
    const { answers, slowestMs } = await during;
    accepted.push(...answers.filter((a) => a.status === 202).map((a) => a.id!));
    await farm.until(async () => (await farm.api.fetch('/readyz')).status === 200, 60000, 'the API ready again');
    const readyMs = Date.now() - killedAt;
    accepted.push(...(await submit(farm, 10, 2000)));

    const flips = await awaitEnds(farm, accepted);
    const figures = await faultFigures(scenario, farm.api, store, accepted);
    const refused = answers.filter((a) => a.status !== 202).map(({ status, code }) => ({ status, code }));
    // A submission refused during the failover may have been added before its answer was lost: it
    // runs (a retry with the same Idempotency-Key finds it instead of adding another).
    const ranAnyway = [...ends.keys()].filter((id) => !accepted.includes(id)).length;
    const outcome: FailoverOutcome = {
      figures,
      refused,
      slowestMs,
      endedOnce: accepted.filter((id) => ends.get(id) === 1).length,
      endedTwice: [...ends.values()].filter((n) => n > 1).length,
      flips,
    };
    console.log(
      `${scenario}: ${what} ${failoverMs} ms after the kill (${doneAtKill} of 100 jobs had succeeded); the API ready again after ${readyMs} ms; ` +
        `submissions meanwhile ${answers.length}: ${answers.length - refused.length} accepted, ${refused.length} refused ` +
        `(${[...new Set(refused.map((r) => r.status))].map((status) => `${refused.filter((r) => r.status === status).length} × ${status}`).join(', ') || 'none'}; ` +
        `${ranAnyway} of them ran anyway), slowest answer ${slowestMs} ms; ` +
        `accepted jobs with one end in the queue's event stream ${outcome.endedOnce} of ${accepted.length}, jobs with two ${outcome.endedTwice}, ` +
        `final statuses that changed ${flips}`,
    );
    return outcome;
  } finally {
    await events.close();
    connection.disconnect();
  }
}

/**
 * What a failover must leave: every accepted job succeeded, once (one end in the queue's event
 * stream, a final status that never changed); submissions answered at once, refused only with 503.
 */
export function expectExactlyOnce(outcome: FailoverOutcome): void {
  const n = outcome.figures.accepted;
  expect(outcome.figures).toEqual({ accepted: n, succeeded: n, failed: 0, canceled: 0, lost: 0, twice: 0 });
  expect({ endedOnce: outcome.endedOnce, endedTwice: outcome.endedTwice, flips: outcome.flips }).toEqual({ endedOnce: n, endedTwice: 0, flips: 0 });
  expect(outcome.refused.filter((r) => r.status !== 503)).toEqual([]);
  expect(outcome.slowestMs).toBeLessThan(5000); // answered, not hung
}
