/**
 * The pipeline's façade: text-to-image and edits on top of the stream batch. It resolves a
 * request's prompts (cached embeddings) and masks, hands the planning to pure units (region
 * layers, the edit plan), runs the denoising, the prompt-change probe and the windowed decode
 * as work of the shared stream batch and the VAE, and encodes the result. One instance per
 * worker process; `generate` and `edit` may be called concurrently and share the UNet batches.
 */
import { InvalidJobError, ModelCapabilities, isPromptEdit } from '@farm/contracts';
import { KeepLayer, RegionLayer, canvasComposition } from './canvas-composition';
import { changeProbe } from './change-mask';
import type { Conditioning, Guidance, LaneControl } from './composition';
import { EditLayout, EditMasks, drawnEditMasks, planEdit, promptEditMasks } from './edit-plan';
import { GaussianRng } from './gaussian-rng';
import { OutputFormat, encodeImage } from './image-output';
import { CanvasShape, Window, cropWindow, pasteWindow } from './latent-window';
import { LatentPreview } from './latent-preview';
import { MaskSpec, encodeMaskPng, rasterizeMask } from './mask-source';
import { controlLanes, decodeControlImage } from './control-image';
import { toPlanarTensor, toRgbBytes } from './pixel-tensor';
import type { Mask } from './region-masks';
import { RegionLayout, regionLayers } from './region-layers';
import { addNoise } from './scheduler';
import type { SchedulerName } from './scheduler';
import { createScheduler } from './scheduler-factory';
import { freeGpuMemory } from './gpu-memory';
import { activationBytes, batchBuckets, memoryCappedBatch } from './unet-budget';
import { ExecutionProvider, JobConditioning, SdModel, SdModelOptions, TextConditioning } from './sd-model';
import { StepPlan, StreamBatch, TickReport } from './stream-batch';
import { TextEmbeddingCache } from './text-embedding-cache';
import { shareOverlaps, tileWindow } from './tiling';
import { decodeCanvas, decodeWindowsInto } from './windowed-decode';

export interface PipelineOptions extends SdModelOptions {
  /** Most lanes per UNet call (default 8). */
  maxBatch?: number;
  /** UNet calls run at once within a tick (default 1). */
  unetConcurrency?: number;
  /** Most latent cells one tick of the stream batch runs (default: defaultTickBudget). */
  tickBudget?: number;
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
  /** Whose job it is: the stream batch shares its ticks fairly across tenants. */
  tenant?: string;
  prompt: string;
  negativePrompt?: string;
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  seed: number;
  format: OutputFormat;
  regions?: readonly RegionParams[];
  /** A control image for the model's ControlNet: the shapes follow its layout, the prompt sets the rest. */
  control?: ControlParams;
}

export interface ControlParams {
  /** An encoded image (PNG, JPEG or WebP) of the job's width and height. */
  image: Buffer;
  /** A kind of control image the model was trained for (`SdModelInfo.controlTypes`). */
  type: string;
  /** How strongly it steers, 0… (1: as trained). */
  scale: number;
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
  tenant?: string;
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

/** An edit's pixels and latent, before any encoding. */
export interface EditedFrame {
  rgb: Buffer;
  latent: Float32Array;
  /** The pixel mask used. */
  pixelMask: Mask;
  /** Share of the latent canvas denoised. */
  recomputedFraction: number;
  /** Share of the latent canvas decoded. */
  decodedFraction: number;
  /** The latent windows decoded (none when the mask was empty). */
  decodedWindows: Window[];
}

export interface EditedImage extends RenderedImage, Omit<EditedFrame, 'pixelMask'> {
  /** The pixel mask used, as a greyscale PNG. */
  maskPng: Buffer;
}

/** What the denoising of any job needs to know. */
type DenoiseParams = Pick<GenerateParams, 'id' | 'tenant' | 'prompt' | 'negativePrompt' | 'guidanceScale' | 'seed'>;

/** Per step; `preview()` renders the step's x0 estimate as a small PNG data URL, on demand. */
export type ProgressListener = (step: number, total: number, preview: () => Promise<string>) => void;

export class DiffusionPipeline {
  readonly engine: StreamBatch;
  private readonly gpu: boolean;
  readonly textCache: TextEmbeddingCache<TextConditioning>;
  /** The options' layout settings with their defaults, and the model's pixels per cell and window alignment. */
  readonly layout: Required<
    Pick<PipelineOptions, 'maxWindow' | 'tileOverlap' | 'maskBlur' | 'regionMargin' | 'bootstrapSteps' | 'decodeMargin' | 'featherPx' | 'editMargin'>
  > &
    RegionLayout &
    EditLayout;

