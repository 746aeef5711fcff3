/**
 * Rectangular windows of a latent canvas [C, H, W], and cropping one out. Lanes that cover part
 * of a canvas (regions, panorama tiles, edits) run on such crops.
 */

/** A rectangle in latent cells. */
export interface Window {
  y: number;
  x: number;
  h: number;
  w: number;
}

export interface CanvasShape {
  channels: number;
  height: number;
  width: number;
}

export function isFullWindow(win: Window, canvas: CanvasShape): boolean {
  return win.y === 0 && win.x === 0 && win.h === canvas.height && win.w === canvas.width;
}

/** The smallest window holding both. */
export function unionWindow(a: Window, b: Window): Window {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

/** Share of a width×height canvas that at least one of the windows covers. */
export function windowCoverage(windows: readonly Window[], width: number, height: number): number {
  const covered = new Uint8Array(width * height);
  for (const win of windows) for (let y = win.y; y < win.y + win.h; y++) covered.fill(1, y * width + win.x, y * width + win.x + win.w);
  return covered.reduce((sum, v) => sum + v, 0) / covered.length;
}

/** Copies the window out of a canvas tensor (returns the canvas itself for a full window). */
export function cropWindow(data: Float32Array, canvas: CanvasShape, win: Window): Float32Array {
  if (isFullWindow(win, canvas)) return data;
  const out = new Float32Array(canvas.channels * win.h * win.w);
  for (let c = 0; c < canvas.channels; c++) {
    for (let y = 0; y < win.h; y++) {
      const src = (c * canvas.height + win.y + y) * canvas.width + win.x;
      out.set(data.subarray(src, src + win.w), (c * win.h + y) * win.w);
    }
  }
  return out;
}

/** Writes a window-shaped tensor into a canvas tensor, in place (the inverse of `cropWindow`); returns the canvas. */
export function pasteWindow(target: Float32Array, canvas: CanvasShape, win: Window, data: Float32Array): Float32Array {
  for (let c = 0; c < canvas.channels; c++) {
    for (let y = 0; y < win.h; y++) {
      target.set(data.subarray((c * win.h + y) * win.w, (c * win.h + y + 1) * win.w), (c * canvas.height + win.y + y) * canvas.width + win.x);
    }
  }
  return target;
}
