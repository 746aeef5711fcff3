/**
 * Operator routes under /admin (admin key only): API keys for tenants, the live workers with their
 * ids, hosts and pids, any tenant's job with its worker and queue record, the dead-letter view of
 * jobs that failed for good (with a retry), and the BullMQ queue dashboard (bull-board).
 */
import { Router } from 'express';
import { z } from 'zod';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { describeIssues } from '@farm/contracts';
import type { ApiKeyStore, JobDirectory, JobFinalStates, ModelQueues, WorkerRegistry } from '@farm/platform';
import { HttpError } from './http-errors';

export interface AdminRouteDeps {
  queues: ModelQueues;
  jobs: JobDirectory;
  keys: ApiKeyStore;
  finalStates: JobFinalStates;
  workers: WorkerRegistry;
}

/** The body of `POST /admin/api-keys`. */
export const newApiKeySchema = z.strictObject({ tenant: z.string().regex(/^[\w.-]{1,64}$/, 'tenant is 1-64 letters, digits, "_", "." or "-"') });

export function adminRoutes(deps: AdminRouteDeps, mountPath: string): Router {
  const router = Router();

  router.post('/api-keys', async (req, res) => {
    const parsed = newApiKeySchema.safeParse(req.body);
    if (!parsed.success) {
      const problems = describeIssues(parsed.error.issues);
      throw new HttpError(400, 'invalid_request', problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems);
    }
    const key = await deps.keys.create(parsed.data.tenant);
    res.status(201).json({ tenant: parsed.data.tenant, key });
  });

  router.get('/workers', async (_req, res) => {
    res.json({ workers: await deps.workers.list() });
  });

  router.get('/jobs/:id', async (req, res) => {
    const job = await deps.jobs.inspect(req.params.id);
    if (!job) throw new HttpError(404, 'not_found', `no job with id ${req.params.id}`);
    res.json(job);
  });

  // Jobs that failed for good (retries exhausted or unrecoverable), newest first; canceled ones excluded.
  router.get('/dead-letter', async (req, res) => {
    const limit = Math.min(Math.max(Number(req.query.limit) || 50, 1), 500);
    const failed = (await Promise.all(deps.queues.all().map((q) => q.getFailed(0, limit - 1))))
      .flat()
      .sort((a, b) => (b.finishedOn ?? 0) - (a.finishedOn ?? 0))
      .slice(0, limit);
    const finals = await Promise.all(failed.map((job) => deps.finalStates.get(job.id!)));
    res.json({
      jobs: failed.flatMap((job, i) => {
        const final = finals[i];
        if (final?.status === 'canceled') return [];
        return [{
          id: job.id,
          tenant: job.data.tenant,
          model: job.data.request.model,
          type: job.data.request.type,
          attempts: job.attemptsMade,
          failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
          // Failed by the queue itself (its workers died more often than allowed): no decision of ours.
          error: final?.status === 'failed' ? final.error : { code: 'internal_error', message: job.failedReason },
        }];
      }),
    });
  });

  router.post('/dead-letter/:id/retry', async (req, res) => {
    const job = await (await deps.jobs.queueOf(req.params.id))?.getJob(req.params.id);
    const canceled = (await deps.finalStates.get(req.params.id))?.status === 'canceled';
    if (!job || canceled || (await job.getState()) !== 'failed') throw new HttpError(404, 'not_found', `no failed job with id ${req.params.id}`);
    // An operator's retry takes back the job's failure, so the new attempt can end it again.
    await deps.finalStates.reopen(job.id!);
    await job.retry('failed');
    res.status(202).json({ id: job.id, status: 'queued' });
  });

  const board = new ExpressAdapter();
  board.setBasePath(`${mountPath}/queues`);
  createBullBoard({ queues: deps.queues.all().map((q) => new BullMQAdapter(q)), serverAdapter: board });
  router.use('/queues', board.getRouter());

  return router;
}
