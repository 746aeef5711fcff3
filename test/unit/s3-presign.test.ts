/**
 * Presigned GET URLs signed without the SDK's middleware (s3-presign.ts) are the URLs the SDK's
 * getSignedUrl gives for the same bucket, key, credentials, expiry and clock, character for
 * character: path style and virtual-hosted (and path style for bucket names that are no DNS label), AWS's endpoint and others, keys that need encoding,
 * temporary credentials from a provider; the object store's on its public endpoint. (That the URLs are served, and refused once changed or
 * expired, is checked against the S3 server in test/integration/embedded-s3-auth.test.ts.)
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ObjectStore } from '@farm/platform';
import type { S3Target } from '../../packages/platform/src/s3-address';
import { S3Presign } from '../../packages/platform/src/s3-presign';

const signingDate = new Date('2026-03-14T15:09:26Z');
const fixed = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const temporary = async () => ({ ...fixed, sessionToken: 'FQoGZXIvYXdzEPT//////////wEaD+token/with=odd+chars' });
const keys = ['results/0b3f.png', 'results/a result+ümlaut=&(1)!*~.png', 'edits/x/mask.png'];

const targets: Array<[string, S3Target]> = [
  ['path style at a local endpoint', { bucket: 'farm-results', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, credentials: fixed }],
  ['path style under an endpoint path', { bucket: 'farm-results', region: 'us-east-1', endpoint: 'https://gateway.example.com/s3', forcePathStyle: true, credentials: fixed }],
  ['virtual-hosted on AWS', { bucket: 'farm-results', region: 'eu-west-1', forcePathStyle: false, credentials: fixed }],
  ['virtual-hosted on AWS with temporary credentials', { bucket: 'farm-results', region: 'us-east-1', forcePathStyle: false, credentials: temporary }],
  ['virtual-hosted at another endpoint', { bucket: 'farm-results', region: 'auto', endpoint: 'https://storage.example.com', forcePathStyle: false, credentials: fixed }],
  ['path style on AWS for a dotted bucket name', { bucket: 'farm.results', region: 'eu-west-1', forcePathStyle: false, credentials: fixed }],
  ['path style at another endpoint for a name that is no DNS label', { bucket: 'Farm_Results', region: 'us-east-1', endpoint: 'http://minio:9000', forcePathStyle: false, credentials: fixed }],
];

describe('a presigned GET URL', () => {
  it.each(targets)('is the SDK’s, %s', async (_, target) => {
    // Configured as the object store's client was when it presigned (no checksums asked).
    const client = new S3Client({
      region: target.region,
      endpoint: target.endpoint,
      forcePathStyle: target.forcePathStyle,
      credentials: target.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const presign = new S3Presign(target);
    try {
      for (const key of keys) {
        for (const expiresIn of [1, 600, 604800]) {
          const sdk = await getSignedUrl(client, new GetObjectCommand({ Bucket: target.bucket, Key: key }), { expiresIn, signingDate });
          expect(await presign.get(key, expiresIn, signingDate)).toBe(sdk);
        }
      }
    } finally {
      client.destroy();
    }
  });

  it('signs query parameters, not a payload: X-Amz-* with UNSIGNED-PAYLOAD, host the only signed header', async () => {
    const url = new URL(await new S3Presign(targets[3][1]).get(keys[0], 600, signingDate));
    expect(url.origin + url.pathname).toBe('https://farm-results.s3.us-east-1.amazonaws.com/results/0b3f.png');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
      'X-Amz-Credential': 'AKIDEXAMPLE/20260314/us-east-1/s3/aws4_request',
      'X-Amz-Date': '20260314T150926Z',
      'X-Amz-Expires': '600',
      'X-Amz-Security-Token': 'FQoGZXIvYXdzEPT//////////wEaD+token/with=odd+chars',
      'X-Amz-Signature': expect.stringMatching(/^[0-9a-f]{64}$/),
      'X-Amz-SignedHeaders': 'host',
      'x-id': 'GetObject',
    });
  });

  it('from the object store points at its public endpoint, when one is set, and expires with the result', async () => {
    const store = new ObjectStore({ ...fixed, bucket: 'farm-results', region: 'us-east-1', endpoint: 'http://minio:9000', publicEndpoint: 'https://files.example.com', forcePathStyle: true, presignTtlSeconds: 3600 });
    try {
      const url = new URL(await store.presignGet('results/x.png', Date.now() + 120_500));
      expect(url.origin + url.pathname).toBe('https://files.example.com/farm-results/results/x.png');
      expect(url.searchParams.get('X-Amz-Expires')).toBe('120');
      expect(new URL(await store.presignGet('results/x.png')).searchParams.get('X-Amz-Expires')).toBe('3600');
    } finally {
      store.close();
    }
  });
});
