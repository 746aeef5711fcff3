/**
 * The common end of `generate` and `edit` (and `status --wait`): follow a job with a progress
 * bar on stderr, download the image when asked, print a JSON summary on stdout. The exit code
 * says how it ended: 0 succeeded, 1 failed or canceled, 130 interrupted (the job is canceled).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FarmClient, JobView } from '@farm/client';
import { type CliIo, printJson } from './cli-io';
import { ProgressBar } from './progress-bar';

export interface FollowOptions {
  /** Where to write the image; without it the summary carries the URL only. */
  output?: string;
  /** Cancel the job when interrupted (true for jobs this command submitted). */
  cancelOnAbort: boolean;
}

export async function followJob(client: FarmClient, id: string, io: CliIo, options: FollowOptions): Promise<number> {
  const bar = new ProgressBar(io.stderr);
  let job: JobView;
  try {
    job = await client.waitFor(id, { signal: io.signal, onProgress: (p) => bar.update(p.step, p.total) });
  } catch (err) {
    bar.end();
    if (!io.signal?.aborted) throw err;
    if (options.cancelOnAbort) {
      await client.cancel(id).catch(() => undefined);
      io.stderr.write(`farm: interrupted; job ${id} canceled\n`);
    } else {
      io.stderr.write(`farm: interrupted; job ${id} goes on\n`);
    }
    return 130;
  }
  bar.end();

  let output: string | undefined;
  if (job.status === 'succeeded' && job.result && options.output) {
    if (!job.result.url) {
      io.stderr.write(`farm: job ${job.id}'s image expired at ${job.result.expiresAt} (RESULT_RETENTION_SECONDS)\n`);
      return 1;
    }
    output = path.resolve(io.cwd ?? process.cwd(), options.output);
    const bytes = await client.download(job.result.url, { signal: io.signal });
    await mkdir(path.dirname(output), { recursive: true });
    await writeFile(output, bytes);
  }
  printJson(io.stdout, summarize(job, output));
  if (job.status === 'succeeded') return 0;
  const why = job.error ? `${job.error.message} (${job.error.code})` : job.status;
  io.stderr.write(`farm: job ${job.id} ${job.status}: ${why}\n`);
  return 1;
}

/** The few fields a person or a script wants at the end of a job. */
export function summarize(job: JobView, output?: string): Record<string, unknown> {
  const seed = (job.request as { seed?: number }).seed;
  return {
    id: job.id,
    type: job.type,
    status: job.status,
    ...(output ? { output } : {}),
    ...(job.result
      ? { width: job.result.width, height: job.result.height, contentType: job.result.contentType, url: job.result.url }
      : {}),
    ...(seed !== undefined ? { seed } : {}),
    timings: job.timings,
    ...(job.error ? { error: job.error } : {}),
  };
}
