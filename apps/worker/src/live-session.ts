/**
 * One live session on this worker: its latest rendered frame (latent, pixels, the state it shows)
 * stays here between updates, and each update renders only what changed — a first frame or a new
 * seed is a generation; a changed region is an edit of the pixels whose owner changed; a changed
 * background prompt is an edit of what the prompt-change probe finds under the background; an
 * unchanged state costs nothing. Updates that arrive while a frame renders are coalesced: the
 * next render takes the newest state. Frames, progress previews (of the renders long enough to
 * watch: generations and prompt changes, not strokes) and commits go to the session's outbox.
 */
import { randomUUID } from 'node:crypto';
import { CONTENT_TYPES, CanvasState, InvalidJobError, Tile, editStrength } from '@farm/contracts';
import {
  DiffusionPipeline,
  EditSource,
  Mask,
  PaintedRegion,
  ProgressListener,
  RegionParams,
  canvasChange,
  encodeImage,
  overBackground,
  ownerMap,
  rasterizeMask,
  unionMasks,
} from '@farm/pipeline';
import type { SessionRecord, SessionStore } from '@farm/platform';
import type { EditSourceCache } from './edit-source-cache';
import { changedTiles, encodeTiles, wholeTile } from './frame-tiles';
import { resultKey, toMaskSpec } from './run-job';

export interface LiveSessionDeps {
  pipeline: DiffusionPipeline;
  sessions: SessionStore;
  editSources: EditSourceCache;
  store: { put(key: string, body: Buffer, contentType: string): Promise<void> };
  /** What each render did (metrics): a generation, an edit, nothing; and updates never rendered. */
  onRender?: (kind: 'full' | 'edit' | 'none') => void;
  /** What each rendered frame cost, once it is published (metrics). */
  onFrame?: (cost: FrameCost) => void;
  onSuperseded?: (updates: number) => void;
}

/**
 * Where one rendered frame's time went: rendering it (masks, denoising in the shared ticks —
 * waits for them included — and decoding; a generation's encoding too), encoding its tiles,
 * publishing them; and the share of the latent canvas denoised.
 */
export interface FrameCost {
  kind: 'full' | 'edit';
  renderMs: number;
  encodeMs: number;
  publishMs: number;
  recomputed: number;
}

/** A frame's render, as publishFrame completes its cost. */
type RenderCost = Pick<FrameCost, 'kind' | 'renderMs' | 'recomputed'>;

/** The frame a session shows, and what it was rendered from. */
interface Rendered {
  state: CanvasState;
  painted: PaintedRegion[];
  image: EditSource;
}

/** A new seed or negative prompt changes every pixel: the frame is generated again. */
const needsRegeneration = (before: CanvasState, after: CanvasState) => before.seed !== after.seed || before.negativePrompt !== after.negativePrompt;

const hasPixels = (mask: Mask | null): mask is Mask => mask !== null && mask.data.some((v) => v > 0);

const asRegion = (region: PaintedRegion): RegionParams => ({ prompt: region.prompt, strength: region.strength, mask: { pixels: region.mask } });

export class LiveSession {
  private rendered: Rendered | null = null;
  /** Rasterized region masks by region id, with the mask they came from. */
  private readonly masks = new Map<string, { source: string; mask: Mask }>();
  private readonly wanted = { update: false, keyframe: false, commit: false };
  /** Update notices since the last render: all but one of them were coalesced away. */
  private notices = 0;
  /** The next frame goes out whole (a resumed session's client holds another image). */
  private wholeNext = false;
  private drained: Promise<void> | null = null;
  private closed = false;
  private renders = 0;

