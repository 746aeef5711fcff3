/**
 * The ONNX sessions of a Stable Diffusion model folder in the Hugging Face Optimum layout
 * (model_index.json, text_encoder/ [and text_encoder_2/], unet/, vae_decoder/, vae_encoder/,
 * tokenizer/ [and tokenizer_2/], scheduler/), behind a small class: float32 arrays in, float32
 * arrays out. What each session takes (element types, timestep rank, extra conditioning) is
 * read from its metadata and checked once, at load (model-signature.ts); a model the farm
 * cannot serve is refused there with one sentence. The sessions live and run on a model thread
 * of their own (model-thread.ts), so a call never holds the caller's event loop.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { ElementType, readModelFile, upcastFloat16, writeModel } from '@farm/model-tools';
import type { BusyMeter } from './busy-meter';
import { ClipTokenizer } from './clip-tokenizer';
import type { Conditioning, LaneControl } from './composition';
import { Feed, ModelThread, ModelThreadError, ThreadPriority } from './model-thread';
import { ModelSignature, Part, PartSignature, UnsupportedModelError, deriveModelSignature } from './model-signature';
import type { SchedulerConfig } from './noise-schedule';
import { batchBucket } from './unet-budget';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SdModelOptions {
  /** `cpu` (default) or `cuda` (needs onnxruntime-node installed with its CUDA 12 binaries). */
  executionProvider?: ExecutionProvider;
  /** CUDA device id (default 0). */
  cudaDevice?: number;
  /** Intra-op threads per session; 0 (default) lets onnxruntime decide. */
  threads?: number;
  /** Skip loading vae_encoder (only edits and image inputs need it). Default false. */
  skipEncoder?: boolean;
  /** Counts the time spent in model calls (the busy-fraction metric). */
  busy?: BusyMeter;
  /**
   * Run UNet calls padded to power-of-two batch sizes up to this many samples, so few shapes
   * occur (see unet-budget.ts). Default: none (calls run at their own size).
   */
  batchBuckets?: number;
  /** Called if the model thread dies (not when released): no call can run any more. */
  onThreadFailure?: (err: ModelThreadError) => void;
  /**
   * The model thread's nice value, set before its sessions open (default: left as it is). On a
   * machine whose cores the farm's other work shares, a lower value keeps that work from
   * preempting the model.
   */
  threadNice?: number;
}

type Dims = readonly number[];

/** One ONNX session, on the model thread, with its inputs' and outputs' signatures, read from the model. */
class Session {
  private constructor(
    readonly name: string,
    private readonly thread: ModelThread,
    private readonly handle: number,
    readonly signature: PartSignature,
    private readonly busy: BusyMeter | undefined,
  ) {}

  static async open(thread: ModelThread, name: string, model: string | Uint8Array, options: ort.InferenceSession.SessionOptions, busy?: BusyMeter): Promise<Session> {
    const { session, metadata } = await thread.open(model, options);
    return new Session(name, thread, session, metadata, busy);
  }

  private typeOf(name: string): ElementType {
    return this.signature.inputs.find((i) => i.name === name)?.type ?? 'float32';
  }

  /** A float input in whichever float type the model wants (converted on the model thread). */
  floatInput(name: string, data: Float32Array, dims: Dims): Feed {
    const type = this.typeOf(name);
    if (type !== 'float16' && type !== 'float32') throw new Error(`${this.name}: input ${name} has unsupported type ${type}`);
    return { type, values: data, dims };
  }

  /** A number-valued input (token ids, timesteps) in the model's type; integers truncate, as numpy's casts. */
  numberInput(name: string, values: readonly number[], dims: Dims): Feed {
    const type = this.typeOf(name);
    if (!NUMBER_TYPES.includes(type)) throw new Error(`${this.name}: input ${name} has unsupported type ${type}`);
    return { type, values: Float64Array.from(values), dims };
  }

  /** Runs on the model thread and returns the named outputs as float32; the time it ran counts as busy. */
  async run(feeds: Record<string, Feed>, outputs: readonly string[]): Promise<{ data: Float32Array; dims: number[] }[]> {
    const { outputs: results, started, ended } = await this.thread.run(this.handle, feeds, outputs);
    this.busy?.record(this.name, started - performance.timeOrigin, ended - performance.timeOrigin);
    return results;
  }

