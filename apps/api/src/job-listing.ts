/**
 * `GET /v1/jobs`: the tenant's jobs, newest first, a page at a time (`limit`, `cursor` from the
 * previous page's `nextCursor`), optionally only one `status` or `type`. Filters are applied to
 * the jobs as they are now, so a page may hold fewer than `limit`. An entry whose job is not in its
 * queue is skipped: it is being added (admission writes the entry first), or, once older than
 * MISSING_JOB_GRACE_MS, it is gone (past its retention, or its add failed) and dropped as met.
 */
import type { RequestHandler } from 'express';
import { JobView, describeIssues, jobListQuerySchema } from '@farm/contracts';
import { IndexEntry, JobDirectory, MISSING_JOB_GRACE_MS, TenantJobIndex, decodeCursor, encodeCursor } from '@farm/platform';
import { tenantOf } from './auth';
import { HttpError } from './http-errors';

/** Index entries one request looks at, at most (a page of a rare status may come back short). */
const MAX_SCAN = 500;

export function listJobs(deps: { jobs: JobDirectory; index: TenantJobIndex }): RequestHandler {
  return async (req, res) => {
    const tenant = tenantOf(res);
    const parsed = jobListQuerySchema.safeParse(req.query);
    if (!parsed.success) {
      const problems = describeIssues(parsed.error.issues);
      throw new HttpError(400, 'invalid_request', problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems);
    }
    const { limit, cursor, status, type } = parsed.data;
    let after: IndexEntry | undefined;
    if (cursor !== undefined) {
      after = decodeCursor(cursor) ?? undefined;
      if (!after) throw new HttpError(400, 'invalid_request', 'cursor: not a cursor this API gave out', [{ path: 'cursor', message: 'not a cursor this API gave out' }]);
    }

    const jobs: JobView[] = [];
    let scanned = 0;
    let exhausted = false;
    while (jobs.length < limit && scanned < MAX_SCAN) {
      const entries = await deps.index.page(tenant, Math.min(limit * 2, MAX_SCAN - scanned), after);
      if (entries.length === 0) {
        exhausted = true;
        break;
      }
      const views = await Promise.all(entries.map((e) => deps.jobs.find(e.id, tenant)));
      const gone = Date.now() - MISSING_JOB_GRACE_MS;
      await deps.index.remove(tenant, entries.filter((e, i) => views[i] === null && e.at < gone).map((e) => e.id));
      for (let i = 0; i < entries.length && jobs.length < limit; i++) {
        after = entries[i];
        scanned++;
        const view = views[i];
        if (view && (!status || view.status === status) && (!type || view.type === type)) jobs.push(view);
      }
    }
    res.json({ jobs, nextCursor: exhausted || !after ? null : encodeCursor(after) });
  };
}
