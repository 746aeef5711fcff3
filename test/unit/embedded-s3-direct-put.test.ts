/** Which requests the embedded S3's front stores itself (directPutKey): whole-object PUTs into its bucket, nothing else. */
import { directPutKey } from '@farm/farm';

describe("the embedded S3's direct PUT", () => {
  const plain = { 'content-type': 'image/png' };

  it('takes whole-object PUTs into its bucket, path style, with the key decoded', () => {
    expect(directPutKey('PUT', '/bench/results/abc.png', 'bench', plain)).toBe('results/abc.png');
    expect(directPutKey('PUT', '/bench/a%20result%2Bplus.png', 'bench', plain)).toBe('a result+plus.png');
    expect(directPutKey('PUT', '/bench/results/abc.png?x-id=PutObject', 'bench', plain)).toBe('results/abc.png'); // the AWS SDK's PutObject
  });

  it("leaves everything else to s3rver: other methods and buckets, subresources, multipart, copies, browsers' requests, no key, bad encoding", () => {
    expect(directPutKey('GET', '/bench/results/abc.png', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/other/results/abc.png', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/benchmark/abc.png', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/bench/abc.png?tagging', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/bench/abc.png?partNumber=1&uploadId=u', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/bench/abc.png', 'bench', { ...plain, 'x-amz-copy-source': '/bench/x.png' })).toBeNull();
    expect(directPutKey('PUT', '/bench/abc.png', 'bench', { ...plain, origin: 'http://localhost:8080' })).toBeNull();
    expect(directPutKey('PUT', '/bench/', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/bench', 'bench', plain)).toBeNull();
    expect(directPutKey('PUT', '/bench/%E0%A4%A.png', 'bench', plain)).toBeNull();
  });
});
