/** The tenant-facing routes under /v1 but submission (job-submission.ts): list, follow, cancel jobs; the fleet as a tenant sees it. */
import { Router } from 'express';
import { FollowedJobs, JobCancellation, JobDirectory, ModelQueues, TenantJobIndex, WorkerRegistry, tenantWebhookSecret } from '@farm/platform';
import { tenantOf } from './auth';
import { tenantFleet } from './fleet';
import { HttpError } from './http-errors';
import type { JobEventHub } from './job-event-hub';
import { streamJobEvents } from './job-event-stream';
import { listJobs } from './job-listing';

export interface JobsRouteDeps {
  queues: ModelQueues;
  jobs: JobDirectory;
  events: JobEventHub;
  /** Each tenant's jobs in submission order (GET /v1/jobs). */
  jobIndex: TenantJobIndex;
  workers: WorkerRegistry;
  cancellation: JobCancellation;
  followed: FollowedJobs;
  webhooks: { secret?: string };
}

const FINAL = new Set(['succeeded', 'failed', 'canceled']);

export function jobsRoutes(deps: JobsRouteDeps): Router {
  const router = Router();
  const { jobs } = deps;
  const load = async (id: string, tenant: string) => {
    const view = await jobs.find(id, tenant);
    if (!view) throw new HttpError(404, 'not_found', `no job with id ${id}`);
    return view;
  };

  router.get('/jobs', listJobs({ jobs, index: deps.jobIndex }));

  router.get('/jobs/:id', async (req, res) => {
    res.json(await load(req.params.id, tenantOf(res)));
  });

  router.delete('/jobs/:id', async (req, res) => {
    const view = await load(req.params.id, tenantOf(res));
    // The cancel wins only if it decides the job's final state before the job's own end does.
    const { won, state } = FINAL.has(view.status) ? { won: false, state: view } : await deps.cancellation.cancel(view.id);
    if (!won) throw new HttpError(409, 'job_finished', `job ${view.id} already ${state.status}`);
    res.status(202).json(await load(view.id, tenantOf(res)));
  });

  router.get('/jobs/:id/events', async (req, res) => {
    const tenant = tenantOf(res);
    await streamJobEvents(req, res, {
      hub: deps.events,
      current: () => jobs.find(req.params.id, tenant),
      follow: () => deps.followed.follow(req.params.id),
    });
  });

  // The tenant's webhook signing secret (Standard Webhooks "whsec_…"), to verify deliveries.
  router.get('/webhook-secret', (_req, res) => {
    if (!deps.webhooks.secret) throw new HttpError(404, 'not_found', 'webhooks are not enabled on this farm');
    res.json({ secret: tenantWebhookSecret(deps.webhooks.secret, tenantOf(res)) });
  });

  // What is served and how busy it is; which machines serve it is the operator's (GET /admin/workers).
  router.get('/workers', async (_req, res) => {
    const waiting = (model: string) => deps.queues.get(model)!.getJobCounts('waiting', 'prioritized', 'delayed');
    const [workers, counts] = await Promise.all([deps.workers.list(), Promise.all(deps.queues.models.map(waiting))]);
    const queued = Object.fromEntries(deps.queues.models.map((model, i) => [model, Object.values(counts[i]).reduce((sum, n) => sum + n, 0)]));
    res.json(tenantFleet(workers, deps.queues.models, queued));
  });

  return router;
}

