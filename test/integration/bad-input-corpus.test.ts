/**
 * A corpus of 100+ malformed or hostile requests against the real API: each gets a 4xx JSON
 * error that names the problem — never a 5xx — nothing is enqueued, nothing is written to S3,
 * and the worker goes on serving good jobs afterwards.
 */
import sharp from 'sharp';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Harness, postJob, TestApi, testStoreOptions, useFarm, waitForJob } from '../support/harness';
import { pngDeclaring } from '../support/png-bomb';

interface Case {
  name: string;
  /** JSON value (sent with JSON.stringify) or raw string body. */
  body?: unknown;
  raw?: string;
  contentType?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** Expected status (default 400). */
  status?: number;
}

const good = { type: 'generate', prompt: 'a red circle', width: 64, height: 64, steps: 4 };

interface Images {
  png100: string;
  png64: string;
  /** Formats other than PNG, JPEG and WebP, and a PNG whose pixel data is corrupt (its header is valid). */
  others: Record<'gif' | 'tiff' | 'svg' | 'corrupt png', string>;
}

function corpus(images: Images): Case[] {
  const cases: Case[] = [];
  const field = (name: string, values: unknown[]) =>
    values.forEach((v, i) => cases.push({ name: `${name} #${i}: ${JSON.stringify(v)?.slice(0, 40)}`, body: { ...good, [name]: v } }));

  // Malformed JSON and wrong shapes of the body itself.
  for (const raw of ['{', '{"type": "generate",}', "{'type': 'generate'}", '{type: "generate"}', '[1, 2', 'nul', '{"a": NaN}', '{"prompt": "\\x41"}', '"just a string"', 'true', '42', 'null', '[]', '{}', '\u0000', '{"type":"generate","prompt":"a"}}', '[' .repeat(6000) + ']'.repeat(6000)]) {
    cases.push({ name: `body ${raw.slice(0, 20)}`, raw });
  }
  // Every field with wrong types and out-of-range values.
  field('type', [undefined, null, 'Generate', 'upscale', 3, ['generate']]);
  field('prompt', [undefined, null, '', '   ', 42, ['a'], { text: 'a' }, true, 'x'.repeat(1001)]);
  field('negativePrompt', [5, null, ['x'], 'y'.repeat(5000)]);
  field('width', ['512', '512px', 1.5, -64, 0, 7, 100, 65536, 1e12, null, [512], {}]);
  field('height', ['64', -8, 8, 4096, 2 ** 53, false]);
  field('steps', [0, -1, 1.5, '4', 51, 1e9, null]);
  field('guidanceScale', [-1, 'high', 21, 1e308, null]);
  field('seed', [-1, 1.5, 2 ** 33, '42', {}]);
  field('format', ['gif', 'PNG', 1, null]);
  field('colour', ['red']);
  field('__proto__', [{ polluted: true }]);
  field('constructor', [{ prototype: {} }]);
  // Regions.
  const region = (mask: unknown, extra: object = {}) => ({ ...good, regions: [{ prompt: 'a blue square', mask, ...extra }] });
  cases.push(
    { name: 'regions not an array', body: { ...good, regions: { prompt: 'x' } } },
    { name: 'too many regions', body: { ...good, regions: Array(9).fill({ prompt: 'x', mask: { rects: [[0, 0, 8, 8]] } }) } },
    { name: 'region without mask', body: { ...good, regions: [{ prompt: 'x' }] } },
    { name: 'region without prompt', body: { ...good, regions: [{ mask: { rects: [[0, 0, 8, 8]] } }] } },
    { name: 'region strength 2', body: region({ rects: [[0, 0, 8, 8]] }, { strength: 2 }) },
    { name: 'region unknown field', body: region({ rects: [[0, 0, 8, 8]] }, { colour: 'red' }) },
    { name: 'mask of no known kind', body: region({ circle: [1, 2, 3] }) },
    { name: 'mask with two kinds', body: region({ rects: [[0, 0, 8, 8]], polygons: [[[0, 0], [1, 0], [0, 1]]] }) },
    { name: 'rect of 3 numbers', body: region({ rects: [[0, 0, 8]] }) },
    { name: 'rect with strings', body: region({ rects: [['0', 0, 8, 8]] }) },
    { name: 'rect with zero width', body: region({ rects: [[0, 0, 0, 8]] }) },
    { name: 'rect far out of range', body: region({ rects: [[1e9, 0, 8, 8]] }) },
    { name: 'no rects', body: region({ rects: [] }) },
    { name: '65 rects', body: region({ rects: Array(65).fill([0, 0, 8, 8]) }) },
    { name: 'polygon of two points', body: region({ polygons: [[[0, 0], [5, 5]]] }) },
    { name: 'polygon of 1001 points', body: region({ polygons: [Array.from({ length: 1001 }, (_, i) => [i % 64, (i * 7) % 64])] }) },
    { name: 'polygon point of 3 numbers', body: region({ polygons: [[[0, 0, 0], [5, 5], [0, 5]]] }) },
    { name: 'png not base64', body: region({ png: '###' }) },
    { name: 'png of text', body: region({ png: Buffer.from('hello world').toString('base64') }) },
    { name: 'png bomb', body: region({ png: pngDeclaring(100000, 100000) }) },
    { name: 'png empty', body: region({ png: '' }) },
    { name: 'png truncated', body: region({ png: images.png64.slice(0, 40) }) },
  );
  // Edits.
  const edit = (extra: object) => ({ type: 'edit', prompt: 'a green square', ...extra });
  cases.push(
    { name: 'edit without source', body: edit({ mask: { rects: [[0, 0, 8, 8]] } }) },
    { name: 'edit of a job that does not exist', body: edit({ source: 'no-such-job' }) },
    { name: 'edit source a number', body: edit({ source: 42 }) },
    { name: 'edit source with bad characters', body: edit({ source: '../../etc/passwd' }) },
    { name: 'edit source object without image', body: edit({ source: { url: 'http://x' }, mask: { rects: [[0, 0, 8, 8]] } }) },
    { name: 'edit source image not base64', body: edit({ source: { image: '%%%' }, mask: { rects: [[0, 0, 8, 8]] } }) },
    { name: 'edit source image not an image', body: edit({ source: { image: Buffer.from('GIF89a nope').toString('base64') }, mask: { rects: [[0, 0, 8, 8]] } }) },
    { name: 'edit source image 100x100', body: edit({ source: { image: images.png100 }, mask: { rects: [[0, 0, 8, 8]] } }) },
    { name: 'edit source image bomb', body: edit({ source: { image: pngDeclaring(50000, 50000) }, mask: { rects: [[0, 0, 8, 8]] } }) },
    { name: 'prompt edit of an upload', body: edit({ source: { image: images.png64 } }) },
    { name: 'edit strength 0', body: edit({ source: { image: images.png64 }, mask: { rects: [[0, 0, 8, 8]] }, strength: 0 }) },
    { name: 'edit strength 1.5', body: edit({ source: { image: images.png64 }, mask: { rects: [[0, 0, 8, 8]] }, strength: 1.5 }) },
    { name: 'edit with width', body: edit({ source: { image: images.png64 }, mask: { rects: [[0, 0, 8, 8]] }, width: 64 }) },
    { name: 'edit mask png not an image', body: edit({ source: { image: images.png64 }, mask: { png: Buffer.from('x').toString('base64') } }) },
    { name: 'edit region mask png not an image', body: edit({ source: { image: images.png64 }, regions: [{ prompt: 'a red circle', mask: { png: Buffer.from('x').toString('base64') } }] }) },
    { name: 'edit region without prompt', body: edit({ source: { image: images.png64 }, regions: [{ mask: { rects: [[0, 0, 8, 8]] } }] }) },
    { name: 'edit regions not an array', body: edit({ source: { image: images.png64 }, regions: { prompt: 'a red circle', mask: { rects: [[0, 0, 8, 8]] } } }) },
    { name: 'edit with no regions and no mask of an upload', body: edit({ source: { image: images.png64 }, regions: [] }) },
    // More steps than the model's scheduler can take at this strength (LCM: 50 distilled steps × 0.1 = 5).
    { name: 'edit of 40 steps at strength 0.1', body: edit({ source: { image: images.png64 }, mask: { rects: [[0, 0, 8, 8]] }, steps: 40, strength: 0.1 }) },
  );
  // Control images: the job's size, an image, a type, a sane scale.
  const control = (c: Record<string, unknown>) => ({ ...good, control: { image: images.png64, type: 'edges', ...c } });
  cases.push(
    { name: 'control image 100x100 on a 64x64 job', body: control({ image: images.png100 }) },
    { name: 'control image not base64', body: control({ image: '%%%' }) },
    { name: 'control image not an image', body: control({ image: Buffer.from('x').toString('base64') }) },
    { name: 'control image bomb', body: control({ image: pngDeclaring(50000, 50000) }) },
    { name: 'control without image', body: { ...good, control: { type: 'edges' } } },
    { name: 'control without type', body: { ...good, control: { image: images.png64 } } },
    { name: 'control type with spaces', body: control({ type: 'edge map' }) },
    { name: 'control scale -1', body: control({ scale: -1 }) },
    { name: 'control scale "high"', body: control({ scale: 'high' }) },
    { name: 'control with an unknown field', body: control({ strength: 1 }) },
    { name: 'control on an edit', body: edit({ source: { image: images.png64 }, mask: { rects: [[0, 0, 8, 8]] }, control: { image: images.png64, type: 'edges' } }) },
  );
  for (const [format, base64] of Object.entries(images.others)) {
    cases.push(
      { name: `control image ${format}`, body: control({ image: base64 }) },
      { name: `edit source image ${format}`, body: edit({ source: { image: base64 }, mask: { rects: [[0, 0, 8, 8]] } }) },
      { name: `edit mask ${format}`, body: edit({ source: { image: images.png64 }, mask: { png: base64 } }) },
      { name: `region mask ${format}`, body: region({ png: base64 }) },
    );
  }
  // Webhooks.
  for (const webhook of ['not a url', 'ftp://example.com/x', 'http://user:pw@example.com/x', 'javascript:alert(1)', 42, 'http://' + 'a'.repeat(3000) + '.com']) {
    cases.push({ name: `webhook ${String(webhook).slice(0, 30)}`, body: { ...good, webhook } });
  }
  // Transport: content types, sizes, methods, routes, headers.
  cases.push(
    { name: 'text/plain body', raw: JSON.stringify(good), contentType: 'text/plain', status: 415 },
    { name: 'form body', raw: 'type=generate&prompt=x', contentType: 'application/x-www-form-urlencoded', status: 415 },
    { name: 'no content type', raw: JSON.stringify(good), contentType: '', status: 415 },
    { name: 'body over the limit', body: { ...good, prompt: 'z'.repeat(2 * 1024 * 1024) }, status: 413 },
    { name: 'unknown charset', raw: JSON.stringify(good), contentType: 'application/json; charset=klingon', status: 415 },
    { name: 'PUT /v1/jobs', method: 'PUT', body: good, status: 404 },
    { name: 'PATCH a job', method: 'PATCH', path: '/v1/jobs/abc', body: good, status: 404 },
    { name: 'GET a very long id', method: 'GET', path: `/v1/jobs/${'x'.repeat(5000)}`, status: 404 },
    { name: 'GET an id that is not valid percent-encoding', method: 'GET', path: '/v1/jobs/%00%ff', status: 400 },
    { name: 'GET an id with a NUL byte', method: 'GET', path: '/v1/jobs/a%00b', status: 404 },
    { name: 'DELETE an unknown job', method: 'DELETE', path: '/v1/jobs/nope', status: 404 },
    { name: 'events of an unknown job', method: 'GET', path: '/v1/jobs/nope/events', status: 404 },
    { name: 'Idempotency-Key too long', body: good, headers: { 'Idempotency-Key': 'k'.repeat(300) } },
    { name: 'Idempotency-Key with spaces', body: good, headers: { 'Idempotency-Key': 'a b' } },
    { name: 'unknown v1 route', method: 'GET', path: '/v1/everything', status: 404 },
    { name: 'admin without key', method: 'GET', path: '/admin/dead-letter', status: 401 },
  );
  return cases;
}

