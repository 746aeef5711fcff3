/**
 * Mask maths for region prompts and edits, on plain arrays: rasterizing rectangles and
 * polygons given in canvas pixels, pooling to latent cells, Gaussian blur, the per-step
 * quantization against the noise level, and the window (bounding box + context margin) a
 * region's lanes run on.
 */
import { Window, unionWindow } from './latent-window';

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

/** Union of same-sized masks: the largest value of each cell (a single mask is returned as is). */
export function unionMasks(masks: readonly Mask[]): Mask {
  if (masks.length === 1) return masks[0];
  const out = emptyMask(masks[0].width, masks[0].height);
  for (const mask of masks) for (let i = 0; i < out.data.length; i++) out.data[i] = Math.max(out.data[i], mask.data[i]);
  return out;
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
  const raw = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const norm = raw.reduce((a, b) => a + b, 0);
  const kernel = Float32Array.from(raw, (v) => v / norm);
  const { width, height } = mask;
  // One 1-D pass along lines of `length` cells, `step` apart within a line, `stride` between lines.
  const pass = (src: Float32Array, lines: number, length: number, step: number, stride: number) => {
    const dst = new Float32Array(src.length);
    for (let line = 0; line < lines; line++) {
      const base = line * stride;
      for (let i = 0; i < length; i++) {
        let acc = 0;
        if (i >= radius && i + radius < length) {
          // Interior: no clamping.
          for (let k = 0, at = base + (i - radius) * step; k < kernel.length; k++, at += step) acc += kernel[k] * src[at];
        } else {
          for (let k = -radius; k <= radius; k++) {
            const j = i + k < 0 ? 0 : i + k >= length ? length - 1 : i + k;
            acc += kernel[k + radius] * src[base + j * step];
          }
        }
        dst[base + i * step] = acc;
      }
    }
    return dst;
  };
  const horizontal = pass(mask.data, height, width, 1, width);
  return { width, height, data: pass(horizontal, width, height, width, 1) };
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

/**
 * How far (in cells) a mask blurred with σ still counts once quantized: 2σ. Past it the blurred
 * value of a straight edge is below 0.025, under the threshold of every step but the first (whose
 * noise level is ~1), so windows cover this halo and `clipMask` drops the thin tail beyond.
 */
export function blurHalo(sigma: number): number {
  return Math.ceil(2 * sigma);
}

/** The mask with every cell outside all of the windows set to zero. */
export function clipMask(mask: Mask, windows: readonly Window[]): Mask {
  const out = emptyMask(mask.width, mask.height);
  for (const win of windows) {
    for (let y = win.y; y < win.y + win.h; y++) {
      const row = y * mask.width;
      out.data.set(mask.data.subarray(row + win.x, row + win.x + win.w), row + win.x);
    }
  }
  return out;
}

/** Cells of a mask that count as set. */
const SET = 1e-3;

/** Bounding box (inclusive cells) of the set cells of a mask within a window; null if none. */
export function maskBounds(mask: Mask, within: Window = { x: 0, y: 0, w: mask.width, h: mask.height }): Window | null {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -1;
  let maxY = -1;
  for (let y = within.y; y < within.y + within.h; y++) {
    for (let x = within.x; x < within.x + within.w; x++) {
      if (mask.data[y * mask.width + x] > SET) {
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
      }
    }
  }
  return maxX < 0 ? null : { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 };
}

/** Cells a window covers. */
const area = (win: Window) => win.w * win.h;

/** Where a span of `want` cells centred on [lo, lo + size) starts, kept inside [0, limit). */
const centredStart = (lo: number, size: number, want: number, limit: number) =>
  Math.min(Math.max(0, Math.round(lo + size / 2 - want / 2)), limit - want);

/** A box grown by `margin` cells, sizes rounded up to `alignment`, kept inside width×height. */
export function alignWindow(box: Window, margin: number, alignment: number, width: number, height: number): Window {
  const w = Math.min(width, Math.ceil((box.w + 2 * margin) / alignment) * alignment);
  const h = Math.min(height, Math.ceil((box.h + 2 * margin) / alignment) * alignment);
  return { x: centredStart(box.x, box.w, w, width), y: centredStart(box.y, box.h, h, height), w, h };
}

/**
 * Windows grown, each about its centre, to one shape — the largest height and width among them —
 * when that adds at most a quarter to their total area: lanes of one shape share a UNet call, and
 * every call costs a fixed overhead besides its cells. Otherwise they are returned as they are.
 */
export function commonShape(windows: readonly Window[], width: number, height: number): Window[] {
  const h = Math.max(...windows.map((win) => win.h));
  const w = Math.max(...windows.map((win) => win.w));
  const total = windows.reduce((sum, win) => sum + area(win), 0);
  if (windows.length < 2 || windows.length * h * w > 1.25 * total) return [...windows];
  return windows.map((win) => ({ x: centredStart(win.x, win.w, w, width), y: centredStart(win.y, win.h, h, height), w, h }));
}

/** A box grown by `margin` cells on every side, clipped to width×height (no alignment). */
export function growWindow(box: Window, margin: number, width: number, height: number): Window {
  const x = Math.max(0, box.x - margin);
  const y = Math.max(0, box.y - margin);
  return { x, y, w: Math.min(width, box.x + box.w + margin) - x, h: Math.min(height, box.y + box.h + margin) - y };
}

/**
 * The window a region's lanes run on: the bounding box of its set cells, grown by `margin`
 * cells of context, sizes rounded up to `alignment`, kept inside the canvas. Null for an empty mask.
 */
export function maskWindow(mask: Mask, margin: number, alignment: number): Window | null {
  const bounds = maskBounds(mask);
  return bounds && alignWindow(bounds, margin, alignment, mask.width, mask.height);
}

const overlaps = (a: Window, b: Window) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/**
 * Overlapping windows merged into one — `shape` of their bounding box — wherever that is no
 * larger than the two apart (it saves a call and the cells computed twice); the others are kept.
 */
export function mergeWindows(windows: readonly Window[], shape: (box: Window) => Window = (box) => box): Window[] {
  let current = [...windows];
  for (let merged = true; merged; ) {
    merged = false;
    const next: Window[] = [];
    for (const win of current) {
      const i = next.findIndex((other) => overlaps(other, win) && area(shape(unionWindow(other, win))) <= area(other) + area(win));
      if (i < 0) next.push(win);
      else {
        next[i] = shape(unionWindow(next[i], win));
        merged = true;
      }
    }
    current = next;
  }
  return current;
}

/**
 * Windows covering a mask that may be scattered: one per 8-connected group of set cells (its
 * bounding box grown and aligned as in `maskWindow`), overlapping ones merged as in
 * `mergeWindows`, so work follows the mask's area, not its extent; the windows left may overlap
 * (their fusion weights must then be shared).
 */
export function maskWindows(mask: Mask, margin: number, alignment: number): Window[] {
  const { width, height, data } = mask;
  const seen = new Uint8Array(width * height);
  const windows: Window[] = [];
  for (let start = 0; start < data.length; start++) {
    if (seen[start] || data[start] <= SET) continue;
    const box = { x: start % width, y: Math.floor(start / width), w: 1, h: 1 };
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const i = stack.pop()!;
      const cx = i % width;
      const cy = Math.floor(i / width);
      const grown = unionWindow(box, { x: cx, y: cy, w: 1, h: 1 });
      Object.assign(box, grown);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = cx + dx;
          const ny = cy + dy;
          const j = ny * width + nx;
          if (nx >= 0 && nx < width && ny >= 0 && ny < height && !seen[j] && data[j] > SET) {
            seen[j] = 1;
            stack.push(j);
          }
        }
      }
    }
    windows.push(alignWindow(box, margin, alignment, width, height));
  }
  return mergeWindows(windows, (box) => alignWindow(box, 0, alignment, width, height));
}

