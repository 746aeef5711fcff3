/**
 * A mask as a request gives it (PNG bytes, rectangles or polygons in canvas pixels) → pixel mask;
 * one already rasterized at the image size (a live session's) is taken as it is.
 */
import sharp from 'sharp';
import { InvalidJobError, MAX_MASK_PIXELS } from '@farm/contracts';
import { encodePng } from './png-encoding';
import { Mask, Polygon, Rect, rasterizePolygons, rasterizeRects } from './region-masks';

export type MaskSpec = { png: Buffer } | { rects: readonly Rect[] } | { polygons: readonly Polygon[] } | { pixels: Mask };

export async function rasterizeMask(spec: MaskSpec, width: number, height: number): Promise<Mask> {
  if ('rects' in spec) return rasterizeRects(spec.rects, width, height);
  if ('polygons' in spec) return rasterizePolygons(spec.polygons, width, height);
  if ('pixels' in spec) {
    if (spec.pixels.width !== width || spec.pixels.height !== height) throw new InvalidJobError(`a ${spec.pixels.width}x${spec.pixels.height} mask cannot be used on a ${width}x${height} image`);
    return spec.pixels;
  }
  // White (or opaque-white) marks the region; transparency counts as not set. Scaled to the canvas.
  let grey: Buffer;
  try {
    grey = await sharp(spec.png, { limitInputPixels: MAX_MASK_PIXELS })
      .flatten({ background: '#000000' })
      .resize(width, height, { fit: 'fill' })
      .greyscale()
      .raw()
      .toBuffer();
  } catch (err) {
    throw new InvalidJobError(`mask image cannot be used: ${(err as Error).message}`);
  }
  const data = new Float32Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = grey[i] / 255;
  return { width, height, data };
}

/** A mask as a greyscale PNG (white = set), to show a client the mask an edit used. */
export function encodeMaskPng(mask: Mask): Promise<Buffer> {
  const grey = Buffer.alloc(mask.data.length);
  for (let i = 0; i < grey.length; i++) {
    const v = mask.data[i];
    grey[i] = v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
  }
  return encodePng(grey, mask.width, mask.height, 1);
}
