/**
 * `npm run bench:canvas`: the cost of regions and panoramas relative to a plain image, measured
 * side by side in one run on one pipeline.
 *  - a 3-region palette at 512×512, regions on their bounding boxes (ours) and, for comparison,
 *    every region over the whole canvas (MultiDiffusion/StreamMultiDiffusion style);
 *  - a 2048×512 panorama;
 * each relative to a plain single-prompt 512×512 image. Median of --reps runs (default 3).
 */
import { DiffusionPipeline, GenerateParams, RegionParams } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { intArg } from './bench-support';

async function main(): Promise<void> {
  const reps = intArg('reps', 3);
  const steps = intArg('steps', 4);
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR);
  const plain: GenerateParams = { id: 'x', prompt: 'a black background', width: 512, height: 512, steps, guidanceScale: 1, seed: 1, format: 'png' };
  // Three regions of a palette: about 9%, 6% and 4% of the canvas.
  const palette: RegionParams[] = [
    { prompt: 'a red circle on a white background', mask: { rects: [[40, 40, 150, 150]] } },
    { prompt: 'a blue square on a yellow background', mask: { rects: [[300, 60, 130, 120]] } },
    { prompt: 'a green triangle on a white background', mask: { polygons: [[[200, 300], [330, 480], [90, 480]]] } },
  ];
  const whole: RegionParams[] = palette.map((r) => ({ ...r, mask: { rects: [[0, 0, 512, 512]] } }));
  let n = 0;
  const median = async (params: GenerateParams) => {
    await pipeline.generate({ ...params, id: `w${n++}` });
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await pipeline.generate({ ...params, id: `m${n++}` });
      times.push(performance.now() - t0);
    }
    return times.sort((a, b) => a - b)[Math.floor(reps / 2)];
  };
  const base = await median(plain);
  const regions = await median({ ...plain, regions: palette });
  const wholeCanvas = await median({ ...plain, regions: whole });
  const panorama = await median({ ...plain, width: 2048, prompt: 'a yellow circle and a red square on a blue background' });
  console.log(`canvas benchmark: ${steps} steps, bundled model, CPU, median of ${reps}`);
  console.log(`  plain 512x512                         : ${base.toFixed(0)} ms`);
  console.log(`  3-region palette, bounding-box lanes  : ${regions.toFixed(0)} ms  (${(regions / base).toFixed(2)}x plain)`);
  console.log(`  3 regions over the whole canvas       : ${wholeCanvas.toFixed(0)} ms  (${(wholeCanvas / base).toFixed(2)}x plain; full-canvas fusion)`);
  console.log(`  2048x512 panorama                     : ${panorama.toFixed(0)} ms  (${(panorama / base).toFixed(2)}x plain, 4x the pixels)`);
  await pipeline.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
