/**
 * The figures of a fault scenario (issue 14's note): of the jobs a scenario got accepted, how many
 * ended succeeded, failed or canceled as the API lists them, how many never ended (lost), and how
 * many have more than one stored image (twice). Read in a few requests — the tenant's job list a
 * page at a time, the results in one listing — and printed under the scenario's name.
 */
import type { ObjectStore } from '@farm/platform';
import type { TestApi } from './harness';

export interface FaultFigures {
  accepted: number;
  succeeded: number;
  failed: number;
  canceled: number;
  lost: number;
  twice: number;
}

/** The jobs' statuses as GET /v1/jobs lists them, 100 a page; undefined for a job it does not list. */
export async function listedStatuses(api: TestApi, ids: readonly string[]): Promise<Array<string | undefined>> {
  const listed = new Map<string, string>();
  for (let cursor: string | null = null; ; ) {
    const page = (await (await api.fetch(`/v1/jobs?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)).json()) as {
      jobs: Array<{ id: string; status: string }>;
      nextCursor: string | null;
    };
    for (const job of page.jobs) listed.set(job.id, job.status);
    if (!page.nextCursor) return ids.map((id) => listed.get(id));
    cursor = page.nextCursor;
  }
}

/** How many images (`results/<id>.<format>`) each job has in the store, from one listing. */
export async function imagesPerJob(store: ObjectStore, ids: readonly string[]): Promise<number[]> {
  const counts = new Map<string, number>();
  for (const key of await store.keys('results/')) {
    const id = /^results\/([^./]+)\.[a-z]+$/.exec(key)?.[1];
    if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return ids.map((id) => counts.get(id) ?? 0);
}

/** The figures of the accepted jobs `ids` (all of them should have ended), printed as `scenario: {…}`. */
export async function faultFigures(scenario: string, api: TestApi, store: ObjectStore, ids: readonly string[]): Promise<FaultFigures> {
  const [statuses, images] = await Promise.all([listedStatuses(api, ids), imagesPerJob(store, ids)]);
  const count = (status: string) => statuses.filter((s) => s === status).length;
  const figures: FaultFigures = {
    accepted: ids.length,
    succeeded: count('succeeded'),
    failed: count('failed'),
    canceled: count('canceled'),
    lost: statuses.filter((s) => s !== 'succeeded' && s !== 'failed' && s !== 'canceled').length,
    twice: images.filter((n) => n > 1).length,
  };
  console.log(`fault figures, ${scenario}: ${JSON.stringify(figures)}`);
  return figures;
}
