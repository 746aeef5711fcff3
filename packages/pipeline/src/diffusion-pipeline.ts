/**
 * Text-to-image on top of the stream batch: prompt embeddings (cached), the job's noise, the
 * shared denoising loop, VAE decoding and image encoding. One instance per worker process;
 * `generate` may be called concurrently and all calls share the same UNet batches.
 */
import { isPromptEdit } from '@farm/contracts';
import { KeepLayer, RegionLayer, canvasComposition } from './canvas-composition';
import { changeMap, changeMask, poolLatent, probeCanvas, upsampleMap, upsampleMask } from './change-mask';
import { featherWeights, pasteFeathered } from './feather-paste';
import { CanvasShape, Window, cropWindow, pasteWindow, unionWindow, windowCoverage } from './latent-window';
import { addNoise } from './scheduler';
import type { Guidance } from './composition';
import { GaussianRng } from './gaussian-rng';
import { LatentPreview } from './latent-preview';
import { InvalidInputError, MaskSpec, encodeMaskPng, rasterizeMask } from './mask-source';
import { Mask, blurHalo, blurMask, clipMask, commonShape, cropMask, fillHoles, growWindow, maskBounds, maskWindow, maskWindows, mergeWindows, poolMask, unionMasks } from './region-masks';
import { shareOverlaps, tileWindow } from './tiling';
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
  /** Context around a region's mask (beyond its blur halo), in latent cells (default 1). */
  regionMargin?: number;
  /** Steps during which region lanes see a plain background (default 1). */
  bootstrapSteps?: number;
  /**
   * Latent cells decoded around an edit's mask and feather, so the decoder sees enough context
   * there (default 3: the pasted pixels then differ from a full decode by at most 1 level of 255).
   */
  decodeMargin?: number;
  /** Feather of pasted edits, in pixels (default 8). */
  featherPx?: number;
  /** Context around an edit's mask (beyond the blur halo), in latent cells (default 1). */
  editMargin?: number;
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
  /** The encoded image file. */
  data: Buffer;
  /** Its pixels, interleaved RGB (what edits paste into). */
  rgb: Buffer;
  /** The final clean latent over the whole canvas (what edits start from). */
  latent: Float32Array;
  width: number;
  height: number;
  format: OutputFormat;
}

/** What an edit starts from: a finished image and its latent. */
export interface EditSource {
  latent: Float32Array;
  rgb: Buffer;
  width: number;
  height: number;
  /** The source's prompt; prompt edits compare against it. */
  prompt?: string;
}

export interface EditParams {
  id: string;
  source: EditSource;
  /** The prompt for the masked area (mask edit), or the whole new prompt (prompt edit). */
  prompt: string;
  negativePrompt?: string;
  /** Absent (and no regions): a prompt edit, the mask found from the prompt change. */
  mask?: MaskSpec;
  /** Region prompts painted into the edit, each over its own mask; their masks join the edit's. */
  regions?: readonly RegionParams[];
  steps: number;
  /** 0 < strength ≤ 1: how far the masked area is re-noised. */
  strength: number;
  guidanceScale: number;
  seed: number;
  format: OutputFormat;
}

export interface EditedImage extends RenderedImage {
  /** The pixel mask used, as a greyscale PNG. */
  maskPng: Buffer;
  /** Share of the latent canvas denoised. */
  recomputedFraction: number;
  /** Share of the latent canvas decoded. */
  decodedFraction: number;
  /** The latent windows decoded (none when the mask was empty). */
  decodedWindows: Window[];
}

/** What the denoising of any job needs to know. */
type DenoiseParams = Pick<GenerateParams, 'id' | 'prompt' | 'negativePrompt' | 'guidanceScale' | 'seed'>;

/** Per step; `preview()` renders the step's x0 estimate as a small PNG data URL, on demand. */
export type ProgressListener = (step: number, total: number, preview: () => Promise<string>) => void;