  release(): Promise<void> {
    return this.thread.release(this.handle);
  }
}

const NUMBER_TYPES: readonly ElementType[] = ['int64', 'int32', 'float32', 'float16'];

export interface SdModelInfo {
  dir: string;
  /** Width of the UNet's context (cross-attention dim): the text encoders' widths summed. */
  hiddenSize: number;
  latentChannels: number;
  /** VAE spatial factor: image pixels per latent cell. */
  vaeScale: number;
  /** Latent sides must be multiples of this for the UNet (2^(down blocks - 1)). */
  latentAlignment: number;
  /** The latent side the UNet was trained at (config `sample_size`; 64 for SD 1.x at 512 px). */
  sampleSize: number;
  scalingFactor: number;
  /** The kinds of control image its ControlNet was trained for (controlnet/config.json `conditioning_types`; none without one). */
  controlTypes: string[];
  /** The UNet's widest block (largest of block_out_channels) and its weights' size in bytes. */
  unetChannels: number;
  unetBytes: number;
  /**
   * The unconditional lane of a job with no negative prompt is conditioned on zeros (context and
   * pooled embedding), not on the encoded "": model_index.json's `force_zeros_for_empty_prompt`,
   * which diffusers' SDXL pipelines default to true (v0.40.0, pipeline_stable_diffusion_xl.py).
   */
  zerosForNoNegativePrompt: boolean;
}

/** A prompt's text conditioning: the context [L, D] and, for SDXL, the pooled embedding. */
export interface TextConditioning {
  context: Float32Array;
  pooled?: Float32Array;
}

/** What a job adds to its lanes' conditioning: its size (SDXL time_ids) and guidance scale (LCM's embedding). */
export interface JobConditioning {
  width: number;
  height: number;
  guidanceScale: number;
}

async function readJson<T>(file: string, fallback?: T): Promise<T> {
  if (!existsSync(file)) {
    if (fallback !== undefined) return fallback;
    throw new UnsupportedModelError(`${path.basename(path.dirname(file))}/${path.basename(file)} is missing`);
  }
  return JSON.parse(await readFile(file, 'utf8')) as T;
}

/** Bytes of a part's files (model.onnx and its external weights). */
async function folderBytes(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  const sizes = await Promise.all((await readdir(dir)).map(async (f) => (await stat(path.join(dir, f))).size));
  return sizes.reduce((a, b) => a + b, 0);
}

/** diffusers' get_guidance_scale_embedding: sin/cos of w·1000 at `dims`/2 frequencies. */
export function guidanceEmbedding(w: number, dims: number): Float32Array {
  const half = Math.floor(dims / 2);
  const step = Math.fround(Math.log(10000) / (half - 1));
  const out = new Float32Array(dims);
  for (let i = 0; i < half; i++) {
    const x = Math.fround(Math.fround(w * 1000) * Math.fround(Math.exp(-step * i)));
    out[i] = Math.sin(x);
    out[half + i] = Math.cos(x);
  }
  return out;
}

export class SdModel {
  private constructor(
    readonly info: SdModelInfo,
    readonly signature: ModelSignature,
    private readonly tokenizers: ClipTokenizer[],
    readonly schedulerConfig: Partial<SchedulerConfig>,
    private readonly thread: ModelThread,
    private readonly sessions: Map<Part, Session>,
    /** What became of `threadNice` (null: none was asked for). */
    readonly threadPriority: ThreadPriority | null,
    private readonly batchBuckets?: number,
  ) {}

  /** The zero residuals of uncontrolled calls, made once. */
  private zeros?: Record<string, Feed>;

  /** The first tokenizer (its max length is the context's). */
  get tokenizer(): ClipTokenizer {
    return this.tokenizers[0];
  }

  /**
   * Loads and checks the folder, its sessions on a model thread of their own (model-thread.ts); an
   * UnsupportedModelError names what is missing.
   */
  static async load(dir: string, options: SdModelOptions = {}): Promise<SdModel> {
    const root = path.resolve(dir);
    if (!existsSync(path.join(root, 'model_index.json'))) {
      throw new UnsupportedModelError(`${root} is not an ONNX Stable Diffusion folder (no model_index.json)`);
    }
    const thread = new ModelThread(options.onThreadFailure);
    try {
      const priority = options.threadNice === undefined ? null : await thread.prioritize(options.threadNice);
      return await SdModel.loadOn(thread, root, options, priority);
    } catch (err) {
      await thread.close();
      throw err;
    }
  }

