/**
 * `npm run bench:edit`: edits cost in proportion to what changes. On one pipeline, side by side:
 *  - mask edits covering 5%, 10%, 25%, 50% of a 512×512 canvas vs regenerating the image at the
 *    same steps, with a least-squares line of cost against mask area (how close to linear);
 *  - the partial VAE decode of each edit vs decoding the whole canvas, and how far the pasted
 *    pixels are from a full decode of the same latent;
 *  - 8 edits of 10% submitted together vs 8 regenerations together (one shared stream batch);
 *  - a prompt edit ("a red circle" → "a green circle") of an image whose circle covers ~10%,
 *    vs regenerating, with the share of the image its detected mask covers;
 *  - the bounds of both: the same UNet steps and decodes on the masks' bounding boxes alone;
 *  - a 10% mask edit vs a regeneration through the whole farm (HTTP API, a worker process);
 * and writes a captioned grid of edits of one image to models/shapes-ldm/edits-farm.png.
 * Each figure is timed alternately with a regeneration (paired runs, after a warm-up of each
 * shape); medians of --reps pairs (default 5), speed-ups as medians of the per-pair ratios.
 */
import {
  CanvasShape,
  DiffusionPipeline,
  EditParams,
  EditSource,
  GenerateParams,
  Mask,
  Window,
  commonShape,
  featherWeights,
  maskWindows,
  poolMask,
  pixelWindow,
  probeCanvas,
  rasterizeRects,
  toRgbBytes,
} from '@farm/pipeline';
import path from 'node:path';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import sharp from 'sharp';
import { ROOT, intArg, runJob, startLocalFarm, writeGrid } from './bench-support';

async function median(reps: number, work: () => Promise<unknown>): Promise<number> {
  await work();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await work();
    times.push(performance.now() - t0);
  }
  return middle(times);
}

const middle = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * `work` and `baseline` timed alternately, so both see the same machine (it is shared and its
 * speed drifts): their medians and the median of the per-pair ratios baseline/work.
 */
async function paired(reps: number, work: () => Promise<unknown>, baseline: () => Promise<unknown>): Promise<{ ms: number; baseMs: number; speedup: number }> {
  await work();
  const times: number[] = [];
  const baseTimes: number[] = [];
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now();
    await baseline();
    baseTimes.push(performance.now() - t0);
    t0 = performance.now();
    await work();
    times.push(performance.now() - t0);
  }
  return { ms: middle(times), baseMs: middle(baseTimes), speedup: middle(times.map((t, i) => baseTimes[i] / t)) };
}

/** Least squares y = a + b·x, with r². */
function fitLine(points: ReadonlyArray<readonly [number, number]>): { a: number; b: number; r2: number } {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const syy = points.reduce((s, [, y]) => s + (y - my) ** 2, 0);
  const b = sxy / sxx;
  return { a: my - b * mx, b, r2: (sxy * sxy) / (sxx * syy) };
}

