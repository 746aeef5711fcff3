/**
 * One worker, wired: the diffusion pipeline (one shared stream batch), the intake that leases
 * jobs from the queue, the runner that renders and stores them, the settler that records how each
 * ended, progress written once per tick, the storage gate, the edit-source cache and affinity,
 * cancellations, live sessions, webhooks, metrics and the status server. Wiring only; each part is its own module.
 */
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { FarmRedis } from '@farm/platform';
import { RequestLimits, queuedJobSchema } from '@farm/contracts';
import { BusyMeter, DiffusionPipeline, ExecutionProvider, SchedulerName } from '@farm/pipeline';
import {
  FarmQueue,
  FollowedJobs,
  JobCancellation,
  JobDirectory,
  JobFinalStates,
  JobLocator,
  JobProgressWriter,
  ModelCapabilityStore,
  ModelQueues,
  ObjectStore,
  SessionHosts,
  SessionStore,
  StartupError,
  TenantJobs,
  WebhookDispatcher,
  WorkerRegistry,
  limitsEnv,
  loadConfig,
  openQueue,
  queueEnv,
  sessionEnv,
  webhookEnv,
  workerEnv,
} from '@farm/platform';
import { EditAffinity } from './edit-affinity';
import { EditSourceCache } from './edit-source-cache';
import { JobIntake } from './job-intake';
import { JobWebhooks } from './job-webhooks';
import { PriorityPlan, modelThreadPriority, priorityInWords } from './model-priority';
import { MemoryBudget, defaultMemoryLimit, queuedJobMemoryBytes } from './memory-budget';
import { JobRunner } from './run-job';
import { SessionHost } from './session-host';
import { JobSettler } from './settle-job';
import { EngineLiveness } from './engine-liveness';
import { startStatusServer } from './status-server';
import { StorageGate } from './storage-gate';
import { TickProgress } from './tick-progress';
import { WorkerMetrics } from './worker-metrics';

/** How long a deferred edit waits before it is offered again. */
const AFFINITY_RETRY_MS = 150;
/** How long a job waiting for storage stays out of the queue each time. */
const STORAGE_RETRY_MS = 1000;
/** Probes of storage after a failure: first after this long, then doubling up to the maximum. */
const STORAGE_PROBE = { firstProbeMs: 250, maxProbeMs: 2000 };

/** The environment a worker reads (env-config.ts), storage aside. */
export const WORKER_ENV = { ...queueEnv, ...limitsEnv, ...webhookEnv, ...workerEnv, ...sessionEnv };
export type WorkerConfig = ReturnType<typeof loadConfig<typeof WORKER_ENV>>;

/** A worker's settings, every one of them decided by the configuration (defaults: env-config.ts). */
export interface WorkerSettings {
  queueName: string;
  queuePrefix: string;
  workerId: string;
  executionProvider: ExecutionProvider;
  /** CUDA device (EXECUTION_PROVIDER=cuda). */
  cudaDevice: number;
  /** Overrides the scheduler named by the model's scheduler_config.json. */
  scheduler?: SchedulerName;
  /** onnxruntime intra-op threads; 0 lets it decide. */
  threads: number;
  /** The model thread's nice value. */
  modelThreadNice: number;
  maxInFlight: number;
  maxUnetBatch: number;
  unetConcurrency: number;
  textCacheSize: number;
  lockDurationMs: number;
  progressPreviews: boolean;
  editCacheTtlSeconds: number;
  editCacheSize: number;
  editCacheBytes: number;
  editAffinityMs: number;
  jobRetentionSeconds: number;
  storageOutageBudgetMs: number;
  /** MAX_WORKER_MEMORY in bytes: jobs start only while the worker's memory and their estimates fit. */
  maxMemoryBytes: number;
  /** /livez fails when the engine holds jobs and no tick ended for this long. */
  engineStallMs: number;
  /** How long a live session lives without a message from its client. */
  sessionIdleSeconds: number;
  /** Webhooks: the master secret (no deliveries without one), private targets allowed or not. */
  webhooks: { secret?: string; allowPrivate: boolean };
}

