/**
 * Pixels and the VAE's tensors: planar [3,H,W] floats in [-1,1] to interleaved RGB bytes (cropped
 * to the image), and RGB bytes to a planar tensor padded to the latent canvas by repeating edges.
 */

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

/** Interleaved RGB bytes (width×height) → planar [3, paddedHeight, paddedWidth] floats in [-1,1], edges repeated. */
export function toPlanarTensor(rgb: Buffer, width: number, height: number, paddedHeight: number, paddedWidth: number): Float32Array {
  const chw = new Float32Array(3 * paddedHeight * paddedWidth);
  for (let y = 0; y < paddedHeight; y++) {
    const sy = Math.min(y, height - 1);
    for (let x = 0; x < paddedWidth; x++) {
      const s = (sy * width + Math.min(x, width - 1)) * 3;
      for (let c = 0; c < 3; c++) chw[(c * paddedHeight + y) * paddedWidth + x] = rgb[s + c] / 127.5 - 1;
    }
  }
  return chw;
}
