/** Batch buckets and the memory cap of the UNet batch (pure arithmetic). */
import { batchBucket, batchBuckets, memoryCappedBatch } from '@farm/pipeline';

describe('batch buckets', () => {
  it('rounds a call up to the next power of two, within the maximum', () => {
    expect([1, 2, 3, 5, 8, 9].map((n) => batchBucket(n, 8))).toEqual([1, 2, 4, 8, 8, 8]);
    expect(batchBucket(5, 6)).toBe(6);
  });

  it('lists the shapes warm-up runs', () => {
    expect(batchBuckets(8)).toEqual([1, 2, 4, 8]);
    expect(batchBuckets(6)).toEqual([1, 2, 4, 6]);
    expect(batchBuckets(1)).toEqual([1]);
  });
});

describe('memoryCappedBatch', () => {
  const sd15 = { weightsBytes: 1.7e9, cells: 64 * 64, channels: 1280, elementBytes: 2 };
  it('keeps the requested batch when memory allows it', () => {
    expect(memoryCappedBatch(8, { ...sd15, freeBytes: 80e9 })).toBe(8);
  });
  it('caps it by half the free memory after the weights, per sample’s estimated activations', () => {
    // (8e9 − 1.7e9)/2 / (64·4096·1280·2 = 0.67e9) = 4.69 → 4
    expect(memoryCappedBatch(8, { ...sd15, freeBytes: 8e9 })).toBe(4);
    expect(memoryCappedBatch(8, { ...sd15, freeBytes: 1e9 })).toBe(1);
  });
});
