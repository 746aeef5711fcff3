/**
 * Decoding part of a latent canvas back into an image: each latent window decoded on its own
 * (the decoder's cost follows the windows, not the canvas) and pasted into a copy of the image
 * with feathered weights from the edit's pixel mask; pixels of zero weight keep their bytes.
 */
import { featherWeights, pasteFeathered, PixelWindow } from './feather-paste';
import { CanvasShape, Window, cropWindow } from './latent-window';
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
  paste: { pixelMask: Mask; featherPx: number; vaeScale: number },
): Promise<Buffer> {
  const rgb = Buffer.from(image.rgb);
  const pasted = new Uint8Array(image.width * image.height);
  for (const win of windows) {
    const pixels = await decoder.decode(cropWindow(latent, canvas, win), 1, win.h, win.w);
    const at = pixelWindow(win, paste.vaeScale);
    const patch = toRgbBytes(pixels, at.h, at.w, at.h, at.w);
    pasteFeathered(rgb, image.width, image.height, patch, at, featherWeights(paste.pixelMask, at, paste.featherPx), pasted);
  }
  return rgb;
}
