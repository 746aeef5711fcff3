/**
 * Edits through the whole farm: mask edits recompute and decode only the masked window and
 * leave every pixel away from the mask byte-identical; prompt edits find their own mask; the
 * state edits start from is shared through S3/Redis, so any worker serves them the same way,
 * and an expired cache falls back to encoding the source image again.
 */
import sharp from 'sharp';
import type { FarmWorker } from '@farm/worker';
import { download, Harness, inspectJob, postJob, TestApi, useFarm, waitForJob } from '../support/harness';
import { RgbImage, decodeRgb, dominantColour } from '../support/colour-judge';

let farm: Harness;
let api: TestApi;
let worker: FarmWorker;

useFarm(async (f, a) => {
  farm = f;
  api = a;
  worker = await f.startWorker();
});

async function run(body: Record<string, unknown>, client: TestApi = api): Promise<Record<string, any>> {
  const submitted = await postJob(client, body);
  expect(submitted.status).toBe(202);
  const job = await waitForJob(client, submitted.body.id);
  expect(job).toMatchObject({ status: 'succeeded' });
  return job;
}

const imageOf = async (job: Record<string, any>) => decodeRgb(await download(job.result.url));

/** Pixels more than `distance` px away from the rectangle [x, y, w, h]. */
const farFrom = ([rx, ry, rw, rh]: number[], distance: number) => (x: number, y: number) =>
  x < rx - distance || x >= rx + rw + distance || y < ry - distance || y >= ry + rh + distance;

function differingPixels(a: RgbImage, b: RgbImage, where: (x: number, y: number) => boolean): number {
  let n = 0;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      if (!where(x, y)) continue;
      const i = (y * a.width + x) * 3;
      if (a.data[i] !== b.data[i] || a.data[i + 1] !== b.data[i + 1] || a.data[i + 2] !== b.data[i + 2]) n++;
    }
  }
  return n;
}

const SOURCE = { type: 'generate', prompt: 'a blue background', width: 256, height: 256, steps: 4, seed: 11 };
const RECT = [64, 96, 96, 64];
const MASK_EDIT = { type: 'edit', prompt: 'a yellow background', mask: { rects: [RECT] }, steps: 4, seed: 5 };

describe('mask edits', () => {
  let source: Record<string, any>;
  let sourceImage: RgbImage;
  let edited: Record<string, any>;

  beforeAll(async () => {
    source = await run(SOURCE);
    sourceImage = await imageOf(source);
    edited = await run({ ...MASK_EDIT, source: source.id });
  });

  it('leaves every pixel away from the mask byte-identical to the source', async () => {
    const image = await imageOf(edited);
    expect([image.width, image.height]).toEqual([256, 256]);
    // Feather 8 px: beyond that (plus a pixel for the mask's edge) nothing may change.
    expect(differingPixels(image, sourceImage, farFrom(RECT, 9))).toBe(0);
    // …and inside the mask something did.
    expect(differingPixels(image, sourceImage, (x, y) => !farFrom(RECT, 0)(x, y))).toBeGreaterThan(1000);
  });

  it('paints the masked area towards the edit prompt', async () => {
    const image = await imageOf(edited);
    expect(dominantColour(image, (x, y) => !farFrom([RECT[0] + 12, RECT[1] + 12, RECT[2] - 24, RECT[3] - 24], 0)(x, y))).toBe('yellow');
    expect(dominantColour(sourceImage, (x, y) => !farFrom(RECT, 0)(x, y))).toBe('blue');
  });

  it('reports the mask used, the share recomputed, and where its source came from', async () => {
    expect(edited.result).toMatchObject({ source: 'memory', mask: { key: `results/${edited.id}.mask.png` } });
    expect(edited.result.recomputedFraction).toBeGreaterThan(0.09); // the mask is 9.4% of the canvas
    expect(edited.result.recomputedFraction).toBeLessThan(0.5);
    expect(edited.result.decodedFraction).toBeGreaterThanOrEqual(edited.result.recomputedFraction);
    const mask = await decodeRgb(await download(edited.result.mask.url));
    expect([mask.width, mask.height]).toEqual([256, 256]);
    expect(mask.data[((RECT[1] + 10) * 256 + RECT[0] + 10) * 3]).toBe(255);
    expect(mask.data[0]).toBe(0);
  });

  it('gives the same image when another worker serves the edit from the shared cache', async () => {
    await farm.stopWorker(worker);
    worker = await farm.startWorker(); // a fresh process-worth of memory: nothing held
    const again = await run({ ...MASK_EDIT, source: source.id });
    expect(again.result.source).toBe('cache');
    expect((await download(again.result.url)).equals(await download(edited.result.url))).toBe(true);
  });

  it('re-encodes the source image when its cached state expired, and says so', async () => {
    const other = await run({ ...SOURCE, seed: 12 });
    const otherImage = await imageOf(other);
    await farm.stopWorker(worker);
    worker = await farm.startWorker();
    await farm.redis.del(`{farm-test}:${farm.queueName}:edit-source:${other.id}`);
    const edit = await run({ ...MASK_EDIT, source: other.id });
    expect(edit.result.source).toBe('reencoded');
    expect(differingPixels(await imageOf(edit), otherImage, farFrom(RECT, 9))).toBe(0);
  });

  it('edits an uploaded image', async () => {
    const upload = await sharp({ create: { width: 128, height: 64, channels: 3, background: { r: 40, g: 80, b: 225 } } }).png().toBuffer();
    const edit = await run({ ...MASK_EDIT, mask: { rects: [[32, 16, 48, 32]] }, source: { image: upload.toString('base64') } });
    expect(edit.result).toMatchObject({ source: 'upload', width: 128, height: 64 });
    const image = await imageOf(edit);
    expect(differingPixels(image, await decodeRgb(upload), farFrom([32, 16, 48, 32], 9))).toBe(0);
  });
});