async function main(): Promise<void> {
  const reps = intArg('reps', 5);
  const steps = intArg('steps', 4);
  const size = 512;
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR);
  const { vaeScale } = pipeline.model.info;
  const sourcePrompt = 'a red circle on a blue background';
  const generate: GenerateParams = { id: 'g', prompt: sourcePrompt, width: size, height: size, steps, guidanceScale: 1, seed: 4, format: 'png' };
  const source: EditSource = { ...(await pipeline.generate(generate)), prompt: sourcePrompt };
  let n = 0;
  const regenerate = () => pipeline.generate({ ...generate, id: `g${n++}` });
  await regenerate(); // warm-up
  const canvas = pipeline.latentCanvas(size, size);
  const decodeAll = () => pipeline.model.decode(source.latent, 1, canvas.height, canvas.width);
  const fullDecode = await median(reps, decodeAll);

  console.log(`edit benchmark: ${size}x${size}, ${steps} steps, bundled model, CPU, median of ${reps}`);
  console.log(`  full VAE decode: ${fullDecode.toFixed(0)} ms; every edit timed alternately with a regeneration`);
  console.log('  mask area | edit ms | speed-up | recomputed | decoded | partial decode ms | decode speed-up | max |Δ| vs full decode');
  const points: Array<[number, number]> = [];
  const regenerations: number[] = [];
  /** A centred square covering `area` of the canvas: [x, y, w, h] in pixels. */
  const maskRect = (area: number) => {
    const side = Math.round(size * Math.sqrt(area));
    const at = Math.round((size - side) / 2);
    return [at, at, side, side] as const;
  };
  const maskEdit = (area: number): EditParams => ({ id: 'e', source, prompt: 'a yellow background', mask: { rects: [maskRect(area)] }, steps, strength: 1, guidanceScale: 1, seed: 9, format: 'png' });
  for (const area of [0.05, 0.1, 0.25, 0.5]) {
    const params = maskEdit(area);
    let result = await pipeline.edit(params);
    const { ms, baseMs, speedup } = await paired(reps, async () => (result = await pipeline.edit({ ...params, id: `e${n++}` })), regenerate);
    points.push([area * 100, ms]);
    regenerations.push(baseMs);
    const partialDecode = await paired(
      reps,
      async () => {
        for (const win of result.decodedWindows) await pipeline.model.decode(new Float32Array(canvas.channels * win.h * win.w), 1, win.h, win.w);
      },
      decodeAll,
    );
    // The pasted pixels against a full decode of the same latent.
    const whole = toRgbBytes(await pipeline.model.decode(result.latent, 1, canvas.height, canvas.width), size, size, size, size);
    const pixelMask = { width: size, height: size, data: Float32Array.from(await sharp(result.maskPng).extractChannel(0).raw().toBuffer(), (v) => v / 255) };
    let maxDiff = 0;
    for (const win of result.decodedWindows) {
      const at = pixelWindow(win, vaeScale);
      const weights = featherWeights(pixelMask, at, 8);
      for (let y = 0; y < at.h; y++) {
        for (let x = 0; x < at.w; x++) {
          if (weights.data[y * at.w + x] < 1) continue; // fully pasted pixels: pure patch
          const i = ((at.y + y) * size + at.x + x) * 3;
          for (let c = 0; c < 3; c++) maxDiff = Math.max(maxDiff, Math.abs(result.rgb[i + c] - whole[i + c]));
        }
      }
    }
    console.log(
      `  ${(area * 100).toFixed(0).padStart(8)}% | ${ms.toFixed(0).padStart(7)} | ${speedup.toFixed(2).padStart(7)}x | ${(result.recomputedFraction * 100).toFixed(1).padStart(9)}% | ${(result.decodedFraction * 100).toFixed(1).padStart(6)}% | ${partialDecode.ms.toFixed(0).padStart(17)} | ${partialDecode.speedup.toFixed(2).padStart(14)}x | ${maxDiff} of 255`,
    );
  }
  // The bound on any windowed edit of this model here: the UNet at every step and the decoder on
  // nothing but the 10% mask's bounding box (rounded up to the UNet's alignment), with no
  // context, blur halo, fusion, paste or encoding.
  const boxesOf = (pixels: Mask) =>
    commonShape(maskWindows(poolMask(pixels, vaeScale, canvas.width, canvas.height), 0, pipeline.model.info.latentAlignment), canvas.width, canvas.height);
  const [box] = boxesOf(rasterizeRects([maskRect(0.1)], size, size));
  const bound = await paired(reps, () => boxesOnly(pipeline, [box], steps), regenerate);
  console.log(
    `  bound at 10%: ${steps} UNet calls and a decode on the mask's bounding box alone (${box.h}x${box.w} cells, nothing else) take ${bound.ms.toFixed(0)} ms: ${bound.speedup.toFixed(2)}x`,
  );
  const line = fitLine(points);
  const full = middle(regenerations);
  console.log(
    `  cost against mask area: ${line.a.toFixed(0)} ms + ${line.b.toFixed(1)} ms per % of the canvas (r² = ${line.r2.toFixed(3)}); ` +
      `regenerating is ${full.toFixed(0)} ms, i.e. the line reaches it at ${((full - line.a) / line.b).toFixed(0)}%`,
  );

  // A micro-batch: 8 edits of 10% at once vs 8 regenerations at once, each set in one stream batch.
  const together = 8;
  const batch = await paired(
    reps,
    () => Promise.all(Array.from({ length: together }, () => pipeline.edit({ ...maskEdit(0.1), id: `b${n++}` }))),
    () => Promise.all(Array.from({ length: together }, regenerate)),
  );
  console.log(
    `  ${together} at once: edits of 10% ${((together * 1000) / batch.ms).toFixed(2)} images/s, regenerations ${((together * 1000) / batch.baseMs).toFixed(2)} images/s: ${batch.speedup.toFixed(2)}x`,
  );

  // Prompt edit of an image with one red object over ~10% of it (a plain background, the object
  // painted in by a mask edit), the farm finding the region itself.
  const plain = await pipeline.generate({ ...generate, id: 'plain', prompt: 'a blue background' });
  const painted = await pipeline.edit({ ...maskEdit(0.12), id: 'paint', source: plain, prompt: sourcePrompt, seed: 7 });
  const objectSource: EditSource = { ...painted, prompt: sourcePrompt };
  const promptEdit: EditParams = { id: 'p', source: objectSource, prompt: 'a green circle on a blue background', steps, strength: 0.75, guidanceScale: 1, seed: 3, format: 'png' };
  let detected = await pipeline.edit(promptEdit);
  const prompt = await paired(reps, async () => (detected = await pipeline.edit({ ...promptEdit, id: `p${n++}` })), regenerate);
  const maskPixels = await sharp(detected.maskPng).extractChannel(0).raw().toBuffer();
  const maskShare = maskPixels.reduce((s, v) => s + (v > 127 ? 1 : 0), 0) / maskPixels.length;
  console.log(
    `  prompt edit "${sourcePrompt}" → "${promptEdit.prompt}": ${prompt.ms.toFixed(0)} ms, ${prompt.speedup.toFixed(2)}x faster than regenerating; ` +
      `detected mask ${(maskShare * 100).toFixed(1)}% of the image, recomputed ${(detected.recomputedFraction * 100).toFixed(1)}%, decoded ${(detected.decodedFraction * 100).toFixed(1)}%`,
  );
  // Its bound: the probe, then the UNet and the decoder on the detected parts' bounding boxes alone
  // (grown to one shape where the pipeline would, so they share each step's call).
  const boxes = boxesOf({ width: size, height: size, data: Float32Array.from(maskPixels, (v) => v / 255) });
  const { probe } = probeCanvas(canvas, pipeline.model.info.sampleSize, pipeline.model.info.latentAlignment);
  const promptBound = await paired(reps, () => boxesOnly(pipeline, boxes, steps, probe), regenerate);
  console.log(
    `  its bound: the probe (2 samples on ${probe.height}x${probe.width} cells), then ${steps} UNet calls and decodes on the detected parts' boxes alone ` +
      `(${boxes.map((b) => `${b.h}x${b.w}`).join(', ')}) take ${promptBound.ms.toFixed(0)} ms: ${promptBound.speedup.toFixed(2)}x`,
  );
  await writeEditSamples(pipeline);
  await pipeline.close();

  // The same through the whole farm, as a client sees it: the HTTP API and one worker process
  // (S3 uploads, progress previews and all); each job's computeMs, edits and regenerations alternating.
  const farm = await startLocalFarm({ port: intArg('port', 18093) });
  try {
    const sourceJob = await runJob(farm, { type: 'generate', prompt: sourcePrompt, width: size, height: size, steps, seed: 4 });
    const rect = maskEdit(0.1).mask;
    const farmEdits: number[] = [];
    const farmRegenerations: number[] = [];
    for (let i = 0; i <= reps; i++) {
      const edited = await runJob(farm, { type: 'edit', source: sourceJob.id, prompt: 'a yellow background', mask: rect, steps, seed: 9 + i });
      const regenerated = await runJob(farm, { type: 'generate', prompt: sourcePrompt, width: size, height: size, steps, seed: 9 + i });
      if (i === 0) continue; // warm-up
      farmEdits.push(edited.timings.computeMs);
      farmRegenerations.push(regenerated.timings.computeMs);
    }
    console.log(
      `  through the farm (HTTP, one worker): regeneration ${middle(farmRegenerations)} ms, mask edit of 10% ${middle(farmEdits)} ms of compute: ` +
        `${middle(farmRegenerations.map((r, i) => r / farmEdits[i])).toFixed(2)}x`,
    );
  } finally {
    await farm.close();
  }
}