  private constructor(
    readonly model: SdModel,
    /** Latent of a plain mid-grey image, per channel: the bootstrap background of regions. */
    private readonly plainBackground: Float32Array,
    private readonly preview: LatentPreview,
    options: PipelineOptions,
  ) {
    this.gpu = options.executionProvider === 'cuda';
    const scheduler = createScheduler(model.schedulerConfig, options.scheduler);
    const maxWindow = options.maxWindow ?? 64;
    // While tenants compete, each earns at least one lane of the model's native size per tick.
    this.engine = new StreamBatch(model, scheduler, {
      sharedTimestep: model.sharedTimestep,
      maxBatch: options.maxBatch,
      concurrency: options.unetConcurrency,
      tickBudget: options.tickBudget ?? defaultTickBudget(options.executionProvider ?? 'cpu', options.maxBatch ?? 8, maxWindow),
      quantumFloor: Math.min(model.info.sampleSize, maxWindow) ** 2,
      onTick: options.onTick,
    });
    this.textCache = new TextEmbeddingCache((prompts) => model.encodeText(prompts), options.textCacheSize);
    this.layout = {
      maxWindow,
      tileOverlap: options.tileOverlap ?? 16,
      maskBlur: options.maskBlur ?? 1,
      regionMargin: options.regionMargin ?? 1,
      bootstrapSteps: options.bootstrapSteps ?? 1,
      decodeMargin: options.decodeMargin ?? 3,
      featherPx: options.featherPx ?? 8,
      editMargin: options.editMargin ?? 1,
      vaeScale: model.info.vaeScale,
      alignment: model.info.latentAlignment,
    };
  }

  /**
   * Loads the model. On CUDA the UNet batch is capped by a memory estimate (and kept a power of
   * two), calls are padded to power-of-two batch sizes, and every batch size is run once on the
   * window shapes jobs will use before the pipeline is returned (cuDNN picks its algorithms per
   * shape on first use).
   */
  static async load(modelDir: string, options: PipelineOptions = {}): Promise<DiffusionPipeline> {
    const gpu = options.executionProvider === 'cuda';
    const requested = options.maxBatch ?? 8;
    const model = await SdModel.load(modelDir, { ...options, ...(gpu ? { batchBuckets: requested } : {}) });
    let maxBatch = requested;
    if (gpu) {
      const freeBytes = await freeGpuMemory(options.cudaDevice ?? 0);
      const { sampleSize, unetChannels, unetBytes } = model.info;
      const side = Math.min(sampleSize, options.maxWindow ?? 64);
      const elementBytes = model.signature.timestep.type === 'float16' || model.signature.decoderType === 'float16' ? 2 : 4;
      if (freeBytes !== null) maxBatch = memoryCappedBatch(requested, { freeBytes, weightsBytes: unetBytes, cells: side * side, channels: unetChannels, elementBytes });
      maxBatch = 2 ** Math.floor(Math.log2(maxBatch));
    }
    const { latentChannels: channels, vaeScale } = model.info;
    const side = 8 * vaeScale;
    const encode = (rgb: Float32Array, px: number) => model.encode(rgb, 1, px, px);
    const grey = await encode(new Float32Array(3 * side * side), side);
    const cells = grey.length / channels;
    const plain = Float32Array.from({ length: channels }, (_, c) => grey.subarray(c * cells, (c + 1) * cells).reduce((a, b) => a + b, 0) / cells);
    const preview = await LatentPreview.fit(encode, channels, side);
    const pipeline = new DiffusionPipeline(model, plain, preview, { ...options, maxBatch });
    if (gpu) await pipeline.warmUp();
    return pipeline;
  }

