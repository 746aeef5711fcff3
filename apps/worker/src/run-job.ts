/**
 * Running one job, in two parts. Preparing it, as soon as it is fetched: parse the queued job and
 * check it against this worker's model (the worker's one check of it, before any compute), see
 * whether it is still wanted (a cancel may have decided its end), whether someone follows it, and
 * where it should run (edit affinity) — so that when a slot of the stream batch frees, it starts
 * without waiting for any I/O. Running it: render it in the shared
 * stream batch — a generation, or an edit of a previous result or of an uploaded image — and store
 * its image. The state later edits start from is stored beside it without delaying the job.
 * Failures are typed where they happen; the runner returns the outcome, the settler acts on it.
 */
import sharp from 'sharp';
import {
  CONTENT_TYPES,
  EditSourceKind,
  FinalState,
  InferenceError,
  InvalidJobError,
  JobCanceledError,
  JobFailure,
  JobOutput,
  MaskRequest,
  QueuedJob,
  RegionRequest,
  SessionSnapshot,
  StorageUnavailableError,
  capabilityProblems,
  classifyFailure,
  isPromptEdit,
  queuedJobSchema,
} from '@farm/contracts';
import type { DiffusionPipeline, EditSource, MaskSpec, ProgressListener, RegionParams, RenderedImage } from '@farm/pipeline';
import type { ObjectStore } from '@farm/platform';
import type { EditAffinity } from './edit-affinity';
import type { EditSourceCache } from './edit-source-cache';
import type { Lease } from './job-intake';
import type { JobWebhooks } from './job-webhooks';
import type { TickProgress } from './tick-progress';

export type Outcome =
  | { kind: 'succeeded'; output: JobOutput }
  | { kind: 'failed'; failure: JobFailure }
  /** Put back without spending an attempt (another worker holds the edit's source). */
  | { kind: 'deferred'; delayMs: number }
  /** The job is no longer this worker's (handed back at shutdown, lock lost): nothing to record. */
  | { kind: 'aborted' };

/** An attempt: the job as parsed (null when it could not be), and how it went. */
export interface Attempt {
  job: QueuedJob | null;
  outcome: Outcome;
}

export interface RunDeps {
  pipeline: DiffusionPipeline;
  store: ObjectStore;
  editSources: EditSourceCache;
  affinity: EditAffinity;
  progress: TickProgress;
  /** The job's webhook: started and progress (the settler tells its end). */
  webhooks: JobWebhooks;
  /** The queued-job schema, built once with this farm's limits. */
  schema: ReturnType<typeof queuedJobSchema>;
  workerId: string;
  /** The job's final state, if something (a cancel) decided it already. */
  finalState(jobId: string): Promise<FinalState | null>;
  /** Whether someone follows the job (previews). */
  isFollowed(jobId: string): Promise<boolean>;
  /** Where edit sources came from (metrics). */
  onEditSource(kind: EditSourceKind): void;
  /** A job's estimated memory (memory-budget.ts): the intake starts it only when that fits. */
  memoryOf(job: QueuedJob): number;
}

/** The object key of a job's image: fixed per job, so a retried job overwrites, never duplicates. */
export function resultKey(jobId: string, format: string): string {
  return `results/${jobId}.${format}`;
}

/** The object key of an edit's mask. */
export function maskKey(jobId: string): string {
  return `results/${jobId}.mask.png`;
}

/** A mask from the queue (base64 PNG, rects, polygons) as the pipeline takes it. */
export function toMaskSpec(mask: MaskRequest): MaskSpec {
  return 'png' in mask ? { png: Buffer.from(mask.png, 'base64') } : mask;
}

/** A request's regions with their masks as the pipeline takes them (none: an empty list). */
function toRegionParams(regions: readonly RegionRequest[] | undefined): RegionParams[] {
  return (regions ?? []).map((r) => ({ ...r, mask: toMaskSpec(r.mask) }));
}

/** Pipeline work: its typed failures (bad input, canceled) as they are, anything else an inference failure. */
async function infer<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw err instanceof JobFailure ? err : new InferenceError(err instanceof Error ? err.message : String(err));
  }
}

