/**
 * The colour judge for the bundled model's pictures: nearest named palette colour (the palette
 * the training script draws with, models/train/train_shapes_ldm.py) of image areas.
 */
import sharp from 'sharp';

export const PALETTE: Readonly<Record<string, readonly [number, number, number]>> = {
  red: [220, 35, 35],
  green: [35, 165, 60],
  blue: [40, 80, 225],
  yellow: [245, 215, 40],
  white: [245, 245, 245],
  black: [20, 20, 20],
  orange: [245, 135, 25],
  purple: [135, 55, 185],
};

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB bytes. */
  data: Buffer;
}

export async function decodeRgb(encoded: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(encoded).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

export function nearestColour(rgb: readonly number[]): string {
  let best = '';
  let bestD = Infinity;
  for (const [name, [r, g, b]] of Object.entries(PALETTE)) {
    const d = (rgb[0] - r) ** 2 + (rgb[1] - g) ** 2 + (rgb[2] - b) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

/** Pixels whose (x, y) pass the filter, each judged to its nearest colour; the most common one. */
export function dominantColour(image: RgbImage, where: (x: number, y: number) => boolean, exclude?: string): string {
  const counts = new Map<string, number>();
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      if (!where(x, y)) continue;
      const i = (y * image.width + x) * 3;
      const name = nearestColour([image.data[i], image.data[i + 1], image.data[i + 2]]);
      if (name !== exclude) counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none';
}

/** Background colour: the dominant colour of a border band (shapes seldom touch all four sides). */
export function backgroundColour(image: RgbImage): string {
  const band = Math.max(2, Math.round(Math.min(image.width, image.height) / 16));
  return dominantColour(image, (x, y) => x < band || y < band || x >= image.width - band || y >= image.height - band);
}