  /** One UNet call per batch bucket and window side jobs use (the native one, the panorama tile's), and a decode. */
  async warmUp(): Promise<void> {
    const { sampleSize, latentChannels: c } = this.model.info;
    const [text] = await this.textCache.get(['']);
    const sides = [...new Set([Math.min(sampleSize, this.layout.maxWindow), this.layout.maxWindow])];
    for (const side of sides) {
      const conditioning = this.model.conditioning(text, { width: side * this.layout.vaeScale, height: side * this.layout.vaeScale, guidanceScale: 1 });
      for (const b of batchBuckets(this.engine.maxBatch)) {
        const rows = (x: Float32Array) => Float32Array.from({ length: b * x.length }, (_, i) => x[i % x.length]);
        const extras = Object.fromEntries(Object.entries(conditioning.extras ?? {}).map(([k, v]) => [k, rows(v)]));
        await this.model.unet(new Float32Array(b * c * side * side), Array(b).fill(999), rows(conditioning.context), side, side, extras);
      }
      await this.model.decode(new Float32Array(c * side * side), 1, side, side);
    }
  }

  /**
   * What this model can serve, for the submit-time check (contracts' capabilityProblems): image
   * sides in multiples of the VAE's pixels per cell, classifier-free guidance or an embedded
   * guidance scale (LCM: w = scale − 1 from 0 up to 15, the distillation's w_max in diffusers'
   * train_lcm_distill_sd_wds.py), and how the scheduler makes a plan of (steps, strength).
   */
  capabilities(): ModelCapabilities {
    return {
      sizeMultiple: this.model.info.vaeScale,
      guidance: this.model.embedsGuidance ? { kind: 'embedded', min: 1, max: 16 } : { kind: 'cfg' },
      sampler: this.engine.scheduler.sampler,
    };
  }

  /**
   * Host memory the worker needs for its model calls whatever its jobs: on a CPU the UNet's
   * activations for a full tick (the tick budget's cells), and as much again for the decoder's
   * tiles (tiled decoding bounds them alike); on CUDA they live on the device (there the batch is
   * capped by free device memory instead), so none.
   */
  workingMemoryBytes(): number {
    if (this.gpu) return 0;
    return 2 * activationBytes(this.engine.tickBudget ?? 0, this.model.info.unetChannels, 4);
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
    const [{ layers }, control] = await Promise.all([
      this.regionLayers(params.regions ?? [], canvas, params),
      params.control && this.controlLanes(params.control, canvas, params),
    ]);
    const plan = this.plan(params.steps);
    const noise = rng.normals(canvas.channels * canvas.height * canvas.width);
    const scale = this.engine.scheduler.initialNoiseScale(plan.timesteps[0]);
    const latent = await this.denoise({
      params,
      canvas,
      latent: scale === 1 ? noise : noise.map((v) => v * scale),
      plan,
      rng,
      regions: layers,
      size: params,
      control,
      onProgress,
    });
    const { vaeScale } = this.model.info;
    const pixels = await decodeCanvas(this.model, latent, canvas, { vaeScale, maxWindow: this.layout.maxWindow, margin: this.layout.decodeMargin });
    const rgb = toRgbBytes(pixels, canvas.height * vaeScale, canvas.width * vaeScale, params.height, params.width);
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
    const { pixelMask, ...frame } = await this.editFrame(params, onProgress);
    const [maskPng, data] = await Promise.all([encodeMaskPng(pixelMask), encodeImage(frame.rgb, source.width, source.height, params.format)]);
    return { ...frame, maskPng, data, width: source.width, height: source.height, format: params.format };
  }

