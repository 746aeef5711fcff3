/**
 * Control images in the shared stream batch, on a fake-weight Optimum fixture given a ControlNet
 * with the community's signatures (test/support/control-fixture.ts): a job with a control image
 * and one without share UNet calls, each lane gets its own residuals (the control shows in its
 * own image, where the control is white, and nowhere else), and bad control input is refused.
 */
import sharp from 'sharp';
import { DiffusionPipeline, GenerateParams, ProgressListener, RenderedImage, TickReport } from '@farm/pipeline';
import { addControlNet } from '../support/control-fixture';
import { ModelFixtures } from '../support/model-fixtures';

const fixtures = new ModelFixtures();
const ticks: TickReport[] = [];
let pipeline: DiffusionPipeline;
let leftHalfWhite: Buffer;

beforeAll(async () => {
  pipeline = await DiffusionPipeline.load(addControlNet(fixtures.dir('sd15', 'optimum-1.23')), { onTick: (r) => ticks.push(r) });
  const raw = Buffer.alloc(128 * 128 * 3);
  for (let y = 0; y < 128; y++) raw.fill(255, y * 128 * 3, (y * 128 + 64) * 3);
  leftHalfWhite = await sharp(raw, { raw: { width: 128, height: 128, channels: 3 } }).png().toBuffer();
});
afterAll(async () => {
  await pipeline.close();
  fixtures.remove();
});

let n = 0;
const render = (params: Partial<GenerateParams> = {}, onProgress?: ProgressListener) =>
  pipeline.generate({ id: `c${n++}`, prompt: 'a red circle', width: 128, height: 128, steps: 4, guidanceScale: 1, seed: 9, format: 'png', ...params }, onProgress);

/** Largest difference (levels of 255) between two RGB images, left or right of x = 64. */
function largestDifference(a: Buffer, b: Buffer, side: 'left' | 'right'): number {
  let worst = 0;
  for (let p = 0; p < a.length; p++) {
    const x = Math.floor(p / 3) % 128;
    if ((x < 64) === (side === 'left')) worst = Math.max(worst, Math.abs(a[p] - b[p]));
  }
  return worst;
}

it('shares UNet calls between jobs with and without a control image, each lane with its own residuals', async () => {
  const alone = await render();
  ticks.length = 0;
  // The plain job starts once the controlled one has made its first step: both are in flight from then on.
  let started: Promise<RenderedImage> | undefined;
  const controlled = await render({ control: { image: leftHalfWhite, type: 'edges', scale: 1 } }, (step) => {
    if (step === 1) started = render();
  });
  const plain = await started!;
  const together = ticks.filter((t) => t.jobs === 2);
  expect(together.length).toBeGreaterThanOrEqual(2);
  expect(together.map((t) => t.batchSizes)).toEqual(together.map(() => [2])); // while both were in flight: one call, both lanes
  expect(largestDifference(plain.rgb, alone.rgb, 'left')).toBeLessThanOrEqual(1); // the partner's control did not leak in
  expect(largestDifference(controlled.rgb, alone.rgb, 'left')).toBeGreaterThan(10); // the control reached its own lane…
  expect(largestDifference(controlled.rgb, alone.rgb, 'right')).toBe(0); // …only where it is white
  const weaker = await render({ control: { image: leftHalfWhite, type: 'edges', scale: 0.5 } });
  expect(largestDifference(weaker.rgb, alone.rgb, 'left')).toBeLessThan(largestDifference(controlled.rgb, alone.rgb, 'left'));
});

it('refuses a control image of another size, of a type the model was not trained for, or not an image', async () => {
  await expect(render({ width: 192, control: { image: leftHalfWhite, type: 'edges', scale: 1 } })).rejects.toThrow('control.image is 128x128; the image is 192x128');
  await expect(render({ control: { image: leftHalfWhite, type: 'depth', scale: 1 } })).rejects.toThrow('control.type must be one of: edges');
  await expect(render({ control: { image: Buffer.from('not an image'), type: 'edges', scale: 1 } })).rejects.toThrow(/^control.image cannot be used/);
});
