/**
 * The checks of a job request that need more than its schema: embedded images (masks, edit
 * sources) must be images of a sane size, read from their header only (sharp metadata) with a
 * pixel limit, so a decompression bomb is refused without being decoded.
 */
import sharp from 'sharp';
import { FieldProblem, JobRequest, MAX_MASK_PIXELS, RequestLimits } from '@farm/contracts';

interface EmbeddedImage {
  path: string;
  base64: string;
  /** Edit sources become the canvas: their sides must be valid image sizes. */
  canvas: boolean;
}

function embeddedImages(request: JobRequest): EmbeddedImage[] {
  const images: EmbeddedImage[] = (request.regions ?? []).flatMap((region, i) =>
    'png' in region.mask ? [{ path: `regions.${i}.mask.png`, base64: region.mask.png, canvas: false }] : [],
  );
  if (request.type === 'edit') {
    if (typeof request.source !== 'string') images.push({ path: 'source.image', base64: request.source.image, canvas: true });
    if (request.mask && 'png' in request.mask) images.push({ path: 'mask.png', base64: request.mask.png, canvas: false });
  }
  return images;
}

export async function checkRequestImages(request: JobRequest, limits: RequestLimits): Promise<FieldProblem[]> {
  const problems: FieldProblem[] = [];
  for (const { path, base64, canvas } of embeddedImages(request)) {
    let width: number | undefined;
    let height: number | undefined;
    try {
      ({ width, height } = await sharp(Buffer.from(base64, 'base64'), { limitInputPixels: MAX_MASK_PIXELS }).metadata());
    } catch (err) {
      const tooBig = /pixel limit/i.test((err as Error).message);
      problems.push({ path, message: tooBig ? `image has more than ${MAX_MASK_PIXELS} pixels` : 'not a PNG, JPEG or WebP image' });
      continue;
    }
    if (!width || !height) {
      problems.push({ path, message: 'image has no dimensions' });
    } else if (canvas && (width % 8 !== 0 || height % 8 !== 0 || Math.min(width, height) < limits.minSize || Math.max(width, height) > limits.maxSize)) {
      problems.push({ path, message: `image is ${width}x${height}; sides must be multiples of 8 in [${limits.minSize}, ${limits.maxSize}]` });
    }
  }
  return problems;
}
