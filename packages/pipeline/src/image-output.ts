/** RGB bytes to an encoded image file (PNG, JPEG, WebP). */
import sharp from 'sharp';
import { encodePng } from './png-encoding';

export type OutputFormat = 'png' | 'jpeg' | 'webp';

export async function encodeImage(rgb: Buffer, width: number, height: number, format: OutputFormat): Promise<Buffer> {
  if (format === 'png') return encodePng(rgb, width, height, 3);
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  switch (format) {
    case 'jpeg':
      return image.jpeg({ quality: 92 }).toBuffer();
    case 'webp':
      return image.webp({ quality: 92 }).toBuffer();
  }
}
