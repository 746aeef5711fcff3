/**
 * Putting an edited patch back into the source image: a feathered blend weight from the edit's
 * pixel mask, and a paste that leaves every pixel with zero weight byte-for-byte untouched.
 */
import { Mask, blurMask, emptyMask } from './region-masks';

/** Pixel rectangle. */
export interface PixelWindow {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Blend weights over the pixel window `at` (clipped to the image): the mask made binary (> ½),
 * blurred with σ = feather/3 px, so the blend reaches `featherPx` beyond the mask and no further.
 * Work grows with the window, not the image.
 */
export function featherWeights(pixelMask: Mask, at: PixelWindow, featherPx: number): Mask {
  const binary = emptyMask(at.w, at.h);
  for (let y = 0; y < at.h; y++) {
    const sy = at.y + y;
    if (sy < 0 || sy >= pixelMask.height) continue;
    for (let x = 0; x < at.w; x++) {
      const sx = at.x + x;
      if (sx >= 0 && sx < pixelMask.width) binary.data[y * at.w + x] = pixelMask.data[sy * pixelMask.width + sx] > 0.5 ? 1 : 0;
    }
  }
  const soft = blurMask(binary, featherPx / 3);
  // Clamp the Gaussian's far tail to exactly zero so "far from the mask" means untouched.
  for (let i = 0; i < soft.data.length; i++) if (soft.data[i] < 1 / 512) soft.data[i] = 0;
  return soft;
}

/**
 * Blends `patch` (interleaved RGB of the pixel window `patchAt`, which may extend past the
 * image) into `image` (RGB, width×height), in place, with the weights (over the same window).
 * Pixels of weight 0, every pixel outside the window, and pixels already marked in `pasted`
 * (by an overlapping patch) keep their bytes; the pixels blended here are marked.
 */
export function pasteFeathered(
  image: Buffer,
  width: number,
  height: number,
  patch: Buffer,
  patchAt: PixelWindow,
  weights: Mask,
  pasted: Uint8Array,
): void {
  const y1 = Math.min(height, patchAt.y + patchAt.h);
  const x1 = Math.min(width, patchAt.x + patchAt.w);
  for (let y = Math.max(0, patchAt.y); y < y1; y++) {
    for (let x = Math.max(0, patchAt.x); x < x1; x++) {
      const i = (y - patchAt.y) * patchAt.w + (x - patchAt.x);
      const f = weights.data[i];
      if (f === 0 || pasted[y * width + x]) continue;
      pasted[y * width + x] = 1;
      const d = (y * width + x) * 3;
      const p = i * 3;
      for (let c = 0; c < 3; c++) image[d + c] = Math.round(image[d + c] * (1 - f) + patch[p + c] * f);
    }
  }
}

