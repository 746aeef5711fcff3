/**
 * Bad input over real HTTP: each answer is a 4xx JSON error naming the problem, and nothing
 * invalid reaches the queue.
 */
import sharp from 'sharp';
import { Harness, postJob, TestApi, useFarm } from '../support/harness';
import { pngDeclaring } from '../support/png-bomb';

const region = (mask: unknown) => ({ prompt: 'a red circle', mask });

let farm: Harness;
let api: TestApi;

useFarm((f, a) => {
  farm = f;
  api = a;
}, { bodyLimitBytes: 4096 });

const valid = { type: 'generate', prompt: 'a red circle', width: 128, height: 128, steps: 4 };

async function send(body: string, contentType = 'application/json') {
  const res = await api.fetch(`/v1/jobs`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, any> };
}

describe('POST /v1/jobs validation', () => {
  it.each([
    ['missing prompt', { type: 'generate', width: 128, height: 128 }, ['prompt']],
    ['wrong types', { ...valid, width: 'wide', steps: 2.5 }, ['width', 'steps']],
    ['size not a multiple of 8', { ...valid, height: 130 }, ['height']],
    ['size out of range', { ...valid, width: 8192 }, ['width']],
    ['negative size', { ...valid, width: -64 }, ['width']],
    ['too many steps', { ...valid, steps: 500 }, ['steps']],
    ['unknown fields', { ...valid, sampler: 'euler', nsfw: true }, ['sampler', 'nsfw']],
    ['unknown type', { ...valid, type: 'upscale' }, ['type']],
    ['over-long prompt', { ...valid, prompt: 'x'.repeat(1001) }, ['prompt']],
    ['a JSON array', [valid], ['(body)']],
    ['a mask of no known kind', { ...valid, regions: [region({ circle: [1, 2, 3] })] }, ['regions.0.mask']],
    ['a rect with negative width', { ...valid, regions: [region({ rects: [[0, 0, -5, 10]] })] }, ['regions.0.mask.rects.0.2']],
    ['a polygon of two points', { ...valid, regions: [region({ polygons: [[[0, 0], [5, 5]]] })] }, ['regions.0.mask.polygons.0']],
    ['invalid base64', { ...valid, regions: [region({ png: 'not base64 at all!' })] }, ['regions.0.mask.png']],
    ['a mask that is not an image', { ...valid, regions: [region({ png: Buffer.from('hello, world').toString('base64') })] }, ['regions.0.mask.png']],
    ['a decompression bomb', { ...valid, regions: [region({ png: pngDeclaring(100000, 100000) })] }, ['regions.0.mask.png']],
    ['too many regions', { ...valid, regions: Array(9).fill(region({ rects: [[0, 0, 8, 8]] })) }, ['regions']],
    ['a region without prompt', { ...valid, regions: [{ mask: { rects: [[0, 0, 8, 8]] } }] }, ['regions.0.prompt']],
  ])('rejects %s with 400 naming each field', async (_name, body, fields) => {
    const res = await postJob(api, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_request');
    expect(res.body.error.fields.map((f: { path: string }) => f.path)).toEqual(expect.arrayContaining(fields));
    for (const field of fields) expect(res.body.error.message).toContain(field);
  });

  it('refuses what the model cannot serve: more steps than its scheduler takes at the edit’s strength', async () => {
    const source = (await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000' } }).png().toBuffer()).toString('base64');
    const res = await postJob(api, { type: 'edit', source: { image: source }, mask: { rects: [[0, 0, 8, 8]] }, prompt: 'a red circle', steps: 40, strength: 0.1 });
    expect(res.status).toBe(400);
    expect(res.body.error.fields).toEqual([{ path: 'strength', message: expect.stringMatching(/steps must be at most 5 at strength 0.1/) }]);
  });

  it('refuses images in formats other than PNG, JPEG and WebP, naming the field', async () => {
    const gif = 'R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7'; // 1x1 GIF
    const res = await postJob(api, { ...valid, regions: [region({ png: gif })] });
    expect(res.status).toBe(400);
    expect(res.body.error.fields).toEqual([{ path: 'regions.0.mask.png', message: expect.stringMatching(/not a PNG, JPEG or WebP image/) }]);
  });

  it('rejects malformed JSON with 400 invalid_json', async () => {
    const res = await send('{"type": "generate", "prompt": ');
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/application\/json/);
    expect(res.body.error.code).toBe('invalid_json');
  });

  it('rejects bodies over the size limit with 413', async () => {
    const res = await send(JSON.stringify({ ...valid, prompt: 'y'.repeat(5000) }));
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'payload_too_large', message: expect.stringContaining('4096') });
  });

  it('rejects non-JSON content types with 415', async () => {
    const res = await send('prompt=a+red+circle', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await api.fetch(`/v2/things`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.code).toBe('not_found');
  });

  it('enqueued none of the invalid requests, and does enqueue a valid one', async () => {
    expect(await farm.queue.count()).toBe(0);
    const ok = await postJob(api, valid);
    expect(ok.status).toBe(202);
    expect(await farm.queue.count()).toBe(1);
    expect((await farm.queue.getJob(ok.body.id))?.data).toMatchObject({ request: { ...valid, seed: expect.any(Number) }, tenant: 'tenant-a' });
  });
});
