/**
 * The one check of a job request that needs more than its schema: PNG masks must be images of
 * a sane size. Read from the header only (sharp metadata), with a pixel limit, so a
 * decompression bomb is refused without being decoded.
 */
import sharp from 'sharp';
import { FieldProblem, JobRequest, MAX_MASK_PIXELS } from '@farm/contracts';

export async function checkMaskImages(request: JobRequest): Promise<FieldProblem[]> {
  const problems: FieldProblem[] = [];
  for (const [i, region] of (request.regions ?? []).entries()) {
    if (!('png' in region.mask)) continue;
    const path = `regions.${i}.mask.png`;
    try {
      const meta = await sharp(Buffer.from(region.mask.png, 'base64'), { limitInputPixels: MAX_MASK_PIXELS }).metadata();
      if (!meta.width || !meta.height) problems.push({ path, message: 'mask image has no dimensions' });
      else if (meta.width * meta.height > MAX_MASK_PIXELS) {
        problems.push({ path, message: `mask image is ${meta.width}x${meta.height}; at most ${MAX_MASK_PIXELS} pixels` });
      }
    } catch {
      problems.push({ path, message: 'mask is not a PNG, JPEG or WebP image' });
    }
  }
  return problems;
}