let farm: Harness;
let api: TestApi;

useFarm(async (f, a) => {
  farm = f;
  api = a;
  await f.startWorker();
});

async function objectCount(): Promise<number> {
  const { endpoint, region, accessKeyId, secretAccessKey, bucket } = testStoreOptions();
  const s3 = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! } });
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  s3.destroy();
  return out.KeyCount ?? 0;
}

it('answers every malformed or hostile request with a 4xx JSON error naming the problem, and stores nothing', async () => {
  const png100 = (await sharp({ create: { width: 100, height: 100, channels: 3, background: '#000' } }).png().toBuffer()).toString('base64');
  const png64 = (await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000' } }).png().toBuffer()).toString('base64');
  const noise = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 256)), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
  const corrupt = Buffer.from(noise);
  for (let i = corrupt.length / 2; i < corrupt.length / 2 + 50; i++) corrupt[i] ^= 0xff; // inside the pixel data; header intact
  const others = {
    gif: (await sharp(noise).gif().toBuffer()).toString('base64'),
    tiff: (await sharp(noise).tiff().toBuffer()).toString('base64'),
    svg: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>').toString('base64'),
    'corrupt png': corrupt.toString('base64'),
  };
  const cases = corpus({ png100, png64, others });
  expect(cases.length).toBeGreaterThanOrEqual(100);
  const objectsBefore = await objectCount();
  const queuedBefore = await farm.queue.count();

  const wrong: string[] = [];
  for (const c of cases) {
    const method = c.method ?? 'POST';
    const headers: Record<string, string> = { ...c.headers };
    const contentType = c.contentType ?? 'application/json';
    if (contentType) headers['Content-Type'] = contentType;
    const body = method === 'GET' || method === 'DELETE' ? undefined : (c.raw ?? JSON.stringify(c.body));
    const res = await api.fetch(c.path ?? '/v1/jobs', { method, headers, body });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* reported below */
    }
    const ok =
      res.status === (c.status ?? 400) &&
      typeof json?.error?.code === 'string' &&
      typeof json?.error?.message === 'string' &&
      json.error.message.length > 0;
    if (!ok) wrong.push(`${c.name}: ${res.status} ${text.slice(0, 200)}`);
  }
  expect(wrong).toEqual([]);
  expect(await farm.queue.count()).toBe(queuedBefore);
  expect(await objectCount()).toBe(objectsBefore);

  // The worker never saw any of it, and still serves good jobs.
  const { body } = await postJob(api, good);
  expect((await waitForJob(api, body.id)).status).toBe('succeeded');
});
