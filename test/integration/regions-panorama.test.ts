/**
 * Region prompts (semantic palette) and panoramas with the bundled model, run in-process
 * through the real pipeline: regions land where they are drawn, they cost in proportion to
 * their area, a region larger than the model's window runs as tiles of at most a window, panorama
 * windows leave no seam, and a canvas decoded in tiles is the canvas decoded at once.
 */
import sharp from 'sharp';
import { DiffusionPipeline, GenerateParams, TickReport, decodeCanvas, toRgbBytes } from '@farm/pipeline';
import { MODEL_DIR } from '../support/harness';
import { RgbImage, decodeRgb, dominantColour } from '../support/colour-judge';

let pipeline: DiffusionPipeline;
const ticks: TickReport[] = [];

beforeAll(async () => {
  pipeline = await DiffusionPipeline.load(MODEL_DIR, { onTick: (r) => ticks.push(r) });
});
afterAll(() => pipeline.close());

const base: Omit<GenerateParams, 'id' | 'prompt'> = { width: 256, height: 128, steps: 4, guidanceScale: 1, seed: 3, format: 'png' };

async function render(params: Partial<GenerateParams> & { prompt: string }): Promise<RgbImage> {
  const image = await pipeline.generate({ ...base, id: `r${Math.random()}`, ...params });
  return decodeRgb(image.data);
}

describe('regions', () => {
  it.each([
    ['rects', { rects: [[0, 0, 128, 128]] as [number, number, number, number][] }],
    ['polygons', { polygons: [[[0, 0], [128, 0], [128, 128], [0, 128]]] as [number, number][][] }],
  ])('paint their own prompt inside their mask (%s) and leave the rest to the background', async (_kind, mask) => {
    for (const seed of [1, 2, 3]) {
      const image = await render({ prompt: 'a blue background', seed, regions: [{ prompt: 'a red background', mask }] });
      // Judge away from the boundary, where blending is expected.
      expect(dominantColour(image, (x) => x < 96)).toBe('red');
      expect(dominantColour(image, (x) => x >= 160)).toBe('blue');
    }
  });

  it('accepts a PNG mask scaled to the canvas', async () => {
    // A 32×16 mask: white right half.
    const raw = Buffer.alloc(32 * 16, 0);
    for (let y = 0; y < 16; y++) raw.fill(255, y * 32 + 16, y * 32 + 32);
    const png = await sharp(raw, { raw: { width: 32, height: 16, channels: 1 } }).png().toBuffer();
    const image = await render({ prompt: 'a yellow background', regions: [{ prompt: 'a purple background', mask: { png } }] });
    expect(dominantColour(image, (x) => x >= 160)).toBe('purple');
    expect(dominantColour(image, (x) => x < 96)).toBe('yellow');
  });

  it('later regions are painted over earlier ones where they overlap', async () => {
    const image = await render({
      prompt: 'a white background',
      regions: [
        { prompt: 'a red background', mask: { rects: [[0, 0, 256, 128]] } },
        { prompt: 'a green background', mask: { rects: [[128, 0, 128, 128]] } },
      ],
    });
    expect(dominantColour(image, (x) => x < 96)).toBe('red');
    expect(dominantColour(image, (x) => x >= 160)).toBe('green');
  });

  it('runs a small region on its bounding box plus margin, not on the whole canvas', async () => {
    const cells = async (params: Partial<GenerateParams>) => {
      ticks.length = 0;
      await pipeline.generate({ ...base, width: 512, height: 512, id: `c${Math.random()}`, prompt: 'a black background', ...params });
      return ticks.reduce((sum, t) => sum + t.cells, 0);
    };
    const plain = await cells({});
    const withSmall = await cells({ regions: [{ prompt: 'a red circle on a white background', mask: { rects: [[64, 64, 96, 96]] } }] });
    const withFull = await cells({ regions: [{ prompt: 'a red background', mask: { rects: [[0, 0, 512, 512]] } }] });
    expect(withFull / plain).toBeCloseTo(2, 5); // a full-canvas region is a second full pass
    expect(withSmall / plain).toBeLessThan(1.25); // a 3.5% region adds a small window
  });
});

describe('canvases larger than the window', () => {
  it('run a larger region as tiles of at most a window, and decode in tiles as the whole canvas would', async () => {
    ticks.length = 0;
    // 768×512: a latent of 96×64 cells, a region over all of it (a 96×64 window), 64×64 tiles.
    const params = { ...base, id: 'wide-region', width: 768, height: 512, steps: 2, prompt: 'a blue background', regions: [{ prompt: 'a red background', mask: { rects: [[0, 0, 768, 512]] as [number, number, number, number][] } }] };
    const generated = await pipeline.generate(params);
    expect(ticks.every((t) => t.cells <= 64 * 64 * t.lanes)).toBe(true); // no lane beyond 64×64
    expect(ticks.reduce((n, t) => n + t.lanes, 0)).toBe(2 * (2 + 2)); // 2 background and 2 region tiles per step
    expect(dominantColour(await decodeRgb(generated.data), () => true)).toBe('red');

    const canvas = { channels: 4, height: 64, width: 96 };
    const whole = toRgbBytes(await pipeline.model.decode(generated.latent, 1, 64, 96), 512, 768, 512, 768);
    const tiled = toRgbBytes(await decodeCanvas(pipeline.model, generated.latent, canvas, { vaeScale: 8, maxWindow: 32, margin: 3 }), 512, 768, 512, 768);
    let worst = 0;
    for (let i = 0; i < whole.length; i++) worst = Math.max(worst, Math.abs(whole[i] - tiled[i]));
    expect(worst).toBeLessThanOrEqual(2);
    expect(generated.rgb.equals(toRgbBytes(await decodeCanvas(pipeline.model, generated.latent, canvas, { vaeScale: 8, maxWindow: 64, margin: 3 }), 512, 768, 512, 768))).toBe(true);
  });
});

describe('panoramas', () => {
  it('renders a 1024×256 canvas as fused windows with the asked size and no seam at window borders', async () => {
    ticks.length = 0;
    const generated = await pipeline.generate({ ...base, id: 'pano', width: 1024, height: 256, prompt: 'a green circle and a yellow square on a blue background' });
    const image = await decodeRgb(generated.data);
    expect([image.width, image.height]).toEqual([1024, 256]);
    expect(ticks[0].batchSizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(1); // several windows
    // Seam metric: mean absolute horizontal step between neighbouring columns, at each column
    // boundary; the steepest boundary must not stand out from the image's own texture.
    const step = new Float64Array(image.width - 1);
    for (let x = 0; x < image.width - 1; x++) {
      let acc = 0;
      for (let y = 0; y < image.height; y++) {
        for (let c = 0; c < 3; c++) acc += Math.abs(image.data[(y * image.width + x + 1) * 3 + c] - image.data[(y * image.width + x) * 3 + c]);
      }
      step[x] = acc / (image.height * 3);
    }
    const sorted = [...step].sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)];
    // 7 windows of 32 cells, 16 apart: window edges every 16 cells = 128 px; none is a cliff.
    const borders = step.filter((_, x) => (x + 1) % 128 === 0);
    expect(borders).toHaveLength(7);
    expect(Math.max(...borders)).toBeLessThanOrEqual(Math.max(p99, 1) * 1.5);
  });
});
