/** `farm generate "prompt" [options] -o out.png`: submit a text-to-image job and follow it. */
import type { FarmClient, GenerateSubmission } from '@farm/client';
import type { ImageFormat } from '@farm/contracts';
import type { CliIo } from '../cli-io';
import { followJob } from '../follow-job';
import { formatOfFile } from '../option-parsers';
import { readRegions } from '../request-files';

export interface GenerateOptions {
  width?: number;
  height?: number;
  steps?: number;
  seed?: number;
  guidance?: number;
  negative?: string;
  format?: ImageFormat;
  regions?: string;
  output?: string;
}

export async function generate(client: FarmClient, io: CliIo, prompt: string, options: GenerateOptions): Promise<number> {
  const cwd = io.cwd ?? process.cwd();
  const request: GenerateSubmission = {
    type: 'generate',
    prompt,
    negativePrompt: options.negative,
    width: options.width,
    height: options.height,
    steps: options.steps,
    seed: options.seed,
    guidanceScale: options.guidance,
    format: options.format ?? formatOfFile(options.output),
    regions: options.regions ? await readRegions(options.regions, cwd) : undefined,
  };
  const job = await client.submit(request, { signal: io.signal });
  io.stderr.write(`farm: job ${job.id} queued\n`);
  return followJob(client, job.id, io, { output: options.output, cancelOnAbort: true });
}
