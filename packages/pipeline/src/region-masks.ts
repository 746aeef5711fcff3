/**
 * Mask maths for region prompts and edits, on plain arrays: rasterizing rectangles and
 * polygons given in canvas pixels, pooling to latent cells, Gaussian blur, the per-step
 * quantization against the noise level, and the window (bounding box + context margin) a
 * region's lanes run on.
 */
import type { Window } from './latent-window';

/** A single-channel mask, values in [0, 1], row-major. */
export interface Mask {
  width: number;
  height: number;
  data: Float32Array;
}

export type Rect = readonly [x: number, y: number, w: number, h: number];
export type Polygon = ReadonlyArray<readonly [x: number, y: number]>;

export function emptyMask(width: number, height: number): Mask {
  return { width, height, data: new Float32Array(width * height) };
}

/** Union of rectangles (pixels), with fractional coverage at their edges. */
export function rasterizeRects(rects: readonly Rect[], width: number, height: number): Mask {
  const mask = emptyMask(width, height);
  for (const [x, y, w, h] of rects) {
    const x0 = Math.max(0, x);
    const y0 = Math.max(0, y);
    const x1 = Math.min(width, x + w);
    const y1 = Math.min(height, y + h);
    for (let py = Math.floor(y0); py < Math.ceil(y1); py++) {
      const cy = Math.min(py + 1, y1) - Math.max(py, y0);
      for (let px = Math.floor(x0); px < Math.ceil(x1); px++) {
        const cx = Math.min(px + 1, x1) - Math.max(px, x0);
        const i = py * width + px;
        mask.data[i] = Math.max(mask.data[i], cx * cy);
      }
    }
  }
  return mask;
}

/** Union of polygons (pixels), even-odd rule, sampled at pixel centres. */
export function rasterizePolygons(polygons: readonly Polygon[], width: number, height: number): Mask {
  const mask = emptyMask(width, height);
  for (const polygon of polygons) {
    if (polygon.length < 3) continue;
    for (let py = 0; py < height; py++) {
      const sy = py + 0.5;
      const crossings: number[] = [];
      for (let i = 0; i < polygon.length; i++) {
        const [ax, ay] = polygon[i];
        const [bx, by] = polygon[(i + 1) % polygon.length];
        if ((ay <= sy && by > sy) || (by <= sy && ay > sy)) crossings.push(ax + ((sy - ay) / (by - ay)) * (bx - ax));
      }
      crossings.sort((a, b) => a - b);
      for (let k = 0; k + 1 < crossings.length; k += 2) {
        const from = Math.max(0, Math.ceil(crossings[k] - 0.5));
        const to = Math.min(width - 1, Math.floor(crossings[k + 1] - 0.5));
        for (let px = from; px <= to; px++) mask.data[py * width + px] = 1;
      }
    }
  }
  return mask;
}

/** Average pooling by an integer factor (pixels → latent cells); sizes round up. */
export function poolMask(mask: Mask, factor: number, outWidth: number, outHeight: number): Mask {
  const out = emptyMask(outWidth, outHeight);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      let sum = 0;
      for (let dy = 0; dy < factor; dy++) {
        const py = y * factor + dy;
        if (py >= mask.height) continue;
        for (let dx = 0; dx < factor; dx++) {
          const px = x * factor + dx;
          if (px < mask.width) sum += mask.data[py * mask.width + px];
        }
      }
      out.data[y * outWidth + x] = sum / (factor * factor);
    }
  }
  return out;
}

/** Separable Gaussian blur (σ in cells; σ ≤ 0 copies). Edges clamp. */
export function blurMask(mask: Mask, sigma: number): Mask {
  if (sigma <= 0) return { ...mask, data: mask.data.slice() };
  const radius = Math.ceil(3 * sigma);
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const norm = kernel.reduce((a, b) => a + b, 0);
  const { width, height } = mask;
  const pass = (src: Float32Array, horizontal: boolean) => {
    const dst = new Float32Array(src.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let k = -radius; k <= radius; k++) {
          const sx = horizontal ? Math.min(width - 1, Math.max(0, x + k)) : x;
          const sy = horizontal ? y : Math.min(height - 1, Math.max(0, y + k));
          acc += kernel[k + radius] * src[sy * width + sx];
        }
        dst[y * width + x] = acc / norm;
      }
    }
    return dst;
  };
  return { width, height, data: pass(pass(mask.data, true), false) };
}

/**
 * The binary mask used at a step whose noise level is σ = √(1−ᾱ_t): cells of the blurred mask
 * above ½·(1−σ). At high noise (σ→1) it covers the whole blurred halo, so the region's object
 * can form with some room; as noise falls it tightens to the drawn edge (threshold ½).
 */
export function quantizeMask(blurred: Mask, noiseLevel: number): Mask {
  const threshold = 0.5 * (1 - noiseLevel);
  const data = new Float32Array(blurred.data.length);
  for (let i = 0; i < data.length; i++) data[i] = blurred.data[i] > threshold && blurred.data[i] > 1e-3 ? 1 : 0;
  return { width: blurred.width, height: blurred.height, data };
}

/** Fraction of the mask's area that is set (sum / cells). */
export function maskCoverage(mask: Mask): number {
  let sum = 0;
  for (const v of mask.data) sum += v;
  return sum / mask.data.length;
}

/**
 * The window a region's lanes run on: the bounding box of its non-zero cells, grown by
 * `margin` cells of context, sizes rounded up to `alignment`, kept inside the canvas.
 * Null for an empty mask.
 */
export function maskWindow(mask: Mask, margin: number, alignment: number): Window | null {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -1;
  let maxY = -1;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[y * mask.width + x] > 1e-3) {
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
      }
    }
  }
  if (maxX < 0) return null;
  const axis = (lo: number, hi: number, size: number) => {
    const want = Math.min(size, Math.ceil((hi - lo + 1 + 2 * margin) / alignment) * alignment);
    const centre = (lo + hi + 1) / 2;
    const start = Math.min(Math.max(0, Math.round(centre - want / 2)), size - want);
    return [start, want] as const;
  };
  const [x, w] = axis(minX, maxX, mask.width);
  const [y, h] = axis(minY, maxY, mask.height);
  return { x, y, w, h };
}

/** The part of a canvas-sized mask under a window. */
export function cropMask(mask: Mask, win: Window): Mask {
  const out = emptyMask(win.w, win.h);
  for (let y = 0; y < win.h; y++) {
    out.data.set(mask.data.subarray((win.y + y) * mask.width + win.x, (win.y + y) * mask.width + win.x + win.w), y * win.w);
  }
  return out;
}
