/**
 * `farm edit <jobId|image> "prompt" [--mask mask.png | --rect x,y,w,h …] [--regions regions.json]
 * [--strength S] -o out.png`: re-render part of a finished job's image (or of an uploaded one) and
 * follow the new job.
 */
import type { EditSubmission, FarmClient } from '@farm/client';
import type { ImageFormat } from '@farm/contracts';
import type { CliIo } from '../cli-io';
import { followJob } from '../follow-job';
import { type Rect, formatOfFile } from '../option-parsers';
import { editSource, readBase64, readRegions } from '../request-files';

export interface EditOptions {
  mask?: string;
  rect?: Rect[];
  regions?: string;
  strength?: number;
  steps?: number;
  seed?: number;
  guidance?: number;
  negative?: string;
  format?: ImageFormat;
  output?: string;
}

export async function edit(client: FarmClient, io: CliIo, source: string, prompt: string, options: EditOptions): Promise<number> {
  const cwd = io.cwd ?? process.cwd();
  if (options.mask && options.rect?.length) throw new Error('give either --mask or --rect, not both');
  let mask: EditSubmission['mask'];
  if (options.mask) mask = { png: await readBase64(options.mask, cwd) };
  else if (options.rect?.length) mask = { rects: options.rect };
  const request: EditSubmission = {
    type: 'edit',
    source: await editSource(source, cwd),
    prompt,
    negativePrompt: options.negative,
    mask,
    regions: options.regions ? await readRegions(options.regions, cwd) : undefined,
    strength: options.strength,
    steps: options.steps,
    seed: options.seed,
    guidanceScale: options.guidance,
    format: options.format ?? formatOfFile(options.output),
  };
  const job = await client.submit(request, { signal: io.signal });
  io.stderr.write(`farm: job ${job.id} queued\n`);
  return followJob(client, job.id, io, { output: options.output, cancelOnAbort: true });
}
