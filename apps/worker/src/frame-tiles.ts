/**
 * A session's frames as tiles: which cells of a fixed grid over the image changed between two
 * renders (any byte differs), joined into rectangles (runs along a row, then runs of equal
 * columns down the rows) so that a compact stroke is one tile, and each tile encoded as its own
 * image file. The first frame, and any frame a client must see whole, is the one tile covering
 * the image.
 */
import type { ImageFormat, Tile } from '@farm/contracts';
import { encodeImage } from '@farm/pipeline';

/** Side of the grid's cells, in pixels. */
export const TILE_SIZE = 32;

export function wholeTile(width: number, height: number): Tile {
  return { x: 0, y: 0, w: width, h: height };
}

/** Rectangles (clipped to the image) covering the grid cells where `after` differs from `before` (RGB, width×height). */
export function changedTiles(before: Buffer, after: Buffer, width: number, height: number, size = TILE_SIZE): Tile[] {
  const tiles: Tile[] = [];
  /** Runs of changed cells in the grid row above, by their x span: extended downwards when the next row has the same run. */
  let above = new Map<string, Tile>();
  for (let y = 0; y < height; y += size) {
    const h = Math.min(size, height - y);
    const runs = new Map<string, Tile>();
    let run: Tile | null = null;
    for (let x = 0; x < width; x += size) {
      const w = Math.min(size, width - x);
      let changed = false;
      for (let row = y; row < y + h && !changed; row++) {
        const start = (row * width + x) * 3;
        changed = before.compare(after, start, start + w * 3, start, start + w * 3) !== 0;
      }
      if (changed && run) run.w += w;
      else if (changed) run = { x, y, w, h };
      if ((!changed || x + w >= width) && run) {
        const key = `${run.x}:${run.w}`;
        const upper = above.get(key);
        if (upper) upper.h += h;
        else tiles.push(run);
        runs.set(key, upper ?? run);
        run = null;
      }
    }
    above = runs;
  }
  return tiles;
}

/** Each tile of the RGB image as its own file in `format`. */
export function encodeTiles(rgb: Buffer, width: number, height: number, tiles: readonly Tile[], format: ImageFormat): Promise<Buffer[]> {
  return Promise.all(
    tiles.map((t) => {
      if (t.w === width && t.h === height) return encodeImage(rgb, width, height, format);
      const crop = Buffer.alloc(t.w * t.h * 3);
      for (let row = 0; row < t.h; row++) rgb.copy(crop, row * t.w * 3, ((t.y + row) * width + t.x) * 3, ((t.y + row) * width + t.x + t.w) * 3);
      return encodeImage(crop, t.w, t.h, format);
    }),
  );
}
