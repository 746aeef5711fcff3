/**
 * What the worker does with one job: re-validate it, render it in the shared stream batch
 * (a generation, or an edit of a previous result or an uploaded image), store the image and
 * what later edits need. Errors carry a reason code; bad input is unrecoverable (no retries),
 * the rest is thrown for BullMQ to retry with backoff.
 */
import sharp from 'sharp';
import { UnrecoverableError } from 'bullmq';
import {
  CONTENT_TYPES,
  EditRequest,
  EditSourceKind,
  GenerateRequest,
  JobOutput,
  JobRequest,
  MaskRequest,
  RegionRequest,
  RequestLimits,
  editStrength,
  SessionSnapshot,
  encodeFailure,
  isPromptEdit,
  parseJobRequest,
} from '@farm/contracts';
import type { DiffusionPipeline, EditSource, MaskSpec, ProgressListener, RegionParams, RenderedImage } from '@farm/pipeline';
import type { ObjectStore } from '@farm/platform';
import type { EditSourceCache } from './edit-source-cache';

/** A previous job as an edit source, when its cached state has expired. */
export interface SourceJob {
  imageKey: string;
  prompt?: string;
}

export interface RenderDeps {
  pipeline: DiffusionPipeline;
  store: ObjectStore;
  cache: EditSourceCache;
  /** Finds a finished job's image and prompt (null when it no longer exists). */
  findSourceJob: (id: string) => Promise<SourceJob | null>;
  limits: RequestLimits;
  workerId: string;
  /** Where edit sources came from (metrics). */
  onEditSource?: (kind: EditSourceKind) => void;
  /** True when the client canceled the job before it started. */
  isCanceled: (id: string) => Promise<boolean>;
}

/** An error with a reason code, formatted for BullMQ's failedReason. */
export class JobFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(encodeFailure(code, message));
  }
}

const invalid = (message: string) => new UnrecoverableError(encodeFailure('invalid_job', message));

export function reasonCode(err: unknown): string {
  if (err instanceof JobFailure) return err.code;
  const match = /^([a-z][a-z0-9_]*): /.exec(err instanceof Error ? err.message : '');
  return match ? match[1] : 'internal_error';
}

/** The object key of a job's image: fixed per job, so a retried job overwrites, never duplicates. */
export function resultKey(jobId: string, format: string): string {
  return `results/${jobId}.${format}`;
}

/** A mask from the queue (base64 PNG, rects, polygons) as the pipeline takes it. */
export function toMaskSpec(mask: MaskRequest): MaskSpec {
  return 'png' in mask ? { png: Buffer.from(mask.png, 'base64') } : mask;
}

/** A request's regions with their masks as the pipeline takes them (none: an empty list). */
function toRegionParams(regions: readonly RegionRequest[] | undefined): RegionParams[] {
  return (regions ?? []).map((r) => ({ ...r, mask: toMaskSpec(r.mask) }));
}

/** Runs pipeline work, sorting its failures into unrecoverable input errors and retryable ones. */
async function infer<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Error && err.name === 'CanceledError') throw new UnrecoverableError(encodeFailure('canceled', err.message));
    if (err instanceof Error && err.name === 'InvalidInputError') throw invalid(err.message);
    throw new JobFailure('inference_failed', err instanceof Error ? err.message : String(err));
  }
}

export class JobRenderer {
  constructor(private readonly deps: RenderDeps) {}