  private static async loadOn(thread: ModelThread, root: string, options: SdModelOptions, priority: ThreadPriority | null): Promise<SdModel> {
    const provider: ort.InferenceSession.ExecutionProviderConfig =
      options.executionProvider === 'cuda' ? { name: 'cuda', deviceId: options.cudaDevice ?? 0 } : 'cpu';
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      // Intra-op threads block as soon as a run ends instead of spin-waiting: every session has
      // its own pool, and threads still spinning after a UNet call took the cores from the
      // decoder that follows it, from the JS thread and from image encoding. On 2 cores a decode
      // after the UNet ran 1.5× slower and the whole farm (`npm run bench:e2e`) made a quarter
      // fewer images/s; the UNet calls' own times moved within the machine's noise.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    };
    const file = (part: Part) => path.join(root, part, 'model.onnx');
    const configOf = (part: string) => readJson<Record<string, unknown>>(path.join(root, part, 'config.json'), {});
    const [pipelineConfig, unetConfig, vaeConfig, controlConfig, schedulerConfig] = await Promise.all([
      readJson<Record<string, unknown>>(path.join(root, 'model_index.json')),
      configOf('unet'),
      configOf('vae_decoder'),
      configOf('controlnet'),
      readJson<Partial<SchedulerConfig>>(path.join(root, 'scheduler', 'scheduler_config.json')),
    ]);
    const parts: Part[] = ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'controlnet', ...(options.skipEncoder ? [] : ['vae_encoder' as const])];
    const sessions = new Map<Part, Session>();
    await Promise.all(
      parts.filter((part) => existsSync(file(part))).map(async (part) => sessions.set(part, await Session.open(thread, part, file(part), sessionOptions, options.busy))),
    );
    const hiddenSizes: Partial<Record<Part, number>> = {};
    for (const part of ['text_encoder', 'text_encoder_2'] as const) {
      const size = Number((await configOf(part)).hidden_size);
      if (size > 0) hiddenSizes[part] = size;
    }
    const signatures = Object.fromEntries([...sessions].map(([part, s]) => [part, s.signature]));
    const signature = deriveModelSignature(signatures, hiddenSizes);

