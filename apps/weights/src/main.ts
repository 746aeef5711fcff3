#!/usr/bin/env node
/**
 * `npm run weights -- <int8|fp16> <model dir> <out dir> [options]`: writes a copy of an ONNX model
 * folder (the bundled model or any Optimum export, external-data weights included) with int8
 * weight-only or fp16 weights, then prints each graph's size against the original's, and checks
 * the copy through the farm's pipeline: PSNR of images at the same seeds, and time per image on
 * this machine. Options: --size=PX (256) --seeds=N (2) --steps=N (4) --guidance=G (1)
 * --prompt=TEXT (repeatable; default: four captions of the bundled model) --no-check.
 */
import { parseArgs } from 'node:util';
import { copyModelFolder } from '@farm/model-tools';
import { checkCopy } from './copy-check';

const DEFAULT_PROMPTS = [
  'a red circle on a blue background',
  'a green square and a yellow triangle on a black background',
  'two white triangles on a purple background',
  'a big orange circle on a green background',
];

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      size: { type: 'string', default: '256' },
      seeds: { type: 'string', default: '2' },
      steps: { type: 'string', default: '4' },
      guidance: { type: 'string', default: '1' },
      prompt: { type: 'string', multiple: true },
      'no-check': { type: 'boolean', default: false },
    },
  });
  const [format, src, dst] = positionals;
  if ((format !== 'int8' && format !== 'fp16') || !src || !dst) {
    console.error('usage: npm run weights -- <int8|fp16> <model dir> <out dir> [--size=256] [--seeds=2] [--steps=4] [--guidance=1] [--prompt=TEXT]… [--no-check]');
    return 2;
  }
  const copied = copyModelFolder(src, dst, format);
  const before = copied.reduce((n, c) => n + c.bytesBefore, 0);
  const after = copied.reduce((n, c) => n + c.bytesAfter, 0);
  console.log(`${format} copy of ${src} written to ${dst}\n`);
  console.log(`| graph | fp32 | ${format} | size ÷ fp32 |`);
  console.log('| --- | --- | --- | --- |');
  for (const c of [...copied, { part: '**all**', bytesBefore: before, bytesAfter: after }]) {
    console.log(`| ${c.part} | ${mb(c.bytesBefore)} | ${mb(c.bytesAfter)} | ${(c.bytesAfter / c.bytesBefore).toFixed(3)} (${(c.bytesBefore / c.bytesAfter).toFixed(2)}× smaller) |`);
  }
  if (values['no-check']) return 0;
  const options = {
    prompts: values.prompt ?? DEFAULT_PROMPTS,
    seeds: Number(values.seeds),
    size: Number(values.size),
    steps: Number(values.steps),
    guidanceScale: Number(values.guidance),
  };
  const result = await checkCopy(src, dst, options);
  console.log(`\nimages: ${result.images} (${options.prompts.length} prompts × ${options.seeds} seeds), ${options.size}×${options.size}, ${options.steps} steps, guidance ${options.guidanceScale}`);
  console.log(`PSNR against the original: ${result.psnr.toFixed(1)} dB over all images, lowest ${result.lowestPsnr.toFixed(1)} dB`);
  console.log(`time per image (median, the two alternating): original ${result.originalMs.toFixed(0)} ms, ${format} ${result.copyMs.toFixed(0)} ms`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
