/**
 * What the worker does with one job: re-validate it, render it in the shared stream batch,
 * store the image. Errors carry a reason code; bad input is unrecoverable (no retries), the
 * rest is thrown for BullMQ to retry with backoff.
 */
import { UnrecoverableError } from 'bullmq';
import { CONTENT_TYPES, JobOutput, MaskRequest, RequestLimits, encodeFailure, parseJobRequest } from '@farm/contracts';
import type { DiffusionPipeline, MaskSpec, ProgressListener } from '@farm/pipeline';
import type { ObjectStore } from '@farm/platform';

export interface RenderDeps {
  pipeline: DiffusionPipeline;
  store: ObjectStore;
  limits: RequestLimits;
  workerId: string;
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

export async function renderJob(
  id: string,
  data: unknown,
  deps: RenderDeps,
  onProgress: ProgressListener,
): Promise<JobOutput> {
  const parsed = parseJobRequest(data, deps.limits);
  if (!parsed.ok) {
    const summary = parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    throw new UnrecoverableError(encodeFailure('invalid_job', summary));
  }
  const request = parsed.value;
  const seed = request.seed ?? 0;
  const started = Date.now();
  let image;
  try {
    const regions = request.regions?.map((r) => ({ ...r, mask: toMaskSpec(r.mask) }));
    image = await deps.pipeline.generate({ ...request, id, seed, regions }, onProgress);
  } catch (err) {
    if (err instanceof Error && err.name === 'CanceledError') throw new JobFailure('canceled', err.message);
    if (err instanceof Error && err.name === 'InvalidInputError') throw new UnrecoverableError(encodeFailure('invalid_job', err.message));
    throw new JobFailure('inference_failed', err instanceof Error ? err.message : String(err));
  }
  const key = resultKey(id, request.format);
  const contentType = CONTENT_TYPES[request.format];
  try {
    await deps.store.put(key, image.data, contentType);
  } catch (err) {
    throw new JobFailure('storage_unavailable', `could not store the result: ${(err as Error).message || (err as Error).name}`);
  }
  return {
    bucket: deps.store.bucket,
    key,
    width: image.width,
    height: image.height,
    format: request.format,
    contentType,
    seed,
    computeMs: Date.now() - started,
    workerId: deps.workerId,
  };
}
