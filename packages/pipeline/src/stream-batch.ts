/**
 * The shared stream batch: every denoising job in a worker, whatever its prompt, size or step,
 * advances one step per tick, and each tick packs all of their lanes into as few UNet calls as
 * the maximum batch allows (lanes grouped by window shape; one timestep per sample). A job
 * added while others are mid-flight joins at the next tick. Besides denoising jobs the batch
 * takes probes: fixed inputs evaluated once, at one timestep, whose lanes share the tick's UNet
 * calls like any other (the prompt-edit probe) and whose predictions are handed back as they are.
 *
 * The engine's state is one map of typed job states; it has no clock and no I/O of its own:
 * the UNet is injected.
 */
import { JobCanceledError } from '@farm/contracts';
import type { Composition, LaneControl, LaneSpec } from './composition';
import { GaussianRng } from './gaussian-rng';
import type { CanvasShape } from './latent-window';
import type { Scheduler } from './scheduler';

/** The UNet as the engine sees it (SdModel implements it). */
export interface UNetRunner {
  /**
   * `extras`: the lanes' extra conditioning inputs, each [B, width] concatenated (see Conditioning);
   * `controls`: each lane's ControlNet input or undefined (absent when no lane of the call has one).
   */
  unet(
    sample: Float32Array,
    timesteps: readonly number[],
    context: Float32Array,
    h: number,
    w: number,
    extras?: Readonly<Record<string, Float32Array>>,
    controls?: readonly (LaneControl | undefined)[],
  ): Promise<Float32Array>;
}

export interface DenoiseRequest {
  id: string;
  canvas: CanvasShape;
  /** x at the first timestep: pure noise for text-to-image, a noised source for edits. */
  latent: Float32Array;
  /** Descending timesteps from the scheduler. */
  timesteps: readonly number[];
  composition: Composition;
  /** The job's own generator for the re-noising noise. */
  rng: GaussianRng;
  /** Called after each step with the x0 estimate of that step. */
  onStep?: (step: number, total: number, denoised: Float32Array) => void;
}

/** One UNet evaluation of fixed inputs, without denoising: resolves with each lane's noise prediction. */
export interface ProbeRequest {
  id: string;
  /** The canvas the lanes' windows lie on (its channels are the inputs'). */
  canvas: CanvasShape;
  timestep: number;
  lanes: readonly LaneSpec[];
  /** Each lane's input, window-shaped. */
  inputs: readonly Float32Array[];
}

export interface StreamBatchOptions {
  /** Most lanes in one UNet call (default 8). */
  maxBatch?: number;
  /** UNet calls of one tick run at once (default 1; more can help on GPUs with spare capacity). */
  concurrency?: number;
  /**
   * The UNet takes one timestep per call (rank-0 exports) rather than one per sample: lanes then
   * share a call only with lanes at the same timestep (default false).
   */
  sharedTimestep?: boolean;
  /** Called after every tick (metrics hook; keep it cheap). */
  onTick?: (report: TickReport) => void;
}

export interface TickReport {
  jobs: number;
  lanes: number;
  /** Sizes of the UNet calls made in this tick. */
  batchSizes: number[];
  /** Latent cells (h·w) over all lanes: the tick's work, whatever its packing. */
  cells: number;
  finished: number;
}

interface DenoiseState {
  kind: 'denoise';
  request: DenoiseRequest;
  latent: Float32Array;
  step: number;
  resolve: (latent: Float32Array) => void;
  reject: (err: Error) => void;
}

interface ProbeState {
  kind: 'probe';
  request: ProbeRequest;
  resolve: (predictions: Float32Array[]) => void;
  reject: (err: Error) => void;
}

type JobState = DenoiseState | ProbeState;

const lanesOf = (job: JobState): readonly LaneSpec[] => (job.kind === 'probe' ? job.request.lanes : job.request.composition.lanes);
const timestepOf = (job: JobState): number => (job.kind === 'probe' ? job.request.timestep : job.request.timesteps[job.step]);

