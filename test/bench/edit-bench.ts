/**
 * `npm run bench:edit`: edits cost in proportion to what changes. On one pipeline, side by side:
 *  - mask edits covering 5%, 10%, 25%, 50% of a 512×512 canvas vs regenerating the image at the
 *    same steps (speed-up, and cost per unit of mask area to show how close to linear it is);
 *  - the partial VAE decode of each edit vs decoding the whole canvas;
 *  - a prompt edit ("a red circle" → "a green circle") vs regenerating.
 * Medians of --reps runs (default 3) after a warm-up of each shape.
 */
import { DiffusionPipeline, EditParams, GenerateParams } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { intArg } from './bench-support';

async function median(reps: number, work: () => Promise<unknown>): Promise<number> {
  await work();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await work();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

async function main(): Promise<void> {
  const reps = intArg('reps', 3);
  const steps = intArg('steps', 4);
  const size = 512;
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR);
  const sourcePrompt = 'a red circle on a blue background';
  const generate: GenerateParams = { id: 'g', prompt: sourcePrompt, width: size, height: size, steps, guidanceScale: 1, seed: 4, format: 'png' };
  const source = { ...(await pipeline.generate(generate)), prompt: sourcePrompt };
  let n = 0;
  const full = await median(reps, () => pipeline.generate({ ...generate, id: `g${n++}` }));
  const canvas = pipeline.latentCanvas(size, size);
  const fullDecode = await median(reps, () => pipeline.model.decode(source.latent, 1, canvas.height, canvas.width));

  console.log(`edit benchmark: ${size}x${size}, ${steps} steps, bundled model, CPU, median of ${reps}`);
  console.log(`  full regeneration: ${full.toFixed(0)} ms; full VAE decode: ${fullDecode.toFixed(0)} ms`);
  console.log('  mask area | edit ms | speed-up | recomputed | decoded | partial decode ms | decode speed-up | ms per % of area');
  for (const area of [0.05, 0.1, 0.25, 0.5]) {
    const side = Math.round(size * Math.sqrt(area));
    const at = Math.round((size - side) / 2);
    const params: EditParams = { id: 'e', source, prompt: 'a yellow background', mask: { rects: [[at, at, side, side]] }, steps, strength: 1, guidanceScale: 1, seed: 9, format: 'png' };
    let result = await pipeline.edit(params);
    const ms = await median(reps, async () => (result = await pipeline.edit({ ...params, id: `e${n++}` })));
    const partialDecode = await median(reps, async () => {
      for (const win of result.decodedWindows) await pipeline.model.decode(new Float32Array(canvas.channels * win.h * win.w), 1, win.h, win.w);
    });
    console.log(
      `  ${(area * 100).toFixed(0).padStart(8)}% | ${ms.toFixed(0).padStart(7)} | ${(full / ms).toFixed(2).padStart(7)}x | ${(result.recomputedFraction * 100).toFixed(1).padStart(9)}% | ${(result.decodedFraction * 100).toFixed(1).padStart(6)}% | ${partialDecode.toFixed(0).padStart(17)} | ${(fullDecode / partialDecode).toFixed(2).padStart(14)}x | ${(ms / (area * 100)).toFixed(1)}`,
    );
  }
  const promptEdit: EditParams = { id: 'p', source, prompt: 'a green circle on a blue background', steps, strength: 0.75, guidanceScale: 1, seed: 9, format: 'png' };
  let detected = await pipeline.edit(promptEdit);
  const promptMs = await median(reps, async () => (detected = await pipeline.edit({ ...promptEdit, id: `p${n++}` })));
  console.log(
    `  prompt edit "${sourcePrompt}" → "${promptEdit.prompt}": ${promptMs.toFixed(0)} ms, ${(full / promptMs).toFixed(2)}x faster than regenerating; ` +
      `region recomputed ${(detected.recomputedFraction * 100).toFixed(1)}% of the canvas`,
  );
  await pipeline.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
