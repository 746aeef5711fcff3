/**
 * Where a prompt change matters (DiffEdit, as FISEdit uses it): the UNet's noise predictions
 * for the same noised source under the old and the new prompt differ where the change applies.
 * Summed over the noise levels probed, thresholded against the largest difference and dilated
 * into a latent mask. Large canvases are probed at half resolution, the difference map upsampled
 * (bilinear) before thresholding so the mask keeps the canvas's resolution. The probe itself is
 * stream-batch work: two lanes of the noised source, one under each prompt, at one timestep.
 */
import type { Conditioning } from './composition';
import { GaussianRng } from './gaussian-rng';
import type { CanvasShape } from './latent-window';
import type { NoiseSchedule } from './noise-schedule';
import { Mask, emptyMask } from './region-masks';
import { addNoise } from './scheduler';
import type { ProbeRequest } from './stream-batch';

/** The noise level probed: mid-way (DiffEdit probes around half of the schedule). */
const PROBE_TIMESTEP = 499;

export interface ChangeMaskOptions {
  /**
   * Fraction of the largest difference from which a cell changes (default 0.35). DiffEdit uses ½
   * on an average of ten noise draws; from the single draw probed here, ½ left 12% of the changed
   * object's pixels out on the bundled model and 0.35 left 5%, for 5% more of the rest.
   */
  threshold?: number;
  /** Cells added around the detected area (default 1). */
  dilate?: number;
}

/** How much the prediction changes per cell: Σ over the pairs and channels of |ε_new − ε_old|. */
export function changeMap(pairs: ReadonlyArray<readonly [Float32Array, Float32Array]>, canvas: CanvasShape): Mask {
  const { height, width, channels } = canvas;
  const plane = height * width;
  const map = emptyMask(width, height);
  for (const [before, after] of pairs) {
    for (let c = 0; c < channels; c++) for (let i = 0; i < plane; i++) map.data[i] += Math.abs(after[c * plane + i] - before[c * plane + i]);
  }
  return map;
}

/** The cells of a change map at or above `threshold` × its largest value, dilated. */
export function changeMask(map: Mask, options: ChangeMaskOptions = {}): Mask {
  const { width, height } = map;
  const max = map.data.reduce((m, v) => Math.max(m, v), 0);
  const mask = emptyMask(width, height);
  if (max === 0) return mask;
  const threshold = (options.threshold ?? 0.35) * max;
  const r = options.dilate ?? 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (map.data[y * width + x] < threshold) continue;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < height && xx >= 0 && xx < width) mask.data[yy * width + xx] = 1;
        }
      }
    }
  }
  return mask;
}

/** Bilinear upsampling of a map by an integer factor to width×height (cell centres aligned, edges clamped). */
export function upsampleMap(map: Mask, factor: number, width: number, height: number): Mask {
  const out = emptyMask(width, height);
  const sample = (pos: number, limit: number) => {
    const s = Math.min(limit - 1, Math.max(0, (pos + 0.5) / factor - 0.5));
    const lo = Math.floor(s);
    return [lo, Math.min(limit - 1, lo + 1), s - lo] as const;
  };
  for (let y = 0; y < height; y++) {
    const [y0, y1, fy] = sample(y, map.height);
    for (let x = 0; x < width; x++) {
      const [x0, x1, fx] = sample(x, map.width);
      const at = (yy: number, xx: number) => map.data[yy * map.width + xx];
      const top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx;
      const bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx;
      out.data[y * width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/**
 * The probe's canvas: the source canvas at half resolution when its shorter side is at least
 * twice the model's native latent size (the change shows as well there, for a quarter of the
 * work; pooling further loses objects a few cells wide), else the canvas itself. Sides are
 * rounded up to `alignment`.
 */
export function probeCanvas(canvas: CanvasShape, nativeSize: number, alignment: number): { factor: number; probe: CanvasShape } {
  const factor = Math.min(canvas.height, canvas.width) >= 2 * nativeSize ? 2 : 1;
  const side = (cells: number) => Math.ceil(cells / factor / alignment) * alignment;
  return { factor, probe: { channels: canvas.channels, height: side(canvas.height), width: side(canvas.width) } };
}

/** Average pooling of a latent canvas by `factor` into `probe`; cells past the canvas edge repeat it. */
export function poolLatent(latent: Float32Array, canvas: CanvasShape, factor: number, probe: CanvasShape): Float32Array {
  const out = new Float32Array(probe.channels * probe.height * probe.width);
  const clampY = (y: number) => Math.min(y, canvas.height - 1);
  const clampX = (x: number) => Math.min(x, canvas.width - 1);
  for (let c = 0; c < probe.channels; c++) {
    for (let y = 0; y < probe.height; y++) {
      for (let x = 0; x < probe.width; x++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          const row = (c * canvas.height + clampY(y * factor + dy)) * canvas.width;
          for (let dx = 0; dx < factor; dx++) sum += latent[row + clampX(x * factor + dx)];
        }
        out[(c * probe.height + y) * probe.width + x] = sum / (factor * factor);
      }
    }
  }
  return out;
}

/** Nearest-neighbour upsampling of a mask (probe → latent canvas, latent → pixels). */
export function upsampleMask(mask: Mask, factor: number, width: number, height: number): Mask {
  const out = emptyMask(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      out.data[y * width + x] = mask.data[Math.min(mask.height - 1, Math.floor(y / factor)) * mask.width + Math.min(mask.width - 1, Math.floor(x / factor))];
    }
  }
  return out;
}

export interface ChangeProbeParams {
  id: string;
  /** The source's clean latent over `canvas`. */
  latent: Float32Array;
  canvas: CanvasShape;
  /** Text embeddings of the old and the new prompt. */
  before: Conditioning;
  after: Conditioning;
  /** The model's native latent size and window alignment (they decide the probe canvas). */
  nativeSize: number;
  alignment: number;
  schedule: NoiseSchedule;
  /** The edit's seed: the probe's noise is drawn from it. */
  seed: number;
}

/**
 * The prompt-change probe (DiffEdit): the source, pooled to the probe canvas and noised to
 * mid-level, under the old and the new prompt — and how its two predictions become the change mask
 * over the canvas (before holes are filled).
 */
export function changeProbe(params: ChangeProbeParams): { request: ProbeRequest; mask: (predictions: readonly Float32Array[]) => Mask } {
  const { canvas } = params;
  const { factor, probe } = probeCanvas(canvas, params.nativeSize, params.alignment);
  const pooled = factor === 1 ? params.latent : poolLatent(params.latent, canvas, factor, probe);
  const noised = addNoise(params.schedule, pooled, new GaussianRng(params.seed ^ 0x2545f491).normals(pooled.length), PROBE_TIMESTEP);
  const window = { x: 0, y: 0, h: probe.height, w: probe.width };
  return {
    request: {
      id: params.id,
      canvas: probe,
      timestep: PROBE_TIMESTEP,
      lanes: [{ window, ...params.before }, { window, ...params.after }],
      inputs: [noised, noised],
    },
    mask: ([before, after]) => {
      const map = changeMap([[before, after]], probe);
      return changeMask(factor === 1 ? map : upsampleMap(map, factor, canvas.width, canvas.height));
    },
  };
}
