/**
 * PNG files from raw 8-bit grey or RGB pixels, deflated by node's zlib on libuv's threadpool.
 * sharp's PNG encoder spends about 0.6 ms of the calling thread per image on its options alone,
 * more than a 64×64 image's compression, and the worker's main thread encodes every result; here
 * the calling thread only lays out the rows and wraps three chunks. The file is what sharp's
 * defaults write: no row filtering, zlib level 6, no interlacing.
 */
import { promisify } from 'node:util';
import { crc32, deflate } from 'node:zlib';

const deflateAsync = promisify(deflate);

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PNG colour types: greyscale and truecolour. */
const COLOUR_TYPE = { 1: 0, 3: 2 } as const;

/** A chunk: length, type, data, and the CRC-32 of type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Interleaved 8-bit pixels (`channels` per pixel, rows top to bottom) as a PNG file. */
export async function encodePng(pixels: Buffer, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  const row = width * channels;
  if (pixels.length !== row * height) throw new RangeError(`${pixels.length} bytes are not ${width}x${height} pixels of ${channels} channels`);
  // Each row: its filter type (0, none), then its bytes.
  const rows = Buffer.alloc((row + 1) * height);
  for (let y = 0; y < height; y++) pixels.copy(rows, y * (row + 1) + 1, y * row, (y + 1) * row);
  const header = Buffer.alloc(13); // compression, filter method and interlacing 0
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per sample
  header[9] = COLOUR_TYPE[channels];
  const data = await deflateAsync(rows, { level: 6 });
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', data), chunk('IEND', Buffer.alloc(0))]);
}
