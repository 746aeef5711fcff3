/**
 * The shared stream batch: every denoising job in a worker, whatever its prompt, size or step,
 * shares each tick's UNet calls, packed into as few as the maximum batch allows (lanes grouped by
 * window shape; one timestep per sample). Which lanes a tick runs is fair-share.ts's decision:
 * within a budget of latent cells, shared by cost across tenants, so a job whose step does not
 * fit one tick (a heavy job beside other tenants' work) runs its step's lanes over several ticks
 * — each lane's prediction is kept until the step's last lane has run, then the lanes are fused
 * and the job advances. A small job advances one step per tick. A job added while others are
 * mid-flight joins at the next tick. Besides denoising jobs the batch takes probes: fixed inputs
 * evaluated once, at one timestep, whose lanes share the tick's UNet calls like any other (the
 * prompt-edit probe) and whose predictions are handed back as they are.
 *
 * The engine's state is one map of typed job states; it has no clock and no I/O of its own:
 * the UNet is injected.
 */
import { JobCanceledError } from '@farm/contracts';
import type { Composition, LaneControl, LaneSpec } from './composition';
import { FairShare, PendingWork } from './fair-share';
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
  /** Whose job it is: ticks are shared fairly across tenants (default: one shared tenant). */
  tenant?: string;
  canvas: CanvasShape;
  /** x at the first timestep: pure noise for text-to-image, a noised source for edits. */
  latent: Float32Array;
  /** Descending timesteps from the scheduler: each step's UNet call. */
  timesteps: readonly number[];
  /** Where each step lands (the scheduler's `landings` of the plan): what `advance` moves the latent to. */
  landings: readonly (number | null)[];
  composition: Composition;
  /** The job's own generator for the re-noising noise. */
  rng: GaussianRng;
  /** Called after each step with the x0 estimate of that step. */
  onStep?: (step: number, total: number, denoised: Float32Array) => void;
}

/** A job's steps: its UNet calls' timesteps and where each step lands. */
export type StepPlan = Pick<DenoiseRequest, 'timesteps' | 'landings'>;

/** One UNet evaluation of fixed inputs, without denoising: resolves with each lane's noise prediction. */
export interface ProbeRequest {
  id: string;
  tenant?: string;
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
  /**
   * Most latent cells (h·w over its lanes) one tick runs, shared fairly across tenants
   * (fair-share.ts); a single larger lane runs alone. Default: no limit (every lane every tick).
   */
  tickBudget?: number;
  /** Least cells a tenant earns per tick while tenants compete (default: tickBudget / maxBatch). */
  quantumFloor?: number;
  /** Called after every tick (metrics hook; keep it cheap). */
  onTick?: (report: TickReport) => void;
}

export interface TickReport {
  /** Jobs with lanes in this tick. */
  jobs: number;
  lanes: number;
  /** Sizes of the UNet calls made in this tick. */
  batchSizes: number[];
  /** Latent cells (h·w) over all lanes: the tick's work, whatever its packing. */
  cells: number;
  finished: number;
  /** Lanes left for later ticks (the budget or the tenants' shares held them back). */
  deferred: number;
}

/** A job's current step: its lanes' inputs (computed once per step), and the predictions so far. */
interface StepWork {
  inputs: readonly Float32Array[];
  predictions: (Float32Array | undefined)[];
  missing: number;
}

interface DenoiseState {
  kind: 'denoise';
  request: DenoiseRequest;
  latent: Float32Array;
  step: number;
  work: StepWork | null;
  resolve: (latent: Float32Array) => void;
  reject: (err: Error) => void;
}

interface ProbeState {
  kind: 'probe';
  request: ProbeRequest;
  work: StepWork | null;
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


export class StreamBatch {
  readonly maxBatch: number;
  readonly concurrency: number;
  /** Most latent cells a tick runs (undefined: no limit). */
  readonly tickBudget: number | undefined;
  private readonly jobs = new Map<string, JobState>();
  private readonly onTick?: (report: TickReport) => void;
  private readonly sharedTimestep: boolean;
  private readonly share: FairShare | null;
  /** Tenants with work in the worker beyond their lanes here (fair-share.ts), counted per job. */
  private readonly present = new Map<string, number>();
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
    const budget = (this.tickBudget = options.tickBudget);
    this.share = budget === undefined ? null : new FairShare({ budget, floor: options.quantumFloor ?? budget / this.maxBatch });
  }

  /** Jobs currently denoising. */
  get size(): number {
    return this.jobs.size;
  }


  /**
   * Adds a job; it joins at the next tick. Resolves with its final latent (the last x0
   * estimate). The batch ticks by itself while it holds jobs.
   */
  add(request: DenoiseRequest): Promise<Float32Array> {
    if (this.jobs.has(request.id)) return Promise.reject(new Error(`job ${request.id} is already denoising`));
    if (request.timesteps.length === 0) return Promise.reject(new Error('a job needs at least one timestep'));
    if (request.landings.length !== request.timesteps.length) return Promise.reject(new Error('a job needs a landing for each of its timesteps'));
    const done = new Promise<Float32Array>((resolve, reject) => {
      this.jobs.set(request.id, { kind: 'denoise', request, latent: request.latent, step: 0, work: null, resolve, reject });
    });
    void this.pump();
    return done;
  }

