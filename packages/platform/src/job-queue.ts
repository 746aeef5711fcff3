/** The BullMQ queue of farm jobs, as producers (the API) and the worker open it. */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobName, QueuedJob, JobOutput } from '@farm/contracts';

export type FarmQueue = Queue<QueuedJob, JobOutput, JobName>;

export interface QueueSettings {
  QUEUE_NAME: string;
  QUEUE_PREFIX: string;
}

export function openQueue(settings: QueueSettings, connection: Redis): FarmQueue {
  return new Queue<QueuedJob, JobOutput, JobName>(settings.QUEUE_NAME, { connection, prefix: settings.QUEUE_PREFIX });
}

/** Job counts by state, prioritized included (the raw wait list misses those). */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
