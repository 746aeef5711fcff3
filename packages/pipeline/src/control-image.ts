/**
 * A job's control image for the model's ControlNet: decoded from the request's bytes (PNG, JPEG or
 * WebP; an image that cannot be read is bad input), laid over the latent canvas' pixels as RGB
 * planes in 0…1 (edges repeated into the padding), and cut per lane window — what the ControlNet's
 * `controlnet_cond` takes.
 */
import sharp from 'sharp';
import { InvalidJobError, MAX_MASK_PIXELS } from '@farm/contracts';
import type { LaneControl } from './composition';
import { CanvasShape, Window, cropWindow } from './latent-window';
import { toPlanarTensor } from './pixel-tensor';

export interface ControlImage {
  /** Interleaved RGB bytes. */
  rgb: Buffer;
  width: number;
  height: number;
}

export async function decodeControlImage(bytes: Buffer): Promise<ControlImage> {
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: MAX_MASK_PIXELS }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    return { rgb: data, width: info.width, height: info.height };
  } catch (err) {
    throw new InvalidJobError(`control.image cannot be used: ${(err as Error).message}`);
  }
}

/** Each lane window's part of the control image (canvas in latent cells, `vaeScale` pixels per cell), with the job's scale. */
export function controlLanes(image: ControlImage, canvas: CanvasShape, vaeScale: number, scale: number): (window: Window) => LaneControl {
  const pixels = { channels: 3, height: canvas.height * vaeScale, width: canvas.width * vaeScale };
  const planes = toPlanarTensor(image.rgb, image.width, image.height, pixels.height, pixels.width).map((v) => (v + 1) / 2);
  return (win) => ({ image: cropWindow(planes, pixels, { x: win.x * vaeScale, y: win.y * vaeScale, w: win.w * vaeScale, h: win.h * vaeScale }), scale });
}
