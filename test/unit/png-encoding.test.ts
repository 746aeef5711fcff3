/**
 * The PNG encoder (png-encoding.ts), read back by a real decoder (sharp's libspng, which checks
 * every chunk's CRC): RGB and greyscale, odd sizes, every byte value; a wrong pixel count is refused.
 */
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { encodePng } from '@farm/pipeline';

/** The pixels as decoded, with as many channels as the file has (sharp would widen grey to sRGB). */
async function decoded(png: Buffer) {
  const { channels } = await sharp(png).metadata();
  const image = channels === 1 ? sharp(png).toColourspace('b-w') : sharp(png);
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe('encodePng', () => {
  it.each([
    [1, 1],
    [7, 5],
    [64, 64],
    [130, 3],
  ])('writes %ix%i RGB pixels a decoder reads back exactly', async (width, height) => {
    const pixels = randomBytes(width * height * 3);
    const png = await encodePng(pixels, width, height, 3);
    expect(await sharp(png).metadata()).toMatchObject({ format: 'png', width, height, channels: 3, depth: 'uchar' });
    expect(await decoded(png)).toEqual({ data: pixels, width, height, channels: 3 });
  });

  it('writes greyscale pixels (every byte value) a decoder reads back exactly', async () => {
    const pixels = Buffer.from(Array.from({ length: 256 * 3 }, (_, i) => i % 256));
    const png = await encodePng(pixels, 256, 3, 1);
    expect(await decoded(png)).toEqual({ data: pixels, width: 256, height: 3, channels: 1 });
  });

  it('compresses a flat image well below its raw size', async () => {
    const png = await encodePng(Buffer.alloc(256 * 256 * 3, 200), 256, 256, 3);
    expect(png.length).toBeLessThan(2000);
  });

  it('writes CRCs the decoder checks: a flipped data bit fails to decode', async () => {
    const png = await encodePng(randomBytes(16 * 16 * 3), 16, 16, 3);
    const idat = png.indexOf('IDAT', 0, 'latin1');
    const bad = Buffer.from(png);
    bad[idat + 10] ^= 1;
    await expect(decoded(bad)).rejects.toThrow();
  });

  it('refuses pixels that are not width × height × channels bytes', async () => {
    await expect(encodePng(Buffer.alloc(10), 2, 2, 3)).rejects.toThrow(/10 bytes are not 2x2 pixels of 3 channels/);
  });
});