/** Decodes an image file to raw RGB; a file that does not decode is bad input. */
async function decodeRgb(image: Buffer, what: string) {
  try {
    return await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new InvalidJobError(`${what} cannot be decoded: ${(err as Error).message}`);
  }
}

type Request<T extends QueuedJob['request']['type']> = Extract<QueuedJob['request'], { type: T }>;

export class JobRunner {
  /** Prepared jobs, as parsed, and whether someone follows them, until they run. */
  private readonly prepared = new WeakMap<Lease, { job: QueuedJob; followed: boolean }>();

  constructor(private readonly deps: RunDeps) {}

  /** Gets a fetched job ready to run; resolves to null when it is, or to the attempt that already ended it. */
  async prepare(lease: Lease): Promise<Attempt | null> {
    const parsed = this.deps.schema.safeParse(lease.job.data);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(job)'}: ${i.message}`).join('; ');
      return { job: null, outcome: { kind: 'failed', failure: new InvalidJobError(problems) } };
    }
    const job = parsed.data;
    // The API checked the request against the capabilities a worker of this model published;
    // this worker's model may differ (another version, an API that checked another model).
    const unservable = capabilityProblems(job.request, this.deps.pipeline.capabilities());
    if (unservable.length > 0) {
      const problems = unservable.map((p) => `request.${p.path}: ${p.message}`).join('; ');
      return { job, outcome: { kind: 'failed', failure: new InvalidJobError(problems) } };
    }
    const { id } = lease;
    try {
      const [final, followed] = await Promise.all([this.deps.finalState(id), this.deps.isFollowed(id)]);
      if (final?.status === 'canceled') throw new JobCanceledError('canceled before it started');
      if (job.snapshot) return { job, outcome: { kind: 'succeeded', output: await this.record(job.request, job.snapshot) } };
      const delayMs = await this.deps.affinity.deferral(job, lease.job.timestamp);
      if (delayMs !== null) return { job, outcome: { kind: 'deferred', delayMs } };
      lease.steps = lease.stepsLeft = job.request.steps;
      lease.memoryBytes = this.deps.memoryOf(job);
      this.prepared.set(lease, { job, followed });
      return null;
    } catch (err) {
      return { job, outcome: this.failed(lease, err) };
    }
  }

  /** Renders and stores a prepared job. */
  async run(lease: Lease): Promise<Attempt> {
    const { job, followed } = this.prepared.get(lease)!;
    this.deps.progress.start(lease.id, followed);
    this.deps.webhooks.started(lease.id, job, lease.job.attemptsMade);
    try {
      return { job, outcome: await this.render(lease, job) };
    } catch (err) {
      return { job, outcome: this.failed(lease, err) };
    } finally {
      this.deps.progress.forget(lease.id);
      this.deps.webhooks.forget(lease.id);
    }
  }

  private failed(lease: Lease, err: unknown): Outcome {
    return lease.controller.signal.aborted ? { kind: 'aborted' } : { kind: 'failed', failure: classifyFailure(err) };
  }

  private async render(lease: Lease, job: QueuedJob): Promise<Outcome> {
    const { id } = lease;
    const onProgress: ProgressListener = (step, total, preview) => {
      this.deps.progress.report(id, step, total, preview);
      this.deps.webhooks.progressed(id, step);
      lease.progressed(step, total);
    };
    const started = Date.now();
    const { request } = job;
    const done = request.type === 'generate' ? await this.generate(id, job, request, onProgress) : await this.edit(id, job, request, onProgress);
    // The job's last progress is written before it ends.
    await this.deps.progress.written();
    return { kind: 'succeeded', output: { ...done, seed: request.seed, computeMs: Date.now() - started, workerId: this.deps.workerId } };
  }

  /** A session's commit: its frame is stored already; the job records where (after checking it is there). */
  private async record(request: QueuedJob['request'], snapshot: SessionSnapshot): Promise<JobOutput> {
    const image = await this.deps.store.get(snapshot.key).catch((err) => {
      throw new StorageUnavailableError(`could not read the snapshot: ${(err as Error).message}`);
    });
    const { width, height, format } = await sharp(image).metadata();
    if (request.type !== 'generate' || width !== request.width || height !== request.height || format !== request.format) {
      throw new InvalidJobError(`the snapshot ${snapshot.key} is not the ${request.type === 'generate' ? `${request.width}x${request.height} ${request.format}` : 'generation'} its job records`);
    }
    return { bucket: this.deps.store.bucket, key: snapshot.key, width, height, format, contentType: CONTENT_TYPES[format], seed: request.seed, computeMs: 0, workerId: snapshot.workerId };
  }

  private async generate(id: string, job: QueuedJob, request: Request<'generate'>, onProgress: ProgressListener) {
    const control = request.control && { ...request.control, image: Buffer.from(request.control.image, 'base64') };
    const image = await infer(() => this.deps.pipeline.generate({ ...request, id, tenant: job.tenant, regions: toRegionParams(request.regions), control }, onProgress));
    return this.storeResult(id, image, request.prompt);
  }

  private async edit(id: string, job: QueuedJob, request: Request<'edit'>, onProgress: ProgressListener) {
    const { source, kind } = await this.loadSource(job, request);
    this.deps.onEditSource(kind);
    const mask = request.mask && toMaskSpec(request.mask);
    const promptEdit = isPromptEdit(request);
    const image = await infer(() => this.deps.pipeline.edit({ ...request, id, tenant: job.tenant, source, mask, regions: toRegionParams(request.regions) }, onProgress));
    // A mask edit keeps the source's prompt as the description of the rest; a prompt edit replaces it.
    const [, output] = await Promise.all([
      this.put(maskKey(id), image.maskPng, 'image/png'),
      this.storeResult(id, image, promptEdit ? request.prompt : source.prompt),
    ]);
    return {
      ...output,
      edit: { maskKey: maskKey(id), recomputedFraction: image.recomputedFraction, decodedFraction: image.decodedFraction, source: kind },
    };
  }

  /** The edit's starting point: an upload encoded, the source job's cached state, or its image encoded again. */
  private async loadSource(job: QueuedJob, request: Request<'edit'>): Promise<{ source: EditSource; kind: EditSourceKind }> {
    const { pipeline, editSources, store } = this.deps;
    if (typeof request.source !== 'string') {
      const { data, info } = await decodeRgb(Buffer.from(request.source.image, 'base64'), 'the source image');
      return { source: await infer(() => pipeline.encodeSource(data, info.width, info.height)), kind: 'upload' };
    }
    const sourceId = request.source;
    const cached = await editSources.get(sourceId).catch((err) => {
      throw new StorageUnavailableError(`could not read the cached source ${sourceId}: ${(err as Error).message}`);
    });
    if (cached) return { source: cached.source, kind: cached.from };
    const { imageKey, prompt } = job.sourceJob!;
    const image = await store.get(imageKey).catch((err) => {
      if ((err as Error).name === 'NoSuchKey') throw new InvalidJobError(`the source job's image ${imageKey} no longer exists`);
      throw new StorageUnavailableError(`could not read the source image: ${(err as Error).message}`);
    });
    const { data, info } = await decodeRgb(image, 'the source image');
    return { source: await infer(() => pipeline.encodeSource(data, info.width, info.height, prompt)), kind: 'reencoded' };
  }

  /**
   * Stores the image; then the state later edits start from is kept, and stored in the background
   * while the job completes — after the image, so that its upload never competes with the result's.
   */
  private async storeResult(id: string, image: RenderedImage, prompt: string | undefined) {
    const key = resultKey(id, image.format);
    await this.put(key, image.data, CONTENT_TYPES[image.format]);
    this.deps.editSources.put(id, { latent: image.latent, rgb: image.rgb, width: image.width, height: image.height, prompt }, key);
    return { bucket: this.deps.store.bucket, key, width: image.width, height: image.height, format: image.format, contentType: CONTENT_TYPES[image.format] };
  }

  private async put(key: string, body: Buffer, contentType: string): Promise<void> {
    try {
      await this.deps.store.put(key, body, contentType);
    } catch (err) {
      throw new StorageUnavailableError(`could not store the result: ${(err as Error).message || (err as Error).name}`);
    }
  }
}