/**
 * The least an edit confined to `boxes` can compute: the prompt-change probe if asked (one UNet
 * call of two samples), then per step one UNet call per box shape, then a decode of each box.
 */
async function boxesOnly(pipeline: DiffusionPipeline, boxes: readonly Window[], steps: number, probe?: CanvasShape): Promise<void> {
  const { model } = pipeline;
  const channels = model.info.latentChannels;
  const [{ context }] = await pipeline.textCache.get(['a yellow background']);
  const run = (n: number, h: number, w: number) => {
    const repeated = new Float32Array(n * context.length);
    for (let i = 0; i < n; i++) repeated.set(context, i * context.length);
    return model.unet(new Float32Array(n * channels * h * w), new Array(n).fill(499), repeated, h, w);
  };
  if (probe) await run(2, probe.height, probe.width);
  const shapes = new Map<string, { h: number; w: number; n: number }>();
  for (const { h, w } of boxes) {
    const shape = shapes.get(`${h}x${w}`) ?? { h, w, n: 0 };
    shape.n++;
    shapes.set(`${h}x${w}`, shape);
  }
  for (let step = 0; step < steps; step++) for (const { h, w, n } of shapes.values()) await run(n, h, w);
  for (const { h, w } of boxes) await model.decode(new Float32Array(channels * h * w), 1, h, w);
}