export class DiffusionPipeline {
  readonly engine: StreamBatch;
  readonly textCache: TextEmbeddingCache;
  private readonly layout: Required<
    Pick<PipelineOptions, 'maxWindow' | 'tileOverlap' | 'maskBlur' | 'regionMargin' | 'bootstrapSteps' | 'decodeMargin' | 'featherPx' | 'editMargin'>
  >;

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
      regionMargin: options.regionMargin ?? 1,
      bootstrapSteps: options.bootstrapSteps ?? 1,
      decodeMargin: options.decodeMargin ?? 3,
      featherPx: options.featherPx ?? 8,
      editMargin: options.editMargin ?? 1,
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
    const rng = new GaussianRng(params.seed);
    const { layers } = await this.regionLayers(params.regions ?? [], canvas, params);
    const latent = await this.denoise({
      params,
      canvas,
      latent: rng.normals(canvas.channels * canvas.height * canvas.width),
      timesteps: this.engine.scheduler.timesteps(params.steps),
      rng,
      regions: layers,
      onProgress,
    });
    const scale = this.model.info.vaeScale;
    const pixels = await this.model.decode(latent, 1, canvas.height, canvas.width);
    const rgb = toRgbBytes(pixels, canvas.height * scale, canvas.width * scale, params.height, params.width);
    const data = await encodeImage(rgb, params.width, params.height, params.format);
    return { data, rgb, latent, width: params.width, height: params.height, format: params.format };
  }

  /**
   * Edits a source image: re-noises and denoises only the latent windows covering the mask (plus
   * context), keeping the source latent outside the mask at every step; decodes only around the
   * mask (plus the decoder's receptive field) and pastes it into the source with a feathered mask.
   * The mask is the one drawn joined with the regions' masks; with neither it is a prompt edit,
   * the mask being where the old and new prompts disagree.
   */
  async edit(params: EditParams, onProgress?: ProgressListener): Promise<EditedImage> {
    const { source } = params;
    const canvas = this.latentCanvas(source.width, source.height);
    const cells = canvas.height * canvas.width;
    if (source.latent.length !== canvas.channels * cells) throw new Error('the source latent does not match the source image size');
    const { vaeScale, latentAlignment } = this.model.info;

    // 1. The mask: drawn (and the regions'), or found from the prompt change.
    const regions = await this.regionLayers(params.regions ?? [], canvas, source);
    let pixelMask: Mask;
    let coreMask: Mask;
    if (!isPromptEdit(params)) {
      const drawn = params.mask ? [await rasterizeMask(params.mask, source.width, source.height)] : [];
      pixelMask = unionMasks([...drawn, ...regions.pixelMasks]);
      coreMask = poolMask(pixelMask, vaeScale, canvas.width, canvas.height);
    } else {
      if (source.prompt === undefined) throw new InvalidInputError('a prompt edit needs the source prompt (edit a job, not an upload)');
      coreMask = fillHoles(await this.changeMask(source.latent, canvas, source.prompt, params.prompt, params.seed));
      pixelMask = upsampleMask(coreMask, vaeScale, source.width, source.height);
    }
    const frame = { width: source.width, height: source.height, format: params.format };
    const windows = commonShape(maskWindows(coreMask, this.layout.editMargin + blurHalo(this.layout.maskBlur), latentAlignment), canvas.width, canvas.height);
    if (windows.length === 0) {
      const [maskPng, data] = await Promise.all([encodeMaskPng(pixelMask), encodeImage(source.rgb, source.width, source.height, params.format)]);
      return { ...frame, maskPng, data, rgb: source.rgb, latent: source.latent, recomputedFraction: 0, decodedFraction: 0, decodedWindows: [] };
    }

    // 2. Denoise the windows' lanes on a sub-canvas (their bounding box, so per-step work follows
    //    the edit too), from the source noised to the first timestep; the source's clean latent
    //    is kept outside the mask at every step. The mask's PNG is encoded meanwhile.
    const area = [...windows, ...regions.layers.map((r) => r.window)].reduce(unionWindow);
    const local = (win: Window): Window => ({ ...win, x: win.x - area.x, y: win.y - area.y });
    const kept = cropWindow(source.latent, canvas, area);
    const timesteps = this.engine.scheduler.timesteps(params.steps, params.strength);
    const rng = new GaussianRng(params.seed);
    const [maskPng, denoised] = await Promise.all([
      encodeMaskPng(pixelMask),
      this.denoise({
        params,
        canvas: { channels: canvas.channels, height: area.h, width: area.w },
        latent: addNoise(this.engine.scheduler.schedule, kept, rng.normals(kept.length), timesteps[0]),
        timesteps,
        rng,
        regions: regions.layers.map((r) => ({ ...r, mask: cropMask(r.mask, area), window: local(r.window) })),
        keep: { latent: kept, mask: cropMask(clipMask(blurMask(coreMask, this.layout.maskBlur), windows), area) },
        windows: windows.map(local),
        image: { canvas, latent: source.latent, area },
        onProgress,
      }),
    ]);
    const latent = pasteWindow(source.latent.slice(), canvas, area, denoised);

    // 3. Decode around the mask only — per window, its bounds plus the feather plus the decoder's
    //    receptive field, overlapping ones merged — and paste each patch into the source image
    //    with a feathered mask.
    const reach = Math.ceil(this.layout.featherPx / vaeScale) + this.layout.decodeMargin;
    const decoded = mergeWindows(windows.map((win) => growWindow(maskBounds(coreMask, win)!, reach, canvas.width, canvas.height)));
    const rgb = Buffer.from(source.rgb);
    const pasted = new Uint8Array(source.width * source.height);
    for (const dwin of decoded) {
      const pixels = await this.model.decode(cropWindow(latent, canvas, dwin), 1, dwin.h, dwin.w);
      const at = { x: dwin.x * vaeScale, y: dwin.y * vaeScale, w: dwin.w * vaeScale, h: dwin.h * vaeScale };
      const patch = toRgbBytes(pixels, at.h, at.w, at.h, at.w);
      pasteFeathered(rgb, source.width, source.height, patch, at, featherWeights(pixelMask, at, this.layout.featherPx), pasted);
    }
    return {
      ...frame,
      maskPng,
      data: await encodeImage(rgb, source.width, source.height, params.format),
      rgb,
      latent,
      recomputedFraction: windowCoverage(windows, canvas.width, canvas.height),
      decodedFraction: windowCoverage(decoded, canvas.width, canvas.height),
      decodedWindows: decoded,
    };
  }

  /**
   * An edit source from an image (an upload, or a finished job whose cached latent expired):
   * encoded once by the VAE encoder, the canvas padded to the UNet's alignment by repeating edges.
   */
  async encodeSource(rgb: Buffer, width: number, height: number, prompt?: string): Promise<EditSource> {
    const canvas = this.latentCanvas(width, height);
    const scale = this.model.info.vaeScale;
    const ph = canvas.height * scale;
    const pw = canvas.width * scale;
    const chw = new Float32Array(3 * ph * pw);
    for (let y = 0; y < ph; y++) {
      const sy = Math.min(y, height - 1);
      for (let x = 0; x < pw; x++) {
        const s = (sy * width + Math.min(x, width - 1)) * 3;
        for (let c = 0; c < 3; c++) chw[(c * ph + y) * pw + x] = rgb[s + c] / 127.5 - 1;
      }
    }
    const latent = await this.model.encode(chw, 1, ph, pw);
    return { latent, rgb, width, height, prompt };
  }

  /**
   * The latent mask of a prompt change (DiffEdit): one UNet call of two samples, the source
   * noised to mid-level (t = 499) under the old and the new prompt, on the probe canvas.
   */
  private async changeMask(latent: Float32Array, canvas: CanvasShape, before: string, after: string, seed: number): Promise<Mask> {
    const [old, next] = await this.textCache.get([before, after]);
    const { sampleSize, latentAlignment } = this.model.info;
    const { factor, probe } = probeCanvas(canvas, sampleSize, latentAlignment);
    const pooled = factor === 1 ? latent : poolLatent(latent, canvas, factor, probe);
    const t = 499;
    const noised = addNoise(this.engine.scheduler.schedule, pooled, new GaussianRng(seed ^ 0x2545f491).normals(pooled.length), t);
    const sample = new Float32Array(2 * pooled.length);
    sample.set(noised);
    sample.set(noised, pooled.length);
    const context = new Float32Array(2 * old.length);
    context.set(old);
    context.set(next, old.length);
    const eps = await this.model.unet(sample, [t, t], context, probe.height, probe.width);
    const map = changeMap([[eps.subarray(0, pooled.length), eps.subarray(pooled.length)]], probe);
    return changeMask(factor === 1 ? map : upsampleMap(map, factor, canvas.width, canvas.height));
  }

  /**
   * One job's trip through the stream batch: conditioning, composition, denoising. Lanes cover
   * the whole canvas, or only `windows` (edits; the rest comes from the `keep` layer). An edit's
   * canvas is a sub-canvas of its `image`, where previews paste it.
   */
  private async denoise(job: {
    params: DenoiseParams;
    canvas: CanvasShape;
    latent: Float32Array;
    timesteps: number[];
    rng: GaussianRng;
    regions: RegionLayer[];
    keep?: KeepLayer;
    windows?: Window[];
    image?: { canvas: CanvasShape; latent: Float32Array; area: Window };
    onProgress?: ProgressListener;
  }): Promise<Float32Array> {
    const { params, canvas, image, onProgress } = job;
    const guided = params.guidanceScale > 1;
    const [context, unconditional] = await this.textCache.get([params.prompt, ...(guided ? [params.negativePrompt ?? ''] : [])]);
    const guidance: Guidance = guided ? { kind: 'cfg', scale: params.guidanceScale, unconditional } : { kind: 'none' };
    const { maxWindow, tileOverlap, bootstrapSteps } = this.layout;
    const areas = job.windows ?? [{ x: 0, y: 0, h: canvas.height, w: canvas.width }];
    const shown = image?.canvas ?? canvas;
    return this.engine.add({
      id: params.id,
      canvas,
      latent: job.latent,
      timesteps: job.timesteps,
      composition: canvasComposition({
        canvas,
        context,
        guidance,
        tiles: shareOverlaps(
          areas.flatMap((area) => tileWindow(area, maxWindow, tileOverlap, this.model.info.latentAlignment)),
          canvas.height,
          canvas.width,
        ),
        regions: job.regions,
        schedule: this.engine.scheduler.schedule,
        bootstrap: { steps: bootstrapSteps, background: this.plainBackground, rng: new GaussianRng(params.seed ^ 0x5bd1e995) },
        keep: job.keep,
      }),
      rng: job.rng,
      onStep:
        onProgress &&
        ((step, total, denoised) =>
          onProgress(step, total, () => {
            const whole = image ? pasteWindow(image.latent.slice(), image.canvas, image.area, denoised) : denoised;
            return this.preview.dataUrl(whole, shown.channels, shown.height, shown.width);
          })),
    });
  }

  /**
   * Regions' masks rasterized at the image size, and as layers: pooled to latent cells and
   * blurred, with their lane windows and prompts (regions whose mask is empty get no layer).
   */
  private async regionLayers(
    regions: readonly RegionParams[],
    canvas: CanvasShape,
    size: { width: number; height: number },
  ): Promise<{ layers: RegionLayer[]; pixelMasks: Mask[] }> {
    const { vaeScale, latentAlignment } = this.model.info;
    const contexts = await this.textCache.get(regions.map((r) => r.prompt));
    const pixelMasks = await Promise.all(regions.map((r) => rasterizeMask(r.mask, size.width, size.height)));
    const layers: RegionLayer[] = [];
    pixelMasks.forEach((pixels, i) => {
      const core = poolMask(pixels, vaeScale, canvas.width, canvas.height);
      // The window covers the mask, its blur halo and `regionMargin` cells of context.
      const window = maskWindow(core, this.layout.regionMargin + blurHalo(this.layout.maskBlur), latentAlignment);
      if (window) layers.push({ context: contexts[i], mask: blurMask(core, this.layout.maskBlur), window, strength: regions[i].strength ?? 1 });
    });
    const shaped = commonShape(layers.map((layer) => layer.window), canvas.width, canvas.height);
    return { layers: layers.map((layer, i) => ({ ...layer, window: shaped[i] })), pixelMasks };
  }

  cancel(id: string, reason?: string): boolean {
    return this.engine.cancel(id, reason);
  }

  close(): Promise<void> {
    return this.model.release();
  }
}
