/**
 * Cheap progress previews straight from a latent, without the VAE decoder: a linear map from
 * the latent channels to RGB (the trick ComfyUI and A1111 use for live previews). The map is
 * fitted per model at load, by least squares over flat colour swatches run through the VAE
 * encoder, so it fits whatever latent space the model has.
 */
import { encodePng } from './png-encoding';

/** Flat colours the fit sees, RGB in [-1, 1]. */
const SWATCHES: ReadonlyArray<readonly [number, number, number]> = [
  [-1, -1, -1], [1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1],
  [1, 1, -1], [1, -1, 1], [-1, 1, 1], [0, 0, 0], [0.6, 0.1, -0.5], [-0.4, 0.3, 0.8], [0.2, -0.6, 0.4],
];

/** Solves the least-squares system A·w ≈ b by the normal equations (tiny, well-conditioned). */
function leastSquares(rows: number[][], targets: number[]): number[] {
  const n = rows[0].length;
  const m = Array.from({ length: n }, (_, i) => [
    ...Array.from({ length: n }, (_, j) => rows.reduce((s, r) => s + r[i] * r[j], 0) + (i === j ? 1e-6 : 0)),
    rows.reduce((s, r, k) => s + r[i] * targets[k], 0),
  ]);
  for (let col = 0; col < n; col++) {
    const pivot = m.slice(col).reduce((best, row, k) => (Math.abs(row[col]) > Math.abs(m[best][col]) ? col + k : best), col);
    [m[col], m[pivot]] = [m[pivot], m[col]];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r][col] / m[col][col];
      for (let c = col; c <= n; c++) m[r][c] -= f * m[col][c];
    }
  }
  return m.map((row, i) => row[n] / row[i]);
}

export class LatentPreview {
  private constructor(
    /** Per RGB channel: weights for each latent channel, then a bias. */
    private readonly map: number[][],
  ) {}

  /** Fits the map with `encode` (RGB [3,side,side] in [-1,1] → latent [C,h,w], scaled). */
  static async fit(encode: (rgb: Float32Array, side: number) => Promise<Float32Array>, channels: number, side: number): Promise<LatentPreview> {
    const features: number[][] = [];
    for (const colour of SWATCHES) {
      const rgb = new Float32Array(3 * side * side);
      for (let c = 0; c < 3; c++) rgb.fill(colour[c], c * side * side, (c + 1) * side * side);
      const latent = await encode(rgb, side);
      const cells = latent.length / channels;
      const mean = Array.from({ length: channels }, (_, c) => latent.subarray(c * cells, (c + 1) * cells).reduce((a, b) => a + b, 0) / cells);
      features.push([...mean, 1]);
    }
    return new LatentPreview([0, 1, 2].map((c) => leastSquares(features, SWATCHES.map((s) => s[c]))));
  }

  /** Latent [C,h,w] → RGB bytes at latent resolution. */
  rgb(latent: Float32Array, channels: number, height: number, width: number): Buffer {
    const cells = height * width;
    const out = Buffer.alloc(cells * 3);
    for (let i = 0; i < cells; i++) {
      for (let c = 0; c < 3; c++) {
        const w = this.map[c];
        let v = w[channels];
        for (let k = 0; k < channels; k++) v += w[k] * latent[k * cells + i];
        const byte = Math.round((v + 1) * 127.5);
        out[i * 3 + c] = byte < 0 ? 0 : byte > 255 ? 255 : byte;
      }
    }
    return out;
  }

  /** A small PNG data URL of the latent (for SSE progress events). */
  async dataUrl(latent: Float32Array, channels: number, height: number, width: number): Promise<string> {
    const png = await encodePng(this.rgb(latent, channels, height, width), width, height, 3);
    return `data:image/png;base64,${png.toString('base64')}`;
  }
}