export function workerSettings(config: WorkerConfig): WorkerSettings {
  return {
    queueName: config.QUEUE_NAME,
    queuePrefix: config.QUEUE_PREFIX,
    workerId: config.WORKER_ID ?? `${os.hostname()}:${process.pid}`,
    executionProvider: config.EXECUTION_PROVIDER,
    scheduler: config.SCHEDULER,
    cudaDevice: config.CUDA_DEVICE,
    threads: config.ORT_THREADS,
    modelThreadNice: config.MODEL_THREAD_NICE,
    maxInFlight: config.MAX_IN_FLIGHT,
    maxUnetBatch: config.MAX_UNET_BATCH,
    unetConcurrency: config.UNET_CONCURRENCY,
    textCacheSize: config.TEXT_CACHE_SIZE,
    lockDurationMs: config.LOCK_DURATION_MS,
    progressPreviews: config.PROGRESS_PREVIEWS,
    editCacheTtlSeconds: config.EDIT_CACHE_TTL_SECONDS,
    editCacheSize: config.EDIT_CACHE_SIZE,
    editCacheBytes: config.EDIT_CACHE_MB * 2 ** 20,
    editAffinityMs: config.EDIT_AFFINITY_MS,
    jobRetentionSeconds: config.JOB_RETENTION_SECONDS,
    storageOutageBudgetMs: config.STORAGE_OUTAGE_BUDGET_MS,
    maxMemoryBytes: config.MAX_WORKER_MEMORY_MB ? config.MAX_WORKER_MEMORY_MB * 2 ** 20 : defaultMemoryLimit(os.totalmem(), process.constrainedMemory?.()),
    engineStallMs: config.ENGINE_STALL_SECONDS * 1000,
    sessionIdleSeconds: config.SESSION_IDLE_SECONDS,
    webhooks: { secret: config.WEBHOOK_SECRET, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE },
  };
}

export interface FarmWorkerOptions extends WorkerSettings {
  redis: FarmRedis;
  store: ObjectStore;
  modelDir: string;
  /** The model this worker serves: it takes jobs from that model's queue only. */
  model: string;
  limits: RequestLimits;
  /** Port for /metrics, /livez and /readyz; undefined runs none (tests), 0 picks a free one. */
  statusPort?: number;
}

/** The bundled model, used when MODEL_DIR is not set. */
export const DEFAULT_MODEL_DIR = path.resolve(__dirname, '../../../models/shapes-ldm');

export class FarmWorker {
  readonly id: string;
  readonly metrics: WorkerMetrics;
  private readonly queue: FarmQueue;
  /** This worker's model queue, as the shared helpers take queues. */
  private readonly ownQueue: ModelQueues;
  private readonly keyPrefix: string;
  private readonly registry: WorkerRegistry;
  private readonly followed: FollowedJobs;
  private readonly finalStates: JobFinalStates;
  private readonly cancellation: JobCancellation;
  private readonly editSources: EditSourceCache;
  private readonly gate: StorageGate;
  private readonly progress: TickProgress;
  private readonly liveness: EngineLiveness;
  private intake!: JobIntake;
  private pipeline!: DiffusionPipeline;
  private runner!: JobRunner;
  private settler!: JobSettler;
  private webhooks: WebhookDispatcher | null = null;
  private jobWebhooks!: JobWebhooks;
  private sessions: SessionHost | null = null;
  private server: Server | null = null;
  private running: Promise<void> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private unsubscribeCancels: (() => void) | null = null;
  private readonly startedAt = new Date().toISOString();
  private readonly busy = new BusyMeter();
  private readonly priorityPlan: PriorityPlan;

  constructor(private readonly options: FarmWorkerOptions) {
    this.liveness = new EngineLiveness(options.engineStallMs, Date.now());
    this.priorityPlan = modelThreadPriority(options.modelThreadNice, options.threads, os.availableParallelism());
    const o = options;
    this.id = o.workerId;
    this.queue = openQueue({ QUEUE_NAME: o.queueName, QUEUE_PREFIX: o.queuePrefix }, o.redis, o.model);
    this.ownQueue = new ModelQueues(new Map([[o.model, this.queue]]));
    this.metrics = new WorkerMetrics(this.id, this.ownQueue, () => this.intake?.inFlight ?? 0, () => this.sessions?.size ?? 0, this.busy);
    const keyPrefix = (this.keyPrefix = `${o.queuePrefix}:${o.queueName}`);
    this.followed = new FollowedJobs(o.redis, keyPrefix);
    this.registry = new WorkerRegistry(o.redis, keyPrefix);
    this.finalStates = new JobFinalStates(o.redis, keyPrefix, o.jobRetentionSeconds);
    this.cancellation = new JobCancellation(o.redis, keyPrefix, this.finalStates);
    this.editSources = new EditSourceCache({
      store: o.store,
      redis: o.redis,
      keyPrefix: `${keyPrefix}:edit-source`,
      ttlSeconds: o.editCacheTtlSeconds,
      capacity: o.editCacheSize,
      capacityBytes: o.editCacheBytes,
      onHeldChanged: (ids) => void this.registry.holds(this.id, ids).catch(() => undefined),
    });
    this.gate = new StorageGate(() => o.store.ping(), { ...STORAGE_PROBE, holdMs: o.storageOutageBudgetMs });
    this.progress = new TickProgress(new JobProgressWriter(o.redis, this.queue, this.followed), o.progressPreviews);
  }

