/**
 * One worker: the diffusion pipeline (one shared stream batch), the micro-batch feeder that
 * fills it from the queue, result storage, metrics. Wiring only; each part is its own module.
 */
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import type { RequestLimits } from '@farm/contracts';
import { DiffusionPipeline, ExecutionProvider, SchedulerName } from '@farm/pipeline';
import {
  FarmQueue,
  JobCancellation,
  JobDirectory,
  JobLocator,
  ModelQueues,
  ObjectStore,
  SessionHosts,
  SessionStore,
  TenantJobs,
  WebhookDispatcher,
  WorkerRegistry,
  openQueue,
} from '@farm/platform';
import { DeferJob, FarmJob, MicroBatchFeeder, Outcome } from './micro-batch-feeder';

/** How long a deferred edit waits before it is offered again. */
const AFFINITY_RETRY_MS = 150;
import { EditSourceCache } from './edit-source-cache';
import { JobRenderer, reasonCode } from './render-job';
import { SessionHost } from './session-host';
import { startStatusServer } from './status-server';
import { WorkerMetrics } from './worker-metrics';

export interface FarmWorkerOptions {
  redis: Redis;
  store: ObjectStore;
  queueName: string;
  queuePrefix: string;
  modelDir: string;
  /** The model this worker serves: it takes jobs from that model's queue only. */
  model: string;
  limits: RequestLimits;
  workerId?: string;
  executionProvider?: ExecutionProvider;
  /** Overrides the scheduler named by the model's scheduler_config.json. */
  scheduler?: SchedulerName;
  threads?: number;
  maxInFlight?: number;
  maxUnetBatch?: number;
  unetConcurrency?: number;
  textCacheSize?: number;
  lockDurationMs?: number;
  /** Attach a preview image to each progress update (default true). */
  progressPreviews?: boolean;
  /** How long finished jobs stay editable from cached state (default one day). */
  editCacheTtlSeconds?: number;
  /** Edit sources kept in memory (default 32). */
  editCacheSize?: number;
  /**
   * How long after submission an edit waits for a worker that holds its source in memory, if
   * one is alive (default 2000 ms; 0: no preference). Past that any worker takes it: no starving.
   */
  editAffinityMs?: number;
  /** Webhooks: the master secret (no deliveries without one), private targets allowed or not. */
  webhooks?: { secret?: string; allowPrivate: boolean };
  /** Port for /metrics and /healthz; undefined runs none (tests), 0 picks a free one. */
  statusPort?: number;
  /** How long a live session lives without a message from its client (default 300 s). */
  sessionIdleSeconds?: number;
}

/** The Redis key prefix of this farm's own keys (queue prefix + name). */
const keyPrefixOf = (o: { queuePrefix: string; queueName: string }) => `${o.queuePrefix}:${o.queueName}`;

/** The bundled model, used when MODEL_DIR is not set. */
export const DEFAULT_MODEL_DIR = path.resolve(__dirname, '../../../models/shapes-ldm');

export class FarmWorker {
  readonly id: string;
  readonly metrics: WorkerMetrics;
  private readonly queue: FarmQueue;
  /** This worker's model queue, as the shared helpers take queues. */
  private readonly ownQueue: ModelQueues;
  private feeder!: MicroBatchFeeder;
  private pipeline!: DiffusionPipeline;
  private server: Server | null = null;
  private running: Promise<void> | null = null;
  private readonly registry: WorkerRegistry;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly cancellation: JobCancellation;
  private unsubscribeCancels: (() => void) | null = null;
  private webhooks: WebhookDispatcher | null = null;
  private readonly tenantJobs: TenantJobs;
  private readonly editSources: EditSourceCache;
  private sessions: SessionHost | null = null;
  private readonly startedAt = new Date().toISOString();

