/**
 * Region prompts as composition layers (StreamMultiDiffusion's semantic palette): each region's
 * pixel mask pooled to latent cells and blurred, and the window its lanes run on — the mask's
 * bounding box grown by the blur halo and a context margin, aligned — with windows of nearly one
 * shape grown to it so their lanes share UNet calls. A region whose mask is empty gets no layer.
 */
import type { RegionLayer } from './canvas-composition';
import type { Conditioning } from './composition';
import type { CanvasShape } from './latent-window';
import { Mask, blurHalo, blurMask, commonShape, maskWindow, poolMask } from './region-masks';

export interface RegionLayout {
  /** Pixels per latent cell. */
  vaeScale: number;
  /** The UNet's alignment of window sides, in latent cells. */
  alignment: number;
  /** Gaussian blur of region masks, σ in latent cells. */
  maskBlur: number;
  /** Context around a region's mask (beyond its blur halo), in latent cells. */
  regionMargin: number;
}

export interface RegionInput {
  /** The region prompt's conditioning. */
  context: Conditioning;
  /** Its mask rasterized at the image size. */
  pixelMask: Mask;
  /** 0…1: how strongly it overrides what lies under it. */
  strength: number;
}

export function regionLayers(regions: readonly RegionInput[], canvas: CanvasShape, layout: RegionLayout): RegionLayer[] {
  const layers: RegionLayer[] = [];
  for (const region of regions) {
    const core = poolMask(region.pixelMask, layout.vaeScale, canvas.width, canvas.height);
    const window = maskWindow(core, layout.regionMargin + blurHalo(layout.maskBlur), layout.alignment);
    if (window) layers.push({ context: region.context, mask: blurMask(core, layout.maskBlur), window, strength: region.strength });
  }
  const shaped = commonShape(layers.map((layer) => layer.window), canvas.width, canvas.height);
  return layers.map((layer, i) => ({ ...layer, window: shaped[i] }));
}
