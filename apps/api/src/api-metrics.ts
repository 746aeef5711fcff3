/** The API's Prometheus metrics: HTTP latency, submissions, queue depth, process defaults. */
import type { RequestHandler } from 'express';
import { Counter, Histogram, Registry } from 'prom-client';
import { ModelQueues, createRegistry, registerQueueDepth } from '@farm/platform';

export class ApiMetrics {
  readonly registry: Registry;
  readonly submitted: Counter<'type'>;
  readonly rejected: Counter<'reason'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;

  constructor(queues: ModelQueues) {
    this.registry = createRegistry({ app: 'api' });
    registerQueueDepth(this.registry, queues);
    this.submitted = new Counter({
      name: 'farm_jobs_submitted_total',
      help: 'Jobs accepted by the API, by type',
      labelNames: ['type'],
      registers: [this.registry],
    });
    this.rejected = new Counter({
      name: 'farm_jobs_rejected_total',
      help: 'Job submissions refused by the API, by reason',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'farm_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
  }

  /** Express middleware timing each request under its route pattern (not the raw path). */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const end = this.httpDuration.startTimer();
      res.on('finish', () => {
        const route = req.route?.path ? `${req.baseUrl}${req.route.path}` : 'unmatched';
        end({ method: req.method, route, status: String(res.statusCode) });
      });
      next();
    };
  }
}
