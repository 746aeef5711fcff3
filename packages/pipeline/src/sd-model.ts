/**
 * The ONNX sessions of a Stable Diffusion model folder in the Hugging Face Optimum layout
 * (model_index.json, text_encoder/, unet/, vae_decoder/, vae_encoder/, tokenizer/, scheduler/),
 * behind a small class: float32 arrays in, float32 arrays out. Input dtypes (int32/int64/float
 * timesteps, fp16 or fp32 tensors) are read from each session's metadata, never assumed.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ClipTokenizer } from './clip-tokenizer';
import { fromFloat16, toFloat16 } from '@farm/model-tools';
import type { SchedulerConfig } from './noise-schedule';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SdModelOptions {
  /** `cpu` (default) or `cuda` (needs onnxruntime-node installed with its CUDA 12 binaries). */
  executionProvider?: ExecutionProvider;
  /** Intra-op threads per session; 0 (default) lets onnxruntime decide. */
  threads?: number;
  /** Skip loading vae_encoder (only edits and image inputs need it). Default false. */
  skipEncoder?: boolean;
}

type Dims = readonly number[];

/** One ONNX session with its input element types, read from the model. */
class Session {
  private constructor(
    readonly name: string,
    private readonly session: ort.InferenceSession,
    private readonly inputTypes: ReadonlyMap<string, string>,
  ) {}

  static async open(file: string, options: ort.InferenceSession.SessionOptions): Promise<Session> {
    if (!existsSync(file)) throw new Error(`model file missing: ${file}`);
    const session = await ort.InferenceSession.create(file, options);
    const types = new Map<string, string>();
    for (const meta of session.inputMetadata) {
      if (meta.isTensor) types.set(meta.name, meta.type);
    }
    return new Session(path.basename(path.dirname(file)), session, types);
  }

  hasInput(name: string): boolean {
    return this.inputTypes.has(name);
  }

  /** A float tensor in whichever float type the model wants. */
  floatInput(name: string, data: Float32Array, dims: Dims): ort.Tensor {
    const type = this.inputTypes.get(name) ?? 'float32';
    if (type === 'float16') return new ort.Tensor('float16', toFloat16(data), dims);
    if (type !== 'float32') throw new Error(`${this.name}: input ${name} has unsupported type ${type}`);
    return new ort.Tensor('float32', data, dims);
  }

