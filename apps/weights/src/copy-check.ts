/**
 * A weight copy against its original, through the farm's own pipeline: the same prompts and
 * seeds rendered by both, the images' PSNR, and each model's time per image (the two models
 * alternate, so both meet the same machine load).
 */
import { DiffusionPipeline } from '@farm/pipeline';

export interface CheckOptions {
  prompts: readonly string[];
  seeds: number;
  size: number;
  steps: number;
  guidanceScale: number;
}

export interface CheckResult {
  images: number;
  /** PSNR over all the images' pixels, and the lowest of one image (dB). */
  psnr: number;
  lowestPsnr: number;
  /** Median milliseconds per image. */
  originalMs: number;
  copyMs: number;
}

/** Peak signal-to-noise ratio of two 8-bit images (dB; Infinity when identical), from their squared error sum. */
export function psnr(squaredError: number, values: number): number {
  return squaredError === 0 ? Infinity : 10 * Math.log10((255 * 255 * values) / squaredError);
}

function squaredError(a: Buffer, b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function checkCopy(originalDir: string, copyDir: string, options: CheckOptions): Promise<CheckResult> {
  const [original, copy] = await Promise.all([DiffusionPipeline.load(originalDir), DiffusionPipeline.load(copyDir)]);
  try {
    const times: Record<'original' | 'copy', number[]> = { original: [], copy: [] };
    let total = 0;
    let values = 0;
    let lowestPsnr = Infinity;
    let n = 0;
    const render = async (which: 'original' | 'copy', prompt: string, seed: number) => {
      const pipeline = which === 'original' ? original : copy;
      const t0 = performance.now();
      const image = await pipeline.generate({
        id: `${which}-${n++}`, prompt, seed, width: options.size, height: options.size, steps: options.steps, guidanceScale: options.guidanceScale, format: 'png',
      });
      times[which].push(performance.now() - t0);
      return image.rgb;
    };
    await render('original', options.prompts[0], 0); // warm-up of both sessions' first runs
    await render('copy', options.prompts[0], 0);
    times.original.length = 0;
    times.copy.length = 0;
    for (const prompt of options.prompts) {
      for (let seed = 0; seed < options.seeds; seed++) {
        const a = await render('original', prompt, seed);
        const b = await render('copy', prompt, seed);
        const err = squaredError(a, b);
        total += err;
        values += a.length;
        lowestPsnr = Math.min(lowestPsnr, psnr(err, a.length));
      }
    }
    return { images: times.original.length, psnr: psnr(total, values), lowestPsnr, originalMs: median(times.original), copyMs: median(times.copy) };
  } finally {
    await Promise.all([original.close(), copy.close()]);
  }
}
