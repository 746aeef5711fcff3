/**
 * `npm run eval:model`: the bundled model's quality, measured through the farm's own TypeScript
 * pipeline (not the training framework), on captions held out of training:
 *  - background colour correct (dominant palette colour of a border band),
 *  - shape colour correct (dominant non-background palette colour),
 *  - region halves: "a red background" | "a blue background" side by side come out red | blue,
 * and a sample grid with captions written to models/shapes-ldm/samples-farm.png.
 *
 * Options: --seeds=N per caption (default 8) --size=PX (default 128) --guidance=G×10 (default 20)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DiffusionPipeline, GenerateParams } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { backgroundColour, decodeRgb, dominantColour } from '../support/colour-judge';
import { ROOT, intArg, writeGrid } from './bench-support';

type Triple = [shapeColour: string, shape: string, background: string];

async function main(): Promise<void> {
  const seeds = intArg('seeds', 8);
  const size = intArg('size', 128);
  const guidanceScale = intArg('guidance', 20) / 10;
  const heldOut: Triple[] = JSON.parse(readFileSync(path.join(ROOT, 'models/train/held_out.json'), 'utf8'));
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR, { maxBatch: 16 });
  const base = { width: size, height: size, steps: 4, guidanceScale, format: 'png' as const };
  let n = 0;
  const render = async (params: Omit<GenerateParams, 'id' | keyof typeof base> & Partial<GenerateParams>) =>
    (await pipeline.generate({ ...base, id: `q${n++}`, ...params })).data;

  let bgOk = 0;
  let shapeOk = 0;
  let total = 0;
  const samples: Array<{ png: Buffer; caption: string }> = [];
  await Promise.all(
    heldOut.map(async ([colour, shape, background]) => {
      const prompt = `a ${colour} ${shape} on a ${background} background`;
      for (let seed = 0; seed < seeds; seed++) {
        const png = await render({ prompt, seed });
        const image = await decodeRgb(png);
        const bg = backgroundColour(image);
        total++;
        if (bg === background) bgOk++;
        if (dominantColour(image, () => true, background) === colour) shapeOk++;
        if (seed === 0) samples.push({ png, caption: prompt });
      }
    }),
  );

  let halvesOk = 0;
  for (let seed = 0; seed < seeds * 2; seed++) {
    const png = await render({
      prompt: 'a white background',
      width: 2 * size,
      seed,
      regions: [
        { prompt: 'a red background', mask: { rects: [[0, 0, size, size]] } },
        { prompt: 'a blue background', mask: { rects: [[size, 0, size, size]] } },
      ],
    });
    const image = await decodeRgb(png);
    const left = dominantColour(image, (x) => x < size * 0.75);
    const right = dominantColour(image, (x) => x >= size * 1.25);
    if (left === 'red' && right === 'blue') halvesOk++;
    if (seed === 0) samples.push({ png, caption: 'regions: red | blue' });
  }
  // Speed: a 4-step 256×256 image, alone, median of 7 after a warm-up.
  const times: number[] = [];
  for (let i = 0; i <= 7; i++) {
    const t0 = performance.now();
    await render({ prompt: 'a red circle on a blue background', width: 256, height: 256, seed: i });
    if (i > 0) times.push(performance.now() - t0);
  }
  const medianMs = times.sort((a, b) => a - b)[3];
  await pipeline.close();

  const pct = (k: number, of: number) => `${((100 * k) / of).toFixed(1)}%`;
  console.log(`model quality: ${DEFAULT_MODEL_DIR}, ${heldOut.length} held-out captions x ${seeds} seeds, ${size}x${size}, 4 steps, guidance ${guidanceScale}`);
  console.log(`  background colour correct : ${pct(bgOk, total)} (${bgOk}/${total})`);
  console.log(`  shape colour correct      : ${pct(shapeOk, total)} (${shapeOk}/${total})`);
  console.log(`  region halves red | blue  : ${pct(halvesOk, seeds * 2)} (${halvesOk}/${seeds * 2})`);
  console.log(`  4-step 256x256 image      : ${medianMs.toFixed(0)} ms median`);
  const grid = path.join(ROOT, 'models/shapes-ldm/samples-farm.png');
  await writeGrid(samples, size, grid);
  console.log(`  sample grid               : ${path.relative(ROOT, grid)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
