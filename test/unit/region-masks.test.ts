import {
  blurMask,
  commonShape,
  fillHoles,
  maskWindows,
  mergeWindows,
  shareOverlaps,
  tileWindow,
  maskWindow,
  poolMask,
  quantizeMask,
  rasterizePolygons,
  rasterizeRects,
  tileCanvas,
} from '@farm/pipeline';

const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
const coverage = (m: { data: Float32Array }) => sum(m.data) / m.data.length;

describe('mask rasterization', () => {
  it('fills rectangles with fractional edges and unions overlaps', () => {
    const m = rasterizeRects([[1, 1, 2, 2], [2.5, 2, 1, 1]], 4, 4);
    expect(Array.from(m.data)).toEqual([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0.5, 0, 0, 0, 0]);
  });

  it('clips rectangles to the canvas', () => {
    expect(sum(rasterizeRects([[-10, -10, 12, 12]], 8, 8).data)).toBe(4);
  });

  it('fills polygons by area (a right triangle over half of a square)', () => {
    const m = rasterizePolygons([[[0, 0], [100, 0], [0, 100]]], 100, 100);
    expect(coverage(m)).toBeCloseTo(0.5, 1);
    expect(m.data[5 * 100 + 5]).toBe(1); // near the right angle
    expect(m.data[95 * 100 + 95]).toBe(0); // beyond the hypotenuse
  });

  it('pools pixels into latent cells by averaging', () => {
    const pooled = poolMask(rasterizeRects([[0, 0, 8, 4]], 16, 16), 8, 2, 2);
    expect(Array.from(pooled.data)).toEqual([0.5, 0, 0, 0]);
  });
});

describe('blur and per-step quantization', () => {
  const square = rasterizeRects([[8, 8, 8, 8]], 32, 32);
  const blurred = blurMask(square, 1.5);

  it('blurs without losing mass', () => {
    expect(sum(blurred.data)).toBeCloseTo(sum(square.data), 1);
    expect(blurred.data[8 * 32 + 7]).toBeGreaterThan(0); // spills over the edge
  });

  it('covers the blurred halo at high noise and the drawn edge at low noise', () => {
    const early = quantizeMask(blurred, 0.99);
    const late = quantizeMask(blurred, 0.0);
    expect(sum(early.data)).toBeGreaterThan(sum(square.data));
    expect(sum(late.data)).toBeCloseTo(sum(square.data), -1);
    // Monotone: less noise never grows the mask.
    expect(sum(quantizeMask(blurred, 0.5).data)).toBeLessThanOrEqual(sum(early.data));
  });
});

describe('region windows', () => {
  it('is the bounding box plus margin, aligned, inside the canvas', () => {
    const mask = rasterizeRects([[10, 10, 4, 3]], 64, 32);
    expect(maskWindow(mask, 2, 4)).toEqual({ x: 8, y: 8, w: 8, h: 8 });
    const corner = rasterizeRects([[0, 0, 2, 2]], 64, 32);
    expect(maskWindow(corner, 4, 4)).toEqual({ x: 0, y: 0, w: 12, h: 12 });
    expect(maskWindow(rasterizeRects([], 8, 8), 2, 4)).toBeNull();
  });
});

describe('panorama tiling', () => {
  it('keeps a canvas within the window as a single tile', () => {
    const tiles = tileCanvas(64, 64, 64, 16, 4);
    expect(tiles).toHaveLength(1);
    expect(tiles[0].weights.every((w) => w === 1)).toBe(true);
  });

  it('covers a 2048×512 canvas (64×256 cells) with 5 same-shape windows whose weights sum to one', () => {
    const tiles = tileCanvas(64, 256, 64, 16, 8);
    expect(tiles).toHaveLength(5);
    expect(new Set(tiles.map((t) => `${t.window.h}x${t.window.w}`))).toEqual(new Set(['64x64']));
    const total = new Float32Array(64 * 256);
    for (const { window: w, weights } of tiles) {
      for (let y = 0; y < w.h; y++) for (let x = 0; x < w.w; x++) total[(w.y + y) * 256 + w.x + x] += weights[y * w.w + x];
    }
    for (const v of total) expect(v).toBeCloseTo(1, 5);
    expect(tiles[0].window.x).toBe(0);
    expect(tiles[4].window.x + 64).toBe(256);
  });
});

