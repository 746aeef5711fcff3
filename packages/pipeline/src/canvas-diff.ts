/**
 * What changed between two states of a live canvas, as pixel masks, so that only that is
 * rendered again. Each pixel belongs to the top-most region whose mask covers it (above ½) or to
 * the background; where its owner's prompt or strength differs between the two states, the pixel
 * changes, and is rendered again by its new owner. Where a changed background prompt matters is
 * not decided here (the prompt-change probe finds it), only which pixels the background owns.
 */
import { Mask, emptyMask } from './region-masks';

/** A region as painted on the canvas: its prompt, strength and pixel mask. */
export interface PaintedRegion {
  prompt: string;
  strength: number;
  mask: Mask;
}

export interface CanvasChange {
  /** Changed pixels the background now owns (erased strokes, say); null when none. */
  background: Mask | null;
  /** Per region of the new state that owns changed pixels: those pixels. */
  regions: PaintedRegion[];
}

/** Per pixel, the index of the top-most region over it (mask > ½), or -1 for the background. */
export function ownerMap(regions: readonly PaintedRegion[], width: number, height: number): Int16Array {
  const owners = new Int16Array(width * height).fill(-1);
  regions.forEach((region, r) => {
    const { data } = region.mask;
    for (let i = 0; i < owners.length; i++) if (data[i] > 0.5) owners[i] = r;
  });
  return owners;
}

/** The pixels to render again going from `before` to `after`, grouped by their new owner. */
export function canvasChange(before: readonly PaintedRegion[], after: readonly PaintedRegion[], width: number, height: number): CanvasChange {
  // Owners as numbers standing for their prompt and strength (0: the background): pixels compare as integers.
  const kinds = new Map<string, number>();
  const kindOf = (r: PaintedRegion) => {
    const key = `${r.strength}\u0000${r.prompt}`;
    if (!kinds.has(key)) kinds.set(key, kinds.size + 1);
    return kinds.get(key)!;
  };
  /** Indexed by owner + 1 (the background is -1). */
  const kindsOf = (regions: readonly PaintedRegion[]) => Int32Array.from([0, ...regions.map(kindOf)]);
  const wasKind = kindsOf(before);
  const nowKind = kindsOf(after);
  const was = ownerMap(before, width, height);
  const now = ownerMap(after, width, height);
  const background = emptyMask(width, height);
  const masks = after.map(() => emptyMask(width, height));
  const used = new Set<number>();
  let erased = false;
  for (let i = 0; i < now.length; i++) {
    if (wasKind[was[i] + 1] === nowKind[now[i] + 1]) continue;
    if (now[i] < 0) {
      background.data[i] = 1;
      erased = true;
    } else {
      masks[now[i]].data[i] = 1;
      used.add(now[i]);
    }
  }
  return {
    background: erased ? background : null,
    regions: [...used].sort((a, b) => a - b).map((r) => ({ ...after[r], mask: masks[r] })),
  };
}

/** The part of a pixel mask over pixels the background owns. */
export function overBackground(mask: Mask, owners: Int16Array): Mask {
  return { ...mask, data: mask.data.map((v, i) => (owners[i] < 0 ? v : 0)) };
}
