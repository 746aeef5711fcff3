/**
 * The composition of a text-to-image canvas: a background prompt over one or more tiles
 * (MultiDiffusion panoramas), and region prompts layered on top (StreamMultiDiffusion's
 * semantic palette). Each region's lanes run on its mask's bounding box plus a context margin,
 * not on the whole canvas, so regions cost in proportion to their area; a box larger than the
 * model's window is tiled like a panorama (its tiles' estimates blended by their weights), so no
 * lane is larger than a window.
 *
 * Per step: every lane's x0 estimate is computed (with classifier-free guidance if asked);
 * tiles are blended by their weights; then each region, in order (later over earlier), replaces
 * the estimate where its mask — blurred, and quantized against this step's noise level — is set.
 * During the first `bootstrap.steps` steps a region lane sees its foreground over a plain
 * background (noised to the step's level) instead of the canvas, so its object forms on its own.
 * An edit adds a keep layer: outside its mask the source's clean latent replaces the estimate,
 * so the scheduler re-noises the untouched part from the source trajectory at every step.
 */
import type { Composition, Conditioning, Guidance, LaneControl, LaneSpec } from './composition';
import { applyGuidance } from './composition';
import type { GaussianRng } from './gaussian-rng';
import { CanvasShape, Window, cropWindow } from './latent-window';
import type { NoiseSchedule } from './noise-schedule';
import { Mask, cropMask, quantizeMask } from './region-masks';
import type { Tile } from './tiling';

export interface RegionLayer {
  context: Conditioning;
  /** Blurred soft mask over the whole latent canvas. */
  mask: Mask;
  /** Where the region's lanes run (bounding box + margin). */
  window: Window;
  /** 0…1: how strongly the region overrides what lies under it. */
  strength: number;
}

export interface Bootstrap {
  steps: number;
  /** Latent of a plain background, one value per channel. */
  background: Float32Array;
  /** Generator for the bootstrap noise (seeded from the job, so the image stays reproducible). */
  rng: GaussianRng;
}

/** What an edit keeps: the source's clean latent, everywhere its mask is not set. */
export interface KeepLayer {
  /** The source's final latent over the canvas. */
  latent: Float32Array;
  /** Soft mask of what may change (blurred), over the canvas; quantized per step like regions. */
  mask: Mask;
}

export interface CanvasCompositionOptions {
  canvas: CanvasShape;
  context: Conditioning;
  guidance: Guidance;
  tiles: readonly Tile[];
  regions?: readonly RegionLayer[];
  schedule: NoiseSchedule;
  bootstrap?: Bootstrap;
  /** Edits: the source latent is kept outside the (per-step quantized) mask. */
  keep?: KeepLayer;
  /** A ControlNet input: every lane (guided or not) gets the control image under its window. */
  control?: (window: Window) => LaneControl;
  /** Tiles covering a region's window, weights summing to one (default: the window, one tile). */
  regionTiles?: (window: Window) => Tile[];
}

/** A lane (and its unconditional twin) over one tile: of the background, or of region `region`'s window. */
interface LaneGroup {
  window: Window;
  cond: number;
  uncond: number | null;
  tile: Tile;
  region?: number;
}

/** A function of one key, computed once per key. */
function memo<K, V>(compute: (key: K) => V): (key: K) => V {
  const cache = new Map<K, V>();
  return (key) => {
    if (!cache.has(key)) cache.set(key, compute(key));
    return cache.get(key)!;
  };
}

