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
