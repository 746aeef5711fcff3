/**
 * The live fleet as a tenant sees it (`GET /v1/workers`): each worker's model and load without
 * its id, host, pid or start time, and each model's workers, capacity and queue together.
 * Operators get the workers themselves (`GET /admin/workers`).
 */
import type { ModelCapacity, WorkerInfo, WorkerList } from '@farm/contracts';

/** `queued`: each model's jobs waiting for a worker (every model served is listed, live workers or not). */
export function tenantFleet(workers: readonly WorkerInfo[], models: readonly string[], queued: Readonly<Record<string, number>>): WorkerList {
  const capacity = (model: string): ModelCapacity => {
    const serving = workers.filter((w) => w.model === model);
    return {
      model,
      workers: serving.length,
      capacity: serving.reduce((sum, w) => sum + w.maxInFlight, 0),
      inFlight: serving.reduce((sum, w) => sum + w.inFlight, 0),
      queued: queued[model] ?? 0,
    };
  };
  return {
    workers: workers.map(({ model, executionProvider, maxBatch, maxInFlight, inFlight }) => ({ model, executionProvider, maxBatch, maxInFlight, inFlight })),
    models: models.map(capacity),
  };
}
