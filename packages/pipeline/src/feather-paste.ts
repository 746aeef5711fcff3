/**
 * Putting an edited patch back into the source image: a feathered blend weight from the edit's
 * pixel mask, and a paste that leaves every pixel with zero weight byte-for-byte untouched.
 */
import { Mask, emptyMask } from './region-masks';

/** Pixel rectangle. */
export interface PixelWindow {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * One box-filter pass of radius `r` along lines of `length` values (`step` apart within a line,
 * `stride` between lines), edges repeated; a running sum, so its cost does not grow with `r`.
 */
function boxPass(src: Float64Array, lines: number, length: number, step: number, stride: number, r: number): Float64Array<ArrayBuffer> {
  const dst = new Float64Array(src.length);
  const at = (base: number, i: number) => src[base + Math.min(length - 1, Math.max(0, i)) * step];
  for (let line = 0; line < lines; line++) {
    const base = line * stride;
    let acc = 0;
    for (let k = -r; k <= r; k++) acc += at(base, k);
    for (let i = 0; i < length; i++) {
      if (i > 0) acc += at(base, i + r) - at(base, i - r - 1);
      dst[base + i * step] = acc;
    }
  }
  return dst;
}

/**
 * Blend weights over the pixel window `at` (clipped to the image): the mask made binary (> ½),
 * then a tent filter along each axis (two box passes whose radii add up to `featherPx`). The
 * weight is ½ on the mask's edge, 1 deeper than `featherPx` inside, and exactly 0 farther than
 * `featherPx` outside (the sums are of whole numbers), in time linear in the window.
 */
export function featherWeights(pixelMask: Mask, at: PixelWindow, featherPx: number): Mask {
  let data: Float64Array<ArrayBuffer> = new Float64Array(at.w * at.h);
  for (let y = 0; y < at.h; y++) {
    const sy = at.y + y;
    if (sy < 0 || sy >= pixelMask.height) continue;
    for (let x = 0; x < at.w; x++) {
      const sx = at.x + x;
      if (sx >= 0 && sx < pixelMask.width) data[y * at.w + x] = pixelMask.data[sy * pixelMask.width + sx] > 0.5 ? 1 : 0;
    }
  }
  const radii = [Math.floor(featherPx / 2), Math.ceil(featherPx / 2)];
  for (const r of radii) data = boxPass(data, at.h, at.w, 1, at.w, r);
  for (const r of radii) data = boxPass(data, at.w, at.h, at.w, 1, r);
  const norm = radii.reduce((n, r) => n * (2 * r + 1) ** 2, 1);
  const weights = emptyMask(at.w, at.h);
  for (let i = 0; i < data.length; i++) weights.data[i] = data[i] / norm;
  return weights;
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