describe('windows of scattered masks', () => {
  it('gives each separate part its own window, so work follows the area, not the extent', () => {
    const mask = rasterizeRects([[2, 2, 3, 3], [50, 40, 4, 4]], 64, 64);
    const windows = maskWindows(mask, 2, 4);
    expect(windows).toHaveLength(2);
    const area = windows.reduce((sum, w) => sum + w.w * w.h, 0);
    expect(area).toBeLessThan(64 * 64 * 0.1); // the bounding box of both would be ~70% of the canvas
    for (const w of windows) expect([w.w % 4, w.h % 4]).toEqual([0, 0]);
  });

  it('merges neighbours when one window costs no more than two', () => {
    const mask = rasterizeRects([[10, 10, 6, 6], [15, 10, 6, 6]], 64, 64);
    expect(maskWindows(mask, 2, 4)).toHaveLength(1);
  });

  it('merges overlapping windows whose bounding box is no larger than the two, keeps the rest', () => {
    const a = { x: 26, y: 20, w: 25, h: 25 };
    const b = { x: 17, y: 28, w: 25, h: 23 }; // overlaps a: box 34×31 = 1054 cells < 625 + 575
    expect(mergeWindows([a, b])).toEqual([{ x: 17, y: 20, w: 34, h: 31 }]);
    const corner = { x: 50, y: 44, w: 25, h: 25 }; // overlaps a's corner only: their box would be 49×49
    expect(mergeWindows([a, corner])).toHaveLength(2);
    expect(mergeWindows([a, { x: 0, y: 0, w: 4, h: 4 }])).toHaveLength(2); // apart
  });

  it('grows windows of nearly one shape to that shape (one UNet call), not windows far apart in size', () => {
    const near = commonShape([{ x: 10, y: 10, w: 20, h: 20 }, { x: 40, y: 2, w: 20, h: 16 }], 64, 64);
    expect(near.map((w) => [w.w, w.h])).toEqual([[20, 20], [20, 20]]);
    expect(near[1]).toEqual({ x: 40, y: 0, w: 20, h: 20 }); // grown about its centre, kept inside the canvas
    const apart = [{ x: 0, y: 0, w: 8, h: 8 }, { x: 20, y: 20, w: 40, h: 40 }];
    expect(commonShape(apart, 64, 64)).toEqual(apart);
  });

  it('fills the holes a ring-shaped mask encloses, not the outside', () => {
    const ring = rasterizeRects([[2, 2, 6, 1], [2, 7, 6, 1], [2, 2, 1, 6], [7, 2, 1, 6]], 10, 10);
    const filled = fillHoles(ring);
    expect(filled.data[5 * 10 + 5]).toBe(1);
    expect(filled.data[0]).toBe(0);
    expect(filled.data[9 * 10 + 9]).toBe(0);
  });

  it('shares fusion weights where windows overlap, so they sum to one on every covered cell', () => {
    const tiles = shareOverlaps([...tileWindow({ x: 0, y: 0, w: 8, h: 8 }, 64, 16, 4), ...tileWindow({ x: 4, y: 4, w: 8, h: 8 }, 64, 16, 4)], 16, 16);
    const total = new Float32Array(256);
    for (const { window: w, weights } of tiles) for (let i = 0; i < weights.length; i++) total[(w.y + Math.floor(i / w.w)) * 16 + w.x + (i % w.w)] += weights[i];
    expect(total[5 * 16 + 5]).toBeCloseTo(1, 6); // covered twice
    expect(total[1 * 16 + 1]).toBeCloseTo(1, 6); // covered once
    expect(total[15 * 16 + 15]).toBe(0); // not covered
  });
});
