/**
 * Where a prompt change matters (DiffEdit, as FISEdit uses it): the UNet's noise predictions
 * for the same noised source under the old and the new prompt differ where the change applies.
 * Averaged over a few noise levels, normalized, thresholded and dilated into a latent mask.
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

/** Nearest-neighbour upsampling of a latent mask to pixels (for reporting the mask used). */
export function upsampleMask(mask: Mask, factor: number, width: number, height: number): Mask {
  const out = emptyMask(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      out.data[y * width + x] = mask.data[Math.min(mask.height - 1, Math.floor(y / factor)) * mask.width + Math.min(mask.width - 1, Math.floor(x / factor))];
    }
  }
  return out;
}
