/**
 * The edit path's pure units, without a model: planning an edit (windows, sub-canvas, keep mask,
 * decode windows), region layers, and the pixel/tensor conversion.
 */
import {
  EditLayout,
  blurHalo,
  drawnEditMasks,
  emptyMask,
  planEdit,
  promptEditMasks,
  rasterizeRects,
  regionLayers,
  toPlanarTensor,
  toRgbBytes,
} from '@farm/pipeline';

const layout: EditLayout & { regionMargin: number } = { vaeScale: 8, alignment: 4, maskBlur: 1, editMargin: 1, decodeMargin: 3, featherPx: 8, regionMargin: 1 };
const canvas = { channels: 4, height: 32, width: 32 };

describe('edit plan', () => {
  // A 64×64-pixel square at (64, 96): latent cells 8..15 × 12..19 of a 32×32 canvas.
  const masks = drawnEditMasks([rasterizeRects([[64, 96, 64, 64]], 256, 256)], canvas, 8);
  const plan = planEdit(masks.core, [], canvas, layout)!;

  it('pools the drawn mask to latent cells', () => {
    expect(masks.core.width).toBe(32);
    expect(masks.core.data[12 * 32 + 8]).toBe(1);
    expect(masks.core.data[11 * 32 + 8]).toBe(0);
  });

  it('runs one window over the mask, its blur halo and context, aligned; the sub-canvas is that window', () => {
    const reach = layout.editMargin + blurHalo(layout.maskBlur); // 3 cells
    expect(plan.windows).toEqual([{ x: 8 - reach - 1, y: 12 - reach - 1, w: 16, h: 16 }]); // 8+6 → 16 (aligned), centred
    expect(plan.area).toEqual(plan.windows[0]);
    expect(plan.localWindows).toEqual([{ x: 0, y: 0, w: 16, h: 16 }]);
    expect(plan.recomputedFraction).toBe(256 / 1024);
  });

  it('keeps the source outside the blurred mask, within the sub-canvas', () => {
    const { keepMask } = plan;
    expect([keepMask.width, keepMask.height]).toEqual([16, 16]);
    expect(keepMask.data[8 * 16 + 8]).toBeCloseTo(1, 2); // the mask's centre
    expect(keepMask.data[0]).toBe(0); // the window's corner, past the halo
  });

  it('decodes the mask bounds grown by the feather and the decoder margin', () => {
    const reach = 8 / 8 + 3;
    expect(plan.decodeWindows).toEqual([{ x: 8 - reach, y: 12 - reach, w: 8 + 2 * reach, h: 8 + 2 * reach }]);
    expect(plan.decodedFraction).toBe(16 * 16 / 1024);
  });

  it('has no plan for an empty mask', () => {
    expect(planEdit(emptyMask(32, 32), [], canvas, layout)).toBeNull();
  });

  it('gives scattered parts their own windows; the sub-canvas spans them and the regions', () => {
    const scattered = drawnEditMasks([rasterizeRects([[0, 0, 32, 32], [200, 200, 40, 40]], 256, 256)], canvas, 8);
    const [region] = regionLayers([{ context: { context: new Float32Array(4) }, pixelMask: rasterizeRects([[8, 200, 24, 24]], 256, 256), strength: 1 }], canvas, layout);
    const twoParts = planEdit(scattered.core, [region], canvas, layout)!;
    expect(twoParts.windows).toHaveLength(2);
    expect(twoParts.area).toEqual({ x: 0, y: 0, w: 32, h: 32 });
    expect(twoParts.regions[0].window).toEqual(region.window); // area at the origin: local = global
    expect(twoParts.recomputedFraction).toBeLessThan(0.5);
  });

  it('fills the holes of a prompt edit’s change mask and upsamples it to pixels', () => {
    const ring = emptyMask(8, 8);
    for (let i = 1; i < 7; i++) for (const [x, y] of [[i, 1], [i, 6], [1, i], [6, i]]) ring.data[y * 8 + x] = 1;
    const { core, pixel } = promptEditMasks(ring, 8, 64, 64);
    expect(core.data[3 * 8 + 3]).toBe(1); // the hole
    expect(pixel.data[(3 * 8 + 4) * 64 + 3 * 8 + 4]).toBe(1);
    expect(pixel.data[0]).toBe(0);
  });
});

describe('region layers', () => {
  it('gives each drawn region a blurred mask and a window; empty regions get none', () => {
    const context = { context: new Float32Array(4) };
    const layers = regionLayers(
      [
        { context, pixelMask: rasterizeRects([[64, 64, 32, 32]], 256, 256), strength: 0.5 },
        { context, pixelMask: emptyMask(256, 256), strength: 1 },
      ],
      canvas,
      layout,
    );
    expect(layers).toHaveLength(1);
    expect(layers[0]).toMatchObject({ strength: 0.5, window: { w: 12, h: 12 } }); // 4 cells + 2·(1 + 2), aligned to 4
    expect(layers[0].mask.data[9 * 32 + 9]).toBeGreaterThan(0.5);
  });
});

describe('pixel/tensor conversion', () => {
  it('round-trips bytes through [-1, 1] floats, repeating edges into the padding', () => {
    const rgb = Buffer.from([0, 128, 255, 10, 20, 30]); // 2×1 pixels
    const chw = toPlanarTensor(rgb, 2, 1, 2, 3); // padded to 3×2
    expect(chw[0]).toBe(-1);
    expect(chw[2]).toBe(chw[1]); // the padding column repeats the last column…
    expect(chw[3]).toBe(chw[0]); // …and the padding row the last row
    expect(chw[6 + 1]).toBeCloseTo(20 / 127.5 - 1, 6); // green plane
    expect(toRgbBytes(chw, 2, 3, 1, 2).equals(rgb)).toBe(true);
  });
});