  /** `edit` without encoding anything: the pixels, the latent and what was recomputed. */
  async editFrame(params: EditParams, onProgress?: ProgressListener): Promise<EditedFrame> {
    const { source } = params;
    const canvas = this.latentCanvas(source.width, source.height);
    if (source.latent.length !== canvas.channels * canvas.height * canvas.width) throw new Error('the source latent does not match the source image size');

    // 1. The mask — drawn (and the regions'), or found from the prompt change — and the plan.
    const size = { width: source.width, height: source.height, guidanceScale: params.guidanceScale };
    const regions = await this.regionLayers(params.regions ?? [], canvas, size);
    const masks = await this.editMasks(params, canvas, regions.pixelMasks);
    const plan = planEdit(masks.core, regions.layers, canvas, this.layout);
    if (!plan) return { rgb: source.rgb, latent: source.latent, pixelMask: masks.pixel, recomputedFraction: 0, decodedFraction: 0, decodedWindows: [] };

    // 2. Denoise the plan's lanes on its sub-canvas, from the source noised to the first timestep;
    //    the source's clean latent is kept outside the mask at every step.
    const { area } = plan;
    const kept = cropWindow(source.latent, canvas, area);
    const steps = this.plan(params.steps, params.strength);
    const rng = new GaussianRng(params.seed);
    const denoised = await this.denoise({
      params,
      canvas: { channels: canvas.channels, height: area.h, width: area.w },
      latent: addNoise(this.engine.scheduler.schedule, kept, rng.normals(kept.length), steps.timesteps[0]),
      plan: steps,
      rng,
      regions: plan.regions,
      keep: { latent: kept, mask: plan.keepMask },
      windows: plan.localWindows,
      image: { canvas, latent: source.latent, area },
      size,
      onProgress,
    });
    const latent = pasteWindow(source.latent.slice(), canvas, area, denoised);

    // 3. Decode the plan's windows only and paste them into the source image, feathered.
    return {
      rgb: await decodeWindowsInto(this.model, latent, canvas, plan.decodeWindows, source, { ...this.layout, pixelMask: masks.pixel }),
      latent,
      pixelMask: masks.pixel,
      recomputedFraction: plan.recomputedFraction,
      decodedFraction: plan.decodedFraction,
      decodedWindows: plan.decodeWindows,
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
    const latent = await this.model.encode(toPlanarTensor(rgb, width, height, ph, pw), 1, ph, pw);
    return { latent, rgb, width, height, prompt };
  }

  /** An edit's masks: the drawn mask joined with the regions', or, for a prompt edit, the prompt change's. */
  private async editMasks(params: EditParams, canvas: CanvasShape, regionMasks: readonly Mask[]): Promise<EditMasks> {
    const { source } = params;
    if (!isPromptEdit(params)) {
      const drawn = params.mask ? [await rasterizeMask(params.mask, source.width, source.height)] : [];
      return drawnEditMasks([...drawn, ...regionMasks], canvas, this.layout.vaeScale);
    }
    const { prompt } = source;
    if (prompt === undefined) throw new InvalidJobError('a prompt edit needs the source prompt (edit a job, not an upload)');
    return this.promptChange(params.id, { ...source, prompt }, params.prompt, params.seed, params.guidanceScale, params.tenant);
  }

  /**
   * Where changing a source's prompt to `prompt` matters (DiffEdit): the change probe, run in the
   * stream batch as job `id`'s probe, its mask's holes filled.
   */
  async promptChange(id: string, source: EditSource & { prompt: string }, prompt: string, seed: number, guidanceScale = 1, tenant?: string): Promise<EditMasks> {
    const canvas = this.latentCanvas(source.width, source.height);
    const [before, after] = await this.conditioned([source.prompt, prompt], { width: source.width, height: source.height, guidanceScale });
    const probe = changeProbe({
      id: probeId(id),
      latent: source.latent,
      canvas,
      before,
      after,
      nativeSize: this.model.info.sampleSize,
      alignment: this.layout.alignment,
      schedule: this.engine.scheduler.schedule,
      seed,
    });
    return promptEditMasks(probe.mask(await this.engine.probe({ ...probe.request, tenant })), this.layout.vaeScale, source.width, source.height);
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
    plan: StepPlan;
    rng: GaussianRng;
    regions: RegionLayer[];
    keep?: KeepLayer;
    windows?: Window[];
    image?: { canvas: CanvasShape; latent: Float32Array; area: Window };
    /** The image's size and the guidance scale, as the model's extra conditioning takes them. */
    size: JobConditioning;
    control?: (window: Window) => LaneControl;
    onProgress?: ProgressListener;
  }): Promise<Float32Array> {
    const { params, canvas, image, onProgress } = job;
    // Classifier-free guidance adds an unconditional lane, unless the model embeds the scale (LCM).
    const guided = params.guidanceScale > 1 && !this.model.embedsGuidance;
    // No negative prompt: the encoded "", or zeros where the model's pipeline says so (SDXL), as diffusers does.
    const zeros = guided && params.negativePrompt === undefined && this.model.info.zerosForNoNegativePrompt;
    const [context, encodedNegative] = await this.conditioned([params.prompt, ...(guided && !zeros ? [params.negativePrompt ?? ''] : [])], job.size);
    const unconditional = zeros ? this.model.conditioning(this.model.noText(), job.size) : encodedNegative;
    const guidance: Guidance = guided ? { kind: 'cfg', scale: params.guidanceScale, unconditional } : { kind: 'none' };
    const { maxWindow, tileOverlap, bootstrapSteps } = this.layout;
    const areas = job.windows ?? [{ x: 0, y: 0, h: canvas.height, w: canvas.width }];
    const shown = image?.canvas ?? canvas;
    return this.engine.add({
      id: params.id,
      tenant: params.tenant,
      canvas,
      latent: job.latent,
      ...job.plan,
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
        control: job.control,
        regionTiles: (window) => tileWindow(window, maxWindow, tileOverlap, this.model.info.latentAlignment),
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
    size: JobConditioning,
  ): Promise<{ layers: RegionLayer[]; pixelMasks: Mask[] }> {
    const [contexts, pixelMasks] = await Promise.all([
      this.conditioned(regions.map((r) => r.prompt), size),
      Promise.all(regions.map((r) => rasterizeMask(r.mask, size.width, size.height))),
    ]);
    const inputs = regions.map((r, i) => ({ context: contexts[i], pixelMask: pixelMasks[i], strength: r.strength ?? 1 }));
    return { layers: regionLayers(inputs, canvas, this.layout), pixelMasks };
  }

  /** A job's control image as its lanes take it, checked against the model's control types and the image's size. */
  private async controlLanes(control: ControlParams, canvas: CanvasShape, size: { width: number; height: number }): Promise<(window: Window) => LaneControl> {
    const { controlTypes, vaeScale } = this.model.info;
    if (!controlTypes.includes(control.type)) {
      throw new InvalidJobError(controlTypes.length === 0 ? 'control: this model has no ControlNet' : `control.type must be one of: ${controlTypes.join(', ')}`);
    }
    const image = await decodeControlImage(control.image);
    if (image.width !== size.width || image.height !== size.height) throw new InvalidJobError(`control.image is ${image.width}x${image.height}; the image is ${size.width}x${size.height}`);
    return controlLanes(image, canvas, vaeScale, control.scale);
  }

  /** A job's steps: the timesteps of its UNet calls and where each step lands. */
  private plan(steps: number, strength?: number): StepPlan {
    const { scheduler } = this.engine;
    const timesteps = scheduler.timesteps(steps, strength);
    return { timesteps, landings: scheduler.landings(timesteps, steps) };
  }

  /** The prompts' lane conditioning for a job: cached text embeddings plus the job's extra inputs. */
  private async conditioned(prompts: readonly string[], job: JobConditioning): Promise<Conditioning[]> {
    return (await this.textCache.get(prompts)).map((text) => this.model.conditioning(text, job));
  }

  /** Cancels a job, whether it is denoising or probing. */
  cancel(id: string, reason?: string): boolean {
    return this.engine.cancel(id, reason) || this.engine.cancel(probeId(id), reason);
  }

  close(): Promise<void> {
    return this.model.release();
  }
}

/**
 * Latent cells per tick unless configured. A model runs one call at a time, so a tick in progress
 * delays every job that joins, decodes or takes its next step meanwhile: on a CPU, where a call's
 * cost grows with its cells almost linearly and large batches gain little, two full windows; on a
 * GPU, where batching pays, a full batch of them.
 */
export function defaultTickBudget(provider: ExecutionProvider, maxBatch: number, maxWindow: number): number {
  return (provider === 'cuda' ? maxBatch : 2) * maxWindow * maxWindow;
}

/** The stream-batch id of a prompt edit's probe. */
const probeId = (jobId: string) => `${jobId}:probe`;
