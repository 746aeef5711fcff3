/**
 * Local files that become parts of a job request: a regions.json (the request's `regions`
 * array), images and masks sent as base64, and an edit's source (a job id or an image file).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GenerateSubmission, EditSubmission } from '@farm/client';

export async function readBase64(file: string, cwd: string): Promise<string> {
  return (await readFile(path.resolve(cwd, file))).toString('base64');
}

/** Reads regions.json: `[{prompt, mask: {rects|polygons|png}, strength?}, …]`. */
export async function readRegions(file: string, cwd: string): Promise<NonNullable<GenerateSubmission['regions']>> {
  const text = await readFile(path.resolve(cwd, file), 'utf8');
  let regions: unknown;
  try {
    regions = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(regions)) throw new Error(`${file} must hold a JSON array of regions ([{"prompt", "mask", "strength"?}, …])`);
  return regions as NonNullable<GenerateSubmission['regions']>; // the API names any bad field
}

const JOB_ID = /^[\w-]{1,128}$/;

/** An existing file is an uploaded image; otherwise the argument must be a job id. */
export async function editSource(source: string, cwd: string): Promise<EditSubmission['source']> {
  if (existsSync(path.resolve(cwd, source))) return { image: await readBase64(source, cwd) };
  if (JOB_ID.test(source)) return source;
  throw new Error(`edit source "${source}" is neither an image file nor a job id`);
}
