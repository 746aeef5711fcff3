/** Decoded VAE output ([3,H,W] floats in [-1,1]) to RGB bytes and to an encoded image file. */
import sharp from 'sharp';

export type OutputFormat = 'png' | 'jpeg' | 'webp';

/** Planar [-1,1] floats → interleaved RGB bytes, cropped to width×height from a canvas of canvasWidth. */
export function toRgbBytes(chw: Float32Array, canvasHeight: number, canvasWidth: number, height: number, width: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  const plane = canvasHeight * canvasWidth;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const src = y * canvasWidth + x;
      const dst = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const v = Math.round((chw[c * plane + src] + 1) * 127.5);
        out[dst + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

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
