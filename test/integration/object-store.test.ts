/**
 * The object store's own S3 calls, against the suite's S3 server, which checks Signature V4.
 *
 * PutObject without the SDK's middleware (s3-put.ts): keys that need encoding store what the SDK
 * reads back; S3's refusals come back as errors named by S3's code with the HTTP status, as the
 * SDK's do; an S3 that does not answer fails the put (the storage gate and the retries take it
 * from there). The embedded S3 stores such PUTs itself, in s3rver's store: what it stores is what
 * s3rver serves (body, content type, MD5 ETag, user metadata), and so is what the AWS SDK puts;
 * it has stored all of an object by the time it answers the PUT.
 *
 * The ranged GET, which reads one job's edit state out of its pack (edit-source-cache.ts): the
 * bytes asked for come back alone; an answer that is not the range (a store ignoring it) is
 * refused rather than passed off as the range.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ObjectStore } from '@farm/platform';
import { testStoreOptions } from '../support/harness';

const prefix = `object-store-test/${Date.now()}`;
const store = new ObjectStore(testStoreOptions());
afterAll(async () => {
  await store.remove(await store.keys(prefix));
  store.close();
});

describe('putting an object', () => {
  it('stores under keys that need encoding what the SDK reads back', async () => {
    const keys = ['a result.png', 'ümlaut+plus=eq&amp.png', "bang!star*quote'(paren).png", 'nested/path/x~y_z.png'];
    const bodies = keys.map((k, i) => Buffer.from(`body ${i} of ${k}`));
    await Promise.all(keys.map((k, i) => store.put(`${prefix}/${k}`, bodies[i], 'image/png')));
    for (const [i, k] of keys.entries()) expect(await store.get(`${prefix}/${k}`)).toEqual(bodies[i]);
  });

  it('overwrites: a retried job stores one object under its key', async () => {
    await store.put(`${prefix}/twice.png`, Buffer.from('first'), 'image/png');
    await store.put(`${prefix}/twice.png`, Buffer.from('second'), 'image/png');
    expect((await store.get(`${prefix}/twice.png`)).toString()).toBe('second');
    expect(await store.keys(`${prefix}/twice`)).toEqual([`${prefix}/twice.png`]);
  });

  it('stores what S3 then serves: body, content type and MD5 ETag, from this client and from the AWS SDK', async () => {
    const body = Buffer.from('a stored image');
    await store.put(`${prefix}/served.png`, body, 'image/png');
    const { endpoint, bucket, accessKeyId, secretAccessKey } = testStoreOptions();
    const sdk = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! } });
    try {
      const got = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/served.png` }));
      expect(got.ContentType).toBe('image/png');
      expect(got.ETag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);
      expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(body);

      const put = await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/sdk.json`, Body: '{"a":1}', ContentType: 'application/json', Metadata: { job: 'j1' } }));
      expect(put.ETag).toBe(`"${createHash('md5').update('{"a":1}').digest('hex')}"`);
      const back = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/sdk.json` }));
      expect([back.ContentType, back.Metadata, await back.Body!.transformToString()]).toEqual(['application/json', { job: 'j1' }, '{"a":1}']);
    } finally {
      sdk.destroy();
    }
  });

  it('has stored the whole object once the PUT is answered: a GET right after reads all of it', async () => {
    // s3rver's own store answered before a large body's write had finished.
    const body = Buffer.alloc(48 * 1024 * 1024, 7);
    for (let i = 0; i < 3; i++) {
      await store.put(`${prefix}/large-${i}.bin`, body, 'application/octet-stream');
      expect((await store.get(`${prefix}/large-${i}.bin`)).equals(body)).toBe(true);
    }
  });

  it("fails with S3's error code and status when S3 refuses", async () => {
    const wrongSecret = new ObjectStore({ ...testStoreOptions(), secretAccessKey: 'not-the-secret' });
    const noBucket = new ObjectStore({ ...testStoreOptions(), bucket: `no-such-bucket-${Date.now()}` });
    try {
      await expect(wrongSecret.put(`${prefix}/refused.png`, Buffer.from('x'), 'image/png')).rejects.toMatchObject({
        name: 'SignatureDoesNotMatch',
        $metadata: { httpStatusCode: 403 },
      });
      await expect(noBucket.put(`${prefix}/nowhere.png`, Buffer.from('x'), 'image/png')).rejects.toMatchObject({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } });
      expect(await store.keys(`${prefix}/refused`)).toEqual([]);
    } finally {
      wrongSecret.close();
      noBucket.close();
    }
  });

  it('fails when nothing answers at the endpoint', async () => {
    // A port that was free a moment ago: connections to it are refused.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const away = new ObjectStore({ ...testStoreOptions(), endpoint: `http://127.0.0.1:${port}` });
    try {
      await expect(away.put(`${prefix}/away.png`, Buffer.from('x'), 'image/png')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      away.close();
    }
  });
});

describe('reading a byte range', () => {
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
