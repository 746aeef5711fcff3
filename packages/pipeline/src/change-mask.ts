/**
 * Where a prompt change matters (DiffEdit, as FISEdit uses it): the UNet's noise predictions
 * for the same noised source under the old and the new prompt differ where the change applies.
 * Summed over the noise levels probed, thresholded against the largest difference and dilated
 * into a latent mask. Large canvases are probed at half resolution and the mask upsampled.
 */
import type { CanvasShape } from './latent-window';
import { Mask, emptyMask } from './region-masks';

export interface ChangeMaskOptions {
  /** Fraction of the largest difference above which a cell changes (default 0.5, as DiffEdit). */
  threshold?: number;
  /** Cells added around the detected area (default 1). */
  dilate?: number;
}

/** `pairs`: [ε under the old prompt, ε under the new prompt] per noise level, canvas-shaped. */
export function changeMask(pairs: ReadonlyArray<readonly [Float32Array, Float32Array]>, canvas: CanvasShape, options: ChangeMaskOptions = {}): Mask {
  const { height, width, channels } = canvas;
  const plane = height * width;
  const diff = new Float32Array(plane);
  for (const [before, after] of pairs) {
    for (let c = 0; c < channels; c++) for (let i = 0; i < plane; i++) diff[i] += Math.abs(after[c * plane + i] - before[c * plane + i]);
  }
  const max = diff.reduce((m, v) => Math.max(m, v), 0);
  const mask = emptyMask(width, height);
  if (max === 0) return mask;
  const threshold = (options.threshold ?? 0.5) * max;
  const core = diff.map((v) => (v >= threshold ? 1 : 0));
  const r = options.dilate ?? 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!core[y * width + x]) continue;
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
