/**
 * Commander argument parsers for numbers, rectangles and image formats. They only check the
 * shape of a value; the API's validation stays the authority on ranges and multiples.
 */
import { InvalidArgumentError } from 'commander';
import { IMAGE_FORMATS, type ImageFormat } from '@farm/contracts';

export function parseInteger(value: string): number {
  if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError('expected an integer.');
  return Number(value);
}

export function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}

export function parseFormat(value: string): ImageFormat {
  const format = value.toLowerCase() === 'jpg' ? 'jpeg' : value.toLowerCase();
  if (!(IMAGE_FORMATS as readonly string[]).includes(format)) throw new InvalidArgumentError(`expected one of ${IMAGE_FORMATS.join(', ')}.`);
  return format as ImageFormat;
}

export type Rect = [number, number, number, number];

/** `x,y,w,h` (repeatable: each use adds one rectangle). */
export function collectRect(value: string, previous: Rect[] = []): Rect[] {
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 4 || parts.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError('expected x,y,w,h.');
  return [...previous, parts as Rect];
}

/** The image format an output file name asks for (out.jpg → jpeg), if any. */
export function formatOfFile(file: string | undefined): ImageFormat | undefined {
  const ext = /\.([a-z]+)$/i.exec(file ?? '')?.[1];
  if (!ext) return undefined;
  try {
    return parseFormat(ext);
  } catch {
    return undefined;
  }
}