  constructor(private readonly options: FarmWorkerOptions) {
    this.id = options.workerId ?? `${os.hostname()}:${process.pid}`;
    this.queue = openQueue({ QUEUE_NAME: options.queueName, QUEUE_PREFIX: options.queuePrefix }, options.redis, options.model);
    this.ownQueue = new ModelQueues(new Map([[options.model, this.queue]]));
    this.metrics = new WorkerMetrics(this.id, this.ownQueue, () => this.feeder?.inFlight ?? 0, () => this.sessions?.size ?? 0);
    const keyPrefix = keyPrefixOf(options);
    this.registry = new WorkerRegistry(options.redis, keyPrefix);
    this.cancellation = new JobCancellation(options.redis, keyPrefix);
    this.tenantJobs = new TenantJobs(options.redis, keyPrefix);
    this.editSources = new EditSourceCache({
      store: options.store,
      redis: options.redis,
      keyPrefix: `${keyPrefix}:edit-source`,
      ttlSeconds: options.editCacheTtlSeconds,
      capacity: options.editCacheSize,
      onHeldChanged: (ids) => void this.registry.holds(this.id, ids).catch(() => undefined),
    });
  }

  /** Tells the farm this worker is alive and what it serves (GET /v1/workers). */
  private async announce(): Promise<void> {
    const o = this.options;
    await this.registry
      .heartbeat({
        id: this.id,
        host: os.hostname(),
        pid: process.pid,
        executionProvider: o.executionProvider ?? 'cpu',
        model: o.model,
        maxBatch: this.pipeline.engine.maxBatch,
        maxInFlight: this.feeder.maxInFlight,
        inFlight: this.feeder.inFlight,
        startedAt: this.startedAt,
      })
      .catch((err) => console.error(`worker: heartbeat failed: ${err.message}`));
  }

  /** Loads the model, starts the status server, starts pulling jobs. */
  async start(): Promise<void> {
    const o = this.options;
    this.pipeline = await DiffusionPipeline.load(o.modelDir, {
      executionProvider: o.executionProvider,
      scheduler: o.scheduler,
      threads: o.threads,
      maxBatch: o.maxUnetBatch,
      unetConcurrency: o.unetConcurrency,
      textCacheSize: o.textCacheSize,
      onTick: (report) => {
        this.metrics.tick(report);
        this.feeder.poke();
      },
    });
    if (o.webhooks?.secret) {
      this.webhooks = new WebhookDispatcher({
        connection: o.redis,
        prefix: o.queuePrefix,
        queueName: this.queue.name,
        jobs: new JobDirectory(this.ownQueue, o.store, this.cancellation, new JobLocator(o.redis, `${o.queuePrefix}:${o.queueName}`)),
        masterSecret: o.webhooks.secret,
        allowPrivate: o.webhooks.allowPrivate,
      });
      this.webhooks.start();
    }
    const renderer = new JobRenderer({
      pipeline: this.pipeline,
      store: o.store,
      cache: this.editSources,
      limits: o.limits,
      workerId: this.id,
      findSourceJob: async (id) => {
        const job = await this.queue.getJob(id);
        return job?.returnvalue ? { imageKey: job.returnvalue.key, prompt: job.data.prompt } : null;
      },
      onEditSource: (kind) => this.metrics.editSource(kind),
      isCanceled: (id) => this.cancellation.isCanceled(id),
    });
    // A running job canceled by a client leaves the stream batch at its next step.
    this.unsubscribeCancels = await this.cancellation.subscribe((id) => this.pipeline.cancel(id, 'canceled by the client'));
    this.feeder = new MicroBatchFeeder(
      {
        process: async (job) => {
          await this.preferHolder(job);
          // Progress updates go out one after another, so a client never sees a step go back,
          // and all of them before the job completes, so the last one precedes `succeeded`.
          let updates = Promise.resolve();
          const output = await renderer.render(job.id!, { ...job.data }, (step, total, preview) => {
            updates = updates
              .then(async () => job.updateProgress({ step, total, ...(o.progressPreviews !== false ? { preview: await preview() } : {}) }))
              .catch(() => undefined);
          });
          await updates;
          return output;
        },
        settled: (job, outcome) => this.settled(job, outcome),
        abort: (jobId, reason) => this.pipeline.cancel(jobId, reason),
      },
      {
        queueName: this.queue.name,
        prefix: o.queuePrefix,
        connection: o.redis,
        maxInFlight: o.maxInFlight,
        lockDurationMs: o.lockDurationMs,
      },
    );
    if (o.statusPort !== undefined) {
      this.server = await startStatusServer(o.statusPort, this.metrics.registry, async () => ({
        redis: await o.redis.ping().then(() => true, () => false),
        s3: await o.store.ping(),
      }));
    }
    this.running = this.feeder.start();
    this.sessions = new SessionHost({
      redis: o.redis,
      sessions: new SessionStore(o.redis, keyPrefixOf(o), o.sessionIdleSeconds ?? 300),
      hosts: new SessionHosts(o.redis, keyPrefixOf(o)),
      workerId: this.id,
      model: o.model,
      jobsInFlight: () => this.feeder.inFlight,
      pipeline: this.pipeline,
      editSources: this.editSources,
      store: o.store,
      onRender: (kind) => this.metrics.sessionRender(kind),
      onSuperseded: (count) => this.metrics.sessionUpdatesSuperseded(count),
    });
    await this.sessions.start();
    await this.announce();
    this.heartbeat = setInterval(() => void this.announce(), this.registry.ttlMs / 3);
  }

