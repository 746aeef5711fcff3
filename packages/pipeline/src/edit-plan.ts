/**
 * Where an edit's work goes, decided before any of it runs (pure; no model needed): its masks —
 * the pixel mask pasted with a feather and its latent core recomputed — the lane windows over the
 * core's connected parts, the sub-canvas denoised (their bounding box with the regions' windows,
 * so per-step work follows the edit too), the mask that keeps the source's latent elsewhere, and
 * the windows decoded afterwards (each part's bounds plus the feather and the decoder's reach).
 */
import type { RegionLayer } from './canvas-composition';
import { upsampleMask } from './change-mask';
import { CanvasShape, Window, unionWindow, windowCoverage } from './latent-window';
import {
  Mask,
  blurHalo,
  blurMask,
  clipMask,
  commonShape,
  cropMask,
  fillHoles,
  growWindow,
  maskBounds,
  maskWindows,
  mergeWindows,
  poolMask,
  unionMasks,
} from './region-masks';

export interface EditLayout {
  /** Pixels per latent cell. */
  vaeScale: number;
  /** The UNet's alignment of window sides, in latent cells. */
  alignment: number;
  /** Gaussian blur of the mask, σ in latent cells. */
  maskBlur: number;
  /** Context around the mask (beyond the blur halo), in latent cells. */
  editMargin: number;
  /** Latent cells decoded around the mask and feather, for the decoder's receptive field. */
  decodeMargin: number;
  /** Feather of the paste, in pixels. */
  featherPx: number;
}

/** An edit's masks: the pixel mask (what is pasted) and its latent core (what is recomputed). */
export interface EditMasks {
  pixel: Mask;
  core: Mask;
}

export interface EditPlan {
  /** Lane windows over the canvas: one per part of the core mask, with context. */
  windows: Window[];
  /** The sub-canvas denoised: the bounding box of the windows and the regions' windows. */
  area: Window;
  /** The lane windows, within `area`. */
  localWindows: Window[];
  /** The regions' layers, within `area`. */
  regions: RegionLayer[];
  /** What may change (the core blurred, clipped to the windows), within `area`. */
  keepMask: Mask;
  /** Latent windows decoded and pasted, overlapping ones merged. */
  decodeWindows: Window[];
  /** Share of the latent canvas denoised. */
  recomputedFraction: number;
  /** Share of the latent canvas decoded. */
  decodedFraction: number;
}

/** A mask edit's masks: the drawn masks (the edit's and its regions') joined, pooled to latent cells. */
export function drawnEditMasks(pixelMasks: readonly Mask[], canvas: CanvasShape, vaeScale: number): EditMasks {
  const pixel = unionMasks(pixelMasks);
  return { pixel, core: poolMask(pixel, vaeScale, canvas.width, canvas.height) };
}

/** A prompt edit's masks: the latent change mask with its holes filled, upsampled to the image. */
export function promptEditMasks(change: Mask, vaeScale: number, width: number, height: number): EditMasks {
  const core = fillHoles(change);
  return { pixel: upsampleMask(core, vaeScale, width, height), core };
}

/** The plan of an edit of `core` (latent cells of `canvas`) with its region layers; null when the mask is empty. */
export function planEdit(core: Mask, regionLayers: readonly RegionLayer[], canvas: CanvasShape, layout: EditLayout): EditPlan | null {
  const windows = commonShape(maskWindows(core, layout.editMargin + blurHalo(layout.maskBlur), layout.alignment), canvas.width, canvas.height);
  if (windows.length === 0) return null;
  const area = [...windows, ...regionLayers.map((r) => r.window)].reduce(unionWindow);
  const local = (win: Window): Window => ({ ...win, x: win.x - area.x, y: win.y - area.y });
  const reach = Math.ceil(layout.featherPx / layout.vaeScale) + layout.decodeMargin;
  const decodeWindows = mergeWindows(windows.map((win) => growWindow(maskBounds(core, win)!, reach, canvas.width, canvas.height)));
  return {
    windows,
    area,
    localWindows: windows.map(local),
    regions: regionLayers.map((r) => ({ ...r, mask: cropMask(r.mask, area), window: local(r.window) })),
    keepMask: cropMask(clipMask(blurMask(core, layout.maskBlur), windows), area),
    decodeWindows,
    recomputedFraction: windowCoverage(windows, canvas.width, canvas.height),
    decodedFraction: windowCoverage(decodeWindows, canvas.width, canvas.height),
  };
}