interface PendingLane {
  job: JobState;
  index: number;
}

/** One job's lanes in this tick: their inputs, then their predictions. */
interface TickLanes {
  inputs: readonly Float32Array[];
  predictions: Float32Array[];
}

export class StreamBatch {
  readonly maxBatch: number;
  readonly concurrency: number;
  private readonly jobs = new Map<string, JobState>();
  private readonly onTick?: (report: TickReport) => void;
  private readonly sharedTimestep: boolean;
  private running = false;

  constructor(
    private readonly runner: UNetRunner,
    readonly scheduler: Scheduler,
    options: StreamBatchOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 8;
    this.onTick = options.onTick;
    this.sharedTimestep = options.sharedTimestep ?? false;
    this.concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new Error(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) {
      throw new Error(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    }
  }

  /** Jobs currently denoising. */
  get size(): number {
    return this.jobs.size;
  }

  /** Lanes the next tick will run. */
  get laneCount(): number {
    let n = 0;
    for (const job of this.jobs.values()) n += lanesOf(job).length;
    return n;
  }

  /**
   * Adds a job; it joins at the next tick. Resolves with its final latent (the last x0
   * estimate). The batch ticks by itself while it holds jobs.
   */
  add(request: DenoiseRequest): Promise<Float32Array> {
    if (this.jobs.has(request.id)) return Promise.reject(new Error(`job ${request.id} is already denoising`));
    if (request.timesteps.length === 0) return Promise.reject(new Error('a job needs at least one timestep'));
    const done = new Promise<Float32Array>((resolve, reject) => {
      this.jobs.set(request.id, { kind: 'denoise', request, latent: request.latent, step: 0, resolve, reject });
    });
    void this.pump();
    return done;
  }

  /** Adds a probe; it runs at the next tick. Resolves with each lane's noise prediction. */
  probe(request: ProbeRequest): Promise<Float32Array[]> {
    if (this.jobs.has(request.id)) return Promise.reject(new Error(`job ${request.id} is already in the batch`));
    if (request.inputs.length !== request.lanes.length) return Promise.reject(new Error('a probe needs one input per lane'));
    const done = new Promise<Float32Array[]>((resolve, reject) => {
      this.jobs.set(request.id, { kind: 'probe', request, resolve, reject });
    });
    void this.pump();
    return done;
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      // Before each tick, one turn of the event loop: jobs added meanwhile (in the same turn, or
      // as others left at the end of the last tick) join it, and pending I/O callbacks run.
      for (;;) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.jobs.size === 0) break;
        const report = await this.tick();
        this.onTick?.(report);
      }
    } finally {
      this.running = false;
    }
  }

  /** Takes a job out of the batch; its promise rejects with JobCanceledError. */
  cancel(id: string, reason = 'canceled'): boolean {
    const job = this.jobs.get(id);
    if (!job) return false;
    this.jobs.delete(id);
    job.reject(new JobCanceledError(reason));
    return true;
  }

  /** One step for every job: pack lanes, run the UNet, fuse, advance. */
  private async tick(): Promise<TickReport> {
    const jobs = [...this.jobs.values()];
    const lanes = new Map<JobState, TickLanes>();
    const groups = new Map<string, { cells: number; lanes: PendingLane[] }>();
    const failed = new Map<JobState, Error>();
    for (const job of jobs) {
      try {
        const inputs = job.kind === 'probe' ? job.request.inputs : job.request.composition.inputs(job.latent, timestepOf(job), job.step);
        lanes.set(job, { inputs, predictions: new Array(inputs.length) });
      } catch (err) {
        failed.set(job, err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      lanesOf(job).forEach((lane, index) => {
        // Lanes share a call when everything batched must match: the window shape, and the
        // timestep for models that take one per call.
        const key = `${lane.window.h}x${lane.window.w}${this.sharedTimestep ? `@${timestepOf(job)}` : ''}`;
        const group = groups.get(key) ?? { cells: lane.window.h * lane.window.w, lanes: [] };
        group.lanes.push({ job, index });
        groups.set(key, group);
      });
    }

    let cells = 0;
    const chunks: PendingLane[][] = [];
    for (const group of groups.values()) {
      cells += group.cells * group.lanes.length;
      for (let start = 0; start < group.lanes.length; start += this.maxBatch) {
        chunks.push(group.lanes.slice(start, start + this.maxBatch));
      }
    }
    const batchSizes = chunks.map((chunk) => chunk.length);
    // Up to `concurrency` UNet calls at once (onnxruntime sessions take concurrent runs).
    let next = 0;
    const runner = async () => {
      while (next < chunks.length) {
        const chunk = chunks[next++];
        try {
          await this.runChunk(chunk, lanes);
        } catch (err) {
          for (const lane of chunk) failed.set(lane.job, err instanceof Error ? err : new Error(String(err)));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, chunks.length) }, runner));

    let finished = 0;
    for (const job of jobs) {
      if (this.jobs.get(job.request.id) !== job) continue; // canceled during the tick
      const error = failed.get(job);
      if (error) {
        this.jobs.delete(job.request.id);
        job.reject(error);
        continue;
      }
      try {
        if (job.kind === 'probe') {
          this.jobs.delete(job.request.id);
          job.resolve(lanes.get(job)!.predictions);
          finished++;
        } else if (this.advance(job, lanes.get(job)!)) finished++;
      } catch (err) {
        this.jobs.delete(job.request.id);
        job.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return { jobs: jobs.length, lanes: batchSizes.reduce((a, b) => a + b, 0), batchSizes, cells, finished };
  }

  private async runChunk(chunk: PendingLane[], lanes: Map<JobState, TickLanes>): Promise<void> {
    const first = lanesOf(chunk[0].job)[chunk[0].index];
    const { h, w } = first.window;
    const channels = chunk[0].job.request.canvas.channels;
    const laneSize = channels * h * w;
    const contextSize = first.context.length;
    const sample = new Float32Array(chunk.length * laneSize);
    const context = new Float32Array(chunk.length * contextSize);
    const timesteps: number[] = [];
    const extras: Record<string, Float32Array> = {};
    for (const [name, row] of Object.entries(first.extras ?? {})) extras[name] = new Float32Array(chunk.length * row.length);
    chunk.forEach(({ job, index }, i) => {
      const lane = lanesOf(job)[index];
      sample.set(lanes.get(job)!.inputs[index], i * laneSize);
      context.set(lane.context, i * contextSize);
      for (const [name, rows] of Object.entries(extras)) rows.set(lane.extras![name], i * (rows.length / chunk.length));
      timesteps.push(timestepOf(job));
    });
    // Lanes with and without a control image share the call; the runner sends only the former through the ControlNet.
    const controls = chunk.map(({ job, index }) => lanesOf(job)[index].control);
    const out = await this.runner.unet(sample, timesteps, context, h, w, extras, controls.some(Boolean) ? controls : undefined);
    chunk.forEach(({ job, index }, i) => {
      lanes.get(job)!.predictions[index] = out.slice(i * laneSize, (i + 1) * laneSize);
    });
  }

  /** Fuses a job's lane predictions into x0 and moves it to its next timestep; true when done. */
  private advance(job: DenoiseState, { inputs, predictions }: TickLanes): boolean {
    const { request } = job;
    const t = request.timesteps[job.step];
    const last = job.step === request.timesteps.length - 1;
    const prev = last ? null : request.timesteps[job.step + 1];
    const denoised = request.composition.fuse(predictions, inputs, t, this.scheduler);
    const noise = request.rng.normals(job.latent.length);
    job.latent = this.scheduler.advance(denoised, job.latent, t, prev, noise);
    job.step++;
    request.onStep?.(job.step, request.timesteps.length, denoised);
    if (!last) return false;
    this.jobs.delete(request.id);
    job.resolve(job.latent);
    return true;
  }
}
