/**
 * Text-to-image on top of the stream batch: prompt embeddings (cached), the job's noise, the
 * shared denoising loop, VAE decoding and image encoding. One instance per worker process;
 * `generate` may be called concurrently and all calls share the same UNet batches.
 */
import { RegionLayer, canvasComposition } from './canvas-composition';
import type { Guidance } from './composition';
import { GaussianRng } from './gaussian-rng';
import { LatentPreview } from './latent-preview';
import { MaskSpec, rasterizeMask } from './mask-source';
import { blurMask, maskWindow, poolMask } from './region-masks';
import { tileCanvas } from './tiling';
import { OutputFormat, encodeImage, toRgbBytes } from './image-output';
import { createScheduler, SchedulerName } from './scheduler-factory';
import { SdModel, SdModelOptions } from './sd-model';
import { StreamBatch, TickReport } from './stream-batch';
import { TextEmbeddingCache } from './text-embedding-cache';

export interface PipelineOptions extends SdModelOptions {
  /** Most lanes per UNet call (default 8). */
  maxBatch?: number;
  /** UNet calls run at once within a tick (default 1). */
  unetConcurrency?: number;
  /** Prompts kept in the text-embedding cache (default 256). */
  textCacheSize?: number;
  /** Override the scheduler named by the model's scheduler_config.json. */
  scheduler?: SchedulerName;
  /** Largest UNet window side in latent cells; larger canvases are tiled (default 64). */
  maxWindow?: number;
  /** Overlap of panorama tiles in latent cells (default 16). */
  tileOverlap?: number;
  /** Gaussian blur of region masks, σ in latent cells (default 1). */
  maskBlur?: number;
  /** Context around a region's bounding box, in latent cells (default 4). */
  regionMargin?: number;
  /** Steps during which region lanes see a plain background (default 1). */
  bootstrapSteps?: number;
  onTick?: (report: TickReport) => void;
}

export interface RegionParams {
  prompt: string;
  mask: MaskSpec;
  /** 0…1 (default 1). */
  strength?: number;
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
  regions?: readonly RegionParams[];
}

export interface RenderedImage {
  data: Buffer;
  width: number;
  height: number;
  format: OutputFormat;
}

/** Per step; `preview()` renders the step's x0 estimate as a small PNG data URL, on demand. */
export type ProgressListener = (step: number, total: number, preview: () => Promise<string>) => void;

export class DiffusionPipeline {
  readonly engine: StreamBatch;
  readonly textCache: TextEmbeddingCache;
  private readonly layout: Required<Pick<PipelineOptions, 'maxWindow' | 'tileOverlap' | 'maskBlur' | 'regionMargin' | 'bootstrapSteps'>>;

  private constructor(
    readonly model: SdModel,
    /** Latent of a plain mid-grey image, per channel: the bootstrap background of regions. */
    private readonly plainBackground: Float32Array,
    private readonly preview: LatentPreview,
    options: PipelineOptions,
  ) {
    const scheduler = createScheduler(model.schedulerConfig, options.scheduler);
    this.engine = new StreamBatch(model, scheduler, {
      maxBatch: options.maxBatch,
      concurrency: options.unetConcurrency,
      onTick: options.onTick,
    });
    this.textCache = new TextEmbeddingCache((prompts) => model.encodeText(prompts), options.textCacheSize);
    this.layout = {
      maxWindow: options.maxWindow ?? 64,
      tileOverlap: options.tileOverlap ?? 16,
      maskBlur: options.maskBlur ?? 1,
      regionMargin: options.regionMargin ?? 4,
      bootstrapSteps: options.bootstrapSteps ?? 1,
    };
  }

  static async load(modelDir: string, options: PipelineOptions = {}): Promise<DiffusionPipeline> {
    const model = await SdModel.load(modelDir, options);
    const { latentChannels: channels, vaeScale } = model.info;
    const side = 8 * vaeScale;
    const encode = (rgb: Float32Array, px: number) => model.encode(rgb, 1, px, px);
    const grey = await encode(new Float32Array(3 * side * side), side);
    const cells = grey.length / channels;
    const plain = Float32Array.from({ length: channels }, (_, c) => grey.subarray(c * cells, (c + 1) * cells).reduce((a, b) => a + b, 0) / cells);
    const preview = await LatentPreview.fit(encode, channels, side);
    return new DiffusionPipeline(model, plain, preview, options);
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
    const regionParams = params.regions ?? [];
    const prompts = [params.prompt, ...regionParams.map((r) => r.prompt), ...(guided ? [params.negativePrompt ?? ''] : [])];
    const embeddings = await this.textCache.get(prompts);
    const guidance: Guidance = guided
      ? { kind: 'cfg', scale: params.guidanceScale, unconditional: embeddings[prompts.length - 1] }
      : { kind: 'none' };
    const regions = await this.regionLayers(regionParams, embeddings.slice(1, 1 + regionParams.length), canvas, params);
    const { maxWindow, tileOverlap, bootstrapSteps } = this.layout;
    const rng = new GaussianRng(params.seed);
    const latent = await this.engine.add({
      id: params.id,
      canvas,
      latent: rng.normals(canvas.channels * canvas.height * canvas.width),
      timesteps: this.engine.scheduler.timesteps(params.steps),
      composition: canvasComposition({
        canvas,
        context: embeddings[0],
        guidance,
        tiles: tileCanvas(canvas.height, canvas.width, maxWindow, tileOverlap, this.model.info.latentAlignment),
        regions,
        schedule: this.engine.scheduler.schedule,
        bootstrap: { steps: bootstrapSteps, background: this.plainBackground, rng: new GaussianRng(params.seed ^ 0x5bd1e995) },
      }),
      rng,
      onStep:
        onProgress &&
        ((step, total, denoised) =>
          onProgress(step, total, () => this.preview.dataUrl(denoised, canvas.channels, canvas.height, canvas.width))),
    });
    const pixels = await this.model.decode(latent, 1, canvas.height, canvas.width);
    const scale = this.model.info.vaeScale;
    const rgb = toRgbBytes(pixels, canvas.height * scale, canvas.width * scale, params.height, params.width);
    const data = await encodeImage(rgb, params.width, params.height, params.format);
    return { data, width: params.width, height: params.height, format: params.format };
  }

  /** Region masks at latent resolution (pooled, blurred) with their lane windows; empty ones dropped. */
  private async regionLayers(
    regions: readonly RegionParams[],
    contexts: Float32Array[],
    canvas: { height: number; width: number },
    params: GenerateParams,
  ): Promise<RegionLayer[]> {
    const { vaeScale, latentAlignment } = this.model.info;
    const layers: RegionLayer[] = [];
    for (const [i, region] of regions.entries()) {
      const pixels = await rasterizeMask(region.mask, params.width, params.height);
      const mask = blurMask(poolMask(pixels, vaeScale, canvas.width, canvas.height), this.layout.maskBlur);
      const margin = Math.max(this.layout.regionMargin, Math.ceil(3 * this.layout.maskBlur));
      const window = maskWindow(mask, margin, latentAlignment);
      if (window) layers.push({ context: contexts[i], mask, window, strength: region.strength ?? 1 });
    }
    return layers;
  }

  cancel(id: string, reason?: string): boolean {
    return this.engine.cancel(id, reason);
  }

  close(): Promise<void> {
    return this.model.release();
  }
}
