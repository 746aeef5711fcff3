/**
 * The embedded S3 server (the `npm start` default, and the suite's S3) checks AWS Signature V4:
 * anonymous list/GET/PUT/DELETE are refused; the farm's credentials work; the farm's presigned
 * URLs (s3-presign.ts) work until they expire and not at all once any part of them is changed; a
 * signed body that does not match its signed hash is refused and stores nothing.
 */
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { ObjectStore } from '@farm/platform';
import { S3Presign } from '../../packages/platform/src/s3-presign';
import { testStoreOptions } from '../support/harness';

const endpoint = process.env.S3_ENDPOINT!;
const bucket = process.env.S3_BUCKET!;
const credentials = { accessKeyId: process.env.S3_ACCESS_KEY_ID!, secretAccessKey: process.env.S3_SECRET_ACCESS_KEY! };
const key = `auth-test/${Date.now()}/a result.png`;
const objectUrl = `${endpoint}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

function client(creds = credentials): S3Client {
  return new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: creds, maxAttempts: 1 });
}

/** The S3 error code of a failed SDK call. */
async function errorOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(() => 'no error', (err: Error) => err.name);
}

async function codeOf(res: Response): Promise<string> {
  return /<Code>(\w+)<\/Code>/.exec(await res.text())?.[1] ?? `no error (${res.status})`;
}

/** A request signed by hand with the SDK's signer, so a test can send something else than it signed. */
async function signedPut(path: string, signedBody: string, sentBody: string, signingDate = new Date()): Promise<Response> {
  const url = new URL(`${endpoint}${path}`);
  const signer = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
  const signed = await signer.sign(
    { method: 'PUT', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {}, headers: { host: url.host, 'content-type': 'text/plain' }, body: signedBody },
    { signingDate },
  );
  return fetch(url, { method: 'PUT', headers: signed.headers, body: sentBody });
}

describe('the embedded S3 server checks signatures', () => {
  const store = new ObjectStore(testStoreOptions());
  const s3 = client();

  beforeAll(() => store.put(key, Buffer.from('the image'), 'image/png'));
  afterAll(async () => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    s3.destroy();
    store.close();
  });

  it('refuses anonymous list, GET, PUT and DELETE, and leaves the object as it was', async () => {
    expect(await codeOf(await fetch(`${endpoint}/${bucket}`))).toBe('AccessDenied');
    expect(await codeOf(await fetch(`${endpoint}/`))).toBe('AccessDenied');
    const get = await fetch(objectUrl);
    expect(get.status).toBe(403);
    expect(await codeOf(get)).toBe('AccessDenied');
    expect(await codeOf(await fetch(objectUrl, { method: 'PUT', body: 'overwritten' }))).toBe('AccessDenied');
    expect(await codeOf(await fetch(objectUrl, { method: 'DELETE' }))).toBe('AccessDenied');
    expect((await store.get(key)).toString()).toBe('the image');
  });

  it('serves the farm signed with its credentials, and nobody with another secret or key id', async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'auth-test/' }));
    expect(listed.Contents?.map((o) => o.Key)).toContain(key);
    const other = client({ accessKeyId: credentials.accessKeyId, secretAccessKey: `${credentials.secretAccessKey}x` });
    const stranger = client({ accessKeyId: 'AKIASTRANGER', secretAccessKey: credentials.secretAccessKey });
    try {
      expect(await errorOf(other.send(new GetObjectCommand({ Bucket: bucket, Key: key })))).toBe('SignatureDoesNotMatch');
      expect(await errorOf(other.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })))).toBe('SignatureDoesNotMatch');
      expect(await errorOf(stranger.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' })))).toBe('InvalidAccessKeyId');
    } finally {
      other.destroy();
      stranger.destroy();
    }
    expect((await store.get(key)).toString()).toBe('the image');
  });

  it('serves a presigned URL as issued, and refuses it once any part is changed', async () => {
    const url = await store.presignGet(key);
    const ok = await fetch(url);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('the image');

    const tampered = (edit: (u: URL) => void) => {
      const u = new URL(url);
      edit(u);
      return fetch(u);
    };
    const otherKey = `auth-test/${Date.now()}/another.png`;
    await store.put(otherKey, Buffer.from('another tenant'), 'image/png');
    try {
      expect(await codeOf(await tampered((u) => (u.pathname = `/${bucket}/${otherKey}`)))).toBe('SignatureDoesNotMatch');
    } finally {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: otherKey }));
    }
    expect(await codeOf(await tampered((u) => u.searchParams.set('X-Amz-Expires', '604800')))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(await tampered((u) => u.searchParams.set('X-Amz-Date', new Date(Date.now() + 300_000).toISOString().replace(/[-:]|\.\d+/g, ''))))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(await tampered((u) => u.searchParams.set('response-content-type', 'text/html')))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(await tampered((u) => u.searchParams.set('X-Amz-Signature', u.searchParams.get('X-Amz-Signature')!.replace(/^./, (c) => (c === '0' ? '1' : '0')))))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(await tampered((u) => u.searchParams.delete('X-Amz-Signature')))).toBe('AuthorizationQueryParametersError');
    // Another method with the same signature: a GET URL does not delete.
    expect(await codeOf(await fetch(url, { method: 'DELETE' }))).toBe('SignatureDoesNotMatch');
    expect((await store.get(key)).toString()).toBe('the image');
  });

  it('refuses a presigned URL past its expiry', async () => {
    const issuedAt = new Date(Date.now() - 120_000);
    const presign = new S3Presign({ bucket, region: 'us-east-1', endpoint, forcePathStyle: true, credentials });
    expect((await fetch(await presign.get(key, 60, new Date(Date.now() - 30_000)))).status).toBe(200); // issued the same way, still valid
    const res = await fetch(await presign.get(key, 60, issuedAt));
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/<Code>AccessDenied<\/Code><Message>request has expired/);
  });

  it('refuses a body that does not match its signed hash (and stores nothing), and an old signature', async () => {
    const path = `/${bucket}/auth-test/${Date.now()}-body.txt`;
    expect(await codeOf(await signedPut(path, 'what was signed', 'something else'))).toBe('XAmzContentSHA256Mismatch');
    expect(await codeOf(await fetch(`${endpoint}${path}`))).toBe('AccessDenied'); // anonymous, as a baseline
    expect(await errorOf(store.get(path.slice(bucket.length + 2)))).toBe('NoSuchKey');

    expect(await codeOf(await signedPut(path, 'old', 'old', new Date(Date.now() - 20 * 60_000)))).toBe('RequestTimeTooSkewed');
    const fresh = await signedPut(path, 'what was signed', 'what was signed');
    expect(fresh.status).toBe(200);
    expect((await store.get(path.slice(bucket.length + 2))).toString()).toBe('what was signed');
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: path.slice(bucket.length + 2) }));
  });
});
