/**
 * What a job's webhook is told, as its `webhookEvents` asks: `started` when the job enters the
 * stream batch, `progress` at most once a second per job (the step at hand once a second has
 * passed since the last one sent; a tick's deliveries are queued in one call), `completed` when it
 * ends. Nothing for a job without a webhook, or on a farm without webhooks.
 */
import type { FinalStatus, QueuedJob, WebhookEventName } from '@farm/contracts';
import type { WebhookDelivery, WebhookDispatcher } from '@farm/platform';

/** Least time between two progress deliveries of one job. */
export const PROGRESS_DELIVERY_INTERVAL_MS = 1000;

interface Progressing {
  target: Pick<WebhookDelivery, 'jobId' | 'tenant' | 'url'>;
  attempt: number;
  lastSentAt: number;
}

/** The job's webhook target when it asked for `event`, else null. */
function targetFor(id: string, job: QueuedJob, event: WebhookEventName) {
  const { webhook, webhookEvents } = job.request;
  return webhook && webhookEvents.includes(event) ? { jobId: id, tenant: job.tenant, url: webhook } : null;
}

export class JobWebhooks {
  /** Running jobs that asked for progress. */
  private readonly progressing = new Map<string, Progressing>();
  private pending: WebhookDelivery[] = [];

  constructor(
    private readonly dispatcher: WebhookDispatcher | null,
    private readonly now: () => number = Date.now,
  ) {}

  /** A job entered the stream batch; `attempt` counts the attempts it spent before. */
  started(id: string, job: QueuedJob, attempt: number): void {
    if (!this.dispatcher) return;
    const progress = targetFor(id, job, 'progress');
    if (progress) this.progressing.set(id, { target: progress, attempt, lastSentAt: -Infinity });
    const started = targetFor(id, job, 'started');
    if (started) this.send([{ ...started, event: 'started', occurrence: String(attempt) }]);
  }

  /** A job's step, from the engine. */
  progressed(id: string, step: number): void {
    const job = this.progressing.get(id);
    const now = this.now();
    if (!job || now - job.lastSentAt < PROGRESS_DELIVERY_INTERVAL_MS) return;
    job.lastSentAt = now;
    this.pending.push({ ...job.target, event: 'progress', occurrence: `${job.attempt}.${step}` });
  }

  /** The tick ended: its progress deliveries, in one call. */
  flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.send(batch);
  }

  /** The job left the stream batch. */
  forget(id: string): void {
    this.progressing.delete(id);
  }

  /** The job ended with this final status. */
  ended(id: string, job: QueuedJob, status: FinalStatus): void {
    const target = this.dispatcher && targetFor(id, job, 'completed');
    if (target) this.send([{ ...target, event: 'completed', occurrence: status }]);
  }

  private send(deliveries: WebhookDelivery[]): void {
    this.dispatcher!.enqueue(deliveries).catch((err) =>
      console.error(`worker: could not schedule the webhooks of ${[...new Set(deliveries.map((d) => d.jobId))].join(', ')}: ${err.message}`),
    );
  }
}
