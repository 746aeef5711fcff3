/**
 * Text-to-image on top of the stream batch: prompt embeddings (cached), the job's noise, the
 * shared denoising loop, VAE decoding and image encoding. One instance per worker process;
 * `generate` may be called concurrently and all calls share the same UNet batches.
 */
import { singlePrompt, Guidance } from './composition';
import { GaussianRng } from './gaussian-rng';
import { OutputFormat, encodeImage, toRgbBytes } from './image-output';
import { createScheduler, SchedulerName } from './scheduler-factory';
import { SdModel, SdModelOptions } from './sd-model';
import { StreamBatch, TickReport } from './stream-batch';
import { TextEmbeddingCache } from './text-embedding-cache';

export interface PipelineOptions extends SdModelOptions {
  /** Most lanes per UNet call (default 8). */
  maxBatch?: number;
  /** Prompts kept in the text-embedding cache (default 256). */
  textCacheSize?: number;
  /** Override the scheduler named by the model's scheduler_config.json. */
  scheduler?: SchedulerName;
  onTick?: (report: TickReport) => void;
}

export interface GenerateParams {
  id: string;
  prompt: string;
  negativePrompt?: string;
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  seed: number;
  format: OutputFormat;
}

export interface RenderedImage {
  data: Buffer;
  width: number;
  height: number;
  format: OutputFormat;
}

export type ProgressListener = (step: number, total: number) => void;

export class DiffusionPipeline {
  readonly engine: StreamBatch;
  readonly textCache: TextEmbeddingCache;

  private constructor(readonly model: SdModel, options: PipelineOptions) {
    const scheduler = createScheduler(model.schedulerConfig, options.scheduler);
    this.engine = new StreamBatch(model, scheduler, { maxBatch: options.maxBatch, onTick: options.onTick });
    this.textCache = new TextEmbeddingCache((prompts) => model.encodeText(prompts), options.textCacheSize);
  }

  static async load(modelDir: string, options: PipelineOptions = {}): Promise<DiffusionPipeline> {
    return new DiffusionPipeline(await SdModel.load(modelDir, options), options);
  }

  /** Latent canvas for an image size: image/vaeScale, rounded up to the UNet's alignment. */
  latentCanvas(width: number, height: number) {
    const { vaeScale, latentAlignment, latentChannels } = this.model.info;
    const cells = (px: number) => Math.ceil(px / vaeScale / latentAlignment) * latentAlignment;
    return { channels: latentChannels, height: cells(height), width: cells(width) };
  }

  async generate(params: GenerateParams, onProgress?: ProgressListener): Promise<RenderedImage> {
    const canvas = this.latentCanvas(params.width, params.height);
    const guided = params.guidanceScale > 1;
    const prompts = guided ? [params.prompt, params.negativePrompt ?? ''] : [params.prompt];
    const [context, unconditional] = await this.textCache.get(prompts);
    const guidance: Guidance = guided ? { kind: 'cfg', scale: params.guidanceScale, unconditional } : { kind: 'none' };
    const rng = new GaussianRng(params.seed);
    const latent = await this.engine.add({
      id: params.id,
      canvas,
      latent: rng.normals(canvas.channels * canvas.height * canvas.width),
      timesteps: this.engine.scheduler.timesteps(params.steps),
      composition: singlePrompt(canvas, context, guidance),
      rng,
      onStep: onProgress && ((step, total) => onProgress(step, total)),
    });
    const pixels = await this.model.decode(latent, 1, canvas.height, canvas.width);
    const scale = this.model.info.vaeScale;
    const rgb = toRgbBytes(pixels, canvas.height * scale, canvas.width * scale, params.height, params.width);
    const data = await encodeImage(rgb, params.width, params.height, params.format);
    return { data, width: params.width, height: params.height, format: params.format };
  }

  cancel(id: string, reason?: string): boolean {
    return this.engine.cancel(id, reason);
  }

  close(): Promise<void> {
    return this.model.release();
  }
}
