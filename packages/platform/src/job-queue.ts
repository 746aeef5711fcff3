/**
 * The BullMQ queues of farm jobs: one per model (`<QUEUE_NAME>.<model>`), so that jobs for a
 * model only reach workers that serve it. The API holds all of them; a worker, its model's.
 */
import { Queue } from 'bullmq';
import type { FarmRedis } from './redis-connection';
import type { JobName, JobOutput, ModelCapabilities, QueuedJob } from '@farm/contracts';

export type FarmQueue = Queue<QueuedJob, JobOutput, JobName>;

/** The bundled model's name: the default where none is configured. */
export const DEFAULT_MODEL = 'shapes-ldm';

/**
 * What the bundled model serves, for the API's submit-time check (models/shapes-ldm: an
 * LCMScheduler with 50 original inference steps, classifier-free guidance, 8 pixels per latent
 * cell; a unit test holds this to the model's own config files).
 */
export const BUNDLED_MODEL_CAPABILITIES: ModelCapabilities = {
  sizeMultiple: 8,
  guidance: { kind: 'cfg' },
  sampler: { kind: 'lcm', originalSteps: 50 },
};

export interface QueueSettings {
  QUEUE_NAME: string;
  QUEUE_PREFIX: string;
}

export function modelQueueName(queueName: string, model: string): string {
  return `${queueName}.${model}`;
}

export function openQueue(settings: QueueSettings, connection: FarmRedis, model: string): FarmQueue {
  return new Queue<QueuedJob, JobOutput, JobName>(modelQueueName(settings.QUEUE_NAME, model), { connection, prefix: settings.QUEUE_PREFIX });
}

/** The queues of the models a farm serves; the first model is the default. */
export class ModelQueues {
  constructor(private readonly byModel: ReadonlyMap<string, FarmQueue>) {
    if (byModel.size === 0) throw new Error('a farm serves at least one model');
  }

  static open(settings: QueueSettings, connection: FarmRedis, models: readonly string[]): ModelQueues {
    return new ModelQueues(new Map(models.map((m) => [m, openQueue(settings, connection, m)])));
  }

  get models(): string[] {
    return [...this.byModel.keys()];
  }

  get defaultModel(): string {
    return this.models[0];
  }

  get(model: string): FarmQueue | undefined {
    return this.byModel.get(model);
  }

  all(): FarmQueue[] {
    return [...this.byModel.values()];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
  }
}

/** Job counts by state, prioritized included (the raw wait list misses those). */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