describe('prompt edits', () => {
  it('find the changed object themselves: a red circle becomes green, the background stays', async () => {
    const source = await run({ type: 'generate', prompt: 'a red circle on a blue background', width: 256, height: 256, seed: 21 });
    const before = await imageOf(source);
    const isRed = (x: number, y: number) => dominantColour(before, (px, py) => px === x && py === y) === 'red';
    // The edit's noise decides whether the model paints a circle back in (it does for most seeds,
    // as with generation): judge three edits; the mask must be right every time.
    const edits = await Promise.all([1, 2, 3].map((seed) => run({ type: 'edit', source: source.id, prompt: 'a green circle on a blue background', seed })));
    const colours: string[] = [];
    for (const edit of edits) {
      const mask = await decodeRgb(await download(edit.result.mask.url));
      let red = 0;
      let redMasked = 0;
      let masked = 0;
      for (let y = 0; y < 256; y += 2) {
        for (let x = 0; x < 256; x += 2) {
          const inMask = mask.data[(y * 256 + x) * 3] > 127;
          if (inMask) masked++;
          if (isRed(x, y)) {
            red++;
            if (inMask) redMasked++;
          }
        }
      }
      expect(red).toBeGreaterThan(100); // the source does have a red circle
      expect(redMasked / red).toBeGreaterThan(0.8); // the mask covers it…
      expect(masked).toBeLessThan(red * 3); // …and not the whole image
      expect(edit.result.recomputedFraction).toBeLessThan(0.8);
      colours.push(dominantColour(await imageOf(edit), isRed));
    }
    expect(colours.filter((c) => c === 'green').length).toBeGreaterThanOrEqual(2);
    expect(colours).not.toContain('red');
  });

  it('paint regions into a source: each region takes its own prompt, nothing else changes', async () => {
    const source = await run(SOURCE);
    const left = [16, 64, 96, 96];
    const right = [144, 64, 96, 96];
    const edit = await run({
      type: 'edit',
      source: source.id,
      prompt: 'a blue background',
      regions: [
        { prompt: 'a red background', mask: { rects: [left] } },
        { prompt: 'a yellow background', mask: { rects: [right] } },
      ],
      seed: 4,
    });
    const [before, after] = [await imageOf(source), await imageOf(edit)];
    const inside = ([rx, ry, rw, rh]: number[]) => (x: number, y: number) => x >= rx + 16 && x < rx + rw - 16 && y >= ry + 16 && y < ry + rh - 16;
    expect(dominantColour(after, inside(left))).toBe('red');
    expect(dominantColour(after, inside(right))).toBe('yellow');
    const farFromBoth = (x: number, y: number) => farFrom(left, 9)(x, y) && farFrom(right, 9)(x, y);
    expect(differingPixels(before, after, farFromBoth)).toBe(0);
    expect(edit.result.recomputedFraction).toBeLessThan(0.9);
  });

  it('are refused for uploads (there is no old prompt to compare) and unknown sources', async () => {
    const upload = (await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000' } }).png().toBuffer()).toString('base64');
    const noMask = await postJob(api, { type: 'edit', source: { image: upload }, prompt: 'a red circle' });
    expect(noMask.status).toBe(400);
    expect(noMask.body.error.fields[0].path).toBe('mask');
    const unknown = await postJob(api, { type: 'edit', source: 'no-such-job', prompt: 'a red circle' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.fields).toEqual([{ path: 'source', message: expect.stringMatching(/does not exist/) }]);
  });
});

describe('edit affinity', () => {
  let api: TestApi;
  useFarm(async (f, a) => {
    api = a;
    // A long preference window: on a loaded machine the holder may need a while for all six.
    await f.startWorker({ workerId: 'affinity-a', maxInFlight: 2, editAffinityMs: 60000 });
    await f.startWorker({ workerId: 'affinity-b', maxInFlight: 2, editAffinityMs: 60000 });
  });

  it('prefers the worker that holds the source in memory', async () => {
    const source = await run({ ...SOURCE, seed: 31 }, api);
    const edits = await Promise.all(
      Array.from({ length: 6 }, (_, i) => run({ ...MASK_EDIT, source: source.id, seed: i }, api)),
    );
    const holder = (await inspectJob(api, source.id)).workerId;
    for (const edit of edits) {
      expect((await inspectJob(api, edit.id)).workerId).toBe(holder);
      expect(edit.result.source).toBe('memory');
    }
  });
});
