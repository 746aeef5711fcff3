/**
 * The checks of a job request that need more than its schema: embedded images (masks, edit
 * sources, control images) must be PNG, JPEG or WebP — told by their signature, so no other
 * decoder (SVG, TIFF, GIF…) ever reads tenant bytes — of a sane size (a control image: the job's),
 * read first from the header (sharp metadata) with a pixel limit, so a decompression bomb is
 * refused without being decoded, and then decoded in full, so corrupt data is refused here rather
 * than failing in the worker.
 */
import sharp from 'sharp';
import { FieldProblem, ImageFormat, JobRequest, MAX_MASK_PIXELS, RequestLimits } from '@farm/contracts';

interface EmbeddedImage {
  path: string;
  base64: string;
  /** Edit sources become the canvas: their sides must be valid image sizes. */
  canvas: boolean;
  /** Control images lie over the canvas: their size must be the job's. */
  size?: { width: number; height: number };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The accepted format whose signature the bytes start with, or null. */
function signatureFormat(bytes: Buffer): ImageFormat | null {
  if (bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  return null;
}

function embeddedImages(request: JobRequest): EmbeddedImage[] {
  const images: EmbeddedImage[] = (request.regions ?? []).flatMap((region, i) =>
    'png' in region.mask ? [{ path: `regions.${i}.mask.png`, base64: region.mask.png, canvas: false }] : [],
  );
  if (request.type === 'generate' && request.control) {
    images.push({ path: 'control.image', base64: request.control.image, canvas: false, size: { width: request.width, height: request.height } });
  }
  if (request.type === 'edit') {
    if (typeof request.source !== 'string') images.push({ path: 'source.image', base64: request.source.image, canvas: true });
    if (request.mask && 'png' in request.mask) images.push({ path: 'mask.png', base64: request.mask.png, canvas: false });
  }
  return images;
}

/** Whether the request embeds any image (masks, an uploaded edit source, a control image) to check. */
export function hasEmbeddedImages(request: JobRequest): boolean {
  return embeddedImages(request).length > 0;
}

/** Why the image cannot be used (null when it can). */
async function imageProblem({ base64, canvas, size }: EmbeddedImage, limits: RequestLimits): Promise<string | null> {
  const bytes = Buffer.from(base64, 'base64');
  if (!signatureFormat(bytes)) return 'not a PNG, JPEG or WebP image (no other format is accepted)';
  const options = { limitInputPixels: MAX_MASK_PIXELS };
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes, options).metadata());
  } catch (err) {
    return /pixel limit/i.test((err as Error).message) ? `image has more than ${MAX_MASK_PIXELS} pixels` : 'not a readable PNG, JPEG or WebP image';
  }
  if (!width || !height) return 'image has no dimensions';
  if (canvas && (width % 8 !== 0 || height % 8 !== 0 || Math.min(width, height) < limits.minSize || Math.max(width, height) > limits.maxSize)) {
    return `image is ${width}x${height}; sides must be multiples of 8 in [${limits.minSize}, ${limits.maxSize}]`;
  }
  if (size && (width !== size.width || height !== size.height)) return `image is ${width}x${height}; it must be the job's ${size.width}x${size.height}`;
  try {
    await sharp(bytes, options).raw().toBuffer(); // every pixel, so corrupt data shows now
  } catch (err) {
    return `image data is corrupt (${(err as Error).message.split('\n')[0]})`;
  }
  return null;
}

export async function checkRequestImages(request: JobRequest, limits: RequestLimits): Promise<FieldProblem[]> {
  const images = embeddedImages(request);
  const problems = await Promise.all(images.map((image) => imageProblem(image, limits)));
  return images.flatMap((image, i) => (problems[i] ? [{ path: image.path, message: problems[i]! }] : []));
}

/** An edit's uploaded source image's size (its canvas), read from its header; checked by checkRequestImages first. */
export async function uploadedCanvas(base64: string): Promise<{ width: number; height: number }> {
  const { width, height } = await sharp(Buffer.from(base64, 'base64'), { limitInputPixels: MAX_MASK_PIXELS }).metadata();
  return { width: width!, height: height! };
}