    // diffusers' force_upcast (AutoencoderKL's default): an fp16 decoder runs in fp32, since
    // SDXL's VAE overflows fp16 to NaN (black images). The graph itself is upcast at load.
    if (signature.decoderType === 'float16' && vaeConfig.force_upcast !== false) {
      const upcast = writeModel(upcastFloat16(readModelFile(file('vae_decoder')), path.join(root, 'vae_decoder')));
      await sessions.get('vae_decoder')!.release();
      sessions.set('vae_decoder', await Session.open(thread, 'vae_decoder', upcast, sessionOptions, options.busy));
    }
    const tokenizerDirs = signature.textEncoders.map((e) => path.join(root, e.part === 'text_encoder' ? 'tokenizer' : 'tokenizer_2'));
    for (const tokenizerDir of tokenizerDirs) {
      if (!existsSync(tokenizerDir)) throw new UnsupportedModelError(`${path.basename(tokenizerDir)}/ is missing`);
    }
    const tokenizers = await Promise.all(tokenizerDirs.map((d) => ClipTokenizer.load(d)));
    const unetBlocks = Array.isArray(unetConfig.block_out_channels) ? unetConfig.block_out_channels.length : 4;
    const info: SdModelInfo = {
      dir: root,
      hiddenSize: signature.contextWidth,
      latentChannels: signature.latentChannels,
      vaeScale: 1,
      latentAlignment: Number(unetConfig.latent_alignment ?? 2 ** (unetBlocks - 1)),
      sampleSize: Number(unetConfig.sample_size ?? 64),
      scalingFactor: Number(vaeConfig.scaling_factor ?? 0.18215),
      controlTypes: sessions.has('controlnet') ? ((controlConfig.conditioning_types as string[] | undefined) ?? ['control']) : [],
      unetChannels: Array.isArray(unetConfig.block_out_channels) ? Math.max(...(unetConfig.block_out_channels as number[])) : 1280,
      unetBytes: await folderBytes(path.join(root, 'unet')),
      zerosForNoNegativePrompt: Boolean(pipelineConfig.force_zeros_for_empty_prompt ?? /StableDiffusionXL/.test(String(pipelineConfig._class_name))),
    };
    const model = new SdModel(info, signature, tokenizers, schedulerConfig, thread, sessions, priority, options.batchBuckets);
    info.vaeScale = await model.measureVaeScale();
    return model;
  }

  private session(part: Part): Session {
    const session = this.sessions.get(part);
    if (!session) throw new Error(`this model was loaded without its ${part}`);
    return session;
  }

  /**
   * Pixels per latent cell, measured by decoding a tiny latent: configs describe the VAE's blocks
   * in more than one way, the graph itself cannot be wrong.
   */
  private async measureVaeScale(): Promise<number> {
    const side = 8;
    const decoder = this.session('vae_decoder');
    const probe = decoder.floatInput('latent_sample', new Float32Array(this.info.latentChannels * side * side), [1, this.info.latentChannels, side, side]);
    const [{ dims }] = await decoder.run({ latent_sample: probe }, ['sample']);
    return dims[dims.length - 1] / side;
  }

  /** Text conditioning of n prompts: each encoder's chosen hidden state, joined along the width. */
  async encodeText(prompts: readonly string[]): Promise<TextConditioning[]> {
    const outputs = await Promise.all(
      this.signature.textEncoders.map(async (use, i) => {
        const tokenizer = this.tokenizers[i];
        const ids = prompts.flatMap((p) => tokenizer.encode(p));
        const session = this.session(use.part);
        const names = [use.hidden, ...(use.pooled ? [use.pooled] : [])];
        const [hidden, pooled] = await session.run({ input_ids: session.numberInput('input_ids', ids, [prompts.length, tokenizer.maxLength]) }, names);
        return { use, hidden: hidden.data, pooled: pooled?.data, length: tokenizer.maxLength };
      }),
    );
    const length = outputs[0].length;
    const width = this.signature.contextWidth;
    return prompts.map((_, p) => {
      const context = new Float32Array(length * width);
      let offset = 0;
      for (const { use, hidden } of outputs) {
        for (let t = 0; t < length; t++) {
          context.set(hidden.subarray((p * length + t) * use.width, (p * length + t + 1) * use.width), t * width + offset);
        }
        offset += use.width;
      }
      const pooledOut = outputs.find((o) => o.pooled);
      const pooledWidth = pooledOut ? pooledOut.pooled!.length / prompts.length : 0;
      return { context, ...(pooledOut ? { pooled: pooledOut.pooled!.slice(p * pooledWidth, (p + 1) * pooledWidth) } : {}) };
    });
  }

  /** The text conditioning of no prompt at all: zeros as wide as a prompt's (force_zeros_for_empty_prompt). */
  noText(): TextConditioning {
    const context = new Float32Array(this.tokenizer.maxLength * this.signature.contextWidth);
    const pooled = this.signature.extras.find((e) => e.name === 'text_embeds');
    return pooled ? { context, pooled: new Float32Array(pooled.width) } : { context };
  }

  /** True when the model embeds the guidance scale (LCM's timestep_cond) instead of running CFG. */
  get embedsGuidance(): boolean {
    return this.signature.extras.some((e) => e.name === 'timestep_cond');
  }

  /**
   * A lane's full conditioning: the prompt's context plus the UNet's extra inputs — SDXL's pooled
   * text_embeds and time_ids [h, w, 0, 0, h, w] (original size, crop origin, target size, as
   * diffusers' _get_add_time_ids), LCM's guidance embedding of w = guidanceScale − 1.
   */
  conditioning(text: TextConditioning, job: JobConditioning): Conditioning {
    const extras: Record<string, Float32Array> = {};
    for (const { name, width } of this.signature.extras) {
      if (name === 'text_embeds') extras[name] = text.pooled!;
      else if (name === 'time_ids') extras[name] = Float32Array.from([job.height, job.width, 0, 0, job.height, job.width]);
      else extras[name] = guidanceEmbedding(job.guidanceScale - 1, width);
    }
    return { context: text.context, extras };
  }

  /** One timestep per call (rank-0 timestep exports) rather than one per sample. */
  get sharedTimestep(): boolean {
    return this.signature.timestep.shared;
  }

  /**
   * One UNet call over a batch: samples [B,C,h,w] (concatenated), one timestep per sample (all
   * equal for rank-0 exports), contexts [B,L,D] and each extra input [B,width] (concatenated).
   * Lanes with a control image go through the ControlNet first (the others get zero residuals).
   * Returns the model's prediction [B,C,h,w].
   */
  async unet(
    sample: Float32Array,
    timesteps: readonly number[],
    context: Float32Array,
    h: number,
    w: number,
    extras: Readonly<Record<string, Float32Array>> = {},
    controls?: readonly (LaneControl | undefined)[],
  ): Promise<Float32Array> {
    const n = timesteps.length;
    const bucket = this.batchBuckets ? batchBucket(n, Math.max(n, this.batchBuckets)) : n;
    if (bucket > n) {
      // Padded with copies of the last sample; their predictions are dropped.
      const pad = (x: Float32Array) => {
        const row = x.length / n;
        const out = new Float32Array(bucket * row);
        out.set(x);
        for (let i = n; i < bucket; i++) out.set(x.subarray((n - 1) * row), i * row);
        return out;
      };
      const padded = Object.fromEntries(Object.entries(extras).map(([k, v]) => [k, pad(v)]));
      const times = [...timesteps, ...Array<number>(bucket - n).fill(timesteps[n - 1])];
      const paddedControls = controls && [...controls, ...Array(bucket - n).fill(controls[n - 1])];
      return (await this.runUnet(pad(sample), times, pad(context), h, w, padded, paddedControls)).slice(0, sample.length);
    }
    return this.runUnet(sample, timesteps, context, h, w, extras, controls);
  }

  private async runUnet(
    sample: Float32Array,
    timesteps: readonly number[],
    context: Float32Array,
    h: number,
    w: number,
    extras: Readonly<Record<string, Float32Array>>,
    controls?: readonly (LaneControl | undefined)[],
  ): Promise<Float32Array> {
    const unet = this.session('unet');
    const b = timesteps.length;
    const c = this.info.latentChannels;
    const D = this.signature.contextWidth;
    if (this.sharedTimestep && timesteps.some((t) => t !== timesteps[0])) {
      throw new Error('this UNet takes one timestep per call; lanes of different timesteps were batched together');
    }
    const feeds: Record<string, Feed> = {
      sample: unet.floatInput('sample', sample, [b, c, h, w]),
      timestep: this.sharedTimestep ? unet.numberInput('timestep', [timesteps[0]], []) : unet.numberInput('timestep', timesteps, [b]),
      encoder_hidden_states: unet.floatInput('encoder_hidden_states', context, [b, context.length / b / D, D]),
    };
    for (const { name, width } of this.signature.extras) {
      const data = extras[name];
      if (!data || data.length !== b * width) throw new Error(`the UNet's ${name} needs ${width} values per sample`);
      feeds[name] = unet.floatInput(name, data, [b, width]);
    }
    Object.assign(feeds, controls ? await this.controlResiduals({ sample, timesteps, context, h, w }, controls) : this.zeroResiduals());
    return (await unet.run(feeds, ['out_sample']))[0].data;
  }

  /** Zeros that broadcast to each ControlNet residual ([1, C, 1, 1]), for UNets that take them, run without control. */
  private zeroResiduals(): Record<string, Feed> {
    if (!this.zeros) {
      const unet = this.session('unet');
      this.zeros = Object.fromEntries(this.signature.controlResiduals.map((r) => [r.input, unet.floatInput(r.input, new Float32Array(r.channels), [1, r.channels, 1, 1])]));
    }
    return this.zeros;
  }

  /**
   * The UNet's residual feeds for a batch: the ControlNet runs on the rows that have a control
   * image (their samples, timesteps and contexts), each row's residuals times its scale; the other rows get zeros.
   */
  private async controlResiduals(
    batch: { sample: Float32Array; timesteps: readonly number[]; context: Float32Array; h: number; w: number },
    controls: readonly (LaneControl | undefined)[],
  ): Promise<Record<string, Feed>> {
    const controlnet = this.session('controlnet');
    const { h, w } = batch;
    const b = controls.length;
    const rows = controls.flatMap((c, i) => (c ? [i] : []));
    const pick = (data: Float32Array) => {
      const size = data.length / b;
      const out = new Float32Array(rows.length * size);
      rows.forEach((row, i) => out.set(data.subarray(row * size, (row + 1) * size), i * size));
      return out;
    };
    const s = this.info.vaeScale;
    const imageSize = 3 * h * s * w * s;
    const images = new Float32Array(rows.length * imageSize);
    rows.forEach((row, i) => images.set(controls[row]!.image, i * imageSize));
    const D = this.signature.contextWidth;
    const oneTimestep = controlnet.signature.inputs.find((i) => i.name === 'timestep')!.dims.length === 0;
    const residuals = await controlnet.run(
      {
        sample: controlnet.floatInput('sample', pick(batch.sample), [rows.length, this.info.latentChannels, h, w]),
        timestep: oneTimestep ? controlnet.numberInput('timestep', [batch.timesteps[0]], []) : controlnet.numberInput('timestep', rows.map((row) => batch.timesteps[row]), [rows.length]),
        encoder_hidden_states: controlnet.floatInput('encoder_hidden_states', pick(batch.context), [rows.length, batch.context.length / b / D, D]),
        controlnet_cond: controlnet.floatInput('controlnet_cond', images, [rows.length, 3, h * s, w * s]),
      },
      this.signature.controlResiduals.map((r) => r.output!),
    );
    const unet = this.session('unet');
    return Object.fromEntries(
      this.signature.controlResiduals.map((r, k) => {
        const { data, dims } = residuals[k];
        const size = data.length / rows.length;
        const full = new Float32Array(b * size);
        rows.forEach((row, i) => {
          const scale = controls[row]!.scale;
          for (let j = 0; j < size; j++) full[row * size + j] = data[i * size + j] * scale;
        });
        return [r.input, unet.floatInput(r.input, full, [b, ...dims.slice(1)])];
      }),
    );
  }

  /** Latents [B,C,h,w] (unscaled by the pipeline, i.e. as the UNet sees them) → images [B,3,H,W] in [-1,1]. */
  async decode(latents: Float32Array, batch: number, h: number, w: number): Promise<Float32Array> {
    const decoder = this.session('vae_decoder');
    const scaled = new Float32Array(latents.length);
    const inv = 1 / this.info.scalingFactor;
    for (let i = 0; i < latents.length; i++) scaled[i] = latents[i] * inv;
    const input = decoder.floatInput('latent_sample', scaled, [batch, this.info.latentChannels, h, w]);
    return (await decoder.run({ latent_sample: input }, ['sample']))[0].data;
  }

  /**
   * Images [B,3,H,W] in [-1,1] → latents [B,C,H/s,W/s] scaled for the UNet. From
   * `latent_parameters` (mean ‖ log-variance) the mean is taken: deterministic, as diffusers'
   * `latent_dist.mode()`; older exports' `latent_sample` is used as it comes.
   */
  async encode(images: Float32Array, batch: number, height: number, width: number): Promise<Float32Array> {
    const encoder = this.session('vae_encoder');
    const output = this.signature.encoderOutput!;
    const input = encoder.floatInput('sample', images, [batch, 3, height, width]);
    const [{ data, dims }] = await encoder.run({ sample: input }, [output.name]);
    const c = this.info.latentChannels;
    const plane = dims[2] * dims[3];
    const out = new Float32Array(batch * c * plane);
    for (let b = 0; b < batch; b++) out.set(data.subarray(b * dims[1] * plane, (b * dims[1] + c) * plane), b * c * plane);
    for (let i = 0; i < out.length; i++) out[i] *= this.info.scalingFactor;
    return out;
  }

  /** Releases the sessions and stops the model thread; later calls reject with ModelThreadError. */
  async release(): Promise<void> {
    // Stopping the thread frees what a release that failed (a thread that died) left.
    await Promise.allSettled([...this.sessions.values()].map((s) => s.release()));
    await this.thread.close();
  }
}
