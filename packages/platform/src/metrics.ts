/** Prometheus registry helpers shared by the apps (prom-client). */
import { Registry, collectDefaultMetrics, Gauge } from 'prom-client';
import { ModelQueues, QUEUE_STATES } from './job-queue';

/** prom-client gauges whose `_total` suffix `promtool check metrics` rejects (it is for counters). */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function createRegistry(labels: Record<string, string>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}

/** `farm_queue_jobs{state,model}`: queue depth read from BullMQ at scrape time. */
export function registerQueueDepth(registry: Registry, queues: ModelQueues): Gauge<'state' | 'model'> {
  return new Gauge({
    name: 'farm_queue_jobs',
    help: 'Jobs in the queue by state and model (BullMQ counts, prioritized included)',
    labelNames: ['state', 'model'],
    registers: [registry],
    async collect() {
      for (const model of queues.models) {
        // While Redis is away the last known counts stay; the scrape itself must not fail.
        const counts = await queues.get(model)!.getJobCounts(...QUEUE_STATES).catch(() => null);
        if (counts) for (const state of QUEUE_STATES) this.set({ state, model }, counts[state] ?? 0);
      }
    },
  });
}

/** Latency buckets in seconds, from interactive (50 ms) to batch (5 min). */
export const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];
