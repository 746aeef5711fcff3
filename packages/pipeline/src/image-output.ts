/** RGB bytes to an encoded image file (PNG, JPEG, WebP). */
import sharp from 'sharp';

export type OutputFormat = 'png' | 'jpeg' | 'webp';

export async function encodeImage(rgb: Buffer, width: number, height: number, format: OutputFormat): Promise<Buffer> {
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  switch (format) {
    case 'png':
      return image.png({ compressionLevel: 6 }).toBuffer();
    case 'jpeg':
      return image.jpeg({ quality: 92 }).toBuffer();
    case 'webp':
      return image.webp({ quality: 92 }).toBuffer();
  }
}