  /**
   * Edit affinity: an edit whose source another live worker holds in memory goes back to the
   * queue for a moment (no attempt spent) so that worker can take it — for at most
   * `editAffinityMs` after submission, after which whoever fetches it serves it.
   */
  private async preferHolder(job: FarmJob): Promise<void> {
    const source = job.data.type === 'edit' && typeof job.data.source === 'string' ? job.data.source : null;
    if (!source || this.editSources.holds(source)) return;
    if (Date.now() - job.timestamp >= (this.options.editAffinityMs ?? 2000)) return;
    if ((await this.registry.holders(source, this.id)).length > 0) throw new DeferJob(AFFINITY_RETRY_MS);
  }

  /** After a job's attempt is recorded: metrics, and for final outcomes tenant bookkeeping and the webhook. */
  private settled(job: FarmJob, outcome: Outcome): void {
    const type = job.data?.type ?? 'unknown';
    if (outcome.ok) {
      const now = Date.now();
      const queueMs = (job.processedOn ?? now) - job.timestamp;
      this.metrics.succeeded(type, { queueMs, computeMs: outcome.output.computeMs, totalMs: now - job.timestamp });
    } else {
      this.metrics.failed(type, reasonCode(outcome.error), !outcome.retrying);
    }
    if (!outcome.ok && outcome.retrying) return;
    this.tenantJobs.finished(job.data.tenant, job.id!).catch((err) => console.error(`worker: tenant bookkeeping: ${err.message}`));
    if (job.data.webhook && this.webhooks) {
      const status = outcome.ok ? 'succeeded' : reasonCode(outcome.error) === 'canceled' ? 'canceled' : 'failed';
      this.webhooks
        .enqueue({ jobId: job.id!, tenant: job.data.tenant, url: job.data.webhook }, status)
        .catch((err) => console.error(`worker: could not schedule the webhook of ${job.id}: ${err.message}`));
    }
  }

  get statusPort(): number | null {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address.port : null;
  }

  /** Graceful stop: no new jobs, in-flight ones finish within `graceMs` or go back to the queue. */
  async stop(graceMs = 25000): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.sessions?.stop();
    this.unsubscribeCancels?.();
    await this.webhooks?.close();
    await this.feeder?.stop(graceMs);
    await this.registry.remove(this.id).catch(() => undefined);
    await this.running;
    await this.queue.close();
    await new Promise((r) => (this.server ? this.server.close(r) : r(null)));
    await this.pipeline?.close();
  }
}
