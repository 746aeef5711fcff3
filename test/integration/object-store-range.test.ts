/**
 * The object store's ranged GET, against the suite's S3 server: one job's edit state is read out
 * of its pack this way (edit-source-cache.ts). The bytes asked for come back alone; an answer that
 * is not the range (a store ignoring it) is refused rather than passed off as the range.
 */
import { ObjectStore } from '@farm/platform';
import { testStoreOptions } from '../support/harness';

const prefix = `range-test/${Date.now()}`;

describe('reading a byte range', () => {
  const store = new ObjectStore(testStoreOptions());
  afterAll(async () => {
    await store.remove(await store.keys(prefix));
    store.close();
  });

  it('gives back the bytes of the range alone', async () => {
    const body = Buffer.from(Array.from({ length: 2048 }, (_, i) => i % 251));
    await store.put(`${prefix}/pack.f16`, body, 'application/octet-stream');
    expect(await store.get(`${prefix}/pack.f16`, { offset: 512, length: 512 })).toEqual(body.subarray(512, 1024));
    expect(await store.get(`${prefix}/pack.f16`, { offset: 0, length: 2 })).toEqual(body.subarray(0, 2));
    expect(await store.get(`${prefix}/pack.f16`, { offset: 2047, length: 1 })).toEqual(body.subarray(2047));
  });

  it('refuses an answer that is not the range asked for', async () => {
    // s3rver answers `bytes=0-0` with the whole object: a store ignoring the range must not pass for one honouring it.
    await store.put(`${prefix}/whole.f16`, Buffer.alloc(64, 7), 'application/octet-stream');
    await expect(store.get(`${prefix}/whole.f16`, { offset: 0, length: 1 })).rejects.toThrow(`${prefix}/whole.f16: asked for bytes=0-0, got 64 bytes`);
  });
});