  /** `data` is the queued job: the request plus the fields the API added (seed, tenant). */
  async render(id: string, data: Record<string, unknown>, onProgress: ProgressListener): Promise<JobOutput> {
    const { tenant: _tenant, snapshot, ...request } = data;
    const parsed = parseJobRequest(request, this.deps.limits);
    if (!parsed.ok) throw invalid(parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    if (await this.deps.isCanceled(id)) throw new UnrecoverableError(encodeFailure('canceled', 'canceled before it started'));
    const job = parsed.value;
    const seed = job.seed ?? 0;
    if (snapshot) return this.record(job, snapshot as SessionSnapshot, seed);
    const started = Date.now();
    const done = job.type === 'generate' ? await this.generate(id, job, seed, onProgress) : await this.edit(id, job, seed, onProgress);
    return { ...done, seed, computeMs: Date.now() - started, workerId: this.deps.workerId };
  }

  /** A session's commit: its frame is stored already; the job records where (after checking it is there). */
  private async record(request: JobRequest, snapshot: SessionSnapshot, seed: number): Promise<JobOutput> {
    if (request.type !== 'generate') throw invalid('a session snapshot records a generation');
    const image = await this.deps.store.get(snapshot.key).catch((err) => {
      throw new JobFailure('storage_unavailable', `could not read the snapshot: ${(err as Error).message}`);
    });
    const { width, height, format } = await sharp(image).metadata();
    if (width !== request.width || height !== request.height || format !== request.format) throw invalid(`the snapshot ${snapshot.key} is not a ${request.width}x${request.height} ${request.format}`);
    return { bucket: this.deps.store.bucket, key: snapshot.key, width, height, format, contentType: CONTENT_TYPES[format], seed, computeMs: 0, workerId: snapshot.workerId };
  }

  private async generate(id: string, request: GenerateRequest, seed: number, onProgress: ProgressListener) {
    const image = await infer(() => this.deps.pipeline.generate({ ...request, id, seed, regions: toRegionParams(request.regions) }, onProgress));
    return this.storeResult(id, image, request.prompt);
  }

  private async edit(id: string, request: EditRequest, seed: number, onProgress: ProgressListener) {
    const { source, kind } = await this.loadSource(request.source);
    this.deps.onEditSource?.(kind);
    const mask = request.mask && toMaskSpec(request.mask);
    const promptEdit = isPromptEdit(request);
    const strength = editStrength(request);
    const image = await infer(() =>
      this.deps.pipeline.edit({ ...request, id, seed, source, mask, regions: toRegionParams(request.regions), strength }, onProgress),
    );
    const maskKey = `results/${id}.mask.png`;
    // A mask edit keeps the source's prompt as the description of the rest; a prompt edit replaces it.
    const [, output] = await Promise.all([
      this.put(maskKey, image.maskPng, 'image/png'),
      this.storeResult(id, image, promptEdit ? request.prompt : source.prompt),
    ]);
    return {
      ...output,
      edit: { maskKey, recomputedFraction: image.recomputedFraction, decodedFraction: image.decodedFraction, source: kind },
    };
  }

  /** The edit's starting point: cached state, or the source image encoded again. */
  private async loadSource(source: EditRequest['source']): Promise<{ source: EditSource; kind: EditSourceKind }> {
    const { pipeline, cache, store } = this.deps;
    if (typeof source !== 'string') {
      const { data, info } = await sharp(Buffer.from(source.image, 'base64')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { source: await infer(() => pipeline.encodeSource(data, info.width, info.height)), kind: 'upload' };
    }
    const cached = await cache.get(source).catch((err) => {
      throw new JobFailure('storage_unavailable', `could not read the cached source ${source}: ${(err as Error).message}`);
    });
    if (cached) return { source: cached.source, kind: cached.from };
    const job = await this.deps.findSourceJob(source);
    if (!job) throw invalid(`source job ${source} no longer exists`);
    const image = await store.get(job.imageKey).catch((err) => {
      throw new JobFailure('storage_unavailable', `could not read the source image: ${(err as Error).message}`);
    });
    const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    return { source: await infer(() => pipeline.encodeSource(data, info.width, info.height, job.prompt)), kind: 'reencoded' };
  }

  /** Stores the image and, for later edits, its state. */
  private async storeResult(id: string, image: RenderedImage, prompt: string | undefined) {
    const key = resultKey(id, image.format);
    const contentType = CONTENT_TYPES[image.format];
    await Promise.all([
      this.put(key, image.data, contentType),
      this.deps.cache
        .put(id, { latent: image.latent, rgb: image.rgb, width: image.width, height: image.height, prompt }, key)
        .catch((err) => console.error(`worker: could not cache ${id} for edits (edits will re-encode it): ${err.message}`)),
    ]);
    return { bucket: this.deps.store.bucket, key, width: image.width, height: image.height, format: image.format, contentType };
  }

  private async put(key: string, body: Buffer, contentType: string): Promise<void> {
    try {
      await this.deps.store.put(key, body, contentType);
    } catch (err) {
      throw new JobFailure('storage_unavailable', `could not store the result: ${(err as Error).message || (err as Error).name}`);
    }
  }
}