  /** Tells the farm this worker is alive and what it serves (GET /admin/workers; tenants see a summary). */
  private async announce(): Promise<void> {
    const o = this.options;
    await this.registry
      .heartbeat({
        id: this.id,
        host: os.hostname(),
        pid: process.pid,
        executionProvider: o.executionProvider,
        model: o.model,
        maxBatch: this.pipeline.engine.maxBatch,
        maxInFlight: this.intake.maxInFlight,
        inFlight: this.intake.inFlight,
        startedAt: this.startedAt,
      })
      .catch((err) => console.error(`worker: heartbeat failed: ${err.message}`));
  }

  /** Loads the model, starts the status server, starts taking jobs. */
  async start(): Promise<void> {
    const o = this.options;
    this.pipeline = await DiffusionPipeline.load(o.modelDir, {
      executionProvider: o.executionProvider,
      scheduler: o.scheduler,
      busy: this.busy,
      cudaDevice: o.cudaDevice,
      threads: o.threads || undefined,
      threadNice: 'nice' in this.priorityPlan ? this.priorityPlan.nice : undefined,
      maxBatch: o.maxUnetBatch,
      unetConcurrency: o.unetConcurrency,
      textCacheSize: o.textCacheSize,
      // A worker whose model thread died could only fail every job it takes: it exits, and its
      // jobs go back to the queue when their locks lapse, as after a crash.
      onThreadFailure: (err) => {
        console.error(`worker: ${err.message}; exiting`);
        process.exit(1);
      },
      onTick: (report) => {
        this.liveness.ticked(Date.now());
        this.metrics.tick(report);
        this.progress.flush();
        this.jobWebhooks.flush();
        this.intake.poke();
      },
    });
    // What the worker holds before any job: the model as loaded, a tick's and a decode's working memory, the edit sources it keeps.
    const fixedBytes = process.memoryUsage().rss + this.pipeline.workingMemoryBytes() + o.editCacheBytes;
    if (fixedBytes > o.maxMemoryBytes) {
      await this.pipeline.close();
      const mib = (bytes: number) => Math.ceil(bytes / 2 ** 20);
      throw new StartupError(`MAX_WORKER_MEMORY_MB=${mib(o.maxMemoryBytes)} is less than this worker needs before any job (${mib(fixedBytes)} MiB: the model, one tick's working memory and EDIT_CACHE_MB); raise it`);
    }
    const memory = new MemoryBudget(o.maxMemoryBytes, fixedBytes);
    // Created once the model is loaded: the queue sees the worker only when it can serve.
    this.intake = new JobIntake(
      {
        // A job its preparation ended (bad input, canceled, deferred) is settled without a slot.
        prepare: async (lease) => {
          const ended = await this.runner.prepare(lease);
          if (ended) await this.settler.settle(lease, ended);
          return ended === null;
        },
        // The tenant competes for the engine's ticks from its job's start to its end, I/O included.
        run: async (lease) => {
          const leave = this.pipeline.engine.attend(lease.job.data.tenant);
          try {
            await this.settler.settle(lease, await this.runner.run(lease));
          } finally {
            leave();
          }
        },
        abort: (jobId, reason) => this.pipeline.cancel(jobId, reason),
      },
      { workerId: this.id, queueName: this.queue.name, prefix: o.queuePrefix, connection: o.redis, maxInFlight: o.maxInFlight, lockDurationMs: o.lockDurationMs, gate: this.gate, memory },
    );
    // Before any job is taken: the API checks submissions against what this model can serve.
    await new ModelCapabilityStore(o.redis, `${o.queuePrefix}:${o.queueName}`).publish(o.model, this.pipeline.capabilities());
    if (o.webhooks.secret) {
      this.webhooks = new WebhookDispatcher({
        connection: o.redis,
        prefix: o.queuePrefix,
        queueName: this.queue.name,
        jobs: new JobDirectory(this.ownQueue, o.store, this.finalStates, new JobLocator(o.redis, this.keyPrefix)),
        masterSecret: o.webhooks.secret,
        allowPrivate: o.webhooks.allowPrivate,
      });
      this.webhooks.start();
    }
    this.jobWebhooks = new JobWebhooks(this.webhooks);
    this.runner = new JobRunner({
      pipeline: this.pipeline,
      store: o.store,
      editSources: this.editSources,
      affinity: new EditAffinity({
        holders: (sourceJobId) => this.registry.holders(sourceJobId, this.id),
        holds: (sourceJobId) => this.editSources.holds(sourceJobId),
        affinityMs: o.editAffinityMs,
        retryMs: AFFINITY_RETRY_MS,
      }),
      progress: this.progress,
      webhooks: this.jobWebhooks,
      schema: queuedJobSchema(o.limits),
      workerId: this.id,
      finalState: (jobId) => this.finalStates.get(jobId),
      isFollowed: (jobId) => this.followed.isFollowed(jobId),
      onEditSource: (kind) => this.metrics.editSource(kind),
      memoryOf: (job) => queuedJobMemoryBytes(job, this.pipeline.capabilities(), this.pipeline.model.info, o.limits),
    });
    this.settler = new JobSettler({
      redis: o.redis,
      keyPrefix: this.keyPrefix,
      finalStates: this.finalStates,
      store: o.store,
      editSources: this.editSources,
      tenantJobs: new TenantJobs(o.redis, this.keyPrefix),
      webhooks: this.jobWebhooks,
      metrics: this.metrics,
      gate: this.gate,
      storage: { budgetMs: o.storageOutageBudgetMs, retryMs: STORAGE_RETRY_MS },
    });
    // A running job canceled by a client leaves the stream batch at its next step.
    this.unsubscribeCancels = await this.cancellation.subscribe((id) => this.pipeline.cancel(id, 'canceled by the client'));
    if (o.statusPort !== undefined) {
      this.server = await startStatusServer(o.statusPort, this.metrics.registry, {
        live: () => this.liveness.check(this.pipeline.engine.size > 0, Date.now()),
        ready: async () => ({
          redis: await o.redis.ping().then(() => true, () => false),
          s3: await o.store.ping(),
        }),
      });
    }
    this.running = this.intake.start();
    this.sessions = new SessionHost({
      redis: o.redis,
      sessions: new SessionStore(o.redis, this.keyPrefix, o.sessionIdleSeconds),
      hosts: new SessionHosts(o.redis, this.keyPrefix),
      workerId: this.id,
      model: o.model,
      jobsInFlight: () => this.intake.inFlight,
      pipeline: this.pipeline,
      editSources: this.editSources,
      store: o.store,
      onRender: (kind) => this.metrics.sessionRender(kind),
      onFrame: (cost) => this.metrics.sessionFrame(cost),
      onSuperseded: (count) => this.metrics.sessionUpdatesSuperseded(count),
    });
    await this.sessions.start();
    await this.announce();
    this.heartbeat = setInterval(() => void this.announce(), this.registry.ttlMs / 3);
  }

  /** What became of MODEL_THREAD_NICE, in words (once started). */
  get modelThreadPriority(): string {
    return priorityInWords(this.priorityPlan, this.pipeline.model.threadPriority);
  }

  get statusPort(): number | null {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address.port : null;
  }

  /** Graceful stop: no new jobs, in-flight ones finish within `graceMs` or go back to the queue. */
  async stop(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.sessions?.stop();
    this.unsubscribeCancels?.();
    this.gate.stop();
    await this.intake?.stop(graceMs);
    // The last jobs' edit state still being packed goes out within the grace, so edits of them need not re-encode.
    await Promise.race([this.editSources.allStored(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
    await this.webhooks?.close();
    await this.registry.remove(this.id).catch(() => undefined);
    await this.running;
    await this.queue.close();
    await new Promise((r) => (this.server ? this.server.close(r) : r(null)));
    await this.pipeline?.close();
  }
}