/** One 256×256 source and its edits, with the masks they used: models/shapes-ldm/edits-farm.png. */
async function writeEditSamples(pipeline: DiffusionPipeline): Promise<void> {
  const prompt = 'a red circle on a blue background';
  const base = { steps: 4, guidanceScale: 1, format: 'png' as const };
  const generated = await pipeline.generate({ ...base, id: 's', prompt, width: 256, height: 256, seed: 21 });
  const source: EditSource = { ...generated, prompt };
  const edit = (params: Partial<EditParams> & Pick<EditParams, 'prompt'>) => pipeline.edit({ ...base, id: 'x', source, strength: 1, seed: 5, ...params });
  const masked = await edit({ prompt: 'a yellow background', mask: { rects: [[24, 24, 120, 96]] } });
  const painted = await edit({
    prompt: 'a blue background',
    regions: [
      { prompt: 'a white circle on a black background', mask: { rects: [[16, 150, 96, 96]] } },
      { prompt: 'a yellow background', mask: { polygons: [[[150, 150], [250, 170], [200, 250]]] } },
    ],
  });
  const changed = await edit({ prompt: 'a green circle on a blue background', strength: 0.75, seed: 1 });
  const file = path.join(ROOT, 'models/shapes-ldm/edits-farm.png');
  await writeGrid(
    [
      { png: generated.data, caption: `source: "${prompt}"` },
      { png: masked.data, caption: 'mask edit (rectangle): "a yellow background"' },
      { png: masked.maskPng, caption: `its mask; ${(masked.recomputedFraction * 100).toFixed(0)}% of the canvas recomputed` },
      { png: painted.data, caption: 'regions painted in: white circle on black; yellow' },
      { png: changed.data, caption: 'prompt edit: "a green circle on a blue background"' },
      { png: changed.maskPng, caption: `the mask it found; ${(changed.recomputedFraction * 100).toFixed(0)}% recomputed` },
    ],
    256,
    file,
    3,
  );
  console.log(`  edit samples: ${path.relative(ROOT, file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