/** Sets the cells of a mask that its set cells enclose (not reachable from the border). */
export function fillHoles(mask: Mask): Mask {
  const { width, height, data } = mask;
  const outside = new Uint8Array(width * height);
  const stack: number[] = [];
  const visit = (x: number, y: number) => {
    const i = y * width + x;
    if (!outside[i] && data[i] <= SET) {
      outside[i] = 1;
      stack.push(i);
    }
  };
  for (let x = 0; x < width; x++) {
    visit(x, 0);
    visit(x, height - 1);
  }
  for (let y = 0; y < height; y++) {
    visit(0, y);
    visit(width - 1, y);
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    const x = i % width;
    const y = Math.floor(i / width);
    if (x > 0) visit(x - 1, y);
    if (x < width - 1) visit(x + 1, y);
    if (y > 0) visit(x, y - 1);
    if (y < height - 1) visit(x, y + 1);
  }
  return { width, height, data: data.map((v, i) => (outside[i] ? v : Math.max(v, 1))) };
}

/** The part of a canvas-sized mask under a window. */
export function cropMask(mask: Mask, win: Window): Mask {
  const out = emptyMask(win.w, win.h);
  for (let y = 0; y < win.h; y++) {
    out.data.set(mask.data.subarray((win.y + y) * mask.width + win.x, (win.y + y) * mask.width + win.x + win.w), y * win.w);
  }
  return out;
}
