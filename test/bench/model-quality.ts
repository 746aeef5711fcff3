/**
 * `npm run eval:model`: the bundled model's quality, measured through the farm's own TypeScript
 * pipeline (not the training framework), on captions held out of training, at 128², 256² and
 * 512² (the judge: test/support/shape-judge.ts):
 *  - background colour, shape colour and shape type (circle / square / triangle),
 *  - the number of shapes (one held-out shape alone; or it and another shape, "X and Y"),
 *  - region prompts landing in their masks (two halves, each its own background colour),
 * printed as a Markdown table, and the time of a 4-step 512² image; a grid of samples goes to
 * models/shapes-ldm/samples-farm.png.
 *
 * Options: --seeds=N per caption and size (default 4), --guidance=G×10 (default 10: the API's
 * default), --sizes=128,256,512, --model=DIR (default: the bundled model).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DiffusionPipeline } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { decodeRgb, dominantColour, PALETTE } from '../support/colour-judge';
import { Scene, Score, judgeShapes, scoreImage } from '../support/shape-judge';
import { ROOT, gridImage, intArg, writeStacked } from './bench-support';

type Triple = [shapeColour: string, shape: string, background: string];

const COLOURS = Object.keys(PALETTE);
const KINDS = ['circle', 'square', 'triangle'];

function stringArg(name: string, fallback: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
}

/** "a red circle and a blue square on a yellow background". */
function caption(scene: Scene): string {
  return `${scene.shapes.map((s) => `a ${s.colour} ${s.kind}`).join(' and ')} on a ${scene.background} background`;
}

/** Each held-out triple alone, and with a second shape (other colour and kind), as the training script's evaluation. */
function heldOutScenes(heldOut: Triple[]): { one: Scene[]; two: Scene[] } {
  const one = heldOut.map(([colour, kind, background]) => ({ background, shapes: [{ colour, kind }] }));
  const two = heldOut.map(([colour, kind, background], k) => {
    const second = { colour: COLOURS.filter((c) => c !== background && c !== colour)[k % 6], kind: KINDS[(KINDS.indexOf(kind) + 1) % 3] };
    return { background, shapes: [{ colour, kind }, second] };
  });
  return { one, two };
}

class Tally {
  private readonly hits = new Map<string, [number, number]>();

  add(key: string, ok: boolean | undefined): void {
    if (ok === undefined) return;
    const [k, n] = this.hits.get(key) ?? [0, 0];
    this.hits.set(key, [k + (ok ? 1 : 0), n + 1]);
  }

  addScore(prefix: string, score: Score): void {
    for (const [key, ok] of Object.entries(score)) this.add(`${prefix}${key}`, ok);
  }

  cell(key: string): string {
    const [k, n] = this.hits.get(key) ?? [0, 0];
    return n === 0 ? '–' : `${((100 * k) / n).toFixed(1)}% (${k}/${n})`;
  }
}

async function main(): Promise<void> {
  const seeds = intArg('seeds', 4);
  const guidanceScale = intArg('guidance', 10) / 10;
  const sizes = stringArg('sizes', '128,256,512').split(',').map(Number);
  const modelDir = stringArg('model', DEFAULT_MODEL_DIR);
  const heldOut: Triple[] = JSON.parse(readFileSync(path.join(ROOT, 'models/train/held_out.json'), 'utf8'));
  const { one, two } = heldOutScenes(heldOut);
  const pipeline = await DiffusionPipeline.load(modelDir, { maxBatch: 16 });
  let n = 0;
  const render = async (prompt: string, size: number, seed: number, regions?: Parameters<DiffusionPipeline['generate']>[0]['regions']) =>
    (await pipeline.generate({ id: `q${n++}`, prompt, width: size, height: size, steps: 4, guidanceScale, seed, format: 'png', regions })).data;

  const tally = new Tally();
  const grids: Buffer[] = [];
  for (const size of sizes) {
    const samples: Array<{ png: Buffer; caption: string }> = [];
    await Promise.all(
      [...one.map((s) => ['one', s] as const), ...two.map((s) => ['two', s] as const)].map(async ([group, scene], i) => {
        const prompt = caption(scene);
        for (let seed = 0; seed < seeds; seed++) {
          const png = await render(prompt, size, 1000 * size + seed);
          const score = scoreImage(judgeShapes(await decodeRgb(png)), scene);
          tally.addScore(`${size}/${group}/`, score);
          tally.addScore(`${size}/all/`, score);
          tally.addScore('all/', score);
          if (seed === 0 && i % 3 === 0) samples.push({ png, caption: prompt });
        }
      }),
    );
    // Regions: the left half one background colour, the right half another.
    const half = size / 2;
    for (let seed = 0; seed < 2 * seeds; seed++) {
      const [left, right] = [COLOURS[seed % 8], COLOURS[(seed + 3) % 8]];
      const png = await render('a white background', size, seed, [
        { prompt: `a ${left} background`, mask: { rects: [[0, 0, half, size]] } },
        { prompt: `a ${right} background`, mask: { rects: [[half, 0, half, size]] } },
      ]);
      const image = await decodeRgb(png);
      const ok = dominantColour(image, (x) => x < half * 0.75) === left && dominantColour(image, (x) => x >= half * 1.25) === right;
      tally.add(`${size}/all/regions`, ok);
      tally.add('all/regions', ok);
      if (seed === 0) samples.push({ png, caption: `regions: ${left} | ${right}` });
    }
    grids.push(await gridImage(samples, size, size >= 512 ? 3 : size >= 256 ? 4 : 6));
  }
  // Speed: a 4-step 512×512 image (the API's default size), alone, median of 5 after a warm-up.
  const times: number[] = [];
  for (let i = 0; i <= 5; i++) {
    const t0 = performance.now();
    await render('a red circle on a blue background', 512, i);
    if (i > 0) times.push(performance.now() - t0);
  }
  await pipeline.close();

  const criteria = ['background', 'colour', 'kind', 'count', 'regions'];
  console.log(`model quality: ${path.relative(ROOT, modelDir)}, ${heldOut.length} held-out triples, alone and with a second shape, x ${seeds} seeds, 4 steps, guidance ${guidanceScale}\n`);
  console.log(`| size | ${criteria.map((c) => (c === 'kind' ? 'shape type' : c === 'colour' ? 'shape colour' : c)).join(' | ')} |`);
  console.log(`| --- | ${criteria.map(() => '---').join(' | ')} |`);
  const rows = [...sizes.flatMap((s) => [`${s}/one`, `${s}/two`, `${s}/all`]), 'all'];
  for (const row of rows) {
    const label = row === 'all' ? '**all**' : row.replace('/one', '² one shape').replace('/two', '² two shapes').replace('/all', '² all');
    console.log(`| ${label} | ${criteria.map((c) => tally.cell(`${row}/${c}`)).join(' | ')} |`);
  }
  console.log(`\n4-step 512x512 image, alone: ${times.sort((a, b) => a - b)[2].toFixed(0)} ms median`);
  const grid = path.join(ROOT, 'models/shapes-ldm/samples-farm.png');
  if (modelDir === DEFAULT_MODEL_DIR) {
    await writeStacked(grids, grid);
    console.log(`\nsample grid: ${path.relative(ROOT, grid)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