  constructor(
    readonly record: SessionRecord,
    private readonly deps: LiveSessionDeps,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** The state changed (the state itself is read from Redis when the next render starts). */
  update(): void {
    this.notices++;
    this.want('update');
  }

  /** The client needs the whole frame (a new socket, a client that fell behind). */
  keyframe(): void {
    this.want('keyframe');
  }

  commit(): void {
    this.want('commit');
  }

  /**
   * Takes the session over from a dead worker: from its last commit when that is still cached
   * (the next frame whole), else by generating it again; the client is told which.
   */
  async resume(): Promise<void> {
    const { committed } = this.record;
    const cached = committed ? await this.deps.editSources.get(committed.jobId).catch(() => null) : null;
    if (committed && cached) {
      this.rendered = { state: committed.state, painted: await this.paint(committed.state), image: { ...cached.source, prompt: committed.state.prompt } };
      this.wholeNext = true;
    }
    await this.deps.sessions.publish(this.id, { type: 'resumed', from: cached ? 'commit' : 'regenerated' });
    this.update();
  }

  /** Stops rendering (the socket closed, the session expired); a render under way is canceled. */
  close(): Promise<void> {
    this.closed = true;
    this.deps.pipeline.cancel(this.renderId(), 'session closed');
    return this.drained ?? Promise.resolve();
  }

  private renderId(): string {
    return `session:${this.id}:${this.renders}`;
  }

  private want(what: keyof LiveSession['wanted']): void {
    this.wanted[what] = true;
    this.kick();
  }

  private kick(): void {
    this.drained ??= this.drain().finally(() => {
      this.drained = null;
      if (!this.closed && Object.values(this.wanted).some(Boolean)) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      try {
        if (this.wanted.update) {
          this.wanted.update = false;
          await this.renderLatest();
        } else if (this.wanted.keyframe) {
          this.wanted.keyframe = false;
          if (this.rendered) await this.publishFrame(this.rendered, [wholeTile(this.record.spec.width, this.record.spec.height)]);
        } else if (this.wanted.commit) {
          this.wanted.commit = false;
          await this.snapshot();
        } else return;
      } catch (err) {
        if (this.closed) return;
        const invalid = err instanceof InvalidJobError;
        await this.deps.sessions
          .publish(this.id, { type: 'error', code: invalid ? 'invalid_state' : 'render_failed', message: (err as Error).message })
          .catch(() => undefined);
      }
    }
  }

  private async renderLatest(): Promise<void> {
    const state = await this.deps.sessions.state(this.id);
    if (!state) return void this.close(); // expired
    const skipped = this.notices - 1;
    this.notices = 0;
    if (skipped > 0) this.deps.onSuperseded?.(skipped);
    if (this.rendered && state.seq === this.rendered.state.seq && !this.wholeNext) return this.deps.onRender?.('none');
    // The session's tenant competes for the engine's ticks while a frame renders and goes out.
    const leave = this.deps.pipeline.engine.attend(this.record.tenant);
    try {
      await this.render(state);
    } finally {
      leave();
    }
  }

  private async render(state: CanvasState): Promise<void> {
    const { spec } = this.record;
    const started = performance.now();
    const painted = await this.paint(state);
    this.renders++;
    const id = this.renderId();
    let progress = Promise.resolve();
    const onProgress: ProgressListener = (step, total, preview) => {
      if (step === total) return; // the frame itself follows
      progress = progress
        .then(async () => this.deps.sessions.publish(this.id, { type: 'progress', basedOn: state.seq, step, total, preview: await preview() }))
        .catch(() => undefined);
    };
    const base = { id, tenant: this.record.tenant, negativePrompt: state.negativePrompt, steps: spec.steps, guidanceScale: spec.guidanceScale, seed: state.seed, format: spec.format };
    const before = this.rendered;
    if (!before || needsRegeneration(before.state, state)) {
      const image = await this.deps.pipeline.generate({ ...base, prompt: state.prompt, width: spec.width, height: spec.height, regions: painted.map(asRegion) }, onProgress);
      await progress;
      this.deps.onRender?.('full');
      const cost = { kind: 'full' as const, renderMs: performance.now() - started, recomputed: 1 };
      return this.publishFrame({ state, painted, image: { ...image, prompt: state.prompt } }, [wholeTile(spec.width, spec.height)], { encoded: [image.data], cost });
    }

    // What changed: pixels whose owner changed, and where a new background prompt matters.
    const change = canvasChange(before.painted, painted, spec.width, spec.height);
    let background = change.background;
    const promptChanged = state.prompt !== before.state.prompt;
    if (promptChanged) {
      const found = await this.deps.pipeline.promptChange(id, { ...before.image, prompt: before.state.prompt }, state.prompt, state.seed, undefined, this.record.tenant);
      const underBackground = overBackground(found.pixel, ownerMap(painted, spec.width, spec.height));
      background = background ? unionMasks([background, underBackground]) : underBackground;
    }
    // Re-noised as far as a mask edit (strokes) or a prompt edit (a changed prompt alone) would be.
    const strokes = change.background !== null || change.regions.length > 0;
    const strength = editStrength(strokes ? { mask: { rects: [] } } : {});
    if (!hasPixels(background) && change.regions.length === 0) {
      this.deps.onRender?.('none');
      const unchanged = { ...before, state, painted, image: { ...before.image, prompt: state.prompt } };
      if (this.wholeNext) return this.publishFrame(unchanged, [wholeTile(spec.width, spec.height)]);
      this.rendered = unchanged;
      return;
    }
    // A stroke of one region at full strength is a mask edit under the region's prompt: one lane
    // per step instead of the region's and the background's over the same window.
    const [only] = change.regions;
    const stroke = !hasPixels(background) && change.regions.length === 1 && only.strength === 1;
    const frame = await this.deps.pipeline.editFrame(
      stroke
        ? { ...base, source: before.image, prompt: only.prompt, mask: { pixels: only.mask }, strength }
        : { ...base, source: before.image, prompt: state.prompt, mask: hasPixels(background) ? { pixels: background } : undefined, regions: change.regions.map(asRegion), strength },
      promptChanged ? onProgress : undefined, // a stroke's frame comes sooner than previews would
    );
    await progress;
    this.deps.onRender?.('edit');
    const cost = { kind: 'edit' as const, renderMs: performance.now() - started, recomputed: frame.recomputedFraction };
    const next = { state, painted, image: { ...before.image, latent: frame.latent, rgb: frame.rgb, prompt: state.prompt } };
    const tiles = this.wholeNext ? [wholeTile(spec.width, spec.height)] : changedTiles(before.image.rgb, frame.rgb, spec.width, spec.height);
    await this.publishFrame(next, tiles, { cost });
  }

  /**
   * Makes `rendered` the session's frame and sends its tiles (encoded here unless given); a
   * rendered frame's cost is reported once it is out.
   */
  private async publishFrame(rendered: Rendered, tiles: Tile[], made: { encoded?: Buffer[]; cost?: RenderCost } = {}): Promise<void> {
    const { width, height, format } = this.record.spec;
    this.rendered = rendered;
    this.wholeNext = false;
    // A whole frame answers any keyframe asked for before it.
    if (tiles.length === 1 && tiles[0].w === width && tiles[0].h === height) this.wanted.keyframe = false;
    const started = performance.now();
    const data = made.encoded ?? (await encodeTiles(rendered.image.rgb, width, height, tiles, format));
    const encoded = performance.now();
    await this.deps.sessions.publish(this.id, { type: 'frame', basedOn: rendered.state.seq, format, tiles }, data);
    if (made.cost) this.deps.onFrame?.({ ...made.cost, encodeMs: encoded - started, publishMs: performance.now() - encoded });
  }

  /**
   * Stores the current frame as a finished job's would be — its image under the job's result key,
   * its latent in the edit-source cache — and tells the API, which records the job.
   */
  private async snapshot(): Promise<void> {
    const rendered = this.rendered;
    if (!rendered) throw new InvalidJobError('nothing has been rendered yet');
    const { format } = this.record.spec;
    const { image } = rendered;
    const jobId = randomUUID();
    const key = resultKey(jobId, format);
    const data = await encodeImage(image.rgb, image.width, image.height, format);
    this.deps.editSources.put(jobId, image, key);
    await Promise.all([this.deps.store.put(key, data, CONTENT_TYPES[format]), this.deps.editSources.stored(jobId)]);
    await this.deps.sessions.publish(this.id, { type: 'snapshot', basedOn: rendered.state.seq, jobId, key, state: rendered.state });
  }

  /** The state's regions as painted masks (each rasterized once per mask it is given). */
  private async paint(state: CanvasState): Promise<PaintedRegion[]> {
    const { width, height } = this.record.spec;
    for (const id of this.masks.keys()) if (!(id in state.regions)) this.masks.delete(id);
    const painted: PaintedRegion[] = [];
    for (const [id, region] of Object.entries(state.regions)) {
      const source = JSON.stringify(region.mask);
      let held = this.masks.get(id);
      if (held?.source !== source) {
        held = { source, mask: await rasterizeMask(toMaskSpec(region.mask), width, height) };
        this.masks.set(id, held);
      }
      painted.push({ prompt: region.prompt, strength: region.strength, mask: held.mask });
    }
    return painted;
  }
}
