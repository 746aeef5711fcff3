/**
 * How big the UNet's batches may be and which batch shapes occur, decided once at start-up:
 * batch sizes are bucketed to powers of two (a call of 5 lanes runs as 8, padded), so a GPU sees
 * few shapes and its per-shape algorithm search (cuDNN) runs once per shape, at warm-up; and the
 * largest batch is capped by a memory estimate. Pure arithmetic; the caller reads free memory.
 */

/** The bucket a call of `n` lanes runs as: the next power of two, at most `max`. */
export function batchBucket(n: number, max: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return Math.min(b, max);
}

/** Every bucket up to `max` (what warm-up runs). */
export function batchBuckets(max: number): number[] {
  const out: number[] = [];
  for (let b = 1; b < max; b *= 2) out.push(b);
  return [...out, max];
}

export interface MemoryEstimate {
  /** Free device memory, bytes. */
  freeBytes: number;
  /** The UNet's weights, bytes (its file size). */
  weightsBytes: number;
  /** Latent cells of the largest window (h·w). */
  cells: number;
  /** The UNet's widest block (block_out_channels' largest). */
  channels: number;
  /** Bytes per activation value (2 in fp16 exports, 4 in fp32). */
  elementBytes: number;
}

/**
 * A coarse activation estimate per sample: 64 tensors of the latent's cells × the widest block's
 * channels (SD's UNet keeps about that many live at its full resolution, counting attention and
 * the skip connections) — about 0.7 GB per 512² sample in fp16 for SD 1.5. Half the free memory
 * left after the weights goes to activations, leaving room for the VAE and fragmentation.
 */
export function memoryCappedBatch(requested: number, m: MemoryEstimate): number {
  const perSample = activationBytes(m.cells, m.channels, m.elementBytes);
  const room = (m.freeBytes - m.weightsBytes) / 2;
  return Math.max(1, Math.min(requested, Math.floor(room / perSample)));
}

/** The UNet's live activations over `cells` latent cells (the estimate above: 64 tensors of the widest block). */
export function activationBytes(cells: number, channels: number, elementBytes: number): number {
  return 64 * cells * channels * elementBytes;
}