  /**
   * Marks a tenant present in the worker until the returned function is called (a job from its
   * start to its end, I/O included): while present it competes for ticks even without lanes here.
   */
  attend(tenant: string): () => void {
    this.present.set(tenant, (this.present.get(tenant) ?? 0) + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const n = this.present.get(tenant)! - 1;
      if (n === 0) this.present.delete(tenant);
      else this.present.set(tenant, n);
    };
  }

  /** Adds a probe; it runs at the next tick. Resolves with each lane's noise prediction. */
  probe(request: ProbeRequest): Promise<Float32Array[]> {
    if (this.jobs.has(request.id)) return Promise.reject(new Error(`job ${request.id} is already in the batch`));
    if (request.inputs.length !== request.lanes.length) return Promise.reject(new Error('a probe needs one input per lane'));
    const done = new Promise<Float32Array[]>((resolve, reject) => {
      this.jobs.set(request.id, { kind: 'probe', request, work: null, resolve, reject });
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

  /** One tick: the lanes the fair share picks, packed into UNet calls; jobs whose step is complete fuse and advance. */
  private async tick(): Promise<TickReport> {
    const failed = new Map<JobState, Error>();
    const pending: PendingWork[] = [];
    for (const job of this.jobs.values()) {
      if (!job.work) {
        try {
          // Once per step: a composition's inputs may draw from the job's generator (bootstrapping).
          const inputs = job.kind === 'probe' ? job.request.inputs : job.request.composition.inputs(job.latent, timestepOf(job), job.step);
          job.work = { inputs, predictions: new Array(inputs.length), missing: inputs.length };
        } catch (err) {
          failed.set(job, err instanceof Error ? err : new Error(String(err)));
          continue;
        }
      }
      const { predictions } = job.work;
      const lanes = lanesOf(job).flatMap((lane, index) => (predictions[index] ? [] : [{ index, cost: lane.window.h * lane.window.w }]));
      pending.push({ job: job.request.id, tenant: job.request.tenant ?? '', lanes });
    }
    const planned = this.share
      ? this.share.plan(pending, this.present.keys())
      : pending.flatMap((w) => w.lanes.map(({ index }) => ({ job: w.job, index })));

    const groups = new Map<string, { cells: number; lanes: PendingLane[] }>();
    const jobs = new Set<JobState>(failed.keys());
    for (const { job: id, index } of planned) {
      const job = this.jobs.get(id)!;
      jobs.add(job);
      const lane = lanesOf(job)[index];
      // Lanes share a call when everything batched must match: the window shape, and the
      // timestep for models that take one per call.
      const key = `${lane.window.h}x${lane.window.w}${this.sharedTimestep ? `@${timestepOf(job)}` : ''}`;
      const group = groups.get(key) ?? { cells: lane.window.h * lane.window.w, lanes: [] };
      group.lanes.push({ job, index });
      groups.set(key, group);
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
          await this.runChunk(chunk);
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
      const work = job.work!;
      if (work.missing > 0) continue; // the rest of its step runs in later ticks
      job.work = null;
      try {
        const predictions = work.predictions as Float32Array[];
        if (job.kind === 'probe') {
          this.jobs.delete(job.request.id);
          job.resolve(predictions);
          finished++;
        } else if (this.advance(job, work.inputs, predictions)) finished++;
      } catch (err) {
        this.jobs.delete(job.request.id);
        job.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    const waiting = pending.reduce((n, w) => n + w.lanes.length, 0);
    return { jobs: new Set(planned.map((p) => p.job)).size, lanes: planned.length, batchSizes, cells, finished, deferred: waiting - planned.length };
  }

  private async runChunk(chunk: PendingLane[]): Promise<void> {
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
      sample.set(job.work!.inputs[index], i * laneSize);
      context.set(lane.context, i * contextSize);
      for (const [name, rows] of Object.entries(extras)) rows.set(lane.extras![name], i * (rows.length / chunk.length));
      timesteps.push(timestepOf(job));
    });
    // Lanes with and without a control image share the call; the runner sends only the former through the ControlNet.
    const controls = chunk.map(({ job, index }) => lanesOf(job)[index].control);
    const out = await this.runner.unet(sample, timesteps, context, h, w, extras, controls.some(Boolean) ? controls : undefined);
    chunk.forEach(({ job, index }, i) => {
      const work = job.work!;
      work.predictions[index] = out.slice(i * laneSize, (i + 1) * laneSize);
      work.missing--;
    });
  }

  /** Fuses a job's lane predictions into x0 and moves it to its next timestep; true when done. */
  private advance(job: DenoiseState, inputs: readonly Float32Array[], predictions: Float32Array[]): boolean {
    const { request } = job;
    const t = request.timesteps[job.step];
    const last = job.step === request.timesteps.length - 1;
    const denoised = request.composition.fuse(predictions, inputs, t, this.scheduler);
    const noise = request.rng.normals(job.latent.length);
    job.latent = this.scheduler.advance(denoised, job.latent, t, request.landings[job.step], noise);
    job.step++;
    request.onStep?.(job.step, request.timesteps.length, denoised);
    if (!last) return false;
    this.jobs.delete(request.id);
    job.resolve(job.latent);
    return true;
  }
}