export function canvasComposition(options: CanvasCompositionOptions): Composition {
  const { canvas, guidance, schedule, bootstrap, keep } = options;
  const regions = options.regions ?? [];
  const regionTiles = options.regionTiles ?? ((window: Window) => [{ window, weights: new Float32Array(window.h * window.w).fill(1) }]);
  const lanes: LaneSpec[] = [];
  const groups: LaneGroup[] = [];
  const addGroup = (tile: Tile, conditioning: Conditioning, region?: number) => {
    const { window } = tile;
    const control = options.control?.(window);
    const cond = lanes.push({ window, ...conditioning, control }) - 1;
    const uncond = guidance.kind === 'cfg' ? lanes.push({ window, ...guidance.unconditional, control }) - 1 : null;
    groups.push({ window, cond, uncond, tile, region });
  };
  for (const tile of options.tiles) addGroup(tile, options.context);
  regions.forEach((region, r) => {
    for (const tile of regionTiles(region.window)) addGroup(tile, region.context, r);
  });

  // Masks quantized against each timestep's noise level, computed once per timestep.
  const quantizedAt = (mask: Mask, win?: Window) =>
    memo((t: number) => {
      const q = quantizeMask(mask, schedule.noiseLevel(t));
      return win ? cropMask(q, win) : q;
    });
  // Each region's mask over its window (fusion), and over each of its tiles (bootstrapping).
  const regionMasks = regions.map((region) => quantizedAt(region.mask, region.window));
  const tileMasks = groups.map((group) => (group.region === undefined ? undefined : quantizedAt(regions[group.region].mask, group.window)));
  const keepMask = keep && quantizedAt(keep.mask);
  const plane = (w: Window) => w.h * w.w;

  return {
    lanes,

    inputs(sample, t, step) {
      const inputs: Float32Array[] = new Array(lanes.length);
      groups.forEach((group, g) => {
        let input = cropWindow(sample, canvas, group.window);
        const regionMask = tileMasks[g];
        if (regionMask && bootstrap && step < bootstrap.steps) {
          const mask = regionMask(t);
          const a = Math.sqrt(schedule.alphaBar(t));
          const s = Math.sqrt(1 - schedule.alphaBar(t));
          const mixed = new Float32Array(input.length);
          const n = plane(group.window);
          for (let c = 0; c < canvas.channels; c++) {
            for (let i = 0; i < n; i++) {
              const m = mask.data[i];
              const plain = a * bootstrap.background[c] + s * bootstrap.rng.normal();
              mixed[c * n + i] = m * input[c * n + i] + (1 - m) * plain;
            }
          }
          input = mixed;
        }
        inputs[group.cond] = input;
        if (group.uncond !== null) inputs[group.uncond] = input;
      });
      return inputs;
    },

    fuse(predictions, inputs, t, scheduler) {
      const x0 = new Float32Array(canvas.channels * canvas.height * canvas.width);
      const estimate = (group: LaneGroup) => {
        const eps =
          group.uncond !== null && guidance.kind === 'cfg'
            ? applyGuidance(predictions[group.cond], predictions[group.uncond], guidance.scale)
            : predictions[group.cond];
        return scheduler.denoise(eps, inputs[group.cond], t);
      };
      /** Adds each tile's estimate, by its weights, into `into` (the plane of `area`). */
      const blend = (into: Float32Array, area: Window, tiles: readonly LaneGroup[]) => {
        for (const group of tiles) {
          const local = estimate(group);
          const { window: win, tile } = group;
          const n = plane(win);
          for (let c = 0; c < canvas.channels; c++) {
            for (let y = 0; y < win.h; y++) {
              const row = (c * area.h + win.y - area.y + y) * area.w + win.x - area.x;
              for (let x = 0; x < win.w; x++) into[row + x] += tile.weights[y * win.w + x] * local[c * n + y * win.w + x];
            }
          }
        }
      };
      blend(x0, { x: 0, y: 0, h: canvas.height, w: canvas.width }, groups.filter((group) => group.region === undefined));
      // Regions in order, later over earlier: each one's estimate over its window, laid in by its mask.
      regions.forEach((region, r) => {
        const { window: win, strength } = region;
        const n = plane(win);
        const local = new Float32Array(canvas.channels * n);
        blend(local, win, groups.filter((group) => group.region === r));
        const mask = regionMasks[r](t);
        for (let c = 0; c < canvas.channels; c++) {
          for (let y = 0; y < win.h; y++) {
            const row = (c * canvas.height + win.y + y) * canvas.width + win.x;
            for (let x = 0; x < win.w; x++) {
              const m = strength * mask.data[y * win.w + x];
              x0[row + x] = (1 - m) * x0[row + x] + m * local[c * n + y * win.w + x];
            }
          }
        }
      });
      if (keep && keepMask) {
        const mask = keepMask(t);
        const cells = canvas.height * canvas.width;
        for (let c = 0; c < canvas.channels; c++) {
          for (let i = 0; i < cells; i++) {
            const m = mask.data[i];
            x0[c * cells + i] = m * x0[c * cells + i] + (1 - m) * keep.latent[c * cells + i];
          }
        }
      }
      return x0;
    },
  };
}
