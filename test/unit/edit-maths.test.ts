/**
 * The pure maths of localized edits: the feathered paste weights, the prompt-change probe canvas
 * and its pooling, the change mask from two noise predictions, and keeping masks inside windows.
 */
import {
  blurHalo,
  blurMask,
  changeMap,
  changeMask,
  clipMask,
  featherWeights,
  pasteFeathered,
  poolLatent,
  probeCanvas,
  quantizeMask,
  rasterizeRects,
  upsampleMap,
  windowCoverage,
} from '@farm/pipeline';

describe('feathered paste', () => {
  // A 40×40 square in a 100×100 image; weights over the window 20..80.
  const mask = rasterizeRects([[30, 30, 40, 40]], 100, 100);
  const at = { x: 20, y: 20, w: 60, h: 60 };
  const weights = featherWeights(mask, at, 8);
  const w = (x: number, y: number) => weights.data[(y - at.y) * at.w + (x - at.x)];

  it('is 1 deep inside, ½ on a straight edge, and exactly 0 once the feather width away', () => {
    expect(w(50, 50)).toBe(1);
    expect(w(38, 50)).toBe(1); // 8 px inside the left edge
    expect(w(29, 50) + w(30, 50)).toBeCloseTo(1, 6); // symmetric about the edge between 29 and 30
    expect(w(22, 50)).toBeGreaterThan(0); // 8 px out: the last touched column
    expect(w(21, 50)).toBe(0); // 9 px out
    expect(w(21, 21)).toBe(0);
  });

  it('falls monotonically across the edge', () => {
    for (let x = 22; x < 38; x++) expect(w(x, 50)).toBeLessThanOrEqual(w(x + 1, 50));
  });

  it('keeps a mask that touches the image border at full weight there', () => {
    const edge = featherWeights(rasterizeRects([[0, 0, 30, 30]], 100, 100), { x: 0, y: 0, w: 50, h: 50 }, 8);
    expect(edge.data[0]).toBe(1);
  });

  it('leaves pixels of weight zero byte-identical and blends the rest', () => {
    const image = Buffer.alloc(100 * 100 * 3, 10);
    const patch = Buffer.alloc(at.w * at.h * 3, 250);
    pasteFeathered(image, 100, 100, patch, at, weights, new Uint8Array(100 * 100));
    expect(image[(50 * 100 + 50) * 3]).toBe(250);
    expect(image[(50 * 100 + 21) * 3]).toBe(10);
    expect(image[(50 * 100 + 25) * 3]).toBeGreaterThan(10);
    expect(image[(50 * 100 + 25) * 3]).toBeLessThan(250);
  });
});

describe('prompt-change probe', () => {
  it('halves canvases at least twice the native size, aligned; smaller ones are probed as they are', () => {
    expect(probeCanvas({ channels: 4, height: 64, width: 96 }, 16, 4)).toEqual({ factor: 2, probe: { channels: 4, height: 32, width: 48 } });
    expect(probeCanvas({ channels: 4, height: 36, width: 64 }, 16, 4)).toEqual({ factor: 2, probe: { channels: 4, height: 20, width: 32 } });
    expect(probeCanvas({ channels: 4, height: 64, width: 64 }, 64, 8).factor).toBe(1);
  });

  it('pools each channel by averaging, repeating the edge past the canvas', () => {
    // 1 channel, 2×3 canvas → probe 1×2 by factor 2: [avg(0,1,3,4), avg(2,2,5,5)].
    const pooled = poolLatent(Float32Array.from([0, 1, 2, 3, 4, 5]), { channels: 1, height: 2, width: 3 }, 2, { channels: 1, height: 1, width: 2 });
    expect(Array.from(pooled)).toEqual([2, 3.5]);
  });

  it('marks (and dilates) where the two predictions differ most', () => {
    const canvas = { channels: 2, height: 8, width: 8 };
    const before = new Float32Array(2 * 64).fill(0.1);
    const after = before.slice();
    after[3 * 8 + 4] = 2; // channel 0, cell (4, 3)
    after[64 + 3 * 8 + 4] = -1; // channel 1, same cell
    after[6 * 8 + 1] = 0.3; // a small difference elsewhere: below the threshold
    const map = changeMap([[before, after]], canvas);
    expect(map.data[3 * 8 + 4]).toBeCloseTo(1.9 + 1.1, 5);
    const mask = changeMask(map, { dilate: 1 });
    const set = (m: { data: Float32Array }) => Array.from(m.data.keys()).filter((i) => m.data[i] > 0);
    expect(set(mask)).toEqual([2 * 8 + 3, 2 * 8 + 4, 2 * 8 + 5, 3 * 8 + 3, 3 * 8 + 4, 3 * 8 + 5, 4 * 8 + 3, 4 * 8 + 4, 4 * 8 + 5]);
  });

  it('upsamples the change map bilinearly, so the mask keeps the canvas resolution', () => {
    const map = { width: 2, height: 1, data: Float32Array.from([0, 4]) };
    const up = upsampleMap(map, 2, 4, 2);
    expect(Array.from(up.data.subarray(0, 4))).toEqual([0, 1, 3, 4]);
    expect(Array.from(up.data.subarray(4))).toEqual([0, 1, 3, 4]);
    // Thresholded (at 0.35 of the largest value), the set edge falls between probe cells, not on them.
    expect(Array.from(changeMask(up, { dilate: 0 }).data.subarray(0, 4))).toEqual([0, 0, 1, 1]);
  });
});

describe('masks kept inside their windows', () => {
  it('covers every quantized cell from the second step on with a 2σ halo; clipping removes only the far tail', () => {
    const core = rasterizeRects([[10, 10, 6, 6]], 32, 32);
    const blurred = blurMask(core, 1);
    const halo = blurHalo(1);
    const win = { x: 10 - halo, y: 10 - halo, w: 6 + 2 * halo, h: 6 + 2 * halo };
    const clipped = clipMask(blurred, [win]);
    const secondStep = (m: typeof blurred) => quantizeMask(m, 0.96).data.reduce((a, b) => a + b, 0);
    expect(secondStep(clipped)).toBe(secondStep(blurred));
    expect(clipped.data[(10 - halo - 1) * 32 + 12]).toBe(0);
    expect(blurred.data[(10 - halo - 1) * 32 + 12]).toBeGreaterThan(0);
    expect(clipped.data[12 * 32 + 12]).toBe(blurred.data[12 * 32 + 12]);
  });
});

describe('recomputed share', () => {
  it('counts cells that overlapping windows share once', () => {
    expect(windowCoverage([{ x: 0, y: 0, w: 4, h: 4 }, { x: 2, y: 2, w: 4, h: 4 }], 8, 8)).toBe((16 + 16 - 4) / 64);
    expect(windowCoverage([], 8, 8)).toBe(0);
  });
});