  /** An integer-valued tensor (token ids, timesteps) in the model's type for that input. */
  numberInput(name: string, values: readonly number[], dims: Dims): ort.Tensor {
    const type = this.inputTypes.get(name) ?? 'int64';
    switch (type) {
      case 'int64':
        return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(Math.round(v))), dims);
      case 'int32':
        return new ort.Tensor('int32', Int32Array.from(values), dims);
      case 'float32':
        return new ort.Tensor('float32', Float32Array.from(values), dims);
      case 'float16':
        return new ort.Tensor('float16', toFloat16(Float32Array.from(values)), dims);
      default:
        throw new Error(`${this.name}: input ${name} has unsupported type ${type}`);
    }
  }

  async run(feeds: Record<string, ort.Tensor>, output: string): Promise<{ data: Float32Array; dims: number[] }> {
    const results = await this.session.run(feeds);
    const tensor = results[output] ?? results[this.session.outputNames[0]];
    try {
      const data =
        tensor.type === 'float16' ? fromFloat16(tensor.data as Uint16Array) : (tensor.data as Float32Array);
      if (!(data instanceof Float32Array)) throw new Error(`${this.name}: output ${output} is ${tensor.type}`);
      return { data, dims: [...tensor.dims] };
    } finally {
      for (const t of Object.values(results)) if (t !== tensor) t.dispose();
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export interface SdModelInfo {
  dir: string;
  /** Width of one text-encoder hidden state (cross-attention dim). */
  hiddenSize: number;
  latentChannels: number;
  /** VAE spatial factor: image pixels per latent cell. */
  vaeScale: number;
  /** Latent sides must be multiples of this for the UNet (2^(down blocks - 1)). */
  latentAlignment: number;
  /** The latent side the UNet was trained at (config `sample_size`; 64 for SD 1.x at 512 px). */
  sampleSize: number;
  scalingFactor: number;
}

async function readJson<T>(file: string, fallback?: T): Promise<T> {
  if (!existsSync(file)) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing ${file}`);
  }
  return JSON.parse(await readFile(file, 'utf8')) as T;
}

/**
 * Pixels per latent cell, measured by decoding a tiny latent: configs describe the VAE's blocks
 * in more than one way, the graph itself cannot be wrong.
 */
async function measureVaeScale(decoder: Session, channels: number): Promise<number> {
  const side = 8;
  const probe = decoder.floatInput('latent_sample', new Float32Array(channels * side * side), [1, channels, side, side]);
  const { dims } = await decoder.run({ latent_sample: probe }, 'sample');
  return dims[dims.length - 1] / side;
}

export class SdModel {
  private constructor(
    readonly info: SdModelInfo,
    readonly tokenizer: ClipTokenizer,
    readonly schedulerConfig: Partial<SchedulerConfig>,
    private readonly textEncoder: Session,
    private readonly unetSession: Session,
    private readonly vaeDecoder: Session,
    private readonly vaeEncoder: Session | null,
  ) {}

  static async load(dir: string, options: SdModelOptions = {}): Promise<SdModel> {
    const root = path.resolve(dir);
    if (!existsSync(path.join(root, 'model_index.json'))) {
      throw new Error(`${root} is not an ONNX Stable Diffusion folder (no model_index.json)`);
    }
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [options.executionProvider ?? 'cpu'],
      graphOptimizationLevel: 'all',
      // Intra-op threads block as soon as a run ends instead of spin-waiting: every session has
      // its own pool, and threads still spinning after a UNet call took the cores from the
      // decoder that follows it, from the JS thread and from image encoding. On 2 cores a decode
      // after the UNet ran 1.5× slower and the whole farm (`npm run bench:e2e`) made a quarter
      // fewer images/s; the UNet calls' own times moved within the machine's noise.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    };
    const open = (part: string) => Session.open(path.join(root, part, 'model.onnx'), sessionOptions);
    const [tokenizer, textEncoder, unet, vaeDecoder, vaeEncoder] = await Promise.all([
      ClipTokenizer.load(path.join(root, 'tokenizer')),
      open('text_encoder'),
      open('unet'),
      open('vae_decoder'),
      options.skipEncoder ? Promise.resolve(null) : open('vae_encoder'),
    ]);
    const unetConfig = await readJson<Record<string, unknown>>(path.join(root, 'unet', 'config.json'), {});
    const vaeConfig = await readJson<Record<string, unknown>>(path.join(root, 'vae_decoder', 'config.json'), {});
    const textConfig = await readJson<Record<string, unknown>>(path.join(root, 'text_encoder', 'config.json'), {});
    const schedulerConfig = await readJson<Partial<SchedulerConfig>>(
      path.join(root, 'scheduler', 'scheduler_config.json'),
    );
    const unetBlocks = Array.isArray(unetConfig.block_out_channels) ? unetConfig.block_out_channels.length : 4;
    const latentChannels = Number(vaeConfig.latent_channels ?? unetConfig.in_channels ?? 4);
    const info: SdModelInfo = {
      dir: root,
      hiddenSize: Number(textConfig.hidden_size ?? unetConfig.cross_attention_dim ?? 768),
      latentChannels,
      vaeScale: await measureVaeScale(vaeDecoder, latentChannels),
      latentAlignment: Number(unetConfig.latent_alignment ?? 2 ** (unetBlocks - 1)),
      sampleSize: Number(unetConfig.sample_size ?? 64),
      scalingFactor: Number(vaeConfig.scaling_factor ?? 0.18215),
    };
    return new SdModel(info, tokenizer, schedulerConfig, textEncoder, unet, vaeDecoder, vaeEncoder);
  }

  /** Text embeddings [n, maxLength, hiddenSize] for n prompts. */
  async encodeText(prompts: readonly string[]): Promise<Float32Array[]> {
    const len = this.tokenizer.maxLength;
    const ids = prompts.flatMap((p) => this.tokenizer.encode(p));
    const out = await this.textEncoder.run(
      { input_ids: this.textEncoder.numberInput('input_ids', ids, [prompts.length, len]) },
      'last_hidden_state',
    );
    const stride = out.data.length / prompts.length;
    return prompts.map((_, i) => out.data.slice(i * stride, (i + 1) * stride));
  }

  /**
   * One UNet call over a batch: samples [B,C,h,w] (concatenated), one timestep per sample,
   * text embeddings [B,L,D] (concatenated). Returns the noise prediction [B,C,h,w].
   */
  async unet(sample: Float32Array, timesteps: readonly number[], context: Float32Array, h: number, w: number): Promise<Float32Array> {
    const b = timesteps.length;
    const c = this.info.latentChannels;
    const feeds: Record<string, ort.Tensor> = {
      sample: this.unetSession.floatInput('sample', sample, [b, c, h, w]),
      timestep: this.unetSession.numberInput('timestep', timesteps, [b]),
      encoder_hidden_states: this.unetSession.floatInput(
        'encoder_hidden_states',
        context,
        [b, context.length / b / this.info.hiddenSize, this.info.hiddenSize],
      ),
    };
    return (await this.unetSession.run(feeds, 'out_sample')).data;
  }

  /** Latents [B,C,h,w] (unscaled by the pipeline, i.e. as the UNet sees them) → images [B,3,H,W] in [-1,1]. */
  async decode(latents: Float32Array, batch: number, h: number, w: number): Promise<Float32Array> {
    const scaled = new Float32Array(latents.length);
    const inv = 1 / this.info.scalingFactor;
    for (let i = 0; i < latents.length; i++) scaled[i] = latents[i] * inv;
    const input = this.vaeDecoder.floatInput('latent_sample', scaled, [batch, this.info.latentChannels, h, w]);
    return (await this.vaeDecoder.run({ latent_sample: input }, 'sample')).data;
  }

  /** Images [B,3,H,W] in [-1,1] → latents [B,C,H/s,W/s] scaled for the UNet. */
  async encode(images: Float32Array, batch: number, height: number, width: number): Promise<Float32Array> {
    if (!this.vaeEncoder) throw new Error('this model was loaded without its vae_encoder');
    const input = this.vaeEncoder.floatInput('sample', images, [batch, 3, height, width]);
    const out = (await this.vaeEncoder.run({ sample: input }, 'latent_sample')).data;
    for (let i = 0; i < out.length; i++) out[i] *= this.info.scalingFactor;
    return out;
  }

  async release(): Promise<void> {
    await Promise.all(
      [this.textEncoder, this.unetSession, this.vaeDecoder, this.vaeEncoder].map((s) => s?.release()),
    );
  }
}
