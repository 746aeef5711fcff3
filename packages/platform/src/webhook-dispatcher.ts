/**
 * Webhook deliveries, on a BullMQ queue of their own beside the jobs: one delivery per job and
 * event occurrence (its id names both — the final status, the attempt that started, the step —
 * so duplicates collapse), POSTed with the job as it is then and a Standard Webhooks signature,
 * through an agent that checks the address of every connection it makes (webhook-target.ts),
 * retried with exponential backoff. A target refused as internal is not retried; a failed
 * delivery never touches the job it reports on.
 */
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { FarmRedis, blockingDuplicate } from './redis-connection';
import { Agent, request } from 'undici';
import type { WebhookEventName } from '@farm/contracts';
import type { JobDirectory } from './job-directory';
import { WebhookTargetRefused, webhookAgent } from './webhook-target';
import { signWebhook, tenantWebhookSecret } from './webhook-signature';

export interface WebhookDispatcherOptions {
  connection: FarmRedis;
  prefix: string;
  /** Name of the jobs queue; deliveries use `<name>-webhooks`. */
  queueName: string;
  jobs: JobDirectory;
  masterSecret: string;
  /** Allow loopback/private targets (tests, trusted networks). Default false. */
  allowPrivate?: boolean;
  /** Delivery attempts (default 8) and first backoff in ms (default 1000, doubling). */
  attempts?: number;
  backoffMs?: number;
  /** Per-attempt timeout in ms (default 10000). */
  timeoutMs?: number;
}

interface Delivery {
  jobId: string;
  tenant: string;
  url: string;
  /** Absent in deliveries queued before there were other events than `completed`. */
  event?: WebhookEventName;
}

/** A delivery to schedule: `occurrence` tells it from the job's other deliveries of the event. */
export interface WebhookDelivery extends Required<Delivery> {
  occurrence: string;
}

export class WebhookDispatcher {
  private readonly queue: Queue<Delivery>;
  private worker: Worker<Delivery> | null = null;
  private workerConnection: FarmRedis | null = null;
  /** Checks every connection's address (SSRF) unless private targets are allowed. */
  private readonly agent: Agent;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.agent = webhookAgent(options.allowPrivate ?? false);
    this.queue = new Queue<Delivery>(`${options.queueName}-webhooks`, { connection: options.connection, prefix: options.prefix });
  }

  /** Schedules deliveries in one call (idempotent per job, event and occurrence). */
  async enqueue(deliveries: readonly WebhookDelivery[]): Promise<void> {
    await this.queue.addBulk(
      deliveries.map(({ occurrence, ...delivery }) => ({
        name: 'deliver',
        data: delivery,
        opts: {
          jobId: `${delivery.jobId}.${delivery.event}.${occurrence}`,
          attempts: this.options.attempts ?? 8,
          backoff: { type: 'exponential', delay: this.options.backoffMs ?? 1000 },
          // Progress is frequent and soon stale: nothing of it is kept once delivered.
          removeOnComplete: delivery.event === 'progress' ? true : { age: 24 * 3600 },
          removeOnFail: { age: 7 * 24 * 3600 },
        },
      })),
    );
  }

  /** Starts delivering in this process. */
  start(concurrency = 4): void {
    this.workerConnection = blockingDuplicate(this.options.connection);
    this.worker = new Worker<Delivery>(this.queue.name, (job) => this.deliver(job.data, job.id!), {
      connection: this.workerConnection,
      prefix: this.options.prefix,
      concurrency,
    });
    this.worker.on('error', (err) => console.error(`webhooks: ${err.message}`));
  }

  private async deliver(delivery: Delivery, deliveryId: string): Promise<void> {
    const view = await this.options.jobs.find(delivery.jobId, delivery.tenant);
    if (!view) throw new UnrecoverableError(`job ${delivery.jobId} no longer exists`);
    const timestamp = Math.floor(Date.now() / 1000);
    const event = delivery.event ?? 'completed';
    const type = event === 'completed' ? `job.${view.status}` : `job.${event}`;
    const body = JSON.stringify({ type, timestamp: new Date(timestamp * 1000).toISOString(), data: view });
    // No redirects are followed: one could point anywhere, internal addresses included.
    const res = await request(delivery.url, {
      method: 'POST',
      dispatcher: this.agent,
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 10000),
      headers: {
        'Content-Type': 'application/json',
        'User-Agent': 'diffusion-farm-webhooks',
        'webhook-id': deliveryId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signWebhook(tenantWebhookSecret(this.options.masterSecret, delivery.tenant), deliveryId, timestamp, body),
      },
      body,
    }).catch((err: unknown) => {
      throw err instanceof WebhookTargetRefused ? new UnrecoverableError(`webhook target refused: ${err.message}`) : err;
    });
    await res.body.dump();
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`webhook answered ${res.statusCode}`);
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.agent.close();
    this.workerConnection?.disconnect();
    await this.queue.close();
  }
}
