/**
 * Edit-state packs, laid out (edit-state-pack.ts, pure): which waiting latents make the next pack
 * under its limits and when it is full, the pack's bytes and each job's range in them, and where an index entry — of
 * this version or of the one before packs — says a job's latent lies.
 */
import { DEFAULT_PACK_LIMITS, checkPackLimits, latentLocation, layOutPack, packCount, packFull } from '../../apps/worker/src/edit-state-pack';

describe('the next pack', () => {
  it('takes every waiting latent while both limits hold, oldest first', () => {
    expect(packCount([512, 512, 512], { maxJobs: 64, maxBytes: 4096 })).toBe(3);
    expect(packCount([512, 512, 512, 512, 512], { maxJobs: 3, maxBytes: 4096 })).toBe(3);
    expect(packCount([512, 512, 512, 512], { maxJobs: 64, maxBytes: 1500 })).toBe(2); // a third would make 1536 bytes
    expect(packCount([512, 512, 512], { maxJobs: 64, maxBytes: 1536 })).toBe(3); // exactly at the limit
  });

  it('takes the oldest latent even when it alone is over the bytes, and nothing when nothing waits', () => {
    expect(packCount([8192, 512], { maxJobs: 64, maxBytes: 4096 })).toBe(1);
    expect(packCount([], DEFAULT_PACK_LIMITS)).toBe(0);
  });

  it('is full, and need not linger, once no other latent could join it', () => {
    expect(packFull([512, 512], { maxJobs: 3, maxBytes: 4096 })).toBe(false);
    expect(packFull([512, 512, 512], { maxJobs: 3, maxBytes: 4096 })).toBe(true);
    expect(packFull([512, 512, 512], { maxJobs: 64, maxBytes: 1500 })).toBe(true); // the third waits for the next pack
    expect(packFull([8192], { maxJobs: 64, maxBytes: 4096 })).toBe(true); // alone over the bytes: nothing more can join it
    expect(packFull([2048, 2048], { maxJobs: 64, maxBytes: 4096 })).toBe(true); // exactly at the bytes
  });

  it('refuses limits that cannot make a pack', () => {
    const linger = { lingerMs: 25 };
    expect(() => checkPackLimits({ maxJobs: 0, maxBytes: 4096, ...linger })).toThrow("a pack's maxJobs must be a whole number of at least 1 (got 0)");
    expect(() => checkPackLimits({ maxJobs: 1.5, maxBytes: 4096, ...linger })).toThrow(/maxJobs/);
    expect(() => checkPackLimits({ maxJobs: 8, maxBytes: 0, ...linger })).toThrow("a pack's maxBytes must be at least 1 (got 0)");
    expect(() => checkPackLimits({ maxJobs: 8, maxBytes: 4096, lingerMs: -1 })).toThrow("a pack's lingerMs must be a finite number of at least 0 (got -1)");
    expect(() => checkPackLimits({ maxJobs: 8, maxBytes: 4096, lingerMs: Infinity })).toThrow(/lingerMs/);
    expect(() => checkPackLimits(DEFAULT_PACK_LIMITS)).not.toThrow();
  });
});

describe("a pack's layout", () => {
  it('puts the latents end to end and gives each its range, from which its bytes come back', () => {
    const latents = [Uint8Array.of(1, 2, 3, 4), Uint8Array.of(5, 6), new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff]).buffer)];
    const { body, ranges } = layOutPack(latents);
    expect(ranges).toEqual([
      { offset: 0, length: 4 },
      { offset: 4, length: 2 },
      { offset: 6, length: 6 },
    ]);
    expect(body.byteLength).toBe(12);
    for (const [i, { offset, length }] of ranges.entries()) expect(body.subarray(offset, offset + length)).toEqual(Buffer.from(latents[i]));
  });

  it('lays out a view into a larger buffer by its own bytes only', () => {
    const backing = Uint8Array.of(9, 9, 7, 8, 9, 9);
    const { body, ranges } = layOutPack([backing.subarray(2, 4)]);
    expect([...body]).toEqual([7, 8]);
    expect(ranges).toEqual([{ offset: 0, length: 2 }]);
  });
});

describe("an index entry's latent", () => {
  const entry = { width: 64, height: 64, prompt: 'a red circle', imageKey: 'results/j1.png' };

  it('is a byte range of its pack', () => {
    const latent = { key: 'cache/packs/w-3.f16', range: { offset: 1024, length: 512 } };
    expect(latentLocation({ ...entry, latent })).toEqual(latent);
  });

  it('is the whole object an entry from before packs names (a rolling upgrade)', () => {
    expect(latentLocation({ ...entry, latentKey: 'cache/j1.latent.f16' })).toEqual({ key: 'cache/j1.latent.f16' });
  });

  it('is an error for an entry naming none', () => {
    expect(() => latentLocation(entry)).toThrow('the index entry names no latent');
  });
});
