/**
 * Decoding a latent canvas back into an image window by window. Part of it, for edits: each latent
 * window decoded on its own (the decoder's cost follows the windows, not the canvas) and pasted
 * into a copy of the image with feathered weights from the edit's pixel mask; pixels of zero
 * weight keep their bytes. All of it, for canvases larger than the model's window: in tiles of at
 * most a window, each decoded with a margin of context around it and its core kept, so a large
 * canvas never needs the decoder's activations of the whole image at once (nor holds up the
 * model's other calls for that long).
 */
import { featherWeights, pasteFeathered, PixelWindow } from './feather-paste';
import { CanvasShape, Window, cropWindow } from './latent-window';
import { growWindow } from './region-masks';
import { toRgbBytes } from './pixel-tensor';
import type { Mask } from './region-masks';

/** The VAE decoder as this unit sees it (SdModel implements it). */
export interface LatentDecoder {
  decode(latent: Float32Array, batch: number, height: number, width: number): Promise<Float32Array>;
}

/** An RGB image (interleaved bytes). */
export interface RgbImage {
  rgb: Buffer;
  width: number;
  height: number;
}

/** A latent window's pixels (it may extend past the image). */
export function pixelWindow(win: Window, vaeScale: number): PixelWindow {
  return { x: win.x * vaeScale, y: win.y * vaeScale, w: win.w * vaeScale, h: win.h * vaeScale };
}

/** `image` with the decoded `windows` of `latent` pasted in (a new buffer; `image` is not touched). */
export async function decodeWindowsInto(
  decoder: LatentDecoder,
  latent: Float32Array,
  canvas: CanvasShape,
  windows: readonly Window[],
  image: RgbImage,
  paste: { pixelMask: Mask; featherPx: number; vaeScale: number; maxWindow: number; decodeMargin: number },
): Promise<Buffer> {
  const rgb = Buffer.from(image.rgb);
  const pasted = new Uint8Array(image.width * image.height);
  for (const win of windows) {
    const pixels = await decodeCanvas(decoder, cropWindow(latent, canvas, win), { channels: canvas.channels, height: win.h, width: win.w }, { ...paste, margin: paste.decodeMargin });
    const at = pixelWindow(win, paste.vaeScale);
    const patch = toRgbBytes(pixels, at.h, at.w, at.h, at.w);
    pasteFeathered(rgb, image.width, image.height, patch, at, featherWeights(paste.pixelMask, at, paste.featherPx), pasted);
  }
  return rgb;
}

/**
 * The whole canvas decoded ([3, H, W] planar, as the decoder gives it): at once when it fits a
 * window of `maxWindow` cells, else in tiles of at most `maxWindow` cells a side, each decoded with
 * `margin` cells of context (inside the canvas) and its core's pixels kept; with the edits' margin
 * of 3 cells a pixel differs from a decode of the whole canvas by at most 2 levels of 255 (tested).
 */
export async function decodeCanvas(
  decoder: LatentDecoder,
  latent: Float32Array,
  canvas: CanvasShape,
  layout: { vaeScale: number; maxWindow: number; margin: number },
): Promise<Float32Array> {
  const { vaeScale: s, maxWindow, margin } = layout;
  if (canvas.height <= maxWindow && canvas.width <= maxWindow) return decoder.decode(latent, 1, canvas.height, canvas.width);
  const H = canvas.height * s;
  const W = canvas.width * s;
  const out = new Float32Array(3 * H * W);
  for (let y0 = 0; y0 < canvas.height; y0 += maxWindow) {
    for (let x0 = 0; x0 < canvas.width; x0 += maxWindow) {
      const core = { y: y0, x: x0, h: Math.min(maxWindow, canvas.height - y0), w: Math.min(maxWindow, canvas.width - x0) };
      const win = growWindow(core, margin, canvas.width, canvas.height);
      const pixels = await decoder.decode(cropWindow(latent, canvas, win), 1, win.h, win.w);
      const pw = win.w * s;
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < core.h * s; y++) {
          const from = (c * win.h * s + (core.y - win.y) * s + y) * pw + (core.x - win.x) * s;
          out.set(pixels.subarray(from, from + core.w * s), (c * H + core.y * s + y) * W + core.x * s);
        }
      }
    }
  }
  return out;
}
