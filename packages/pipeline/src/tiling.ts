/**
 * MultiDiffusion tiling for canvases larger than the model's window (panoramas): overlapping
 * square windows of one shape (so they batch together) and per-window weights that sum to one
 * on every latent cell, ramped linearly across overlaps so that no window edge shows as a seam.
 */
import type { Window } from './latent-window';

export interface Tile {
  window: Window;
  /** Weight of this window on each of its cells [h·w]; over all tiles they sum to 1 per cell. */
  weights: Float32Array;
}

/** Start positions of windows of `size` along an axis of `length`, at most `maxStride` apart. */
function starts(length: number, size: number, maxStride: number): number[] {
  if (length <= size) return [0];
  const n = Math.ceil((length - size) / maxStride) + 1;
  return Array.from({ length: n }, (_, i) => Math.round((i * (length - size)) / (n - 1)));
}

/** Tiles covering a window of a larger canvas: `tileCanvas` of the window, moved to its place. */
export function tileWindow(area: Window, maxWindow: number, overlap: number, alignment: number): Tile[] {
  return tileCanvas(area.h, area.w, maxWindow, overlap, alignment).map(({ window, weights }) => ({
    window: { ...window, y: window.y + area.y, x: window.x + area.x },
    weights,
  }));
}

/**
 * Tiles covering a canvas of height×width latent cells. A canvas within `maxWindow` on both
 * sides is one tile. Otherwise windows are squares of min(height, width, maxWindow) cells
 * (rounded down to `alignment`) overlapping by at least `overlap` cells.
 */
export function tileCanvas(height: number, width: number, maxWindow: number, maxOverlap: number, alignment: number): Tile[] {
  if (height <= maxWindow && width <= maxWindow) {
    return [{ window: { y: 0, x: 0, h: height, w: width }, weights: new Float32Array(height * width).fill(1) }];
  }
  const side = Math.max(alignment, Math.floor(Math.min(height, width, maxWindow) / alignment) * alignment);
  const hSide = Math.min(side, height);
  const wSide = Math.min(side, width);
  // Windows no taller than the overlap (a wide, short panorama) overlap by half instead.
  const overlap = Math.min(maxOverlap, Math.floor(Math.min(hSide, wSide) / 2));
  const windows: Window[] = [];
  for (const y of starts(height, hSide, hSide - overlap)) {
    for (const x of starts(width, wSide, wSide - overlap)) windows.push({ y, x, h: hSide, w: wSide });
  }
  // Raw weights: 1 inside, ramping down towards window edges that lie inside the canvas.
  const ramp = (pos: number, size: number, atStart: boolean, atEnd: boolean) => {
    let w = 1;
    if (!atStart) w = Math.min(w, (pos + 0.5) / overlap);
    if (!atEnd) w = Math.min(w, (size - pos - 0.5) / overlap);
    return Math.max(w, 1e-3);
  };
  const raw = windows.map((win) => {
    const weights = new Float32Array(win.h * win.w);
    for (let y = 0; y < win.h; y++) {
      const wy = ramp(y, win.h, win.y === 0, win.y + win.h === height);
      for (let x = 0; x < win.w; x++) weights[y * win.w + x] = wy * ramp(x, win.w, win.x === 0, win.x + win.w === width);
    }
    return weights;
  });
  const total = new Float32Array(height * width);
  windows.forEach((win, i) => {
    for (let y = 0; y < win.h; y++) for (let x = 0; x < win.w; x++) total[(win.y + y) * width + win.x + x] += raw[i][y * win.w + x];
  });
  return windows.map((win, i) => {
    const weights = raw[i];
    for (let y = 0; y < win.h; y++) for (let x = 0; x < win.w; x++) weights[y * win.w + x] /= total[(win.y + y) * width + win.x + x];
    return { window: win, weights };
  });
}

/**
 * Tiles of several windows that may overlap (edits of scattered masks): each tile's weights
 * divided by the total weight on each cell, so that on every covered cell they sum to one.
 */
export function shareOverlaps(tiles: readonly Tile[], height: number, width: number): Tile[] {
  const total = new Float32Array(height * width);
  for (const { window: w, weights } of tiles) {
    for (let y = 0; y < w.h; y++) for (let x = 0; x < w.w; x++) total[(w.y + y) * width + w.x + x] += weights[y * w.w + x];
  }
  return tiles.map(({ window: w, weights }) => ({
    window: w,
    weights: weights.map((v, i) => v / total[(w.y + Math.floor(i / w.w)) * width + w.x + (i % w.w)]),
  }));
}
